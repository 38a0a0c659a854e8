"""Loss heads (numba twin of kernels/cython/losses.pyx).

Each head is written once as a row function (``_*_row``) that reads one row of
the model output and of the targets and writes that row's outputs, returning
the row's unweighted loss (float64).  The contract kernels loop over rows
(serially below ``ELEM_PAR_MIN`` elements, ``prange`` above); ``network`` calls
the same row functions with the target row picked through ``perm`` (no copy of
the targets) and sums ``w_i * loss_i`` in row order.

Numerics: everything is computed in float64 and stored in the array dtype;
``softmax_xent`` uses the log-sum-exp (loss_j = lse - z_j, never log(p); its row
function is strict, bit-identical to the Cython twin's; its exponentials are
fn_math's fn_exp_t in the array dtype, as the Cython twin's vector loop), and
``sigmoid_bce`` the softplus form max(z, 0) - z y + log1p(exp(-|z|)).  NaN in a
row propagates to that row's outputs and loss (IEEE arithmetic: no fast-math
flag, kernels/numba/_jit.py).
"""
import numpy as np
from math import exp, log1p, fabs

from numba import njit

from ._jit import helper, kernel, strict, prange, ELEM_PAR_MIN, _OPTIONS
from .reduce import _sign
from .fn_math import fn_exp_t


#: strict, and inlined into each caller at numba's IR level: a call of a row
#: helper passes its array views with reference counts around it, which cost more
#: than a 10-column row's arithmetic
strict_inline = njit(**dict(_OPTIONS, fastmath=False, inline="always"))


# ---------------------------------------------------------------------------
# row functions (shared with network.py)
# ---------------------------------------------------------------------------
@strict
def _softmax_xent_row(z, y, label, coef, p, dz):
    """One row of the fused softmax + cross-entropy.

    z (k,) logits; y (k,) targets, ignored when ``label >= 0`` (then the target
    is one-hot at ``label``); coef = w_i * scale.  Writes p = softmax(z) and
    dz = (p - y) * coef (p must not overlap z).  Returns -sum_j y_j log p_j.

    The Cython twin's formula and order, strict (no fast-math: same bits): jm =
    the first column of the row max mx; e_j = fn_exp_t(z_j - mx) in the array
    dtype (held in p); then _xent_finish.
    """
    jm = _xent_argmax(z)
    mx = z[jm]
    for j in range(z.shape[0]):
        p[j] = fn_exp_t(z[j] - mx)
    return _xent_finish(z, y, label, coef, p, dz, jm)


@strict_inline
def _xent_argmax(z):
    """The first column of the row max (0 when z[0] is NaN)."""
    jm = 0
    mx = z[0]
    for j in range(1, z.shape[0]):
        if z[j] > mx:
            mx = z[j]
            jm = j
    return jm


@strict_inline
def _xent_finish(z, y, label, coef, p, dz, jm):
    """The row from its exponentials e_j = fn_exp_t(z_j - z_jm), held in p:
    s_rest = (e_jm - 1) + sum over j != jm of e_j in column order, in double;
    p_j = e_j / (1 + s_rest); -log p_j = (mx - z_j) + log1p(s_rest) (accurate
    when the loss is tiny); the delta at jm is ((1 - y) - y s_rest) / (1 +
    s_rest), so p_jm - 1 = -s_rest / (1 + s_rest) keeps its relative precision
    at logit gaps of 10-30.  Returns the row's loss."""
    k = z.shape[0]
    mxd = np.float64(z[jm])
    # e^0 - 1 = 0, or NaN for an infinite max (a NaN logit reaches s_rest, or mx
    # when it is z[0]): then the whole row is NaN, as the reference's
    s_rest = np.float64(p[jm]) - 1.0
    for j in range(k):
        if j != jm:
            s_rest += np.float64(p[j])
    inv = 1.0 / (1.0 + s_rest)
    l1p = log1p(s_rest)
    if label >= 0:
        loss = (mxd - np.float64(z[label])) + l1p
        el = np.float64(p[label])
        for j in range(k):
            pj = np.float64(p[j]) * inv
            p[j] = pj
            dz[j] = pj * coef
        dz[label] = (-s_rest * inv if label == jm else el * inv - 1.0) * coef
        return loss
    loss = 0.0
    for j in range(k):
        yj = np.float64(y[j])
        if yj != 0.0:
            # (a zero target skips its term: 0 * inf for a -inf logit is NaN)
            loss += yj * ((mxd - np.float64(z[j])) + l1p)
    for j in range(k):
        pj = np.float64(p[j]) * inv
        p[j] = pj
        dz[j] = (pj - np.float64(y[j])) * coef
    yj = np.float64(y[jm])
    dz[jm] = (((1.0 - yj) - yj * s_rest) * inv) * coef
    return loss


