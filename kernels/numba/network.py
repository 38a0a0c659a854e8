"""The whole network in one compiled call (numba twin of kernels/cython/network.pyx).

``train_batches`` runs ``n_batches`` complete training steps without returning
to Python: for each batch it gathers the batch's rows of the caller's ``X``
through ``perm`` into the workspace (the epoch's data is never copied), runs
the forward pass through every layer (dropout included), the fused loss head,
the backward pass, the regularization and the optimizer update.
``forward`` is the inference pass (no dropout).

Both are serial drivers: every layer operation is a call to a contract kernel
(``matmul``, ``bias_act_forward``, ...) which itself runs serially or in
parallel depending on the shape; the driver's own row loops (loss head,
dropout) do the same (parallel from ``ELEM_PAR_MIN`` elements).  Nothing is
allocated inside the batch loop; the only allocations are per call: the layer
offsets (L int64 x 3), one float64 row-loss buffer (batch_size; the contract's
workspace has the model dtype, and the loss sum is float64) and the 1-element
penalty.

Dropout mask (kernels/defs.py): for batch ``b`` (the absolute batch index,
first_batch + i, so splitting an epoch into several calls gives the same
masks), layer ``l``, row ``i`` of the batch, column ``j``:
``c = ((b L + l) bs + i) width + j``, ``u = mix64(key + (c + 1) GOLDEN)``, keep
when ``(u >> 11) 2^-53 >= rate``; kept values are scaled by 1 / (1 - rate).
All of it is uint64 arithmetic: every constant is an ``np.uint64`` (mixing
uint64 with a Python int makes numba compute in float64).
"""
import numpy as np

from .. import defs
from ._jit import kernel, serial, prange, ELEM_PAR_MIN
from .matmul import matmul, matmul_tn, matmul_nt
from ._generated_elementwise import bias_act_forward, act_backward, optimizer_update
from .losses import _softmax_xent_row, _sigmoid_bce_row, _mse_row, _mae_row
from .reduce import gather_rows, bias_grad, regularize

I_IN = defs.I_IN
I_OUT = defs.I_OUT
I_ACT = defs.I_ACT
I_W = defs.I_W
I_B = defs.I_B
F_ALPHA = defs.F_ALPHA
F_DROP = defs.F_DROP
F_L1 = defs.F_L1
F_L2 = defs.F_L2
ACT_LINEAR = defs.ACT_LINEAR
HEAD_MSE = defs.HEAD_MSE
HEAD_MAE = defs.HEAD_MAE
HEAD_SOFTMAX_XENT = defs.HEAD_SOFTMAX_XENT
HEAD_SIGMOID_BCE = defs.HEAD_SIGMOID_BCE

# dropout hash constants, all uint64
GOLDEN = np.uint64(defs.GOLDEN)
MIX1 = np.uint64(defs.MIX1)
MIX2 = np.uint64(defs.MIX2)
_ONE = np.uint64(1)
_S11 = np.uint64(11)
_S27 = np.uint64(27)
_S30 = np.uint64(30)
_S31 = np.uint64(31)
_TWO_M53 = 2.0 ** -53


# ---------------------------------------------------------------------------
# dropout
# ---------------------------------------------------------------------------
@serial
def _mix64(z):
    """splitmix64 finaliser (uint64 in, uint64 out, wrapping)."""
    z = (z ^ (z >> _S30)) * MIX1
    z = (z ^ (z >> _S27)) * MIX2
    return z ^ (z >> _S31)


@serial
def dropout_keep(key, c, rate):
    """Whether element counter ``c`` (uint64) is kept for ``key`` (uint64)."""
    u = _mix64(key + (c + _ONE) * GOLDEN)
    return np.float64(u >> _S11) * _TWO_M53 >= rate


@serial
def _dropout_row(src, dst, rate, inv, key, cbase):
    """dst[j] = src[j] / (1 - rate) where kept, else 0; cbase = counter of j = 0."""
    for j in range(dst.shape[0]):
        if dropout_keep(key, cbase + np.uint64(j), rate):
            dst[j] = np.float64(src[j]) * inv
        else:
            dst[j] = 0.0


@kernel
def _dropout(src, dst, rate, key, b, L, l, bs):
    """Apply the mask of batch b, layer l to the (nb, width) batch ``src`` into
    ``dst`` (dst may be src: the backward pass masks the delta in place)."""
    nb = dst.shape[0]
    width = np.uint64(dst.shape[1])
    row0 = (np.uint64(b) * np.uint64(L) + np.uint64(l)) * np.uint64(bs)
    inv = 1.0 / (1.0 - rate)
    if nb * dst.shape[1] >= ELEM_PAR_MIN:
        for i in prange(nb):
            _dropout_row(src[i], dst[i], rate, inv, key, (row0 + np.uint64(i)) * width)
    else:
        for i in range(nb):
            _dropout_row(src[i], dst[i], rate, inv, key, (row0 + np.uint64(i)) * width)


