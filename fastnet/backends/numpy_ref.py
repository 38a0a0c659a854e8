"""The NumPy reference backend: the oracle the compiled backends are tested against.

Readable, vectorised NumPy, written by hand from the contract in ``_api.py`` and
from PyTorch's documented optimizer algorithms.  It deliberately does NOT use
the formula strings of ``kernels/defs.py`` (only its integer codes), so a wrong
formula in the table cannot pass the parity tests everywhere at once.

Clarity beats speed here: temporaries are allocated freely and ``n_threads`` is
ignored (NumPy's BLAS uses its own threads).
"""
import numpy as np

from .._kernels import defs
from . import _api

NAME = "numpy"


def check():
    """The reference needs nothing but NumPy."""


# ---------------------------------------------------------------------------
# activations (written independently of the table in kernels/defs.py)
# ---------------------------------------------------------------------------
def _sigmoid(z):
    # 1 / (1 + e^-z) = exp(-log(1 + e^-z)), stable for both signs
    return np.exp(-np.logaddexp(0.0, -z)).astype(z.dtype, copy=False)


def _softmax(z):
    shifted = z - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def _activate(z, act, alpha):
    if act == defs.ACT_LINEAR:
        return z.copy()
    if act == defs.ACT_SIGMOID:
        return _sigmoid(z)
    if act == defs.ACT_TANH:
        return np.tanh(z)
    if act == defs.ACT_RELU:
        return np.maximum(z, 0)
    if act == defs.ACT_LEAKY_RELU:
        return np.where(z > 0, z, alpha * z)
    if act == defs.ACT_RELU6:
        return np.clip(z, 0, 6)
    if act == defs.ACT_ELU:
        return np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0)))
    if act == defs.ACT_SWISH:
        return z * _sigmoid(z)
    if act == defs.ACT_SOFTMAX:
        return _softmax(z)
    if act == defs.ACT_STEP:
        return (z >= 0).astype(z.dtype)
    raise ValueError("unknown activation code %r" % act)


def _act_grad(z, a, da, act, alpha):
    """da * g'(z); from the output a where the activation allows it."""
    if act == defs.ACT_LINEAR:
        return da.copy()
    if act == defs.ACT_SIGMOID:
        return da * a * (1 - a)
    if act == defs.ACT_TANH:
        return da * (1 - a * a)
    if act == defs.ACT_RELU:
        return da * (a > 0)
    if act == defs.ACT_LEAKY_RELU:
        return da * np.where(z > 0, 1.0, alpha).astype(z.dtype)
    if act == defs.ACT_RELU6:
        return da * ((z > 0) & (z < 6))
    if act == defs.ACT_ELU:
        # d/dz alpha (e^z - 1) = alpha e^z = a + alpha
        return da * np.where(z > 0, 1.0, a + alpha).astype(z.dtype)
    if act == defs.ACT_SWISH:
        s = _sigmoid(z)
        return da * (s + z * s * (1 - s))
    if act == defs.ACT_SOFTMAX:
        # Jacobian-vector product of softmax: a * (da - <da, a>)
        return a * (da - (da * a).sum(axis=1, keepdims=True))
    if act == defs.ACT_STEP:
        return np.zeros_like(da)
    raise ValueError("unknown activation code %r" % act)


# ---------------------------------------------------------------------------
# contract kernels
# ---------------------------------------------------------------------------
def matmul(A, B, C, n_threads):
    np.matmul(A, B, out=C)


def matmul_tn(A, B, C, n_threads):
    np.matmul(A.T, B, out=C)


def matmul_nt(A, B, C, n_threads):
    np.matmul(A, B.T, out=C)


def bias_act_forward(b, act, alpha, Z, A, n_threads):
    if b.shape[0]:
        Z += b
    A[...] = _activate(Z, act, alpha)


def act_backward(Z, A, dA, act, alpha, dZ, n_threads):
    dZ[...] = _act_grad(Z, A, dA, act, alpha)


def _weights(sw, n, dtype):
    return np.ones(n, dtype=dtype) if sw.shape[0] == 0 else sw


def softmax_xent(Z, Y, labels, sw, scale, P, loss, dZ, n_threads):
    shifted = Z - Z.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_p = shifted - log_sum
    P[...] = np.exp(log_p)
    if labels.shape[0]:
        rows = np.arange(Z.shape[0])
        loss[...] = -log_p[rows, labels]
        target = np.zeros_like(P)
        target[rows, labels] = 1
    else:
        loss[...] = -(Y * log_p).sum(axis=1)
        target = Y
    w = _weights(sw, Z.shape[0], Z.dtype)
    dZ[...] = (P - target) * (w * scale)[:, None]


def sigmoid_bce(Z, Y, sw, scale, P, loss, dZ, n_threads):
    k = Z.shape[1]
    # BCE(sigmoid(z), y) = softplus(z) - y z, softplus(z) = max(z, 0) + log1p(e^-|z|)
    per = np.maximum(Z, 0) - Z * Y + np.log1p(np.exp(-np.abs(Z)))
    loss[...] = per.mean(axis=1)
    P[...] = _sigmoid(Z)
    w = _weights(sw, Z.shape[0], Z.dtype)
    dZ[...] = (P - Y) * (w * scale / k)[:, None]


