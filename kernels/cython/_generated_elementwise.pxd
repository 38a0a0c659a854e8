# cdef (nogil) entry points of _generated_elementwise.pyx, cimported by network.pyx
# and reduce.pyx.
#
# This declaration file is written by hand (it does not depend on the table);
# the module itself is rendered from kernels/templates/elementwise.pyx.tp and
# kernels/defs.py at build time.
from cython cimport floating

# Z += b (b may be NULL), then A = act(Z); A may be Z
cdef void bias_act_forward_c(const floating* b, int act, double act_param,
                             floating* Z, floating* A, Py_ssize_t n, Py_ssize_t m,
                             int n_threads) noexcept nogil

# dZ = dA * g'(Z, A); dZ may be dA
cdef void act_backward_c(const floating* Z, const floating* A, const floating* dA,
                         int act, double act_param, floating* dZ, Py_ssize_t n, Py_ssize_t m,
                         int n_threads) noexcept nogil

# one optimizer step over P elements, the gradient multiplied by grad_scale first
# (opt = defs.OPT_*; OPT_NONE and unknown codes do nothing); state row s of the element e is state[s * ld + e] (ld = P for a whole
# buffer; a sub-range passes pointers into the buffers and the full row length)
cdef void optimizer_update_c(int opt, const double* hyper, double grad_scale, Py_ssize_t t,
                             const floating* grads, floating* params, floating* state,
                             Py_ssize_t P, Py_ssize_t ld, int n_threads) noexcept nogil

# x[e] = exp(x[e]) for e < n, through this CPU's vector loop (fn_math.h: float64
# fn_exp, within 1 ulp of libm; float32 fn_expf, within 1 ulp of exp rounded to float)
cdef void exp_inplace_c(floating* x, Py_ssize_t n) noexcept nogil

# the penalty's element loop over n weights: sums[0] = sum |W|, sums[1] = sum W^2 (float64,
# 8 interleaved partials added in order: numba's reduce._abs_sq_sums), then
# G += l1 sign(W) + 2 l2 W (a zero coefficient's term left out), in this CPU's vector loop
cdef void reg_span_c(const floating* W, floating* G, Py_ssize_t n, double l1, double l2,
                     double* sums) noexcept nogil

# db[j] = sum_i dZ[i * m + j] for j < jn <= 64 (COL_TILE), rows in order, one add per row,
# in this CPU's vector loop (vectorised across the columns only: the same sums everywhere)
cdef void col_sums_c(const floating* dZ, floating* db, Py_ssize_t n, Py_ssize_t m,
                     Py_ssize_t jn) noexcept nogil
