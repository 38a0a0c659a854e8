"""Table-driven parity: every kernel of the contract x compiled backend x dtype x
shape against the NumPy reference backend (float64: rel 1e-10, float32: rel 1e-4).

Shapes include a single row, odd widths (1, 3, 17, 31) and a large case."""
import inspect

import numpy as np
import pytest

from fastnet._kernels import defs
from fastnet.backends import _api, get_backend

from conftest import COMPILED, TRAIN_ARG, head_cases, make_spec, make_targets

REF = get_backend("numpy")
TOL = {"float32": 1e-4, "float64": 1e-10}
ROWS = [1, 3, 17, 64]
WIDTHS = [1, 3, 17, 31]
LARGE = (300, 200, 129)
ACTS = [a["code"] for a in defs.ACTIVATIONS]
SHAPES = [(n, k, m) for n in ROWS for k, m in [(1, 3), (3, 17), (17, 31), (31, 1), (31, 17)]] + [LARGE]

pytestmark = pytest.mark.skipif(not COMPILED, reason="no compiled backend available")


def close(got, ref, dtype, what=""):
    tol = TOL[dtype]
    ref = np.asarray(ref, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(ref)))) if ref.size else 1.0
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), ref, rtol=tol, atol=tol * scale,
                               err_msg=what)


def run_both(name, backend, make_args, out_idx, dtype):
    """Call kernel ``name`` of ``backend`` and of the reference on identical fresh
    inputs; compare the outputs at argument positions ``out_idx``."""
    args_b = make_args()
    args_r = make_args()
    getattr(get_backend(backend), name)(*args_b)
    getattr(REF, name)(*args_r)
    for i in out_idx:
        close(args_b[i], args_r[i], dtype, "%s arg %d" % (name, i))
    return args_b, args_r


@pytest.fixture(params=COMPILED)
def cb(request):
    return request.param


