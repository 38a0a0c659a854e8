# cdef (nogil) entry points of matmul.pyx, cimported by network.pyx.
# Pointers to C-contiguous row-major arrays; shapes are explicit.
from cython cimport floating

# C (n, m) = A (n, k) @ B (k, m)
cdef void matmul_c(const floating* A, const floating* B, floating* C,
                   Py_ssize_t n, Py_ssize_t k, Py_ssize_t m, int n_threads) noexcept nogil

# C (n, m) = A.T @ B with A (k, n), B (k, m)
cdef void matmul_tn_c(const floating* A, const floating* B, floating* C,
                      Py_ssize_t n, Py_ssize_t k, Py_ssize_t m, int n_threads) noexcept nogil

# C (n, m) = A (n, k) @ B.T with B (m, k); Bt is a scratch buffer of k * m elements
cdef void matmul_nt_c(const floating* A, const floating* B, floating* C,
                      Py_ssize_t n, Py_ssize_t k, Py_ssize_t m, floating* Bt,
                      int n_threads) noexcept nogil