# ---------------------------------------------------------------------------
# loss head over the rows of one batch
# ---------------------------------------------------------------------------
@serial
def _head_one(head, Z, A, D, Y, labels, sw, perm, r0, scale, wloss, scores, i):
    """Row i of the batch (sample perm[r0 + i]): the fused head on logits Z
    (P into A) or the mse/mae loss on A (dA into D); wloss[i] = w_i loss_i;
    scores[r0 + i] = P or A when scores is not empty."""
    k = Z.shape[1]
    src = perm[r0 + i]
    w = np.float64(sw[src]) if sw.shape[0] > 0 else 1.0
    if head == HEAD_SOFTMAX_XENT:
        if labels.shape[0] > 0:
            li = _softmax_xent_row(Z[i], Z[i], labels[src], w * scale, A[i], D[i])
        else:
            li = _softmax_xent_row(Z[i], Y[src], -1, w * scale, A[i], D[i])
    elif head == HEAD_SIGMOID_BCE:
        li = _sigmoid_bce_row(Z[i], Y[src], w * scale / k, A[i], D[i])
    elif head == HEAD_MSE:
        li = _mse_row(A[i], Y[src], w * scale / k, D[i])
    else:
        li = _mae_row(A[i], Y[src], w * scale / k, D[i])
    wloss[i] = w * li
    if scores.shape[0] > 0:
        out = scores[r0 + i]
        a = A[i]
        for j in range(k):
            out[j] = a[j]


@kernel
def _head(head, Z, A, D, Y, labels, sw, perm, r0, scale, wloss, scores):
    """The loss head over the rows of one batch (see _head_one)."""
    nb = Z.shape[0]
    if nb * Z.shape[1] >= ELEM_PAR_MIN:
        for i in prange(nb):
            _head_one(head, Z, A, D, Y, labels, sw, perm, r0, scale, wloss, scores, i)
    else:
        for i in range(nb):
            _head_one(head, Z, A, D, Y, labels, sw, perm, r0, scale, wloss, scores, i)


# ---------------------------------------------------------------------------
# workspace
# ---------------------------------------------------------------------------
@serial
def _layout(ispec, fspec, bs):
    """Offsets of kernels' workspace_layout (fastnet/backends/_api.py):
    X at 0, then per layer Z, A (and M when dropout), then D0, D1.
    Returns (offZ, offA, offM, offD0, offD1, size); offM[l] = -1 without dropout."""
    L = ispec.shape[0]
    offZ = np.empty(L, np.int64)
    offA = np.empty(L, np.int64)
    offM = np.empty(L, np.int64)
    n_in = ispec[0, I_IN]
    pos = bs * n_in
    maxw = n_in
    for l in range(L):
        w = ispec[l, I_OUT]
        if w > maxw:
            maxw = w
        offZ[l] = pos
        pos += bs * w
        offA[l] = pos
        pos += bs * w
        if fspec[l, F_DROP] > 0:
            offM[l] = pos
            pos += bs * w
        else:
            offM[l] = -1
    offD0 = pos
    pos += bs * maxw
    offD1 = pos
    pos += bs * maxw
    return offZ, offA, offM, offD0, offD1, pos


@serial
def _check_spec(ispec, n_params, n_in, n_out):
    """O(L) checks that keep a wrong description from reading or writing out of
    bounds: chained widths, parameter offsets inside the flat buffer."""
    L = ispec.shape[0]
    if L < 1:
        raise ValueError("the network has no layer")
    if ispec[0, I_IN] != n_in:
        raise ValueError("X has a different width than the first layer's input")
    if ispec[L - 1, I_OUT] != n_out:
        raise ValueError("the output array has a different width than the last layer")
    for l in range(L):
        w_in = ispec[l, I_IN]
        w_out = ispec[l, I_OUT]
        if w_in < 1 or w_out < 1 or (l > 0 and w_in != ispec[l - 1, I_OUT]):
            raise ValueError("layer widths do not chain")
        w0 = ispec[l, I_W]
        bo = ispec[l, I_B]
        if w0 < 0 or w0 + w_in * w_out > n_params or bo < -1 or (bo >= 0 and bo + w_out > n_params):
            raise ValueError("a layer's parameters lie outside the parameter buffer")


