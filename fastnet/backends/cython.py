"""The Cython backend: a thin adapter over ``fastnet._kernels.cython``.

Every function of the contract (``fastnet/backends/_api.py``) is exposed here
with the contract's signature, built from ``_api.KERNELS`` by
``fastnet/backends/_adapter.py``: train_batches, forward and regularize run the
shared validator (``_api.VALIDATORS``) first; every wrapper normalises the
scalars (``n_threads`` through :func:`_threads`, the dropout key wrapped to
uint64).  The compiled kernels (``kernels/cython/*.pyx``, built by
``setup.py``) also check shapes, dtypes and indices themselves (they run with
bounds checks off and are called directly too, so they refuse anything that
would read or write out of bounds) and release the GIL for all their work.
Float arrays must share one dtype, float32 or float64 (Cython's fused
``floating``: one compiled specialisation each); integer arrays are int64.

Threads
-------
Every parallel loop is an OpenMP ``prange(num_threads=n_threads)`` over tiles
of the output fixed by the shape, so results are bit-identical for any
``n_threads``.  Tiny shapes run on the calling thread (``use_threads_if``: a
parallel region costs more than they take).  Without OpenMP (non-Linux builds,
or ``FASTNET_NO_OPENMP=1``) everything runs serially; :func:`info` says which.

Import never fails: when the extension modules cannot be imported (not built,
built for another Python, stale), :func:`check` raises with the reason, so
``fastnet.backend_status()`` reports it instead of breaking ``import fastnet``.
"""

import operator
import os

from .._kernels import defs
from . import _adapter

__all__ = [
    "matmul", "matmul_tn", "matmul_nt", "bias_act_forward", "act_backward",
    "softmax_xent", "sigmoid_bce", "mse", "mae", "bias_grad", "gather_rows",
    "regularize", "optimizer_update", "prelu_forward", "prelu_backward", "maxout_forward",
    "maxout_backward", "topk_rows", "matmul_tn_sparse", "matmul_nt_sparse", "forward",
    "train_batches", "check", "info",
]

NAME = "cython"
_U64 = (1 << 64) - 1
# a cap for direct kernel calls (set_num_threads clamps to the cores): odd and
# oversubscribed counts stay testable, thousands of threads never reach libgomp
_MAX_THREADS = 8 * (os.cpu_count() or 1)

try:
    from .._kernels.cython import matmul as _mm
    from .._kernels.cython import _generated_elementwise as _ew
    from .._kernels.cython import losses as _ls
    from .._kernels.cython import reduce as _rd
    from .._kernels.cython import network as _nw
    from .._kernels.cython import layers as _ly
    from .._kernels.cython import _openmp_helpers as _omp
except ImportError as exc:  # not built, or built for another interpreter
    _IMPORT_ERROR = exc
else:
    _IMPORT_ERROR = None


# n_threads as OpenMP gets it: capped (libgomp dies creating thousands), 1 in a forked child
_threads = _adapter.thread_count_function(_MAX_THREADS, starts_openmp=True)


# ---------------------------------------------------------------------------
# contract kernels: built from _api.KERNELS (fastnet/backends/_adapter.py)
# ---------------------------------------------------------------------------
def _unavailable(*args, **kwargs):
    check()
    raise ImportError("the Cython kernels are not importable")


globals().update(_adapter.build_kernels(
    __name__, {None: _unavailable} if _IMPORT_ERROR else _adapter.find_kernels((_mm, _ew, _ls, _rd, _ly, _nw)),
    _threads, key=lambda k: operator.index(k) & _U64))


# ---------------------------------------------------------------------------
# backend services
# ---------------------------------------------------------------------------


def check():
    """Raise if this backend cannot be used (called once by the registry).

    Cheap: the extension modules must import, and the elementwise module must
    have been rendered from this kernels/defs.py (else rebuild:
    ``pip install --no-build-isolation -e .``)."""
    if _IMPORT_ERROR is not None:
        raise ImportError("the Cython kernels are not importable (%s: %s); build them with "
                          "`pip install --no-build-isolation -e .` from the source tree"
                          % (type(_IMPORT_ERROR).__name__, _IMPORT_ERROR))
    if getattr(_ew, "TABLE_DIGEST", None) != defs.table_digest():
        raise ImportError(
            "fastnet._kernels.cython._generated_elementwise was built from another "
            "kernels/defs.py; rebuild with `pip install --no-build-isolation -e .`")


def predictor(dtype):
    """Model.predict's fast path for arrays of ``dtype``: ``run(X, layers, params,
    work, out, n_threads)`` computes ``forward`` and returns True when every
    element of X is finite, else writes nothing and returns False.  One compiled
    call (the kernel's own shape checks, no contract validator: the arguments
    are the model's own), its dtype specialisation picked here, not by Cython's
    fused-type dispatch on every call (bench/REPORT.md's predict overhead)."""
    check()
    import numpy as np
    kernel = _nw.forward_if_finite.__signatures__["float" if np.dtype(dtype) == np.float32 else "double"]
    threads = _threads

    def run(X, layers, params, work, out, n_threads):
        return kernel(X, layers, params, work, out, threads(n_threads))
    return run


def info():
    """Build and threading facts for benchmark reports."""
    check()
    return {
        "backend": NAME,
        "openmp": _omp.openmp_enabled(),
        "max_threads": _omp.max_threads(),
        "native": _omp.native_build(),
        "matmul_isa": _mm.isa()["isa"],
        "optimizer_isa": _ew.isa(),
    }
