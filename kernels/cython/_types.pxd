# Types and tuning constants shared by the Cython kernels (cimported by every
# kernel module; declarations only, no code).
#
# The float type of every kernel is Cython's fused ``floating`` (float32 /
# float64: one specialisation each); integer arrays are int64; per-row losses,
# penalties and hyper-parameters are float64.
#
# The tuning constants mirror ``kernels/numba/_jit.py`` (same names, same
# values) so both twins split work the same way.  They depend on the SHAPE only,
# never on the thread count: a parallel loop runs over fixed tiles of the output,
# each tile's result is computed by the same code whichever thread runs it, so
# results are bit-identical for any ``n_threads``.  Below a threshold the loop
# still runs under ``prange`` but with ``use_threads_if=False`` (no thread
# team is woken: a parallel region costs ~1-3 us, more than a tiny kernel).

from libc.stdint cimport int64_t, uint64_t
from cython cimport floating

ctypedef double float64_t

cdef enum:
    # matmul family: parallel when n * k * m (multiply-adds) reaches this
    MATMUL_PAR_MIN = 1 << 15
    # matmul register block: rows of C per micro-kernel call
    MATMUL_MR = 4
    # matmul column panel: columns of C per tile (stack accumulators MR x NB)
    MATMUL_NB = 32
    # elementwise / row-wise kernels: parallel when n * m reaches this
    ELEM_PAR_MIN = 1 << 13
    # flat (1-D) kernels (optimizer update, regularization): elements per tile
    FLAT_TILE = 4096
    # bias_grad: columns per tile (rows summed in order inside a tile)
    COL_TILE = 64
