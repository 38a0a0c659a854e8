# The two-thread split step's entry, called by network.train_batches (split.pyx).
from cython cimport floating
from libc.stdint cimport int64_t

cdef int train_split(const floating[:, ::1] X, const floating[:, ::1] Y, const int64_t[::1] labels,
                     const floating[::1] sw, const int64_t[::1] perm, Py_ssize_t batch_size,
                     Py_ssize_t first_batch, Py_ssize_t n_batches, object layers, int head, int opt,
                     const double[::1] h, Py_ssize_t t0, floating[::1] params, floating[::1] grads,
                     floating[:, ::1] state, floating[::1] work, double[::1] batch_loss,
                     floating[:, ::1] scores, const Py_ssize_t[::1] offs, Py_ssize_t r_split,
                     bint sparse) except -1
