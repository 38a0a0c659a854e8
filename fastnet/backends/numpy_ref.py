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
from ._geometry import geometry

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


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_erfc = np.frompyfunc(__import__("math").erfc, 1, 1)


def _phi_cdf(z):
    """The standard normal CDF, erfc(-z / sqrt 2) / 2 (math.erfc per element:
    NumPy has no erf; accurate in the left tail, where 1 + erf cancels)."""
    return (0.5 * _erfc(-z.astype(np.float64) / np.sqrt(2.0)).astype(np.float64))


def _gelu_tanh_2u(z):
    """2u = 2 sqrt(2 / pi) (z + 0.044715 z^3) in float64: 1 + tanh(u) = 2 sigmoid(2u),
    which keeps the left tail's relative accuracy (1 + tanh(u) cancels there)."""
    z = z.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return 2.0 * np.sqrt(2.0 / np.pi) * (z + 0.044715 * z ** 3)


def _activate(z, act, act_param):
    if act == defs.ACT_LINEAR:
        return z.copy()
    if act == defs.ACT_SIGMOID:
        return _sigmoid(z)
    if act == defs.ACT_TANH:
        return np.tanh(z)
    if act == defs.ACT_RELU:
        return np.maximum(z, 0)
    if act == defs.ACT_LEAKY_RELU:
        return np.where(z > 0, z, act_param * z)
    if act == defs.ACT_RELU6:
        return np.clip(z, 0, 6)
    if act == defs.ACT_ELU:
        return np.where(z > 0, z, act_param * np.expm1(np.minimum(z, 0)))
    if act == defs.ACT_SWISH:
        return z * _sigmoid(z)
    if act == defs.ACT_SOFTMAX:
        return _softmax(z)
    if act == defs.ACT_STEP:
        return (z >= 0).astype(z.dtype)
    if act == defs.ACT_GELU:
        with np.errstate(invalid="ignore"):
            out = z * _phi_cdf(z)
        return np.where(z == -np.inf, 0.0, out).astype(z.dtype)
    if act == defs.ACT_GELU_TANH:
        with np.errstate(invalid="ignore"):
            out = z.astype(np.float64) * _sigmoid(_gelu_tanh_2u(z))
        return np.where(z == -np.inf, 0.0, out).astype(z.dtype)
    if act == defs.ACT_SOFTPLUS:
        return np.logaddexp(0.0, z).astype(z.dtype)
    if act == defs.ACT_SOFTSIGN:
        with np.errstate(invalid="ignore"):
            return np.where(np.isinf(z), np.sign(z), z / (1 + np.abs(z))).astype(z.dtype)
    if act == defs.ACT_SELU:
        return (_SELU_SCALE * np.where(z > 0, z, _SELU_ALPHA * np.expm1(np.minimum(z, 0)))).astype(z.dtype)
    if act == defs.ACT_HARD_SIGMOID:
        return (np.clip(z.astype(np.float64) + 3.0, 0.0, 6.0) / 6.0).astype(z.dtype)
    raise ValueError("unknown activation code %r" % act)


def _act_grad(z, a, da, act, act_param):
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
        return da * np.where(z > 0, 1.0, act_param).astype(z.dtype)
    if act == defs.ACT_RELU6:
        return da * ((z > 0) & (z < 6))
    if act == defs.ACT_ELU:
        # d/dz act_param (e^z - 1) = act_param e^z = a + act_param
        return da * np.where(z > 0, 1.0, a + act_param).astype(z.dtype)
    if act == defs.ACT_SWISH:
        s = _sigmoid(z)
        return da * (s + z * s * (1 - s))
    if act == defs.ACT_SOFTMAX:
        # Jacobian-vector product of softmax: a * (da - <da, a>)
        return a * (da - (da * a).sum(axis=1, keepdims=True))
    if act == defs.ACT_STEP:
        return np.zeros_like(da)
    if act in (defs.ACT_GELU, defs.ACT_GELU_TANH):
        z64 = z.astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            if act == defs.ACT_GELU:
                # Phi(z) + z phi(z)
                g = _phi_cdf(z64) + z64 * np.exp(-0.5 * z64 * z64) / np.sqrt(2.0 * np.pi)
            else:
                w = _gelu_tanh_2u(z64)
                du = np.sqrt(2.0 / np.pi) * (1.0 + 3.0 * 0.044715 * z64 * z64)
                # d/dz z s(2u) = s(2u) + z s(2u) s(-2u) 2u'
                g = _sigmoid(w) + 2.0 * z64 * _sigmoid(w) * _sigmoid(-w) * du
        # beyond |z| = 40 the derivative is 0 or 1 to double precision (no inf * 0)
        g = np.where(z64 < -40, 0.0, np.where(z64 > 40, 1.0, g))
        return da * g.astype(z.dtype)
    if act == defs.ACT_SOFTPLUS:
        return da * _sigmoid(z)
    if act == defs.ACT_SOFTSIGN:
        return da * np.square(1.0 / (1.0 + np.abs(z.astype(np.float64)))).astype(z.dtype)
    if act == defs.ACT_SELU:
        # d/dz scale alpha (e^z - 1) = scale alpha e^z (SELU's constants)
        slope = _SELU_SCALE * _SELU_ALPHA * np.exp(np.minimum(z.astype(np.float64), 0))
        return da * np.where(z > 0, _SELU_SCALE, slope).astype(z.dtype)
    if act == defs.ACT_HARD_SIGMOID:
        return da * np.where((z > -3) & (z < 3), 1.0 / 6.0, 0.0).astype(z.dtype)
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