def test_every_backend_implements_the_contract(cb):
    mod = get_backend(cb)
    for name, args in _api.KERNELS.items():
        fn = getattr(mod, name, None)
        assert fn is not None, "%s backend lacks kernel %s" % (cb, name)
        try:
            params = list(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            continue
        assert params == [a[0] for a in args], "%s.%s signature %s" % (cb, name, params)


@pytest.mark.parametrize("shape", SHAPES)
def test_matmul_forms(cb, dtype, shape):
    n, k, m = shape
    rng = np.random.default_rng(n * 1000 + k * 10 + m)
    A = rng.standard_normal((n, k)).astype(dtype)
    B = rng.standard_normal((k, m)).astype(dtype)
    run_both("matmul", cb, lambda: (A, B, np.full((n, m), np.nan, dtype), 2), [2], dtype)
    At = np.ascontiguousarray(rng.standard_normal((k, n)).astype(dtype))
    run_both("matmul_tn", cb, lambda: (At, B, np.full((n, m), np.nan, dtype), 2), [2], dtype)
    Bt = np.ascontiguousarray(rng.standard_normal((m, k)).astype(dtype))
    run_both("matmul_nt", cb, lambda: (A, Bt, np.full((n, m), np.nan, dtype), 2), [2], dtype)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("n,m", [(1, 1), (3, 3), (17, 17), (5, 31), (257, 33)])
def test_bias_act_forward(cb, dtype, act, n, m):
    rng = np.random.default_rng(act * 100 + n + m)
    Z = (3 * rng.standard_normal((n, m))).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    for bias in (b, np.empty(0, dtype)):
        run_both("bias_act_forward", cb,
                 lambda: (bias, act, 0.2, Z.copy(), np.full((n, m), np.nan, dtype), 1), [3, 4], dtype)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("n,m", [(1, 1), (3, 3), (17, 17), (5, 31), (257, 33)])
def test_act_backward(cb, dtype, act, n, m):
    rng = np.random.default_rng(act * 100 + n + m + 7)
    Z = (3 * rng.standard_normal((n, m))).astype(dtype)
    A = np.empty_like(Z)
    REF.bias_act_forward(np.empty(0, dtype), act, 0.2, Z.copy(), A, 1)
    dA = rng.standard_normal((n, m)).astype(dtype)
    run_both("act_backward", cb, lambda: (Z, A, dA, act, 0.2, np.full((n, m), np.nan, dtype), 1), [5], dtype)


@pytest.mark.parametrize("n,k", [(1, 2), (3, 3), (17, 17), (5, 31), (257, 10), (64, 1)])
@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("weighted", [True, False])
def test_softmax_xent(cb, dtype, n, k, sparse, weighted):
    rng = np.random.default_rng(n + k)
    Z = (4 * rng.standard_normal((n, k))).astype(dtype)
    labels = rng.integers(0, k, n).astype(np.int64)
    if sparse:
        Y, lab = np.empty((0, k), dtype), labels
    else:
        Y = rng.random((n, k)).astype(dtype)
        Y /= Y.sum(axis=1, keepdims=True)
        lab = np.empty(0, np.int64)
    sw = rng.random(n).astype(dtype) if weighted else np.empty(0, dtype)

    def args():
        return (Z, Y, lab, sw, 1.0 / n, np.full((n, k), np.nan, dtype), np.full(n, np.nan),
                np.full((n, k), np.nan, dtype), 2)
    run_both("softmax_xent", cb, args, [5, 6, 7], dtype)


@pytest.mark.parametrize("n,k", [(1, 1), (3, 3), (17, 17), (5, 31), (257, 10)])
@pytest.mark.parametrize("weighted", [True, False])
def test_sigmoid_bce(cb, dtype, n, k, weighted):
    rng = np.random.default_rng(n * k + 3)
    Z = (4 * rng.standard_normal((n, k))).astype(dtype)
    Y = rng.random((n, k)).astype(dtype)
    sw = rng.random(n).astype(dtype) if weighted else np.empty(0, dtype)

    def args():
        return (Z, Y, sw, 1.0 / n, np.full((n, k), np.nan, dtype), np.full(n, np.nan),
                np.full((n, k), np.nan, dtype), 2)
    run_both("sigmoid_bce", cb, args, [4, 5, 6], dtype)


@pytest.mark.parametrize("kernel", ["mse", "mae"])
@pytest.mark.parametrize("n,k", [(1, 1), (3, 3), (17, 17), (5, 31), (257, 10)])
@pytest.mark.parametrize("weighted", [True, False])
def test_regression_losses(cb, dtype, kernel, n, k, weighted):
    rng = np.random.default_rng(n * k + 5)
    A = rng.standard_normal((n, k)).astype(dtype)
    Y = rng.standard_normal((n, k)).astype(dtype)
    sw = rng.random(n).astype(dtype) if weighted else np.empty(0, dtype)
    run_both(kernel, cb, lambda: (A, Y, sw, 1.0 / n, np.full(n, np.nan), np.full((n, k), np.nan, dtype), 2),
             [4, 5], dtype)


@pytest.mark.parametrize("n,m", [(1, 1), (3, 3), (17, 17), (5, 31), (1000, 65)])
def test_bias_grad_and_gather(cb, dtype, n, m):
    rng = np.random.default_rng(n + m)
    dZ = rng.standard_normal((n, m)).astype(dtype)
    run_both("bias_grad", cb, lambda: (dZ, np.full(m, np.nan, dtype), 2), [1], dtype)
    idx = rng.integers(0, n, 2 * n + 1).astype(np.int64)
    run_both("gather_rows", cb, lambda: (dZ, idx, np.full((idx.size, m), np.nan, dtype), 2), [2], dtype)


def test_regularize(cb, dtype):
    rng = np.random.default_rng(11)
    layers, P = make_spec(7, [5, 3, 2], [3, 1, 0], use_bias=[True, False, True],
                                l1=[0.01, 0.0, 0.003], l2=[0.0, 0.02, 0.004])
    params = rng.standard_normal(P).astype(dtype)
    grads = rng.standard_normal(P).astype(dtype)
    run_both("regularize", cb, lambda: (layers, params, grads.copy(), np.full(1, np.nan), 2), [3, 4], dtype)


@pytest.mark.parametrize("opt", ["sgd", "adagrad", "rmsprop", "adam", "adamw"])
def test_optimizer_update(cb, dtype, opt):
    import fastnet
    rng = np.random.default_rng(3)
    P = 1001
    o = {"sgd": fastnet.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
         "adagrad": fastnet.Adagrad(0.1, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1),
         "rmsprop": fastnet.RMSprop(0.01, momentum=0.5, centered=True, weight_decay=0.01),
         "adam": fastnet.Adam(0.01, amsgrad=True, weight_decay=0.01),
         "adamw": fastnet.AdamW(0.01, amsgrad=False, maximize=True)}[opt]
    params0 = rng.standard_normal(P).astype(dtype)
    state_b, state_r = o._initial_state(P, dtype), o._initial_state(P, dtype)
    pb, pr = params0.copy(), params0.copy()
    for t in range(1, 6):
        g = rng.standard_normal(P).astype(dtype)
        get_backend(cb).optimizer_update(o.code, o.hyper(), 1.0, t, g, pb, state_b, 2)
        REF.optimizer_update(o.code, o.hyper(), 1.0, t, g, pr, state_r, 2)
    close(pb, pr, dtype, "params")
    close(state_b, state_r, dtype, "state")


NETS = [
    (5, [1], [0]),
    (3, [17, 3], [1, 8]),
    (31, [17, 31, 10], [3, 2, 0]),
    (8, [16, 16, 4], [4, 6, 1]),
    (6, [9, 7, 5], [7, 5, 8]),
    (784, [30, 10], [1, 8]),
]


@pytest.mark.parametrize("net", NETS)
@pytest.mark.parametrize("n", [1, 3, 100])
def test_forward(cb, dtype, net, n):
    n_in, widths, acts = net
    rng = np.random.default_rng(n + n_in)
    layers, P = make_spec(n_in, widths, acts, use_bias=[l % 2 == 0 for l in range(len(widths))])
    params = (0.3 * rng.standard_normal(P)).astype(dtype)
    X = rng.standard_normal((n, n_in)).astype(dtype)
    work = np.zeros(_api.forward_workspace_size(layers, n), dtype)
    run_both("forward", cb, lambda: (X, layers, params, work.copy(),
                                     np.full((n, widths[-1]), np.nan, dtype), 2), [5], dtype)


HEAD_CASES = head_cases(mse_act=defs.ACT_SIGMOID)


def _train_case(dtype, head_case, opt_name, drop, weighted, l2, scores_on, N=53, bs=8, n_in=13,
                widths=(11, 7, 4), acts=(3, 2)):
    import fastnet
    name, head, last_act = head_case
    rng = np.random.default_rng(len(name) + 17 * len(opt_name))
    L = len(widths)
    layers, P = make_spec(n_in, list(widths), list(acts) + [last_act],
                                drop=[drop] * (L - 1) + [0.0], l2=[l2] * L, l1=[l2 / 2] * L)
    X = rng.standard_normal((N, n_in)).astype(dtype)
    k = widths[-1]
    Y, labels, sw = make_targets(rng, head, last_act, N, k, dtype, weighted)
    opt = {"sgd": fastnet.SGD(0.1, momentum=0.9), "adam": fastnet.Adam(0.01, amsgrad=True),
           "rmsprop": fastnet.RMSprop(0.01, centered=True, momentum=0.3),
           "adagrad": fastnet.Adagrad(0.05), "adamw": fastnet.AdamW(0.01),
           "none": None}[opt_name]
    code = defs.OPT_NONE if opt is None else opt.code
    hyper = np.zeros(defs.NH) if opt is None else opt.hyper()
    params = (0.5 * rng.standard_normal(P)).astype(dtype)
    state = np.zeros((defs.N_STATE, P), dtype) if opt is None else opt._initial_state(P, dtype)
    perm = rng.permutation(N).astype(np.int64)
    nb = _api.n_batches(N, bs)
    work = np.zeros(_api.workspace_size(layers, bs), dtype)
    scores = np.full((N if scores_on else 0, k), np.nan, dtype)

    def args():
        return [X, Y, labels, sw, perm, bs, 0, nb, layers, head, code, hyper, 0,
                np.uint64(0xDEADBEEF12345678), params.copy(), np.zeros(P, dtype), state.copy(),
                work.copy(), np.full(nb, np.nan), scores.copy(), 2]
    return args


@pytest.mark.parametrize("head_case", HEAD_CASES, ids=[h[0] for h in HEAD_CASES])
@pytest.mark.parametrize("opt_name", ["sgd", "adam", "rmsprop", "adagrad", "adamw", "none"])
def test_train_batches(cb, dtype, head_case, opt_name):
    args = _train_case(dtype, head_case, opt_name, drop=0.0, weighted=False, l2=0.0, scores_on=True)
    run_both("train_batches", cb, args,
             [TRAIN_ARG[a] for a in ("params", "grads", "state", "batch_loss", "scores")], dtype)


@pytest.mark.parametrize("head_case", HEAD_CASES, ids=[h[0] for h in HEAD_CASES])
def test_train_batches_dropout_weights_regularization(cb, dtype, head_case):
    args = _train_case(dtype, head_case, "adam", drop=0.3, weighted=True, l2=0.01, scores_on=False)
    run_both("train_batches", cb, args,
             [TRAIN_ARG[a] for a in ("params", "grads", "state", "batch_loss")], dtype)


def test_train_batches_chunks_equal_one_call(cb, dtype):
    """Running an epoch in chunks of batches gives exactly what one call gives."""
    head_case = HEAD_CASES[0]
    mk = _train_case(dtype, head_case, "adam", drop=0.2, weighted=False, l2=0.0, scores_on=True)
    be = get_backend(cb)
    whole = mk()
    be.train_batches(*whole)
    parts = mk()
    a = TRAIN_ARG
    nb = parts[a["n_batches"]]
    losses = np.full(nb, np.nan)
    for first in range(0, nb, 3):
        cnt = min(3, nb - first)
        parts[a["first_batch"]], parts[a["n_batches"]], parts[a["t0"]] = first, cnt, first
        parts[a["batch_loss"]] = losses[first:first + cnt]
        be.train_batches(*parts)
    np.testing.assert_array_equal(parts[a["params"]], whole[a["params"]])
    np.testing.assert_array_equal(losses, whole[a["batch_loss"]])


@pytest.mark.parametrize("big", [1e4, -1e4])
def test_fused_heads_are_stable_at_extreme_logits(cb, big):
    be = get_backend(cb)
    for dtype in ("float32", "float64"):
        Z = np.array([[big, 0.0, -big], [0.0, big, big]], dtype)
        lab = np.array([2, 0], np.int64)
        P, loss, dZ = np.empty_like(Z), np.empty(2), np.empty_like(Z)
        be.softmax_xent(Z, np.empty((0, 3), dtype), lab, np.empty(0, dtype), 0.5, P, loss, dZ, 1)
        assert np.isfinite(loss).all() and np.isfinite(dZ).all() and np.isfinite(P).all()
        z64 = Z.astype(np.float64)
        expect = np.logaddexp.reduce(z64, axis=1) - z64[[0, 1], lab]
        np.testing.assert_allclose(loss, expect, rtol=1e-6, atol=1e-6)
        Y = np.array([[0, 1, 1], [1, 0, 0]], dtype)
        be.sigmoid_bce(Z, Y, np.empty(0, dtype), 0.5, P, loss, dZ, 1)
        assert np.isfinite(loss).all() and np.isfinite(dZ).all()
        expect = (np.logaddexp(0, z64) - z64 * Y).mean(axis=1)
        np.testing.assert_allclose(loss, expect, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("act", ACTS)
def test_nan_propagates_like_the_reference(cb, act):
    """NaN in, NaN out, wherever the reference gives NaN (NaN detection relies on it)."""
    Z = np.array([[np.nan, 1.0, -1.0, 7.0]])
    got, ref = np.empty_like(Z), np.empty_like(Z)
    get_backend(cb).bias_act_forward(np.empty(0), act, 0.2, Z.copy(), got, 1)
    with np.errstate(invalid="ignore"):
        REF.bias_act_forward(np.empty(0), act, 0.2, Z.copy(), ref, 1)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))


