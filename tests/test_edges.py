"""The twins agree at the numeric edges (issue 15, section 5).

* swish's derivative over the whole float range (it was 0 for z >= 1e16 in both
  compiled twins: a + s (1 - a) cancels once a = z swallows the 1);
* the softmax cross-entropy: accuracy of p - y and of the loss against an
  extended-precision reference at large logit gaps, and numba == Cython to the
  bit (one formula, one exp, one summation order);
* meProp's top-k: exact ties go to the lower column on every backend;
* regularize: a zero coefficient contributes nothing, even for an infinite weight.
"""
import numpy as np
import pytest

from fastnet._kernels import defs
from fastnet.backends import get_backend

from conftest import TRAIN_ARG, BACKENDS, COMPILED, make_spec, train

REF = get_backend("numpy")
EDGES = [0.0, 1e-30, 1.0, 20.0, 80.0, 1e4, 1e16, 1e30, 3e38]


def _swish_grad_exact(z):
    """d/dz z sigmoid(z) = s (1 + z (1 - s)) in long double, with 1 - s = sigmoid(-z)."""
    z = np.asarray(z, dtype=np.longdouble)
    with np.errstate(over="ignore", invalid="ignore"):
        s = np.where(z >= 0, 1 / (1 + np.exp(-z)), np.exp(z) / (1 + np.exp(z)))
        t = np.where(z >= 0, np.exp(-z) / (1 + np.exp(-z)), 1 / (1 + np.exp(z)))
        return s * (1 + z * t)


@pytest.mark.parametrize("backend", BACKENDS)
def test_swish_derivative_over_the_whole_range(backend, dtype):
    z = np.array([s * e for e in EDGES for s in (1.0, -1.0)], dtype=dtype).reshape(1, -1)
    mod = get_backend(backend)
    Z, A = z.copy(), np.empty_like(z)
    mod.bias_act_forward(np.zeros(0, dtype), defs.ACT_SWISH, 0.0, Z, A, 1)
    dA = np.ones_like(z)
    dZ = np.full_like(z, np.nan)
    mod.act_backward(Z, A, dA, defs.ACT_SWISH, 0.0, dZ, 1)
    exact = _swish_grad_exact(z.astype(np.float64)).astype(np.float64)
    # z >= 1e16: exactly 1 (it was 0); z <= -1e4: 0 (e^z z underflows)
    big = z[0] >= 1e16
    np.testing.assert_array_equal(dZ[0, big], 1.0)
    np.testing.assert_allclose(dZ[0], exact[0], rtol=8 * np.finfo(dtype).eps, atol=1e-300)
    if backend != "numpy":
        Zr, Ar = z.copy(), np.empty_like(z)
        REF.bias_act_forward(np.zeros(0, dtype), defs.ACT_SWISH, 0.0, Zr, Ar, 1)
        dZr = np.empty_like(z)
        REF.act_backward(Zr, Ar, dA, defs.ACT_SWISH, 0.0, dZr, 1)
        np.testing.assert_allclose(dZ, dZr, rtol=8 * np.finfo(dtype).eps, atol=1e-300)
        np.testing.assert_allclose(A, Ar, rtol=8 * np.finfo(dtype).eps, atol=1e-300)


# ---------------------------------------------------------------------------
# softmax cross-entropy
# ---------------------------------------------------------------------------
def _xent_exact(Z, Y):
    """p, p - y and -sum y log p in long double (64-bit mantissa on x86)."""
    z = Z.astype(np.longdouble)
    y = Y.astype(np.longdouble)
    mx = z.max(axis=1, keepdims=True)
    e = np.exp(z - mx)
    at_max = z == mx
    rest = np.where(at_max, 0, e).sum(axis=1, keepdims=True)
    s = 1 + rest
    p = e / s
    # p - y without cancellation at the max: ((1 - y) - y rest) / s
    d = np.where(at_max, ((1 - y) - y * rest) / s, p - y)
    loss = -(Y * ((z - mx) - np.log1p(rest))).sum(axis=1)
    return p, d, loss


