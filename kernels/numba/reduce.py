"""Reductions and data movement (numba twin of kernels/cython/reduce.pyx).

    bias_grad    db[j] = sum_i dZ[i, j]          parallel over column tiles
    gather_rows  out[r] = X[idx[r]]              parallel over rows
    all_finite   flag[0] = every element finite  parallel over flat tiles
    regularize   grads[W] += l1 sign(W) + 2 l2 W  parallel over flat tiles of W;
                 penalty = sum l1|W| + l2 W^2     one serial pass per layer

(each serial below ELEM_PAR_MIN elements).  Inner loops run over views from
index 0 (numba vectorises ``range(n)`` loops, not ``range(lo, hi)`` ones).
Every sum runs in a fixed order: bias_grad adds the rows of a column in row
order (vectorised across the columns of a tile, never across rows).
"""
import numpy as np

from .. import defs
from ._jit import kernel, kernel_helper, helper, serial, strict, prange, ELEM_PAR_MIN, COL_TILE, FLAT_TILE



# ---------------------------------------------------------------------------
# bias_grad
# ---------------------------------------------------------------------------
@helper
def _colsum(dZ, db, j0, j1):
    """db[j0:j1] = sum over rows of dZ[:, j0:j1], rows added in order."""
    zero = db.dtype.type(0)
    out = db[j0:j1]
    for j in range(out.shape[0]):
        out[j] = zero
    for i in range(dZ.shape[0]):
        row = dZ[i, j0:j1]
        for j in range(out.shape[0]):
            out[j] += row[j]


