"""The whole training step against the NumPy reference backend (float64: rel
1e-10, float32: rel 1e-4) for every loss head and optimizer, with dropout, sample
weights and penalties, in chunks and in one call; golden values at extreme logits
and NaN inputs.  Each single kernel's parity, thread invariance and error inputs
are the kernel table's (tests/kernel_table.py, tests/test_kernel_table.py)."""
import numpy as np
import pytest

from fastnet._kernels import defs
from fastnet.backends import _api, get_backend

from conftest import COMPILED, TRAIN_ARG, head_cases, make_spec, make_targets, train

REF = get_backend("numpy")
TOL = {"float32": 1e-4, "float64": 1e-10}

pytestmark = pytest.mark.skipif(not COMPILED, reason="no compiled backend available")


def close(got, ref, dtype, what=""):
    tol = TOL[dtype]
    ref = np.asarray(ref, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(ref)))) if ref.size else 1.0
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), ref, rtol=tol, atol=tol * scale,
                               err_msg=what)


def run_both(backend, make_args, outputs, dtype):
    """train_batches of ``backend`` and of the reference on identical fresh flat
    arguments (conftest.TRAIN_ARG positions); compare the named outputs."""
    args_b = make_args()
    args_r = make_args()
    train(get_backend(backend), *args_b)
    train(REF, *args_r)
    for a in outputs:
        close(args_b[TRAIN_ARG[a]], args_r[TRAIN_ARG[a]], dtype, "train_batches %s" % a)
    return args_b, args_r


@pytest.fixture(params=COMPILED)
def cb(request):
    return request.param


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
    run_both(cb, args, ("params", "grads", "state", "batch_loss", "scores"), dtype)


@pytest.mark.parametrize("head_case", HEAD_CASES, ids=[h[0] for h in HEAD_CASES])
def test_train_batches_dropout_weights_regularization(cb, dtype, head_case):
    args = _train_case(dtype, head_case, "adam", drop=0.3, weighted=True, l2=0.01, scores_on=False)
    run_both(cb, args, ("params", "grads", "state", "batch_loss"), dtype)


def test_train_batches_chunks_equal_one_call(cb, dtype):
    """Running an epoch in chunks of batches gives exactly what one call gives."""
    head_case = HEAD_CASES[0]
    mk = _train_case(dtype, head_case, "adam", drop=0.2, weighted=False, l2=0.0, scores_on=True)
    be = get_backend(cb)
    whole = mk()
    train(be, *whole)
    parts = mk()
    a = TRAIN_ARG
    nb = parts[a["n_batches"]]
    losses = np.full(nb, np.nan)
    for first in range(0, nb, 3):
        cnt = min(3, nb - first)
        parts[a["first_batch"]], parts[a["n_batches"]], parts[a["t0"]] = first, cnt, first
        parts[a["batch_loss"]] = losses[first:first + cnt]
        train(be, *parts)
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