def _gap_logits(dtype, rng, n=64, k=10):
    """Rows whose max leads the others by 10-30 (a confident prediction)."""
    Z = rng.standard_normal((n, k))
    top = rng.integers(0, k, n)
    Z[np.arange(n), top] += rng.uniform(10, 30, n)
    return Z.astype(dtype), top


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sparse", [True, False])
def test_softmax_xent_accurate_at_large_logit_gaps(backend, sparse):
    """float64: every p - y within 1e-13 relative of the long-double value, the
    correct class's included (-s_rest / (1 + s_rest), 1e-13 to 1e-5 in size), and
    the loss too (log1p form)."""
    if np.finfo(np.longdouble).nmant < 60:
        pytest.skip("long double is not extended precision here")
    rng = np.random.default_rng(3)
    Z, top = _gap_logits(np.float64, rng)
    n, k = Z.shape
    Y = np.zeros_like(Z)
    Y[np.arange(n), top] = 1.0
    P, loss, dZ = np.empty_like(Z), np.empty(n), np.empty_like(Z)
    labels = top.astype(np.int64) if sparse else np.zeros(0, np.int64)
    get_backend(backend).softmax_xent(Z, Y if not sparse else np.zeros((0, k)), labels,
                                      np.zeros(0), 1.0, P, loss, dZ, 1)
    p, d, lx = _xent_exact(Z, Y)
    rel = lambda got, want: float(np.max(np.abs(got - want) / np.abs(want)))  # noqa: E731
    assert rel(dZ, d) < 1e-13, rel(dZ, d)
    assert rel(P, p) < 1e-13
    assert rel(loss, lx) < 1e-12, rel(loss, lx)


@pytest.mark.skipif(set(COMPILED) != {"numba", "cython"}, reason="needs both compiled twins")
@pytest.mark.parametrize("sparse", [True, False])
def test_softmax_xent_twins_bit_identical(dtype, sparse):
    """numba and Cython give the same bits for P, loss and dZ: soft targets, sample
    weights, gaps up to 60, rows of 1, 10 and 100 (> the Cython twin's 64 kept
    exponentials), -inf logits, an infinite max and a NaN."""
    rng = np.random.default_rng(11)
    for k in (1, 10, 100):
        Z, top = _gap_logits(dtype, rng, n=40, k=k)
        Z[::7] *= 2.0
        if k > 1:
            Z[3, 0] = -np.inf
            Z[5, 1] = np.inf
            Z[6, 0] = np.nan
        n = Z.shape[0]
        Y = rng.dirichlet(np.ones(k), n).astype(dtype)
        Y[::3] = 0
        Y[::3, 0] = 1
        sw = rng.uniform(0.5, 2.0, n).astype(dtype)
        labels = top.astype(np.int64) if sparse else np.zeros(0, np.int64)
        Yin = np.zeros((0, k), dtype) if sparse else Y
        outs = []
        for name in ("numba", "cython"):
            P, loss, dZ = np.empty_like(Z), np.empty(n), np.empty_like(Z)
            with np.errstate(all="ignore"):
                get_backend(name).softmax_xent(Z, Yin, labels, sw, 0.25, P, loss, dZ, 1)
            outs.append((P, loss, dZ))
        for a, b in zip(*outs):
            assert a.tobytes() == b.tobytes(), (k, dtype, sparse)