def bias_act_forward(b, act, act_param, Z, A, n_threads):
    if b.shape[0]:
        Z += b
    A[...] = _activate(Z, act, act_param)


def act_backward(Z, A, dA, act, act_param, dZ, n_threads):
    dZ[...] = _act_grad(Z, A, dA, act, act_param)


def _weights(sw, n, dtype):
    return np.ones(n, dtype=dtype) if sw.shape[0] == 0 else sw


def softmax_xent(Z, Y, labels, sw, scale, P, loss, dZ, n_threads):
    shifted = Z - Z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    # sum e = 1 + rest, rest = the sum beside the (first) max's e^0 = 1: log sum e =
    # log1p(rest) and p_max - 1 = -rest / (1 + rest) stay accurate when the max dominates
    rows = np.arange(Z.shape[0])
    at_max = np.zeros(Z.shape, dtype=bool)
    at_max[rows, np.argmax(shifted, axis=1)] = True
    with np.errstate(invalid="ignore"):
        # (+ e_max - 1: 0, or NaN for an infinite max, which makes the row NaN)
        rest = np.where(at_max, 0, e).sum(axis=1, keepdims=True) + (e[at_max][:, None] - 1)
    total = 1 + rest
    log_p = shifted - np.log1p(rest)
    P[...] = e / total
    if labels.shape[0]:
        loss[...] = -log_p[rows, labels]
        target = np.zeros_like(P)
        target[rows, labels] = 1
    else:
        loss[...] = -(np.where(Y != 0, Y * log_p, 0)).sum(axis=1)
        target = Y
    w = _weights(sw, Z.shape[0], Z.dtype)
    # p - y at the max as ((1 - y) - y rest) / (1 + rest): no cancellation when p ~ 1
    d = np.where(at_max, ((1 - target) - target * rest) / total, e / total - target)
    dZ[...] = d * (w * scale)[:, None]


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


def all_finite(X, flag, n_threads):
    # a finite sum means every element is finite; a non-finite one (NaN, inf, or an
    # overflow of finite values) is settled element by element
    with np.errstate(over="ignore", invalid="ignore"):
        ok = bool(np.isfinite(X.sum())) or bool(np.isfinite(X).all())
    flag[0] = 1 if ok else 0


def _layer_views(layers, buf, l):
    """W (in, z width) and b (z width,) of layer l (b empty without bias)."""
    W, b, _ = geometry(layers).views(buf, l)
    return W, (b if b is not None else buf[:0])


def _slopes(layers, buf, l):
    """PReLU slopes of layer l (empty when its activation is not PReLU)."""
    s = geometry(layers).views(buf, l)[2]
    return s if s is not None else buf[:0]


def _arrays(layers, buf):
    """The parameter arrays in buffer order per layer (W, b, slopes), as flat views."""
    return geometry(layers).arrays(buf)


# ---------------------------------------------------------------------------
# PReLU, Maxout, meProp
# ---------------------------------------------------------------------------
def prelu_forward(Z, slope, A, n_threads):
    A[...] = np.where(Z > 0, Z, slope[None, :] * Z)