@kernel
def bias_grad(dZ, db, n_threads):
    """db[j] = sum_i dZ[i, j], rows summed in order."""
    m = dZ.shape[1]
    if db.shape[0] != m:
        raise ValueError("bias_grad: db must have m entries (one per column of dZ)")
    if m > COL_TILE and dZ.shape[0] * m >= ELEM_PAR_MIN:
        for t in prange((m + COL_TILE - 1) // COL_TILE):
            j0 = t * COL_TILE
            _colsum(dZ, db, j0, min(j0 + COL_TILE, m))
    else:
        _colsum(dZ, db, np.int64(0), m)   # not a literal 0: one specialisation, not two


# ---------------------------------------------------------------------------
# gather_rows
# ---------------------------------------------------------------------------
@helper
def _copy_row(src, dst):
    for j in range(dst.shape[0]):
        dst[j] = src[j]


@helper
def _rows_in_range(idx, N):
    """O(n): every index inside [0, N) (a wrong idx must not read out of bounds)."""
    for r in range(idx.shape[0]):
        if idx[r] < 0 or idx[r] >= N:
            return False
    return True


@kernel
def gather_rows(X, idx, out, n_threads):
    """out[r] = X[idx[r]]."""
    n = idx.shape[0]
    if out.shape[0] != n or out.shape[1] != X.shape[1]:
        raise ValueError("gather_rows: out must have shape (n, m): one row per index, X's columns")
    if not _rows_in_range(idx, X.shape[0]):
        raise IndexError("gather_rows: idx holds a row outside X (index out of range [0, N))")
    if n * out.shape[1] >= ELEM_PAR_MIN:
        for r in prange(n):
            _copy_row(X[idx[r]], out[r])
    else:
        for r in range(n):
            _copy_row(X[idx[r]], out[r])


# ---------------------------------------------------------------------------
# all_finite
# ---------------------------------------------------------------------------
@helper
def _finite_span(x, big):
    """1 if x is all finite: |v| <= the dtype's largest finite value is false for
    NaN and +-inf (counted without an early exit, so LLVM vectorises it; not
    ``v - v == 0``, which fast-math flags may fold to true)."""
    bad = 0
    for e in range(x.shape[0]):
        bad += 0 if abs(x[e]) <= big else 1
    return 1 if bad == 0 else 0


@kernel
def all_finite(X, flag, n_threads):
    """flag[0] = 1 if every element of X is finite, else 0 (tiles of FLAT_TILE * 16
    = 2**16 elements, in parallel from ELEM_PAR_MIN * 32 = 2**20, as the Cython
    twin: a pass at memory speed)."""
    if flag.shape[0] != 1:
        raise ValueError("all_finite: flag must have exactly 1 entry")
    x = X.reshape(-1)
    size = x.shape[0]
    tile = FLAT_TILE * 16
    ntiles = (size + tile - 1) // tile
    # np.empty and plain loops: in a parallel function np.ones and ok.min() become
    # parallel regions of their own, whose barrier waits for a time slice beside a
    # busy core even when X is too small for the prange (bench/threads_under_load.py,
    # busy rows)
    ok = np.empty(max(ntiles, 1), dtype=np.int64)
    ok[0] = 1
    big = np.finfo(X.dtype).max
    if ntiles > 1 and size >= ELEM_PAR_MIN * 32:
        for t in prange(ntiles):
            ok[t] = _finite_span(x[t * tile:min(size, (t + 1) * tile)], big)
    else:
        for t in range(ntiles):
            ok[t] = _finite_span(x[t * tile:min(size, (t + 1) * tile)], big)
    res = 1
    for t in range(ok.shape[0]):
        if ok[t] != 1:
            res = 0
    flag[0] = res


@serial
def finite(X):
    """Whether every element of the C-contiguous X is finite (all_finite's test), as
    a returned flag from one serial pass: Model.predict's check (the predictor of
    fastnet/backends/numba.py).  A call of the parallel all_finite kernel costs
    microseconds of its own, more than a small net's forward pass
    (bench/REPORT.md's predict overhead)."""
    return _finite_span(X.reshape(-1), np.finfo(X.dtype).max) == 1


# ---------------------------------------------------------------------------
# regularize
# ---------------------------------------------------------------------------
@helper
def _sign(x):
    """np.sign of a float64: 1, -1, 0 for 0, NaN for NaN (also used by mae)."""
    if x > 0:
        return 1.0
    if x < 0:
        return -1.0
    if x == 0:
        return 0.0
    return x


@helper
def _reg_grad(W, G, l1, l2, lo, hi):
    """G[lo:hi] += l1 sign(W) + 2 l2 W (sign(0) = 0, sign(nan) = nan); a zero
    coefficient's term is left out (0 * inf would be NaN), as in the Cython twin."""
    l2x2 = 2.0 * l2
    Wt = W[lo:hi]
    Gt = G[lo:hi]
    if l2 == 0.0:
        for i in range(Wt.shape[0]):
            Gt[i] = np.float64(Gt[i]) + l1 * _sign(np.float64(Wt[i]))
    elif l1 == 0.0:
        for i in range(Wt.shape[0]):
            Gt[i] = np.float64(Gt[i]) + l2x2 * np.float64(Wt[i])
    else:
        for i in range(Wt.shape[0]):
            w = np.float64(Wt[i])
            Gt[i] = np.float64(Gt[i]) + (l1 * _sign(w) + l2x2 * w)


@kernel_helper
def _reg_grad_par(W, G, l1, l2):
    n = W.shape[0]
    for t in prange((n + FLAT_TILE - 1) // FLAT_TILE):
        lo = t * FLAT_TILE
        _reg_grad(W, G, l1, l2, lo, min(lo + FLAT_TILE, n))


@strict
def _abs_sq_sums(W, lo, hi):
    """sum |W[lo:hi]| and sum W[lo:hi]^2 in float64, each with 8 interleaved partial
    sums (element i to partial i % 8, the partials added in order at the end):
    the Cython twin's _abs_sq_sums."""
    p1 = np.zeros(8)
    p2 = np.zeros(8)
    n8 = lo + (hi - lo) - (hi - lo) % 8
    for i in range(lo, n8, 8):
        for j in range(8):
            w = np.float64(W[i + j])
            p1[j] = p1[j] + abs(w)
            p2[j] = p2[j] + w * w
    for i in range(n8, hi):
        w = np.float64(W[i])
        p1[i - n8] = p1[i - n8] + abs(w)
        p2[i - n8] = p2[i - n8] + w * w
    s1 = 0.0
    s2 = 0.0
    for j in range(8):
        s1 = s1 + p1[j]
        s2 = s2 + p2[j]
    return s1, s2


@strict
def _reg_penalty(W, l1, l2):
    """l1 * sum|W| + l2 * sum W^2 in float64: 8 interleaved partial sums within each
    tile of FLAT_TILE (_abs_sq_sums), then the tiles in order (the Cython twin's
    order; strict: no reassociation of the sums); a zero coefficient's term is
    left out (0 * inf would be NaN)."""
    s1 = 0.0
    s2 = 0.0
    n = W.shape[0]
    for lo in range(0, n, FLAT_TILE):
        t1, t2 = _abs_sq_sums(W, lo, min(lo + FLAT_TILE, n))
        s1 += t1
        s2 += t2
    if l2 == 0.0:
        return l1 * s1
    if l1 == 0.0:
        return l2 * s2
    return l1 * s1 + l2 * s2


@helper
def _reg_range(params, grads, start, size, l1, l2):
    """grads += l1 sign(W) + 2 l2 W over one weight array; returns its penalty."""
    W = params[start:start + size]
    G = grads[start:start + size]
    pen = _reg_penalty(W, l1, l2)
    if size >= ELEM_PAR_MIN:
        _reg_grad_par(W, G, l1, l2)
    else:
        _reg_grad(W, G, l1, l2, 0, size)
    return pen


@serial
def regularize(layers, params, grads, penalty, n_threads):
    """grads[W_l] += l1 sign(W_l) + 2 l2 W_l for every layer with a penalty (and
    the same over b_l with the bias coefficients); penalty[0] = the sum of
    l1 sum|.| + l2 sum .^2 over those arrays (float64, from params as given)."""
    total = 0.0
    for l in range(layers.shape[0]):
        size = layers[l].n_in * layers[l].n_out
        if layers[l].kind == defs.LAYER_MAXOUT and layers[l].pieces > 1:
            size *= layers[l].pieces    # Maxout: W is (in, out * pieces)
        l1 = layers[l].l1
        l2 = layers[l].l2
        if l1 != 0.0 or l2 != 0.0:
            total += _reg_range(params, grads, layers[l].w_offset, size, l1, l2)
        # the bias (Keras's bias_regularizer): its own coefficients, its own sums
        l1 = layers[l].bias_l1
        l2 = layers[l].bias_l2
        if (l1 != 0.0 or l2 != 0.0) and layers[l].b_offset >= 0:
            total += _reg_range(params, grads, layers[l].b_offset, size // layers[l].n_in, l1, l2)
    penalty[0] = total