@pytest.mark.skipif(set(COMPILED) != {"numba", "cython"}, reason="needs both compiled twins")
@pytest.mark.parametrize("sparse", [True, False])
def test_fused_softmax_head_in_training_bit_identical(dtype, sparse):
    """The fused head inside train_batches: one linear layer (its products are the
    twins' bit-identical matmuls), sample weights, logits spread wide, no update
    (OPT_NONE: the optimizers' element loops are not twins to the bit, numba may
    fuse p - lr g into an FMA): the twins' scores (the head's p), batch losses
    (sums in row order) and gradients are the same bits."""
    from fastnet.backends import _api
    rng = np.random.default_rng(2)
    n_in, k, N, bs = 5, 10, 30, 8
    layers, P = make_spec(n_in, [k], [defs.ACT_LINEAR])
    params0 = (rng.standard_normal(P) * 3).astype(dtype)
    X = rng.standard_normal((N, n_in)).astype(dtype)
    lab = rng.integers(0, k, N).astype(np.int64)
    Y = np.eye(k, dtype=dtype)[lab]
    sw = rng.uniform(0.5, 2.0, N).astype(dtype)
    hyper = np.zeros(defs.NH)
    n_b = _api.n_batches(N, bs)
    outs = []
    for name in ("numba", "cython"):
        args = [X, np.zeros((0, k), dtype) if sparse else Y,
                lab if sparse else np.zeros(0, np.int64), sw, np.arange(N, dtype=np.int64),
                bs, 0, n_b, layers, defs.HEAD_SOFTMAX_XENT, defs.OPT_NONE, hyper, 0, 7,
                params0.copy(), np.zeros(P, dtype), np.zeros((defs.N_STATE, P), dtype),
                np.zeros(_api.workspace_size(layers, bs), dtype), np.full(n_b, np.nan),
                np.full((N, k), np.nan, dtype), 1]
        train(get_backend(name), *args)
        outs.append(args)
    for i in [TRAIN_ARG[a] for a in ("params", "grads", "batch_loss", "scores")]:
        assert outs[0][i].tobytes() == outs[1][i].tobytes(), (i, outs[0][i], outs[1][i])


# ---------------------------------------------------------------------------
# meProp top-k ties
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_topk_ties_go_to_the_lower_column(backend, dtype):
    """Rows full of exact ties, ties straddling the k-th place (+-x have one
    magnitude), zeros, infinities and NaN (an infinite magnitude): the lowest
    columns among the tied win, on every backend, for 1 and 2 threads."""
    rows = [
        [1.0] * 12,
        [-2.0, 2.0, -2.0, 2.0, 2.0, -2.0, 2.0, -2.0, 2.0, 2.0, -2.0, 2.0],
        [0.0] * 12,
        [3.0, 1.0, -1.0, 1.0, 0.5, -1.0, 3.0, 1.0, -1.0, 0.0, 1.0, -3.0],
        [np.inf, -np.inf, np.nan, 1.0, np.inf, 1.0, -1.0, np.nan, 2.0, 2.0, 1.0, 0.0],
        [-0.0, 0.0, 1e-300, -1e-300, 1e-300, 0.0, 5.0, 5.0, 5.0, 1e-300, -0.0, 0.0],
    ]
    D0 = np.array(rows, dtype=dtype)
    if dtype == "float32":
        D0[D0 == 1e-300] = 0.0
    mags = np.abs(D0.astype(np.float64))
    mags[np.isnan(mags)] = np.inf
    mod = get_backend(backend)
    for k in range(1, 13):
        want = np.sort(np.array([sorted(range(12), key=lambda j: (-m[j], j))[:k] for m in mags]), axis=1)
        for nt in (1, 2):
            D = D0.copy()
            idx = np.full((D.shape[0], k), -1, np.int64)
            mod.topk_rows(D, k, idx, nt)
            np.testing.assert_array_equal(idx, want, err_msg="k=%d" % k)
            keep = np.zeros(D.shape, bool)
            np.put_along_axis(keep, want, True, axis=1)
            np.testing.assert_array_equal(D[keep], D0[keep])
            assert not D[~keep].any()
    # large rows of ties past the parallel threshold
    D0 = np.tile(np.array([1.0, -1.0, 0.5], dtype), (64, 700))
    for k in (1, 699, 1400, 1401, 2100):
        D = D0.copy()
        idx = np.empty((64, k), np.int64)
        mod.topk_rows(D, k, idx, 2)
        ones = np.flatnonzero(np.abs(D0[0]) == 1.0)
        halves = np.flatnonzero(np.abs(D0[0]) == 0.5)
        want = np.sort(np.concatenate([ones, halves])[:k]) if k > ones.size else ones[:k]
        np.testing.assert_array_equal(idx, np.broadcast_to(want, idx.shape))


