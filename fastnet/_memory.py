"""Buffers aligned to a cache line.

numpy's allocator (malloc) returns arrays 16, 32 or 48 bytes past a cache line,
so every 64-byte vector load of such a buffer spans two lines: batch-1 inference
streams the weights once and pays it on every load (bench/REPORT.md's predict
section).  The model's parameters, gradients, optimizer state and workspaces are
allocated here instead.
"""
import numpy as np

ALIGN = 64


def aligned_empty(shape, dtype):
    """An uninitialised C-contiguous array whose first element lies on an ALIGN-byte
    boundary (a view of a slightly larger buffer)."""
    dtype = np.dtype(dtype)
    shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
    n = int(np.prod(shape, dtype=np.int64))
    buf = np.empty(n * dtype.itemsize + ALIGN, dtype=np.uint8)
    start = -buf.ctypes.data % ALIGN
    return buf[start:start + n * dtype.itemsize].view(dtype).reshape(shape)


def aligned_zeros(shape, dtype):
    """aligned_empty filled with zeros."""
    out = aligned_empty(shape, dtype)
    out[...] = 0
    return out