def mse(A, Y, sw, scale, loss, dA, n_threads):
    k = A.shape[1]
    diff = A - Y
    loss[...] = (diff * diff).mean(axis=1)
    w = _weights(sw, A.shape[0], A.dtype)
    dA[...] = 2 * diff * (w * scale / k)[:, None]


def mae(A, Y, sw, scale, loss, dA, n_threads):
    k = A.shape[1]
    diff = A - Y
    loss[...] = np.abs(diff).mean(axis=1)
    w = _weights(sw, A.shape[0], A.dtype)
    dA[...] = np.sign(diff) * (w * scale / k)[:, None]


def bias_grad(dZ, db, n_threads):
    db[...] = dZ.sum(axis=0)


def gather_rows(X, idx, out, n_threads):
    np.take(X, idx, axis=0, out=out)


def _layer_views(ispec, buf, l):
    n_in, n_out = int(ispec[l, defs.I_IN]), int(ispec[l, defs.I_OUT])
    w = int(ispec[l, defs.I_W])
    W = buf[w:w + n_in * n_out].reshape(n_in, n_out)
    bo = int(ispec[l, defs.I_B])
    b = buf[bo:bo + n_out] if bo >= 0 else buf[:0]
    return W, b


def regularize(ispec, fspec, params, grads, penalty, n_threads):
    total = 0.0
    for l in range(ispec.shape[0]):
        l1, l2 = float(fspec[l, defs.F_L1]), float(fspec[l, defs.F_L2])
        if l1 == 0.0 and l2 == 0.0:
            continue
        W, _ = _layer_views(ispec, params, l)
        gW, _ = _layer_views(ispec, grads, l)
        gW += l1 * np.sign(W) + 2 * l2 * W
        total += l1 * float(np.abs(W).sum(dtype=np.float64)) + l2 * float((W.astype(np.float64) ** 2).sum())
    penalty[0] = total


def optimizer_update(opt, hyper, t, grads, params, state, n_threads):
    """PyTorch's single-tensor algorithms, as documented for torch.optim."""
    h = {name: float(hyper[i]) for name, i in defs.HYPER.items()}
    lr, wd = h["lr"], h["weight_decay"]
    g = -grads if h["maximize"] else grads.copy()
    p = params
    if opt == defs.OPT_NONE:
        return
    if opt == defs.OPT_SGD:
        if wd:
            g = g + wd * p
        if h["momentum"]:
            buf = state[0]
            if t == 1:
                buf[...] = g
            else:
                buf *= h["momentum"]
                buf += (1 - h["dampening"]) * g
            g = g + h["momentum"] * buf if h["nesterov"] else buf.copy()
        p -= lr * g
    elif opt == defs.OPT_ADAGRAD:
        if wd:
            g = g + wd * p
        clr = lr / (1 + (t - 1) * h["lr_decay"])
        acc = state[0]
        acc += g * g
        p -= clr * g / (np.sqrt(acc) + h["eps"])
    elif opt == defs.OPT_RMSPROP:
        if wd:
            g = g + wd * p
        alpha = h["alpha"]
        sq, buf, gavg = state[0], state[1], state[2]
        sq[...] = alpha * sq + (1 - alpha) * g * g
        if h["centered"]:
            gavg[...] = alpha * gavg + (1 - alpha) * g
            avg = np.sqrt(sq - gavg * gavg) + h["eps"]
        else:
            avg = np.sqrt(sq) + h["eps"]
        if h["momentum"] > 0:
            buf[...] = h["momentum"] * buf + g / avg
            p -= lr * buf
        else:
            p -= lr * g / avg
    elif opt in (defs.OPT_ADAM, defs.OPT_ADAMW):
        b1, b2 = h["beta1"], h["beta2"]
        if opt == defs.OPT_ADAMW:
            p *= 1 - lr * wd
        elif wd:
            g = g + wd * p
        m, v, vmax = state[0], state[1], state[2]
        m += (1 - b1) * (g - m)          # torch: exp_avg.lerp_(grad, 1 - beta1)
        v[...] = b2 * v + (1 - b2) * g * g
        step_size = lr / (1 - b1 ** t)
        bc2_sqrt = np.sqrt(1 - b2 ** t)
        if h["amsgrad"]:
            np.maximum(vmax, v, out=vmax)
            denom = np.sqrt(vmax) / bc2_sqrt + h["eps"]
        else:
            denom = np.sqrt(v) / bc2_sqrt + h["eps"]
        p -= step_size * m / denom
    else:
        raise ValueError("unknown optimizer code %r" % opt)


def forward(X, ispec, fspec, params, work, out, n_threads):
    a = X
    L = ispec.shape[0]
    for l in range(L):
        W, b = _layer_views(ispec, params, l)
        z = a @ W
        if b.shape[0]:
            z = z + b
        a = _activate(z, int(ispec[l, defs.I_ACT]), float(fspec[l, defs.F_ALPHA]))
    out[...] = a