# ---------------------------------------------------------------------------
# regularize with an infinite weight
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("l1,l2", [(0.0, 0.01), (0.01, 0.0), (0.01, 0.02)])
def test_regularize_zero_coefficient_contributes_nothing(backend, dtype, l1, l2):
    layers, P = make_spec(3, [4, 2], [defs.ACT_RELU, defs.ACT_LINEAR],
                                l1=[l1, 0.0], l2=[l2, 0.0])
    rng = np.random.default_rng(0)
    params = rng.standard_normal(P).astype(dtype)
    params[layers[1]["w_offset"]] = np.inf         # a layer without penalty: not read
    w0 = layers[0]["w_offset"]
    finite = params.copy()
    params[w0 + 5] = np.inf
    params[w0 + 6] = -np.inf
    grads = np.zeros(P, dtype)
    pen = np.zeros(1)
    get_backend(backend).regularize(layers, params, grads, pen, 1)
    W = finite[w0:w0 + 12].astype(np.float64)
    g = grads[w0:w0 + 12].astype(np.float64)
    inf_at = [5, 6]
    rest = [e for e in range(12) if e not in inf_at]
    want = l1 * np.sign(W) + 2 * l2 * W
    np.testing.assert_allclose(g[rest], want[rest], rtol=1e-6)
    if l2 == 0.0:
        np.testing.assert_allclose(g[inf_at], [l1, -l1], rtol=1e-6)    # not NaN
    else:
        np.testing.assert_array_equal(g[inf_at], [np.inf, -np.inf])
    assert pen[0] == np.inf                     # l1 |inf| or l2 inf^2, never NaN
    assert not grads[layers[1]["w_offset"]:].any()
    # and finite weights: the penalty's value
    grads[:] = 0
    get_backend(backend).regularize(layers, finite, grads, pen, 1)
    Wf = finite[w0:w0 + 12].astype(np.float64)
    np.testing.assert_allclose(pen[0], l1 * np.abs(Wf).sum() + l2 * (Wf ** 2).sum(), rtol=1e-6)


# ---------------------------------------------------------------------------
# the Keras activations added in issue 20: gelu (and its tanh form), softplus,
# softsign, selu, hard_sigmoid
# ---------------------------------------------------------------------------
KERAS_ACTS = ["gelu", "gelu_tanh", "softplus", "softsign", "selu", "hard_sigmoid"]
_SELU_A, _SELU_S = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
# finite grid: the kinks, a dense middle, and |z| up to 1e300 (no overflow, no NaN)
_BIG = np.logspace(-30, 300, 45)
GRID = np.concatenate([-_BIG[::-1], [0.0, -3.0, 3.0, -40.0, 40.0], np.linspace(-12, 12, 121), _BIG])


def _keras(name, z):
    """Keras's definitions, evaluated with SciPy / NumPy in float64 (scipy's ndtr
    for Phi where 1 + erf(z / sqrt 2) would cancel)."""
    from scipy.special import erf, ndtr
    with np.errstate(over="ignore", invalid="ignore"):
        if name == "gelu":
            keras = 0.5 * z * (1 + erf(z / np.sqrt(2)))
            return np.where(z < -8, z * ndtr(z), keras)
        if name == "gelu_tanh":
            return 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z ** 3)))
        if name == "softplus":
            return np.logaddexp(0, z)
        if name == "softsign":
            return z / (1 + np.abs(z))
        if name == "selu":
            return _SELU_S * np.where(z > 0, z, _SELU_A * np.expm1(np.minimum(z, 0)))
        if name == "hard_sigmoid":
            return np.where(z <= -3, 0.0, np.where(z >= 3, 1.0, z / 6 + 0.5))
    raise AssertionError(name)


