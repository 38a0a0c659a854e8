"""Kernels of the course's further techniques (PReLU, Maxout, meProp, gradient
clipping, training diagnostics): the NumPy reference against brute force and
finite differences, and every compiled backend against the reference."""
import numpy as np
import pytest

import fastnet
from fastnet._kernels import defs
from fastnet.backends import _api, get_backend

from conftest import TRAIN_ARG, BACKENDS, COMPILED, train

REF = get_backend("numpy")
TOL = {"float32": 1e-4, "float64": 1e-10}


def close(got, ref, dtype, what=""):
    tol = TOL[dtype]
    ref = np.asarray(ref, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(ref[np.isfinite(ref)])))) if np.isfinite(ref).any() else 1.0
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), ref, rtol=tol, atol=tol * scale,
                               err_msg=what)


def spec(n_in, plan):
    """The layer records and P for layers given as dicts: units, act (code), kind,
    pieces, prelu (bool), topk, drop, bias (bool), l2."""
    L = len(plan)
    layers = defs.new_layers(L)
    pos, prev = 0, n_in
    for l, d in enumerate(plan):
        q = d.get("pieces", 1) if d.get("kind", 0) == defs.LAYER_MAXOUT else 1
        layers[l]["n_in"], layers[l]["n_out"] = prev, d["units"]
        layers[l]["kind"] = d.get("kind", defs.LAYER_DENSE)
        layers[l]["pieces"] = q
        layers[l]["topk"] = d.get("topk", 0)
        layers[l]["act"] = defs.ACT_PRELU if d.get("prelu") else d.get("act", defs.ACT_LINEAR)
        layers[l]["w_offset"] = pos
        pos += prev * d["units"] * q
        if d.get("bias", True):
            layers[l]["b_offset"] = pos
            pos += d["units"] * q
        else:
            layers[l]["b_offset"] = -1
        if d.get("prelu"):
            layers[l]["slopes_offset"] = pos
            pos += d["units"]
        else:
            layers[l]["slopes_offset"] = -1
        layers[l]["act_param"] = 0.1
        layers[l]["dropout"] = d.get("drop", 0.0)
        layers[l]["l2"] = d.get("l2", 0.0)
        prev = d["units"]
    return layers, pos


def init_params(layers, P, dtype, rng, scale=0.5):
    params = (scale * rng.standard_normal(P)).astype(dtype)
    for l in range(layers.shape[0]):
        if layers[l]["act"] == defs.ACT_PRELU:
            ap = layers[l]["slopes_offset"]
            params[ap:ap + layers[l]["n_out"]] = rng.uniform(0.05, 0.5, layers[l]["n_out"])
    return params


# ---------------------------------------------------------------------------
# the reference against brute force
# ---------------------------------------------------------------------------
def test_reference_topk_rows_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n, m = rng.integers(1, 6), rng.integers(1, 12)
        k = int(rng.integers(1, m + 1))
        D = rng.integers(-3, 4, (n, m)).astype(np.float64)   # many ties
        want = D.copy()
        for i in range(n):
            order = sorted(range(m), key=lambda j: (-abs(D[i, j]), j))[:k]
            drop = [j for j in range(m) if j not in order]
            want[i, drop] = 0
        idx = np.empty((n, k), np.int64)
        got = D.copy()
        REF.topk_rows(got, k, idx, 1)
        np.testing.assert_array_equal(got, want)
        assert (np.diff(idx, axis=1) > 0).all()


def test_reference_maxout_and_prelu_by_hand():
    Z = np.array([[1.0, 3.0, -2.0, -1.0], [2.0, 2.0, 0.5, 4.0]])
    A = np.empty((2, 2))
    REF.maxout_forward(Z, 2, A, 1)
    np.testing.assert_array_equal(A, [[3.0, -1.0], [2.0, 4.0]])
    dZ = np.empty_like(Z)
    REF.maxout_backward(Z, np.array([[10.0, 20.0], [30.0, 40.0]]), 2, dZ, 1)
    np.testing.assert_array_equal(dZ, [[0, 10, 0, 20], [30, 0, 0, 40]])   # tie: first piece
    Z = np.array([[1.0, -2.0], [-4.0, 3.0]])
    s = np.array([0.25, 0.5])
    A = np.empty_like(Z)
    REF.prelu_forward(Z, s, A, 1)
    np.testing.assert_array_equal(A, [[1.0, -1.0], [-1.0, 3.0]])
    ds, dZ = np.empty(2), np.empty_like(Z)
    REF.prelu_backward(Z, np.array([[1.0, 2.0], [3.0, 4.0]]), s, ds, dZ, 1)
    np.testing.assert_array_equal(ds, [3.0 * -4.0, 2.0 * -2.0])
    np.testing.assert_array_equal(dZ, [[1.0, 1.0], [0.75, 4.0]])


