# cdef (nogil) entry points of reduce.pyx, cimported by network.pyx.
from cython cimport floating
from libc.stdint cimport int64_t

# db[j] = sum_i dZ[i, j], rows in order
cdef void bias_grad_c(const floating* dZ, floating* db, Py_ssize_t n, Py_ssize_t m,
                      int n_threads) noexcept nogil

# out[r] = X[idx[r]] (idx unchecked)
cdef void gather_rows_c(const floating* X, const int64_t* idx, floating* out,
                        Py_ssize_t n, Py_ssize_t m, int n_threads) noexcept nogil

# grads[W_l] += l1 sign(W_l) + 2 l2 W_l; returns the penalty (float64).
# ispec / fspec rows have ni / nf columns; the spec is trusted (checked by callers).
# scratch: regularize_scratch(ispec, L, ni) doubles (per-tile partial sums).
cdef double regularize_c(const int64_t* ispec, const double* fspec, Py_ssize_t L,
                         Py_ssize_t ni, Py_ssize_t nf, const floating* params,
                         floating* grads, double* scratch, int n_threads) noexcept nogil

cdef Py_ssize_t regularize_scratch(const int64_t* ispec, Py_ssize_t L, Py_ssize_t ni) noexcept nogil