def prelu_backward(Z, dA, slope, dslope, dZ, n_threads):
    neg = ~(Z > 0)
    dslope[...] = np.where(neg, dA.astype(np.float64) * Z.astype(np.float64), 0.0).sum(axis=0)
    dZ[...] = np.where(neg, slope[None, :] * dA, dA)


def maxout_forward(Z, pieces, A, n_threads):
    n, m = A.shape
    A[...] = Z.reshape(n, m, pieces).max(axis=2)


def maxout_backward(Z, dA, pieces, dZ, n_threads):
    n, m = dA.shape
    arg = Z.reshape(n, m, pieces).argmax(axis=2)          # first max; first NaN if any
    onehot = np.arange(pieces)[None, None, :] == arg[:, :, None]
    dZ[...] = (onehot * dA[:, :, None]).reshape(n, m * pieces)


def topk_rows(D, k, idx, n_threads):
    mag = np.abs(D.astype(np.float64))
    mag[np.isnan(mag)] = np.inf                            # NaN counts as the largest
    order = np.argsort(-mag, axis=1, kind="stable")[:, :k]  # ties: lower column first
    idx[...] = np.sort(order, axis=1)
    keep = np.zeros(D.shape, dtype=bool)
    np.put_along_axis(keep, idx, True, axis=1)
    D[~keep] = 0


def matmul_tn_sparse(A, D, idx, C, n_threads):
    Ds = np.zeros_like(D)
    np.put_along_axis(Ds, idx, np.take_along_axis(D, idx, axis=1), axis=1)
    C[...] = A.T @ Ds


def matmul_nt_sparse(D, idx, B, C, n_threads):
    Ds = np.zeros_like(D)
    np.put_along_axis(Ds, idx, np.take_along_axis(D, idx, axis=1), axis=1)
    C[...] = Ds @ B.T


def regularize(layers, params, grads, penalty, n_threads):
    _api.check_regularize(layers, params, grads, penalty, n_threads)
    total = 0.0
    for l in range(layers.shape[0]):
        W, b = _layer_views(layers, params, l)
        gW, gb = _layer_views(layers, grads, l)
        for arr, g, c1, c2 in ((W, gW, "l1", "l2"), (b, gb, "bias_l1", "bias_l2")):
            l1, l2 = float(layers[l][c1]), float(layers[l][c2])
            if arr.size == 0 or (l1 == 0.0 and l2 == 0.0):
                continue
            # a zero coefficient contributes nothing (not 0 * inf = NaN for an infinite weight)
            if l1 != 0.0:
                g += l1 * np.sign(arr)
                total += l1 * float(np.abs(arr).sum(dtype=np.float64))
            if l2 != 0.0:
                g += 2 * l2 * arr
                total += l2 * float((arr.astype(np.float64) ** 2).sum())
    penalty[0] = total


def optimizer_update(opt, hyper, grad_scale, t, grads, params, state, n_threads):
    """PyTorch's single-tensor algorithms, as documented for torch.optim, on the
    gradient multiplied by grad_scale (Keras's clip by norm)."""
    h = {name: float(hyper[i]) for name, i in defs.HYPER.items()}
    lr, wd = h["lr"], h["weight_decay"]
    if opt == defs.OPT_NONE:
        return
    g = grads.astype(grads.dtype, copy=True)
    g *= float(grad_scale)            # clip by norm: the factor train_batches computed
    cv = h["clipvalue"]
    if cv:
        g = np.where(g > cv, cv, np.where(g < -cv, -cv, g)).astype(grads.dtype)
    if h["maximize"]:
        g = -g
    p = params
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


def _layer_forward(a, layers, params, l, linear_last=False):
    """(z, a) of layer l on input a (z before the Maxout max / the activation)."""
    W, b = _layer_views(layers, params, l)
    z = a @ W
    if b.shape[0]:
        z = z + b
    act = int(layers[l]["act"])
    if int(layers[l]["kind"]) == defs.LAYER_MAXOUT:
        out = np.empty((z.shape[0], int(layers[l]["n_out"])), z.dtype)
        maxout_forward(z, int(layers[l]["pieces"]), out, 1)
    elif linear_last:
        out = z
    elif act == defs.ACT_PRELU:
        out = np.empty_like(z)
        prelu_forward(z, _slopes(layers, params, l), out, 1)
    else:
        out = _activate(z, act, float(layers[l]["act_param"]))
    return z, out