NETS = {
    "prelu": (6, [dict(units=5, prelu=True), dict(units=4, prelu=True, bias=False), dict(units=3)]),
    "maxout": (6, [dict(units=5, kind=defs.LAYER_MAXOUT, pieces=3), dict(units=4, act=defs.ACT_TANH),
                   dict(units=3)]),
    "maxout_prelu_drop": (5, [dict(units=4, kind=defs.LAYER_MAXOUT, pieces=2, drop=0.3),
                              dict(units=6, prelu=True, drop=0.2), dict(units=3)]),
}


def _loss_and_grads(be, layers, params, X, labels, head=defs.HEAD_SOFTMAX_XENT):
    n = X.shape[0]
    k = int(layers[-1]["n_out"])
    grads = np.zeros_like(params)
    loss = np.zeros(1)
    train(be, X, np.empty((0, k), X.dtype), labels, np.empty(0, X.dtype), np.arange(n),
                     n, 0, 1, layers, head, defs.OPT_NONE, np.zeros(defs.NH), 0, 7, params.copy(),
                     grads, np.zeros((defs.N_STATE, params.shape[0]), X.dtype),
                     np.zeros(_api.workspace_size(layers, n), X.dtype), loss,
                     np.empty((0, k), X.dtype), 1)
    return loss[0], grads