@serial
def _view(buf, off, n, m):
    """(n, m) C-contiguous view of buf[off:off + n*m]."""
    return buf[off:off + n * m].reshape((n, m))


@serial
def _bias(params, ispec, l):
    bo = ispec[l, I_B]
    if bo < 0:
        return params[0:0]
    return params[bo:bo + ispec[l, I_OUT]]


# ---------------------------------------------------------------------------
# contract kernels
# ---------------------------------------------------------------------------
@serial
def forward(X, ispec, fspec, params, work, out, n_threads):
    """out = the last layer's activations of the network on X (inference: no
    dropout).  work: two ping-pong buffers of n x (max layer width)."""
    n = X.shape[0]
    L = ispec.shape[0]
    _check_spec(ispec, params.shape[0], X.shape[1], out.shape[1])
    if out.shape[0] != n:
        raise ValueError("forward: out must have as many rows as X")
    maxw = 0
    for l in range(L):
        maxw = max(maxw, ispec[l, I_OUT])
    if L > 1 and work.shape[0] < 2 * n * maxw:
        raise ValueError("forward: work is smaller than forward_workspace_size")
    # layer 0 reads X (which may be read-only); the others read the workspace
    w_in = ispec[0, I_IN]
    w_out = ispec[0, I_OUT]
    if L == 1:
        dst = out
    else:
        dst = _view(work, 0, n, w_out)
    W = _view(params, ispec[0, I_W], w_in, w_out)
    matmul(X, W, dst, n_threads)
    bias_act_forward(_bias(params, ispec, 0), ispec[0, I_ACT], fspec[0, F_ALPHA], dst, dst,
                     n_threads)
    inp = dst
    for l in range(1, L):
        w_in = ispec[l, I_IN]
        w_out = ispec[l, I_OUT]
        if l == L - 1:
            dst = out
        else:
            dst = _view(work, (l % 2) * n * maxw, n, w_out)
        W = _view(params, ispec[l, I_W], w_in, w_out)
        matmul(inp, W, dst, n_threads)
        bias_act_forward(_bias(params, ispec, l), ispec[l, I_ACT], fspec[l, F_ALPHA], dst,
                         dst, n_threads)
        inp = dst


