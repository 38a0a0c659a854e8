"""The Cython backend: a thin adapter over ``fastnet._kernels.cython``.

Every function of the contract (``fastnet/backends/_api.py``) is exposed here
with the contract's signature.  The compiled kernels (``kernels/cython/*.pyx``,
built by ``setup.py``) check shapes, dtypes and indices themselves (they run
with bounds checks off, so they refuse anything that would read or write out
of bounds) and release the GIL for all their work; this adapter only
normalises the scalars: ``n_threads`` (>= 1) and the dropout key (wrapped to
uint64).  Float arrays must share one dtype, float32 or float64 (Cython's
fused ``floating``: one compiled specialisation each); integer arrays are int64.

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

import numpy as np

import os

from .. import _threads as _thr
from .._kernels import defs

__all__ = [
    "matmul", "matmul_tn", "matmul_nt", "bias_act_forward", "act_backward",
    "softmax_xent", "sigmoid_bce", "mse", "mae", "bias_grad", "gather_rows",
    "regularize", "optimizer_update", "prelu_forward", "prelu_backward", "maxout_forward",
    "maxout_backward", "topk_rows", "matmul_tn_sparse", "matmul_nt_sparse", "forward",
    "train_batches", "check", "info",
]

NAME = "cython"
_U64 = (1 << 64) - 1
_NO_DIAG = np.empty(0, dtype=np.float64)
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


def _threads(n_threads):
    """n_threads as OpenMP gets it: >= 1, capped (results do not depend on it;
    libgomp dies creating thousands), 1 in a forked child (fastnet/_threads.py:
    fork safety)."""
    n = int(n_threads)
    if n < 1:
        raise ValueError("n_threads must be >= 1; got %d" % n)
    if n > 1:
        if _thr._forked_serial:
            _thr.warn_forked_serial(n)
            return 1
        if not _thr._omp_pool_started:
            _thr.note_threads_started()
        if n > _MAX_THREADS:
            n = _MAX_THREADS
    return n


# ---------------------------------------------------------------------------
# contract kernels
# ---------------------------------------------------------------------------
def matmul(A, B, C, n_threads):
    """C = A @ B."""
    _mm.matmul(A, B, C, _threads(n_threads))


def matmul_tn(A, B, C, n_threads):
    """C = A.T @ B (the weight gradient X^T delta)."""
    _mm.matmul_tn(A, B, C, _threads(n_threads))


def matmul_nt(A, B, C, n_threads):
    """C = A @ B.T (the back-propagated delta delta W^T)."""
    _mm.matmul_nt(A, B, C, _threads(n_threads))


def bias_act_forward(b, act, alpha, Z, A, n_threads):
    """Z += b (when b is not empty), then A = act(Z) elementwise (row-wise stable
    softmax for ACT_SOFTMAX). A may be Z (in place)."""
    _ew.bias_act_forward(b, act, alpha, Z, A, _threads(n_threads))


def act_backward(Z, A, dA, act, alpha, dZ, n_threads):
    """dZ = dA * g'(Z) elementwise, g' written from A where possible; softmax:
    dZ = A * (dA - sum_j dA A). dZ may be dA."""
    _ew.act_backward(Z, A, dA, act, alpha, dZ, _threads(n_threads))


def softmax_xent(Z, Y, labels, sw, scale, P, loss, dZ, n_threads):
    """Fused stable softmax + cross-entropy (see _api.KERNEL_DOCS)."""
    _ls.softmax_xent(Z, Y, labels, sw, scale, P, loss, dZ, _threads(n_threads))


def sigmoid_bce(Z, Y, sw, scale, P, loss, dZ, n_threads):
    """Fused stable sigmoid + binary cross-entropy on logits."""
    _ls.sigmoid_bce(Z, Y, sw, scale, P, loss, dZ, _threads(n_threads))


def mse(A, Y, sw, scale, loss, dA, n_threads):
    """loss[i] = mean_j (A - Y)^2; dA = 2 (A - Y) w_i scale / k."""
    _ls.mse(A, Y, sw, scale, loss, dA, _threads(n_threads))


def mae(A, Y, sw, scale, loss, dA, n_threads):
    """loss[i] = mean_j |A - Y|; dA = sign(A - Y) w_i scale / k."""
    _ls.mae(A, Y, sw, scale, loss, dA, _threads(n_threads))


def bias_grad(dZ, db, n_threads):
    """db[j] = sum_i dZ[i, j], rows summed in order."""
    _rd.bias_grad(dZ, db, _threads(n_threads))


def gather_rows(X, idx, out, n_threads):
    """out[r] = X[idx[r]]."""
    _rd.gather_rows(X, idx, out, _threads(n_threads))


def all_finite(X, flag, n_threads):
    """flag[0] = 1 if every element of X is finite, else 0."""
    _rd.all_finite(X, flag, _threads(n_threads))


def regularize(ispec, fspec, params, grads, penalty, n_threads):
    """grads[W_l] += l1 sign(W_l) + 2 l2 W_l; penalty[0] = the penalty."""
    _rd.regularize(ispec, fspec, params, grads, penalty, _threads(n_threads))


def optimizer_update(opt, hyper, t, grads, params, state, n_threads):
    """One optimizer step over the flat buffer (PyTorch rules)."""
    _ew.optimizer_update(opt, hyper, t, grads, params, state, _threads(n_threads))


def prelu_forward(Z, slope, A, n_threads):
    """A = Z where Z > 0, else slope[j] * Z (A may be Z)."""
    _ly.prelu_forward(Z, slope, A, _threads(n_threads))


def prelu_backward(Z, dA, slope, dslope, dZ, n_threads):
    """dslope[j] = sum_i dA * Z over Z <= 0 (float64 accumulation); dZ = dA where
    Z > 0, else slope[j] * dA (dZ may be dA)."""
    _ly.prelu_backward(Z, dA, slope, dslope, dZ, _threads(n_threads))


def maxout_forward(Z, pieces, A, n_threads):
    """A[i, j] = max_p Z[i, j*q + p] (NaN propagates)."""
    _ly.maxout_forward(Z, int(pieces), A, _threads(n_threads))


def maxout_backward(Z, dA, pieces, dZ, n_threads):
    """dZ[i, j*q + p] = dA[i, j] at the first maximal piece (the first NaN if any), else 0."""
    _ly.maxout_backward(Z, dA, int(pieces), dZ, _threads(n_threads))


def topk_rows(D, k, idx, n_threads):
    """Per row keep the k largest |D| (ties: lower column; NaN the largest), zero the
    rest; idx[i] = the kept columns in increasing order."""
    _ly.topk_rows(D, int(k), idx, _threads(n_threads))


def matmul_tn_sparse(A, D, idx, C, n_threads):
    """C = A.T @ D, row i of D nonzero only at columns idx[i]."""
    _ly.matmul_tn_sparse(A, D, idx, C, _threads(n_threads))


def matmul_nt_sparse(D, idx, B, C, n_threads):
    """C = D @ B.T using only columns idx[i] of row i of D."""
    _ly.matmul_nt_sparse(D, idx, B, C, _threads(n_threads))


def forward(X, ispec, fspec, params, work, out, n_threads):
    """out = the network's output on X (inference: no dropout)."""
    _nw.forward(X, ispec, fspec, params, work, out, _threads(n_threads))


def train_batches(X, Y, labels, sw, perm, batch_size, first_batch, n_batches, ispec, fspec,
                  head, opt, hyper, t0, rng_key, params, grads, state, work, batch_loss,
                  scores, n_threads, diag=None):
    """n_batches complete training steps in one compiled call, without the GIL (see _api).
    diag: the optional diagnostics buffer (None or empty = off)."""
    if diag is None:
        diag = _NO_DIAG
    _nw.train_batches(X, Y, labels, sw, perm, batch_size, first_batch, n_batches,
                      ispec, fspec, head, opt, hyper, t0, int(rng_key) & _U64,
                      params, grads, state, work, batch_loss, scores, _threads(n_threads),
                      diag)


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