def dropout_mask(rng_key, batch, layer, n_layers, batch_size, n_rows, width, rate, dtype):
    """The inverted-dropout multiplier (0 or 1/(1-rate)) of kernels/defs.py's hash."""
    u64 = np.uint64
    i = np.arange(n_rows, dtype=u64)[:, None]
    j = np.arange(width, dtype=u64)[None, :]
    c = ((u64(batch) * u64(n_layers) + u64(layer)) * u64(batch_size) + i) * u64(width) + j
    z = u64(rng_key) + (c + u64(1)) * u64(defs.GOLDEN)
    z = (z ^ (z >> u64(30))) * u64(defs.MIX1)
    z = (z ^ (z >> u64(27))) * u64(defs.MIX2)
    z = z ^ (z >> u64(31))
    uniform = (z >> u64(11)).astype(np.float64) * 2.0 ** -53
    return np.where(uniform >= rate, 1.0 / (1.0 - rate), 0.0).astype(dtype)


def train_batches(X, Y, labels, sw, perm, batch_size, first_batch, n_batches,
                  ispec, fspec, head, opt, hyper, t0, rng_key,
                  params, grads, state, work, batch_loss, scores, n_threads):
    L = ispec.shape[0]
    M = perm.shape[0]
    dtype = params.dtype
    penalty = np.zeros(1)
    for step, b in enumerate(range(first_batch, first_batch + n_batches)):
        rows = perm[b * batch_size:min((b + 1) * batch_size, M)]
        n = rows.shape[0]
        scale = 1.0 / n
        w_rows = sw[rows] if sw.shape[0] else sw

        # forward, keeping z, a (and the dropout multiplier) of every layer
        zs, acts, masks = [], [], []
        a = X[rows]
        inputs = [a]
        for l in range(L):
            W, bias = _layer_views(ispec, params, l)
            z = a @ W
            if bias.shape[0]:
                z = z + bias
            act = int(ispec[l, defs.I_ACT])
            last = l == L - 1
            if last and head in (defs.HEAD_SOFTMAX_XENT, defs.HEAD_SIGMOID_BCE):
                a = z  # logits; the fused head applies softmax / sigmoid
            else:
                a = _activate(z, act, float(fspec[l, defs.F_ALPHA]))
            zs.append(z)
            acts.append(a)
            rate = float(fspec[l, defs.F_DROP])
            if rate > 0 and not last:
                mask = dropout_mask(rng_key, b, l, L, batch_size, n, a.shape[1], rate, dtype)
                masks.append(mask)
                a = a * mask
            else:
                masks.append(None)
            inputs.append(a)

        # loss head
        k = acts[-1].shape[1]
        out_scores = np.empty((n, k), dtype)
        row_loss = np.empty(n)
        delta = np.empty((n, k), dtype)
        if head == defs.HEAD_SOFTMAX_XENT:
            Yb = Y[rows] if Y.shape[0] else Y
            lab = labels[rows] if labels.shape[0] else labels
            softmax_xent(zs[-1], Yb, lab, w_rows, scale, out_scores, row_loss, delta, n_threads)
        elif head == defs.HEAD_SIGMOID_BCE:
            sigmoid_bce(zs[-1], Y[rows], w_rows, scale, out_scores, row_loss, delta, n_threads)
        elif head in (defs.HEAD_MSE, defs.HEAD_MAE):
            fn = mse if head == defs.HEAD_MSE else mae
            fn(acts[-1], Y[rows], w_rows, scale, row_loss, delta, n_threads)
            out_scores[...] = acts[-1]
            delta = _act_grad(zs[-1], acts[-1], delta, int(ispec[L - 1, defs.I_ACT]),
                              float(fspec[L - 1, defs.F_ALPHA]))
        else:
            raise ValueError("unknown head code %r" % head)
        weights = np.ones(n) if sw.shape[0] == 0 else w_rows.astype(np.float64)
        data_loss = float((weights * row_loss).sum()) / n
        if scores.shape[0]:
            scores[b * batch_size:b * batch_size + n] = out_scores

        # backward: delta is dL/dz of layer l
        for l in range(L - 1, -1, -1):
            gW, gb = _layer_views(ispec, grads, l)
            gW[...] = inputs[l].T @ delta
            if gb.shape[0]:
                gb[...] = delta.sum(axis=0)
            if l > 0:
                W, _ = _layer_views(ispec, params, l)
                da = delta @ W.T
                if masks[l - 1] is not None:
                    da = da * masks[l - 1]
                delta = _act_grad(zs[l - 1], acts[l - 1], da, int(ispec[l - 1, defs.I_ACT]),
                                  float(fspec[l - 1, defs.F_ALPHA]))

        regularize(ispec, fspec, params, grads, penalty, n_threads)
        batch_loss[step] = data_loss + penalty[0]
        optimizer_update(opt, hyper, t0 + step + 1, grads, params, state, n_threads)


# the contract says every backend exposes exactly these
workspace_size = _api.workspace_size
forward_workspace_size = _api.forward_workspace_size
