# cdef (nogil) entry points of layers.pyx (PReLU, Maxout, meProp), cimported by
# network.pyx.  Pointers to C-contiguous row-major arrays; shapes are explicit.
from cython cimport floating
from libc.stdint cimport int64_t

# A (n, m) = Z where Z > 0, else slope[j] * Z; A may be Z
cdef void prelu_forward_c(const floating* Z, const floating* slope, floating* A,
                          Py_ssize_t n, Py_ssize_t m, int n_threads) noexcept nogil

# dslope[j] = sum_i dA * Z over Z <= 0 (rows in order, float64); dZ = dA or slope[j] * dA;
# dZ may be dA
cdef void prelu_backward_c(const floating* Z, const floating* dA, const floating* slope,
                           floating* dslope, floating* dZ, Py_ssize_t n, Py_ssize_t m,
                           int n_threads) noexcept nogil

# A (n, m) = max over the q adjacent pieces of Z (n, m * q)
cdef void maxout_forward_c(const floating* Z, Py_ssize_t q, floating* A,
                           Py_ssize_t n, Py_ssize_t m, int n_threads) noexcept nogil

# dZ (n, m * q): dA at the first maximal piece (the first NaN if any), dA * 0 elsewhere
cdef void maxout_backward_c(const floating* Z, const floating* dA, Py_ssize_t q,
                            floating* dZ, Py_ssize_t n, Py_ssize_t m,
                            int n_threads) noexcept nogil

# keep the k largest |D| per row (ties: lower column; NaN the largest), zero the rest;
# idx (n, k) = kept columns in increasing order; scratch: n * m elements
cdef void topk_rows_c(floating* D, Py_ssize_t k, int64_t* idx, floating* scratch,
                      Py_ssize_t n, Py_ssize_t m, int n_threads) noexcept nogil

# C (k_in, m) = A.T @ D with A (n, k_in), row i of D read only at idx[i, :k];
# T: scratch of m * k_in elements
cdef void matmul_tn_sparse_c(const floating* A, const floating* D, const int64_t* idx,
                             floating* C, Py_ssize_t n, Py_ssize_t k_in, Py_ssize_t m,
                             Py_ssize_t k, floating* T, int n_threads) noexcept nogil

# C (n, k_in) = D @ B.T with B (k_in, m), row i of D read only at idx[i, :k] (in order);
# Bt: scratch of m * k_in elements
cdef void matmul_nt_sparse_c(const floating* D, const int64_t* idx, const floating* B,
                             floating* C, Py_ssize_t n, Py_ssize_t k_in, Py_ssize_t m,
                             Py_ssize_t k, floating* Bt, int n_threads) noexcept nogil