@pytest.mark.parametrize("net", sorted(NETS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_against_finite_differences(backend, net):
    """Backprop through PReLU (slopes included) and Maxout vs central differences
    (float64, no dropout: dropout masks are fixed but finite differences of the
    masked net are taken the same way)."""
    n_in, layers = NETS[net]
    layers, P = spec(n_in, layers)
    rng = np.random.default_rng(3)
    params = init_params(layers, P, np.float64, rng)
    X = rng.standard_normal((7, n_in))
    labels = rng.integers(0, 3, 7).astype(np.int64)
    be = get_backend(backend)
    _, g = _loss_and_grads(be, layers, params, X, labels)
    eps = 1e-6
    num = np.empty(P)
    for i in range(P):
        p1, p2 = params.copy(), params.copy()
        p1[i] += eps
        p2[i] -= eps
        num[i] = (_loss_and_grads(be, layers, p1, X, labels)[0]
                  - _loss_and_grads(be, layers, p2, X, labels)[0]) / (2 * eps)
    rel = np.abs(num - g) / np.maximum(1e-8, np.abs(num) + np.abs(g))
    assert rel.max() < 1e-5, (rel.max(), int(rel.argmax()))


def test_meprop_reference_equals_topk_by_hand():
    """Small k: the reference's gradients equal backprop with a brute-force top-k delta."""
    rng = np.random.default_rng(5)
    layers, P = spec(4, [dict(units=6, act=defs.ACT_RELU, topk=2), dict(units=3, topk=2)])
    params = init_params(layers, P, np.float64, rng)
    X = rng.standard_normal((5, 4))
    labels = rng.integers(0, 3, 5).astype(np.int64)
    _, g = _loss_and_grads(REF, layers, params, X, labels)
    W0, b0 = params[:24].reshape(4, 6), params[24:30]
    W1, b1 = params[30:48].reshape(6, 3), params[48:51]
    z0 = X @ W0 + b0
    a0 = np.maximum(z0, 0)
    z1 = a0 @ W1 + b1
    p = np.exp(z1 - z1.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d1 = (p - np.eye(3)[labels]) / 5

    def topk(d, k):
        out = np.zeros_like(d)
        for i in range(d.shape[0]):
            keep = sorted(range(d.shape[1]), key=lambda j: (-abs(d[i, j]), j))[:k]
            out[i, keep] = d[i, keep]
        return out
    d1 = topk(d1, 2)
    d0 = topk((d1 @ W1.T) * (z0 > 0), 2)
    want = np.concatenate([(X.T @ d0).ravel(), d0.sum(0), (a0.T @ d1).ravel(), d1.sum(0)])
    np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------
# compiled backends against the reference
# ---------------------------------------------------------------------------
@pytest.fixture(params=COMPILED)
def cb(request):
    return request.param


def both(cb, name, make, outs, dtype):
    a, r = make(), make()
    getattr(get_backend(cb), name)(*a)
    getattr(REF, name)(*r)
    for i in outs:
        close(a[i], r[i], dtype, "%s arg %d" % (name, i))
    return a, r


SHAPES = [(1, 1), (3, 5), (17, 31), (64, 100), (300, 129)]


@pytest.mark.parametrize("n,m", SHAPES)
def test_prelu_kernels(cb, dtype, n, m):
    rng = np.random.default_rng(n * m)
    Z = rng.standard_normal((n, m)).astype(dtype)
    Z[0, 0] = 0.0
    dA = rng.standard_normal((n, m)).astype(dtype)
    s = rng.uniform(0, 0.5, m).astype(dtype)
    both(cb, "prelu_forward", lambda: [Z, s, np.full((n, m), np.nan, dtype), 2], [2], dtype)
    both(cb, "prelu_backward", lambda: [Z, dA, s, np.full(m, np.nan, dtype),
                                        np.full((n, m), np.nan, dtype), 2], [3, 4], dtype)
    # in place (A is Z, dZ is dA)
    a = get_backend(cb)
    Zc, dAc = Z.copy(), dA.copy()
    A_ref = np.empty_like(Z)
    REF.prelu_forward(Z, s, A_ref, 1)
    a.prelu_forward(Zc, s, Zc, 2)
    close(Zc, A_ref, dtype)
    dZ_ref, ds_ref = np.empty_like(Z), np.empty(m, dtype)
    REF.prelu_backward(Z, dA, s, ds_ref, dZ_ref, 1)
    ds = np.empty(m, dtype)
    a.prelu_backward(Z, dAc, s, ds, dAc, 2)
    close(dAc, dZ_ref, dtype)


@pytest.mark.parametrize("n,m", SHAPES)
@pytest.mark.parametrize("q", [1, 2, 5])
def test_maxout_kernels(cb, dtype, n, m, q):
    rng = np.random.default_rng(n + m + q)
    Z = rng.integers(-4, 5, (n, m * q)).astype(dtype)       # ties
    dA = rng.standard_normal((n, m)).astype(dtype)
    both(cb, "maxout_forward", lambda: [Z, q, np.full((n, m), np.nan, dtype), 2], [2], dtype)
    both(cb, "maxout_backward", lambda: [Z, dA, q, np.full((n, m * q), np.nan, dtype), 2], [3], dtype)


@pytest.mark.parametrize("n,m", SHAPES)
@pytest.mark.parametrize("frac", [0.05, 0.3, 1.0])
def test_topk_and_sparse_products(cb, dtype, n, m, frac):
    rng = np.random.default_rng(n + 7 * m)
    k = max(1, int(round(frac * m)))
    D = rng.standard_normal((n, m)).astype(dtype)
    D[:, ::3] = np.round(D[:, ::3])                          # some ties
    a, r = both(cb, "topk_rows", lambda: [D.copy(), k, np.full((n, k), -1, np.int64), 2], [0], dtype)
    np.testing.assert_array_equal(a[2], r[2])
    idx = r[2]
    Ds = r[0]
    k_in = 23
    A = rng.standard_normal((n, k_in)).astype(dtype)
    B = rng.standard_normal((k_in, m)).astype(dtype)
    both(cb, "matmul_tn_sparse", lambda: [A, Ds, idx, np.full((k_in, m), np.nan, dtype), 2], [3], dtype)
    both(cb, "matmul_nt_sparse", lambda: [Ds, idx, B, np.full((n, k_in), np.nan, dtype), 2], [3], dtype)
    # k = m: the sparse products are the dense ones
    if k == m:
        close(r[0], D, dtype)


@pytest.mark.parametrize("n,k_in,m,k", [(32, 100, 70, 5), (33, 67, 131, 40), (40, 300, 500, 25)])
def test_sparse_products_large_ties_and_threads(cb, dtype, n, k_in, m, k):
    """Shapes past the parallel thresholds and off the tile sizes, many ties (integer
    values) and shared columns: against the reference, and bit-identical for 1 and 2
    threads."""
    rng = np.random.default_rng(n * m + k)
    be = get_backend(cb)
    D = rng.integers(-3, 4, (n, m)).astype(dtype)              # many ties
    idx = np.empty((n, k), np.int64)
    Dr, idxr = D.copy(), np.empty((n, k), np.int64)
    be.topk_rows(D, k, idx, 2)
    REF.topk_rows(Dr, k, idxr, 1)
    np.testing.assert_array_equal(idx, idxr)
    np.testing.assert_array_equal(D, Dr)
    D = D * rng.standard_normal((n, m)).astype(dtype)            # kept values not ties
    A = rng.standard_normal((n, k_in)).astype(dtype)
    B = rng.standard_normal((k_in, m)).astype(dtype)
    for name, args, o in (("matmul_tn_sparse", lambda: [A, D, idx, np.full((k_in, m), np.nan, dtype)], 3),
                          ("matmul_nt_sparse", lambda: [D, idx, B, np.full((n, k_in), np.nan, dtype)], 3)):
        r, a1, a2 = args(), args(), args()
        getattr(REF, name)(*r, 1)
        getattr(be, name)(*a1, 1)
        getattr(be, name)(*a2, 2)
        close(a1[o], r[o], dtype, name)
        np.testing.assert_array_equal(a1[o], a2[o], err_msg=name + ": 1 vs 2 threads")


TRAIN_NETS = {
    "prelu": (9, [dict(units=8, prelu=True), dict(units=6, prelu=True, bias=False, drop=0.2),
                  dict(units=4)]),
    "maxout": (9, [dict(units=7, kind=defs.LAYER_MAXOUT, pieces=3, drop=0.25),
                   dict(units=5, kind=defs.LAYER_MAXOUT, pieces=2), dict(units=4)]),
    "meprop": (9, [dict(units=12, act=defs.ACT_RELU, topk=3), dict(units=10, act=defs.ACT_SIGMOID, topk=4),
                   dict(units=4, topk=2)]),
    "meprop_full": (9, [dict(units=12, act=defs.ACT_RELU, topk=12), dict(units=4)]),
    "mixed": (9, [dict(units=6, kind=defs.LAYER_MAXOUT, pieces=2), dict(units=8, prelu=True, topk=5, l2=0.01),
                  dict(units=7, act=defs.ACT_TANH, topk=3), dict(units=4)]),
}
CLIPS = {"none": {}, "clipnorm": {"clipnorm": 0.05}, "clipvalue": {"clipvalue": 0.01},
         "global_clipnorm": {"global_clipnorm": 0.1}}


def _train_args(dtype, net, opt, clip, diag_on, N=45, bs=8, seed=0):
    n_in, layers = TRAIN_NETS[net]
    layers, P = spec(n_in, layers)
    rng = np.random.default_rng(seed + len(net))
    X = rng.standard_normal((N, n_in)).astype(dtype)
    labels = rng.integers(0, 4, N).astype(np.int64)
    params = init_params(layers, P, dtype, rng)
    opt = {"sgd": fastnet.SGD(0.1, momentum=0.9, **clip), "adam": fastnet.Adam(0.01, **clip),
           "rmsprop": fastnet.RMSprop(0.01, **clip)}[opt]
    hyper = opt.hyper()
    state = opt._initial_state(P, dtype)
    perm = rng.permutation(N).astype(np.int64)
    nb = _api.n_batches(N, bs)
    work = np.zeros(_api.workspace_size(layers, bs), dtype)
    dsize = defs.diag_size(layers) if diag_on else 0

    def make():
        diag = np.zeros(dsize)
        if diag_on:
            diag[:3] = [-1, -1, 0]
        return [X, np.empty((0, 4), dtype), labels, np.empty(0, dtype), perm, bs, 0, nb, layers,
                defs.HEAD_SOFTMAX_XENT, opt.code, hyper, 0, np.uint64(0x1234567890ABCDEF), params.copy(),
                np.zeros(P, dtype), state.copy(), work.copy(), np.full(nb, np.nan),
                np.full((N, 4), np.nan, dtype), 2, diag]
    return make


def _call(be, args):
    return train(be, *args[:-1], diag=args[-1])


@pytest.mark.parametrize("net", sorted(TRAIN_NETS))
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_train_batches_new_layers(cb, dtype, net, opt):
    make = _train_args(dtype, net, opt, {}, diag_on=False)
    a, r = make(), make()
    _call(get_backend(cb), a)
    _call(REF, r)
    for i in [TRAIN_ARG[a] for a in ("params", "grads", "state", "batch_loss", "scores")]:
        close(a[i], r[i], dtype, "%s arg %d" % (net, i))


@pytest.mark.parametrize("clip", sorted(CLIPS))
@pytest.mark.parametrize("opt", ["sgd", "adam", "rmsprop"])
def test_train_batches_clipping(cb, dtype, clip, opt):
    make = _train_args(dtype, "mixed", opt, CLIPS[clip], diag_on=False)
    a, r = make(), make()
    _call(get_backend(cb), a)
    _call(REF, r)
    for i in [TRAIN_ARG[a] for a in ("params", "state", "batch_loss")]:
        close(a[i], r[i], dtype, "%s arg %d" % (clip, i))


def test_reference_clipping_changes_the_update():
    """Each clip option makes a difference against no clipping (so the parity test
    above compares something), and clipnorm differs from global_clipnorm."""
    res = {}
    for clip in CLIPS:
        args = _train_args("float64", "mixed", "sgd", CLIPS[clip], diag_on=False)()
        _call(REF, args)
        res[clip] = args[14]
    for clip in ("clipnorm", "clipvalue", "global_clipnorm"):
        assert np.abs(res[clip] - res["none"]).max() > 1e-3, clip
    assert np.abs(res["clipnorm"] - res["global_clipnorm"]).max() > 1e-4


@pytest.mark.parametrize("net", sorted(TRAIN_NETS))
def test_train_batches_diagnostics(cb, dtype, net):
    make = _train_args(dtype, net, "adam", {}, diag_on=True)
    a, r = make(), make()
    _call(get_backend(cb), a)
    _call(REF, r)
    for i in [TRAIN_ARG[a] for a in ("params", "batch_loss")]:
        close(a[i], r[i], dtype, "%s arg %d" % (net, i))
    # counts exactly (float32 may flip a borderline count: allow one per entry)
    np.testing.assert_allclose(a[21], r[21], rtol=1e-5 if dtype == "float64" else 2e-3,
                               atol=0 if dtype == "float64" else 1.0)
    assert r[21][defs.DG_ROWS] == 45 and r[21][defs.DG_BATCH] == -1


def test_diagnostics_do_not_change_training(dtype):
    for be_name in BACKENDS:
        be = get_backend(be_name)
        make_on = _train_args(dtype, "mixed", "adam", {}, diag_on=True)
        make_off = _train_args(dtype, "mixed", "adam", {}, diag_on=False)
        on, off = make_on(), make_off()
        _call(be, on)
        _call(be, off)
        np.testing.assert_array_equal(on[15], off[15])
        np.testing.assert_array_equal(on[19], off[19])


def _locate(backend):
    """Three diverging runs (see test_nonfinite_is_located)."""
    be = get_backend(backend)
    results = {}
    for case in ("lr_huge", "lr_big", "input"):
        n_in, layers = 5, [dict(units=8, act=defs.ACT_RELU), dict(units=6, act=defs.ACT_TANH), dict(units=3)]
        layers, P = spec(n_in, layers)
        rng = np.random.default_rng(1)
        X = rng.standard_normal((40, n_in)).astype(np.float32)
        if case == "input":
            X[21] = 3e38
        labels = rng.integers(0, 3, 40).astype(np.int64)
        params = init_params(layers, P, np.float32, rng)
        opt = fastnet.SGD({"lr_huge": 1e40, "lr_big": 1e30, "input": 0.1}[case])
        diag = np.zeros(defs.diag_size(layers))
        diag[:3] = [-1, -1, 0]
        loss = np.full(10, np.nan)
        train(be, X, np.empty((0, 3), np.float32), labels, np.empty(0, np.float32), np.arange(40),
                         4, 0, 10, layers, defs.HEAD_SOFTMAX_XENT, opt.code, opt.hyper(), 0, 0,
                         params, np.zeros(P, np.float32), opt._initial_state(P, np.float32),
                         np.zeros(_api.workspace_size(layers, 4), np.float32), loss,
                         np.empty((0, 3), np.float32), 1, diag=diag)
        b, l, stage = int(diag[0]), int(diag[1]), int(diag[2])
        assert b >= 0 and stage != defs.STAGE_NONE, (case, diag[:4])
        assert np.isfinite(loss[:b]).all() and np.isnan(loss[b + 1:]).all()
        results[case] = (b, l, stage)
    return results


@pytest.mark.parametrize("backend", BACKENDS)
def test_nonfinite_is_located(backend):
    """A huge learning rate: the first non-finite value's batch, layer and stage
    are recorded and the call stops there."""
    results = _locate(backend)
    # lr 1e40: the first update overflows float32 in the first layer;
    # lr 1e30: the weights (~1e29) stay finite, batch 1's second layer z overflows;
    # a row of 3e38 in batch 5 overflows the first layer's z
    assert results == {"lr_huge": (0, 0, defs.STAGE_UPDATE), "lr_big": (1, 1, defs.STAGE_FORWARD),
                       "input": (5, 0, defs.STAGE_FORWARD)}


def test_nonfinite_location_matches_reference(cb):
    assert _locate(cb) == _locate("numpy")