def forward(X, layers, params, work, out, n_threads):
    _api.check_forward(X, layers, params, work, out, n_threads)
    a = X
    for l in range(layers.shape[0]):
        _, a = _layer_forward(a, layers, params, l)
    out[...] = a


def predictor(dtype):
    """Model.predict's fast path (see the Cython backend's): forward when every
    element of X is finite (True), else nothing written (False)."""
    def run(X, layers, params, work, out, n_threads):
        flag = np.zeros(1, dtype=np.int64)
        all_finite(X, flag, 1)
        if not flag[0]:
            return False
        forward(X, layers, params, work, out, n_threads)
        return True
    return run


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


def _finite(*arrays):
    return all(np.isfinite(a).all() for a in arrays)


def _diag_counts(diag, layers, l, a):
    """Per-unit activity / saturation counts of layer l (see kernels/defs.py)."""
    act = int(layers[l]["act"])
    w = a.shape[1]
    off = geometry(layers).diag_offsets[l]
    if act in (defs.ACT_RELU, defs.ACT_RELU6):
        diag[off:off + w] += (a > 0).sum(axis=0)
    elif act == defs.ACT_SIGMOID:
        diag[off + w:off + 2 * w] += (a * (1 - a) < defs.SATURATION * 0.25).sum(axis=0)
    elif act == defs.ACT_TANH:
        diag[off + w:off + 2 * w] += (1 - a * a < defs.SATURATION).sum(axis=0)


def _clipped_update(opt, hyper, t, layers, grads, params, state, n_threads):
    """The optimizer step with Keras clipping (see _api: norms in float64)."""
    cn, gcn = float(hyper[defs.H_CLIPNORM]), float(hyper[defs.H_GLOBAL_CLIPNORM])
    if opt != defs.OPT_NONE and cn > 0:
        for (_, g), (_, p), s in zip(_arrays(layers, grads), _arrays(layers, params),
                                     _state_arrays(layers, state)):
            norm = float(np.sqrt((g.astype(np.float64) ** 2).sum()))
            optimizer_update(opt, hyper, 1.0 if norm <= cn else cn / norm, t, g, p, s, n_threads)
        return
    factor = 1.0
    if opt != defs.OPT_NONE and gcn > 0:
        norm = float(np.sqrt((grads.astype(np.float64) ** 2).sum()))
        factor = 1.0 if norm <= gcn else gcn / norm
    optimizer_update(opt, hyper, factor, t, grads, params, state, n_threads)


def _state_arrays(layers, state):
    """Per-array (N_STATE, size) views of the optimizer state, matching _arrays."""
    return [v for _, v in geometry(layers).arrays(state)]


def train_batches(batches, network, train_state, buffers, n_threads, diag=None):
    _api.check_train_batches(batches, network, train_state, buffers, n_threads, diag)
    X, Y, labels, sw, perm, batch_size, first_batch, n_batches = batches
    layers, head, params = network
    opt, hyper, t0, rng_key, state = train_state
    grads, work, batch_loss, scores = buffers
    rng_key = int(rng_key) % 2 ** 64          # the contract: any integer, modulo 2**64
    # overflow to inf and inf - inf are legitimate results here (diverging runs,
    # located by diag); the compiled kernels do not warn either
    with np.errstate(over="ignore", invalid="ignore"):
        _train_batches(X, Y, labels, sw, perm, batch_size, first_batch, n_batches, layers,
                       head, opt, hyper, t0, rng_key, params, grads, state, batch_loss, scores,
                       n_threads, diag)


