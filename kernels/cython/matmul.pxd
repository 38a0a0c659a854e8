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

# C (n, m) = A (n, k) @ B with A's rows lda elements apart (a column block of a
# wider A; every element the same FMA chain as matmul_c's on a contiguous copy)
cdef void matmul_lda_c(const floating* A, Py_ssize_t lda, const floating* B, floating* C,
                       Py_ssize_t n, Py_ssize_t k, Py_ssize_t m, int n_threads) noexcept nogil

# the narrow path (one thread) with A given by pointers: variant 0, C (n, m) = A @ B
# with row i of A (n, k) at arow[i] + a_off; variant 1, C = A.T @ B with row p of
# A (k, n) at arow[p] + a_off.  Returns -1, doing nothing, where the narrow
# kernels do not apply (the caller gathers A; matmul_c / matmul_tn_c give the same bits)
cdef int matmul_ptr_c(int variant, const floating* const* arow, Py_ssize_t a_off,
                      const floating* B, floating* C, Py_ssize_t n, Py_ssize_t k,
                      Py_ssize_t m) noexcept nogil