@helper
def _sigmoid_bce_row(z, y, coef, p, dz):
    """One row of the fused sigmoid + binary cross-entropy on logits.

    coef = w_i * scale / k.  Writes p = sigmoid(z), dz = (p - y) * coef.
    Returns mean_j [max(z, 0) - z y + log1p(exp(-|z|))].
    """
    k = z.shape[0]
    loss = 0.0
    for j in range(k):
        zj = np.float64(z[j])
        yj = np.float64(y[j])
        e = exp(-fabs(zj))      # the one exponential (the Cython twin's order)
        pj = 1.0 / (1.0 + e) if zj >= 0 else e / (1.0 + e)
        loss += (zj if zj > 0 else 0.0) - zj * yj + log1p(e)
        p[j] = pj
        dz[j] = (pj - yj) * coef
    return loss / k


@helper
def _mse_row(a, y, coef, da):
    """loss = mean_j (a - y)^2; da = 2 (a - y) * coef (coef = w_i scale / k)."""
    k = a.shape[0]
    loss = 0.0
    for j in range(k):
        d = np.float64(a[j]) - np.float64(y[j])
        loss += d * d
        da[j] = 2.0 * d * coef
    return loss / k


@helper
def _mae_row(a, y, coef, da):
    """loss = mean_j |a - y|; da = sign(a - y) * coef, sign(0) = 0, sign(nan) = nan."""
    k = a.shape[0]
    loss = 0.0
    for j in range(k):
        d = np.float64(a[j]) - np.float64(y[j])
        loss += fabs(d)
        da[j] = _sign(d) * coef
    return loss / k


@helper
def _weight(sw, i):
    """Sample weight of row i (1 when sw is empty)."""
    if sw.shape[0] > 0:
        return np.float64(sw[i])
    return 1.0


# ---------------------------------------------------------------------------
# contract kernels: rows serially below ELEM_PAR_MIN elements, else prange
# ---------------------------------------------------------------------------
#: softmax_xent: rows per block (z - max of the block's rows into P, one flat loop
#: of exponentials over them, then each row); any block gives the same bits
XENT_ROWS = 256
#: the target forms _softmax_xent_block compiles: bit 1 integer labels, 2 rows of Y
#: (network.py's HEAD_MASK bits: the training step's copy, made by _jit.specialise,
#: compiles only its model's; its caller checks the form)
HEAD_MASK = 3


@helper
def _softmax_xent_block(Z, Y, labels, sw, rows, r0, scale, P, loss, dZ, i0, i1):
    """Rows i0..i1-1 of Z as the Cython twin runs a block: the row function's
    operations (same bits), the exponentials in one loop over the block's
    contiguous rows of P, which LLVM vectorises (a row of 10 is too short).
    Row i's targets and weight are at src = rows[r0 + i] (rows empty: src = i);
    loss[i] = its unweighted loss; the weight w_src * scale scales dZ's row."""
    jms = np.empty(i1 - i0, np.int64)
    for i in range(i0, i1):
        z = Z[i]
        p = P[i]
        jm = _xent_argmax(z)
        jms[i - i0] = jm
        mx = z[jm]
        for j in range(z.shape[0]):
            p[j] = z[j] - mx
    flat = P[i0:i1].reshape(-1)
    for e in range(flat.shape[0]):
        flat[e] = fn_exp_t(flat[e])
    for i in range(i0, i1):
        src = rows[r0 + i] if rows.shape[0] > 0 else i
        coef = _weight(sw, src) * scale
        if labels.shape[0] > 0:
            if HEAD_MASK & 1:
                loss[i] = _xent_finish(Z[i], Z[i], labels[src], coef, P[i], dZ[i], jms[i - i0])
        elif HEAD_MASK & 2:
            loss[i] = _xent_finish(Z[i], Y[src], -1, coef, P[i], dZ[i], jms[i - i0])


