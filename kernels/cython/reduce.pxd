# cdef (nogil) entry points of reduce.pyx, cimported by network.pyx.
from cython cimport floating
from libc.stdint cimport int64_t
from ._generated_layer cimport layer_t

# db[j] = sum_i dZ[i, j], rows in order
cdef void bias_grad_c(const floating* dZ, floating* db, Py_ssize_t n, Py_ssize_t m,
                      int n_threads) noexcept nogil

# out[r] = X[idx[r]] (idx unchecked)
cdef void gather_rows_c(const floating* X, const int64_t* idx, floating* out,
                        Py_ssize_t n, Py_ssize_t m, int n_threads) noexcept nogil

# grads[W_l] += l1 sign(W_l) + 2 l2 W_l; returns the penalty (float64).
# The L layer records are trusted (checked by callers).
# scratch: regularize_scratch(layers, L) doubles (per-tile partial sums).
cdef double regularize_c(const layer_t* layers, Py_ssize_t L, const floating* params,
                         floating* grads, double* scratch, int n_threads) noexcept nogil

cdef Py_ssize_t regularize_scratch(const layer_t* layers, Py_ssize_t L) noexcept nogil

# The records of a 1-D, C-contiguous, non-empty array of defs.LAYER_DTYPE (raises
# TypeError / ValueError otherwise); L[0] = their count.  Valid while the array lives.
cdef const layer_t* records(object table, Py_ssize_t* L) except NULL

# 1 if every one of the size elements at x is finite, else 0 (tiles in parallel
# from FINITE_PAR_MIN elements)
cdef int all_finite_c(const floating* x, Py_ssize_t size, int n_threads) noexcept nogil