def _train_batches(X, Y, labels, sw, perm, batch_size, first_batch, n_batches,
                   layers, head, opt, hyper, t0, rng_key,
                   params, grads, state, batch_loss, scores, n_threads, diag):
    L = layers.shape[0]
    M = perm.shape[0]
    dtype = params.dtype
    fused = head in (defs.HEAD_SOFTMAX_XENT, defs.HEAD_SIGMOID_BCE)
    if head not in (defs.HEAD_SOFTMAX_XENT, defs.HEAD_SIGMOID_BCE, defs.HEAD_MSE, defs.HEAD_MAE):
        raise ValueError("unknown head code %r" % head)
    on = diag is not None and diag.shape[0] > 0
    if on and diag.shape[0] < geometry(layers).diag_size:
        raise ValueError("train_batches: diag is shorter than defs.diag_size(layers)")
    penalty = np.zeros(1)

    def bad(b, l, stage):
        diag[defs.DG_BATCH], diag[defs.DG_LAYER], diag[defs.DG_STAGE] = b, l, stage

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
            last = l == L - 1
            z, a = _layer_forward(a, layers, params, l, linear_last=last and fused)
            zs.append(z)
            acts.append(a)
            if on:
                if not _finite(z, a):
                    return bad(b, l, defs.STAGE_FORWARD)
                if not (last and fused):   # a fused head's layer holds logits: no counts
                    _diag_counts(diag, layers, l, a)
            rate = float(layers[l]["dropout"])
            if rate > 0 and not last:
                mask = dropout_mask(rng_key, b, l, L, batch_size, n, a.shape[1], rate, dtype)
                masks.append(mask)
                a = a * mask
            else:
                masks.append(None)
            inputs.append(a)
        if on:
            diag[defs.DG_ROWS] += n

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
        else:
            fn = mse if head == defs.HEAD_MSE else mae
            fn(acts[-1], Y[rows], w_rows, scale, row_loss, delta, n_threads)
            out_scores[...] = acts[-1]
            delta = _act_grad(zs[-1], acts[-1], delta, int(layers[L - 1]["act"]),
                              float(layers[L - 1]["act_param"]))
        weights = np.ones(n) if sw.shape[0] == 0 else w_rows.astype(np.float64)
        data_loss = float((weights * row_loss).sum()) / n
        if scores.shape[0]:
            scores[b * batch_size:b * batch_size + n] = out_scores
        if on and not (np.isfinite(data_loss) and _finite(delta)):
            batch_loss[step] = data_loss
            return bad(b, L - 1, defs.STAGE_LOSS)

        # backward: delta is dL/dz of layer l (z width)
        for l in range(L - 1, -1, -1):
            gW, gb = _layer_views(layers, grads, l)
            kk = _api.topk_of(layers, l)
            if kk:
                idx = np.empty((n, kk), np.int64)
                topk_rows(delta, kk, idx, n_threads)
            gW[...] = inputs[l].T @ delta
            if gb.shape[0]:
                gb[...] = delta.sum(axis=0)
            gnorm_parts = [gW, gb]
            if l > 0:
                W, _ = _layer_views(layers, params, l)
                da = delta @ W.T
                if masks[l - 1] is not None:
                    da = da * masks[l - 1]
                below = int(layers[l - 1]["act"])
                if int(layers[l - 1]["kind"]) == defs.LAYER_MAXOUT:
                    delta = np.empty_like(zs[l - 1])
                    maxout_backward(zs[l - 1], da, int(layers[l - 1]["pieces"]), delta, 1)
                elif below == defs.ACT_PRELU:
                    gs = _slopes(layers, grads, l - 1)
                    delta = np.empty_like(da)
                    prelu_backward(zs[l - 1], da, _slopes(layers, params, l - 1), gs, delta, 1)
                else:
                    delta = _act_grad(zs[l - 1], acts[l - 1], da, below, float(layers[l - 1]["act_param"]))
            if on:
                if l < L - 1 and int(layers[l]["act"]) == defs.ACT_PRELU:
                    gnorm_parts.append(_slopes(layers, grads, l))
                # this layer's gradients are complete (its slopes were done one step earlier)
                if not _finite(*gnorm_parts) or (l > 0 and not _finite(delta)):
                    return bad(b, l, defs.STAGE_BACKWARD)
                off = geometry(layers).diag_offsets[l] + 2 * geometry(layers).widths[l]
                diag[off] += np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in gnorm_parts))
                diag[off + 1] += 1

        regularize(layers, params, grads, penalty, n_threads)
        batch_loss[step] = data_loss + penalty[0]
        _clipped_update(opt, hyper, t0 + step + 1, layers, grads, params, state, n_threads)
        if on:
            for l in range(L):
                W, bb = _layer_views(layers, params, l)
                if not _finite(W, bb, _slopes(layers, params, l)):
                    return bad(b, l, defs.STAGE_UPDATE)


# one docstring per kernel, the contract's (the arithmetic above is this module's own)
for _name in _api.KERNELS:
    globals()[_name].__doc__ = _api.kernel_doc(_name)
del _name

# the contract says every backend exposes exactly these
workspace_size = _api.workspace_size
forward_workspace_size = _api.forward_workspace_size
