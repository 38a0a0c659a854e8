# cdef helpers of network.pyx that split.pyx (the two-thread step) shares with the
# plain step: one layer's forward, and the loss head.
from cython cimport floating
from libc.stdint cimport int64_t

from ._generated_layer cimport layer_t

# Z = inp @ W + b, then A = the layer's output (A may be Z except for Maxout); with
# ``logits`` (a fused head's last layer) only the bias is added.
cdef void _layer_z(const floating* inp, const layer_t* layers, Py_ssize_t l, const floating* params,
                   floating* Z, floating* A, Py_ssize_t n, bint logits,
                   int n_threads) noexcept nogil

# the batch's per-row losses and dL/dz of the last layer into D; returns the mean
# weighted data loss
cdef double _loss_head(int head, const floating* ZL, floating* AL, const floating* Y,
                       const int64_t* labels, const floating* sw, const int64_t* rows,
                       const layer_t* layers, Py_ssize_t L, double* row_loss, floating* D, Py_ssize_t nb,
                       Py_ssize_t k, int n_threads) noexcept nogil