@serial
def train_batches(X, Y, labels, sw, perm, batch_size, first_batch, n_batches, ispec, fspec,
                  head, opt, hyper, t0, rng_key, params, grads, state, work, batch_loss,
                  scores, n_threads):
    """For b in first_batch .. first_batch + n_batches - 1: take rows
    perm[b*bs : min((b+1)*bs, M)], run forward (with dropout), the fused loss
    head, backward, regularization and the optimizer update with
    t = t0 + (b - first_batch) + 1.  batch_loss[b - first_batch] = the batch's
    mean weighted data loss before the update plus the regularization penalty
    of the pre-update weights.  When scores has M rows, scores[perm position] =
    the head's outputs (P for the fused heads, A for mse/mae).  grads holds the
    last batch's gradients on return."""
    L = ispec.shape[0]
    if L < 1:
        raise ValueError("the network has no layer")
    M = perm.shape[0]
    bs = batch_size
    n_in = ispec[0, I_IN]
    n_out = ispec[L - 1, I_OUT]
    fused = head == HEAD_SOFTMAX_XENT or head == HEAD_SIGMOID_BCE
    # cheap O(L) checks: a wrong call must not read or write out of bounds
    # (the index arrays perm and labels are trusted: the model validates them)
    if not (fused or head == HEAD_MSE or head == HEAD_MAE):
        raise ValueError("train_batches: unknown head code")
    if bs < 1:
        raise ValueError("train_batches: batch_size must be >= 1")
    _check_spec(ispec, params.shape[0], X.shape[1], n_out)
    if grads.shape[0] != params.shape[0] or state.shape[1] != params.shape[0]:
        raise ValueError("train_batches: grads and state must match params")
    offZ, offA, offM, offD0, offD1, size = _layout(ispec, fspec, bs)
    if work.shape[0] < size:
        raise ValueError("train_batches: work is smaller than workspace_size")
    if n_batches > 0 and (first_batch < 0 or (first_batch + n_batches - 1) * bs >= M):
        raise ValueError("train_batches: batch range outside perm")
    if batch_loss.shape[0] < n_batches:
        raise ValueError("train_batches: batch_loss is shorter than n_batches")
    if head == HEAD_SOFTMAX_XENT:
        if labels.shape[0] == 0 and Y.shape[0] == 0:
            raise ValueError("train_batches: softmax_xent needs Y or labels")
    elif Y.shape[0] == 0:
        raise ValueError("train_batches: this head needs Y")
    if (Y.shape[0] > 0 and (Y.shape[0] != X.shape[0] or Y.shape[1] != n_out)) or \
            (labels.shape[0] > 0 and labels.shape[0] != X.shape[0]) or \
            (sw.shape[0] > 0 and sw.shape[0] != X.shape[0]):
        raise ValueError("train_batches: Y, labels and sw must have one row per row of X")
    any_reg = False
    for l in range(L):
        if fspec[l, F_L1] != 0.0 or fspec[l, F_L2] != 0.0:
            any_reg = True
    key = np.uint64(rng_key)
    if scores.shape[0] == M:
        if scores.shape[1] != n_out:
            raise ValueError("train_batches: scores must have n_out columns")
        out_scores = scores
    else:
        out_scores = scores[0:0]
    wloss = np.empty(bs, np.float64)
    pen = np.zeros(1, np.float64)
    act_last = ispec[L - 1, I_ACT]
    alpha_last = fspec[L - 1, F_ALPHA]

    for bi in range(n_batches):
        b = first_batch + bi
        r0 = b * bs
        r1 = min(r0 + bs, M)
        nb = r1 - r0

        # ---- gather the batch
        Xb = _view(work, 0, nb, n_in)
        gather_rows(X, perm[r0:r1], Xb, n_threads)

        # ---- forward
        inp = Xb
        for l in range(L):
            w_in = ispec[l, I_IN]
            w_out = ispec[l, I_OUT]
            W = _view(params, ispec[l, I_W], w_in, w_out)
            Z = _view(work, offZ[l], nb, w_out)
            A = _view(work, offA[l], nb, w_out)
            matmul(inp, W, Z, n_threads)
            act = ispec[l, I_ACT]
            if l == L - 1 and fused:
                act = ACT_LINEAR    # logits: the head computes P
            bias_act_forward(_bias(params, ispec, l), act, fspec[l, F_ALPHA], Z, A, n_threads)
            if offM[l] >= 0 and l < L - 1:
                Mk = _view(work, offM[l], nb, w_out)
                _dropout(A, Mk, fspec[l, F_DROP], key, b, L, l, bs)
                inp = Mk
            else:
                inp = A

        # ---- loss head: P into A_last (fused) or dA into D0; weighted row losses
        Zl = _view(work, offZ[L - 1], nb, n_out)
        Al = _view(work, offA[L - 1], nb, n_out)
        cur = _view(work, offD0, nb, n_out)
        scale = 1.0 / nb
        _head(head, Zl, Al, cur, Y, labels, sw, perm, r0, scale, wloss, out_scores)
        data_loss = 0.0
        for i in range(nb):
            data_loss += wloss[i]
        data_loss = data_loss / nb
        if not fused:
            act_backward(Zl, Al, cur, act_last, alpha_last, cur, n_threads)

        # ---- backward
        cur_is_d0 = True
        for l in range(L - 1, -1, -1):
            w_in = ispec[l, I_IN]
            w_out = ispec[l, I_OUT]
            if l == 0:
                inp = Xb
            elif offM[l - 1] >= 0:
                inp = _view(work, offM[l - 1], nb, w_in)
            else:
                inp = _view(work, offA[l - 1], nb, w_in)
            matmul_tn(inp, cur, _view(grads, ispec[l, I_W], w_in, w_out), n_threads)
            bo = ispec[l, I_B]
            if bo >= 0:
                bias_grad(cur, grads[bo:bo + w_out], n_threads)
            if l > 0:
                nxt = _view(work, offD1 if cur_is_d0 else offD0, nb, w_in)
                matmul_nt(cur, _view(params, ispec[l, I_W], w_in, w_out), nxt, n_threads)
                if offM[l - 1] >= 0:
                    _dropout(nxt, nxt, fspec[l - 1, F_DROP], key, b, L, l - 1, bs)
                act_backward(_view(work, offZ[l - 1], nb, w_in), _view(work, offA[l - 1], nb, w_in),
                             nxt, ispec[l - 1, I_ACT], fspec[l - 1, F_ALPHA], nxt, n_threads)
                cur = nxt
                cur_is_d0 = not cur_is_d0

        # ---- regularization (pre-update weights), update
        penalty = 0.0
        if any_reg:
            regularize(ispec, fspec, params, grads, pen, n_threads)
            penalty = pen[0]
        batch_loss[bi] = data_loss + penalty
        optimizer_update(opt, hyper, t0 + bi + 1, grads, params, state, n_threads)