def _apply(mod, code, z, dtype=np.float64):
    Z = np.ascontiguousarray(z, dtype=dtype).reshape(1, -1)
    A, dZ = np.empty_like(Z), np.empty_like(Z)
    mod.bias_act_forward(np.zeros(0, dtype), code, 0.0, Z, A, 1)
    mod.act_backward(Z, A, np.ones_like(Z), code, 0.0, dZ, 1)
    return A[0], dZ[0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", KERAS_ACTS)
def test_keras_activations_values_and_derivatives(backend, name):
    """Values equal Keras's formulas (SciPy) over the grid; derivatives equal
    central differences of the formulas in float64, |z| up to 1e300 included;
    nothing overflows into NaN.  The reference computes with overflow and
    invalid operations raising."""
    mod = get_backend(backend)
    code = defs.ACT[name]
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        a, g = _apply(mod, code, GRID)
    assert np.isfinite(a).all() and np.isfinite(g).all()
    np.testing.assert_allclose(a, _keras(name, GRID), rtol=1e-14, atol=1e-15, err_msg=name)
    kinks = {"hard_sigmoid": 3.0, "selu": 0.0}   # |z| where the derivative jumps
    smooth = np.abs(np.abs(GRID) - kinks.get(name, -1.0)) > 1e-5
    z = GRID[smooth]
    h = 1e-6 * np.maximum(1.0, np.abs(z))
    fd = (_keras(name, z + h) - _keras(name, z - h)) / (2 * h)
    np.testing.assert_allclose(g[smooth], fd, rtol=1e-6, atol=1e-8, err_msg=name)
    # derivatives at the kinks: hard_sigmoid's are 0 outside (-3, 3)
    if name == "hard_sigmoid":
        assert list(_apply(mod, code, np.array([-3.0, 3.0, 0.0]))[1]) == [0.0, 0.0, 1 / 6]


@pytest.mark.parametrize("backend", BACKENDS)
def test_keras_activations_at_inf_and_nan(backend, dtype):
    """The limits at +-inf (not inf * 0 = NaN), NaN passed through."""
    mod = get_backend(backend)
    sa = _SELU_S * _SELU_A
    want = {"gelu": ([np.inf, 0.0], [1.0, 0.0]), "gelu_tanh": ([np.inf, 0.0], [1.0, 0.0]),
            "softplus": ([np.inf, 0.0], [1.0, 0.0]), "softsign": ([1.0, -1.0], [0.0, 0.0]),
            "selu": ([np.inf, -sa], [_SELU_S, 0.0]), "hard_sigmoid": ([1.0, 0.0], [0.0, 0.0])}
    for name, (vals, ders) in want.items():
        with np.errstate(all="ignore"):
            a, g = _apply(mod, defs.ACT[name], np.array([np.inf, -np.inf, np.nan]), dtype)
        np.testing.assert_allclose(a[:2], vals, rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(g[:2], ders, rtol=1e-6, err_msg=name)
        assert np.isnan(a[2]), name


@pytest.mark.skipif(set(COMPILED) != {"numba", "cython"}, reason="needs both compiled twins")
def test_keras_activations_twins(dtype):
    """numba and Cython: the same bits where both make the same libm calls and
    nothing can be contracted into an FMA (gelu's erfc, selu's expm1, softsign,
    hard_sigmoid forward; softsign and hard_sigmoid derivatives); the rest (exp:
    Cython's inline fn_exp against numba's libm; numba's contraction of the tanh
    form's polynomial) within a few ulp."""
    rng = np.random.default_rng(20)
    z = np.concatenate([GRID[np.abs(GRID) < np.finfo(dtype).max], 6 * rng.standard_normal(3000)]).astype(dtype)
    ulp = np.finfo(dtype).eps
    for name in KERAS_ACTS:
        an, gn = _apply(get_backend("numba"), defs.ACT[name], z, dtype)
        ac, gc = _apply(get_backend("cython"), defs.ACT[name], z, dtype)
        if name in ("gelu", "softsign", "selu", "hard_sigmoid"):
            assert an.tobytes() == ac.tobytes(), name
        if name in ("softsign", "hard_sigmoid"):
            assert gn.tobytes() == gc.tobytes(), name
        np.testing.assert_allclose(an, ac, rtol=8 * ulp, atol=8 * ulp, err_msg=name)
        np.testing.assert_allclose(gn, gc, rtol=8 * ulp, atol=8 * ulp, err_msg=name)