@kernel
def softmax_xent(Z, Y, labels, sw, scale, P, loss, dZ, n_threads):
    """Fused stable softmax + cross-entropy: P = softmax(Z); loss[i] = -sum_j Y
    log P (or -log P[i, labels[i]] when labels is not empty), unweighted;
    dZ = (P - Y) * w_i * scale.  Checks the shapes and labels first, as the Cython twin."""
    n = Z.shape[0]
    k = Z.shape[1]
    sparse = labels.shape[0] != 0
    if not sparse and (Y.shape[0] != n or Y.shape[1] != k):
        raise ValueError("softmax_xent: Y must have the shape (n, k) of Z when labels is empty")
    if sw.shape[0] != 0 and sw.shape[0] != n:
        raise ValueError("softmax_xent: sw must have n entries (one per row of Z) or 0")
    if loss.shape[0] != n:
        raise ValueError("softmax_xent: loss must have n entries (one per row of Z)")
    if P.shape[0] != n or P.shape[1] != k or dZ.shape[0] != n or dZ.shape[1] != k:
        raise ValueError("softmax_xent: P and dZ must have the shape (n, k) of Z")
    if sparse:
        if labels.shape[0] != n:
            raise ValueError("softmax_xent: labels must have n entries (one per row of Z) or 0")
        for i in range(n):
            if labels[i] < 0 or labels[i] >= k:
                raise ValueError("softmax_xent: label out of range [0, k) (k: the columns of Z)")
    if n == 0:
        return
    if k == 0:
        raise ValueError("softmax_xent: Z has no columns")
    nblk = (n + XENT_ROWS - 1) // XENT_ROWS
    rows = np.empty(0, np.int64)
    if n * Z.shape[1] >= ELEM_PAR_MIN:
        for b in prange(nblk):
            _softmax_xent_block(Z, Y, labels, sw, rows, 0, scale, P, loss, dZ, b * XENT_ROWS,
                                min(n, b * XENT_ROWS + XENT_ROWS))
    else:
        for b in range(nblk):
            _softmax_xent_block(Z, Y, labels, sw, rows, 0, scale, P, loss, dZ, b * XENT_ROWS,
                                min(n, b * XENT_ROWS + XENT_ROWS))


@kernel
def sigmoid_bce(Z, Y, sw, scale, P, loss, dZ, n_threads):
    """Fused stable sigmoid + binary cross-entropy on logits: P = sigmoid(Z);
    loss[i] = mean_j(max(z,0) - z y + log1p(exp(-|z|))), unweighted;
    dZ = (P - Y) * w_i * scale / k."""
    n = Z.shape[0]
    k = Z.shape[1]
    if Y.shape[0] != n or Y.shape[1] != k:
        raise ValueError("sigmoid_bce: Y must have the shape (n, k) of Z")
    if sw.shape[0] != 0 and sw.shape[0] != n:
        raise ValueError("sigmoid_bce: sw must have n entries (one per row of Z) or 0")
    if loss.shape[0] != n:
        raise ValueError("sigmoid_bce: loss must have n entries (one per row of Z)")
    if P.shape[0] != n or P.shape[1] != k or dZ.shape[0] != n or dZ.shape[1] != k:
        raise ValueError("sigmoid_bce: P and dZ must have the shape (n, k) of Z")
    if n * k >= ELEM_PAR_MIN:
        for i in prange(n):
            loss[i] = _sigmoid_bce_row(Z[i], Y[i], _weight(sw, i) * scale / k, P[i], dZ[i])
    else:
        for i in range(n):
            loss[i] = _sigmoid_bce_row(Z[i], Y[i], _weight(sw, i) * scale / k, P[i], dZ[i])


@kernel
def mse(A, Y, sw, scale, loss, dA, n_threads):
    """loss[i] = mean_j (A - Y)^2 (unweighted); dA = 2 (A - Y) * w_i * scale / k."""
    n = A.shape[0]
    k = A.shape[1]
    if Y.shape[0] != n or Y.shape[1] != k:
        raise ValueError("mse: Y must have the shape (n, k) of A")
    if sw.shape[0] != 0 and sw.shape[0] != n:
        raise ValueError("mse: sw must have n entries (one per row of A) or 0")
    if loss.shape[0] != n:
        raise ValueError("mse: loss must have n entries (one per row of A)")
    if dA.shape[0] != n or dA.shape[1] != k:
        raise ValueError("mse: dA must have the shape (n, k) of A")
    if n * k >= ELEM_PAR_MIN:
        for i in prange(n):
            loss[i] = _mse_row(A[i], Y[i], _weight(sw, i) * scale / k, dA[i])
    else:
        for i in range(n):
            loss[i] = _mse_row(A[i], Y[i], _weight(sw, i) * scale / k, dA[i])


@kernel
def mae(A, Y, sw, scale, loss, dA, n_threads):
    """loss[i] = mean_j |A - Y| (unweighted); dA = sign(A - Y) * w_i * scale / k."""
    n = A.shape[0]
    k = A.shape[1]
    if Y.shape[0] != n or Y.shape[1] != k:
        raise ValueError("mae: Y must have the shape (n, k) of A")
    if sw.shape[0] != 0 and sw.shape[0] != n:
        raise ValueError("mae: sw must have n entries (one per row of A) or 0")
    if loss.shape[0] != n:
        raise ValueError("mae: loss must have n entries (one per row of A)")
    if dA.shape[0] != n or dA.shape[1] != k:
        raise ValueError("mae: dA must have the shape (n, k) of A")
    if n * k >= ELEM_PAR_MIN:
        for i in prange(n):
            loss[i] = _mae_row(A[i], Y[i], _weight(sw, i) * scale / k, dA[i])
    else:
        for i in range(n):
            loss[i] = _mae_row(A[i], Y[i], _weight(sw, i) * scale / k, dA[i])