def test_nan_sign_in_mae_and_l1_like_the_reference(cb):
    """The mae gradient and the L1 penalty's gradient use np.sign: NaN for NaN (the
    Cython twin once gave 0 there, hiding the NaN from the diagnostics)."""
    A = np.array([[np.nan, 1.0, -1.0, 0.0]])
    Y = np.zeros_like(A)
    outs = {}
    for name, be in (("ref", REF), ("got", get_backend(cb))):
        loss, dA = np.full(1, 0.0), np.full_like(A, 7.0)
        with np.errstate(invalid="ignore"):
            be.mae(A, Y, np.empty(0), 1.0, loss, dA, 1)
        outs[name] = dA
    np.testing.assert_array_equal(outs["got"], outs["ref"])
    assert np.isnan(outs["got"][0, 0]) and list(outs["got"][0, 1:]) == [0.25, -0.25, 0.0]
    layers, P = make_spec(2, [2], [0], use_bias=[False], l1=[0.5], l2=[0.0])
    params = np.array([np.nan, 2.0, -3.0, 0.0])[:P]
    grads = {}
    for name, be in (("ref", REF), ("got", get_backend(cb))):
        g = np.zeros(P)
        with np.errstate(invalid="ignore"):
            be.regularize(layers, params, g, np.full(1, np.nan), 1)
        grads[name] = g
    np.testing.assert_array_equal(grads["got"], grads["ref"])
    assert np.isnan(grads["got"][0])


@pytest.mark.parametrize("shape", [(1, 1), (3, 17), (300, 129), (1100, 1000)])
@pytest.mark.parametrize("bad", [None, np.nan, np.inf, -np.inf])
def test_all_finite(cb, dtype, shape, bad):
    """The input check's kernel: one non-finite element anywhere (first, last, a
    tile boundary of the parallel pass) gives 0, on 1 and 2 threads; huge finite
    values (whose sum overflows) give 1."""
    rng = np.random.default_rng(shape[0])
    X = (rng.uniform(-1.0, 1.0, shape) * (float(np.finfo(dtype).max) / 2)).astype(dtype)
    spots = [0, X.size - 1, min(X.size - 1, 1 << 16), X.size // 2] if bad is not None else [None]
    for spot in spots:
        Y = X.copy()
        if spot is not None:
            Y.reshape(-1)[spot] = bad
        for threads in (1, 2):
            flag = np.full(1, -1, dtype=np.int64)
            get_backend(cb).all_finite(Y, flag, threads)
            ref = np.full(1, -1, dtype=np.int64)
            REF.all_finite(Y, ref, threads)
            assert flag[0] == ref[0] == (0 if bad is not None else 1), (spot, threads)
