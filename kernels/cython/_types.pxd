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
# team is woken: waking one costs more than a tiny kernel takes).

from libc.stdint cimport int64_t, uint64_t
from cython cimport floating

ctypedef double float64_t

# Below these thresholds a kernel runs on the calling thread with no OpenMP region
# at all (``if par: prange loop else: plain loop``), not a prange with
# use_threads_if=False: libgomp charges even for a disabled region, a large share
# of the batch-10 seed step (15 regions a step; the seed epoch of bench/REPORT.md).
cdef enum:
    # sparse (meProp) products of layers.pyx: parallel when their multiply-adds
    # reach this (matmul.pyx keeps its own copy, same value, as numba's _jit.py)
    MATMUL_PAR_MIN = 1 << 20
    # elementwise / row-wise kernels: parallel when n * m reaches this (2**15: see
    # ELEM_PAR_MIN in kernels/numba/_jit.py for the measurement)
    ELEM_PAR_MIN = 1 << 15
    # flat (1-D) kernels (optimizer update, regularization): elements per tile
    FLAT_TILE = 4096
    # optimizer update: parallel when the parameter count reaches this
    OPT_PAR_MIN = 1 << 15
    # bias_grad: columns per tile (rows summed in order inside a tile)
    COL_TILE = 64
