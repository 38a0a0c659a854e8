# cdef (nogil) entry points of losses.pyx, cimported by network.pyx.
#
# Row i of Z / A / P / loss / dZ is row i of the batch; row i of Y, labels and
# sw is rows[i] (rows may be NULL: identity), so network.pyx reads targets
# straight from the caller's arrays.  Y, labels and sw may be NULL (absent).
from cython cimport floating
from libc.stdint cimport int64_t

cdef void softmax_xent_c(const floating* Z, const floating* Y, const int64_t* labels,
                         const floating* sw, const int64_t* rows, double scale,
                         floating* P, double* loss, floating* dZ,
                         Py_ssize_t n, Py_ssize_t k, int n_threads) noexcept nogil

cdef void sigmoid_bce_c(const floating* Z, const floating* Y, const floating* sw,
                        const int64_t* rows, double scale,
                        floating* P, double* loss, floating* dZ,
                        Py_ssize_t n, Py_ssize_t k, int n_threads) noexcept nogil

cdef void mse_c(const floating* A, const floating* Y, const floating* sw,
                const int64_t* rows, double scale, double* loss, floating* dA,
                Py_ssize_t n, Py_ssize_t k, int n_threads) noexcept nogil

cdef void mae_c(const floating* A, const floating* Y, const floating* sw,
                const int64_t* rows, double scale, double* loss, floating* dA,
                Py_ssize_t n, Py_ssize_t k, int n_threads) noexcept nogil
