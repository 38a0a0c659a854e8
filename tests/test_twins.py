"""The numba and Cython twins are arithmetic twins: one epoch of training gives
the same bits on both.

For a table of small networks covering every layer kind (Dense, PReLU, Maxout,
Dropout, meProp), every loss head (softmax cross-entropy on labels and on one-hot
targets, sigmoid binary cross-entropy, mse, mae), every optimizer of
kernels/defs.py with its options, L1 / L2 kernel and bias penalties, the three
kinds of gradient clipping and sample weights, in float32 and float64, one epoch
of ``fit`` (several batches, so several optimizer steps) runs through each
twin's ``train_batches`` from the same initial state at 1 and at 2 threads.
Every array the kernel writes (parameters, gradients, optimizer state, the
batch losses, the scores) must be bit-identical across the four runs
(np.array_equal), and so must ``predict`` afterwards.  Two networks are sized so
that the paths that only run at some shapes run: the wide one crosses the
parallel thresholds (matmul, elementwise, optimizer), the 70-64-3 one takes the
Cython split step at 2 threads (its first layer's product in two halves of p).

The exceptions: EXCEPTIONS below, the one place they are listed, each with its
reason; under an exception the twins are compared with a tight tolerance
instead of bit for bit.
"""

import numpy as np
import pytest

import fastnet
from fastnet._kernels import defs

from conftest import BACKENDS

# the per-model numba variants users get (the rest of the suite shares one: conftest)
pytestmark = [pytest.mark.usefixtures("exact_variants"),
              pytest.mark.skipif(not {"numba", "cython"} <= set(BACKENDS), reason="needs both compiled twins")]

#: Where the twins may differ, and why (key: what differs -> (reason, rtol)).
#: Everything else is bit-identical.
EXCEPTIONS = {
    "cython-matmul-baseline": (
        "the Cython matmul's SSE2 micro-kernel (FASTNET_MM_ISA=baseline, or a CPU "
        "without FMA) multiplies and then adds, two roundings, where its AVX2 / "
        "AVX-512 kernels and every numba build (llvm.fma: exact, in software "
        "without FMA hardware) fuse them: the products differ in the last bits, "
        "and so does everything downstream", {"float32": 1e-4, "float64": 1e-11}),
}

#: train_batches' outputs compared after the epoch ("work" is each twin's own scratch)
WRITTEN = ("params", "grads", "state", "scores")


def _L1L2(l1, l2):
    return fastnet.regularizers.L1L2(l1, l2)


# name -> (layers, optimizer, loss, targets, options); targets: "labels",
# "onehot", "binary" or "real"; options: n_in, n (rows), batch, sw (sample weights)
CASES = {
    "sgd-mse-tanh": (
        lambda: [fastnet.Dense(7, "tanh"), fastnet.Dense(3)],
        lambda: fastnet.SGD(0.05), fastnet.MeanSquaredError(), "real", {}),
    "sgd-momentum-dampening-mae-sw": (
        lambda: [fastnet.Dense(6, "sigmoid"), fastnet.Dense(2, "sigmoid")],
        lambda: fastnet.SGD(0.05, momentum=0.9, dampening=0.1),
        fastnet.MeanAbsoluteError(), "real", {"sw": True}),
    "sgd-nesterov-decay-bce-logits": (
        lambda: [fastnet.Dense(5, "elu"), fastnet.Dense(3)],
        lambda: fastnet.SGD(0.05, momentum=0.8, nesterov=True, weight_decay=1e-3),
        fastnet.BinaryCrossentropy(from_logits=True), "binary", {}),
    "adam-xent-labels-l1l2-bias": (
        lambda: [fastnet.Dense(8, "relu", kernel_regularizer=_L1L2(1e-3, 1e-2),
                               bias_regularizer=_L1L2(1e-3, 1e-2)),
                 fastnet.Dense(4, "softmax", kernel_regularizer=_L1L2(0.0, 1e-3))],
        lambda: fastnet.Adam(0.01), fastnet.SparseCategoricalCrossentropy(), "labels", {}),
    "amsgrad-onehot-clipnorm-sw": (
        lambda: [fastnet.Dense(6, "swish"), fastnet.Dense(3)],
        lambda: fastnet.Adam(0.01, amsgrad=True, clipnorm=0.05),
        fastnet.CategoricalCrossentropy(from_logits=True), "onehot", {"sw": True}),
    "adamw-maxout-global-clipnorm": (
        lambda: [fastnet.Maxout(5, pieces=3, kernel_regularizer=_L1L2(1e-3, 0.0)),
                 fastnet.Dense(3, "softmax")],
        lambda: fastnet.AdamW(0.01, global_clipnorm=0.1),
        fastnet.CategoricalCrossentropy(), "onehot", {}),
    "rmsprop-centered-momentum-prelu-clipvalue": (
        lambda: [fastnet.Dense(6), fastnet.PReLU(init=0.2), fastnet.Dense(2)],
        lambda: fastnet.RMSprop(0.01, centered=True, momentum=0.5, clipvalue=0.02),
        fastnet.MeanSquaredError(), "real", {"sw": True}),
    "rmsprop-dropout-bce-sigmoid": (
        lambda: [fastnet.Dense(8, "gelu"), fastnet.Dropout(0.3), fastnet.Dense(3, "sigmoid")],
        lambda: fastnet.RMSprop(0.01), fastnet.BinaryCrossentropy(), "binary", {}),
    "adagrad-meprop": (
        lambda: [fastnet.Dense(8, "leaky_relu", meprop_k=3),
                 fastnet.Dense(4, "softmax", meprop_k=2)],
        lambda: fastnet.Adagrad(0.05, lr_decay=0.01, weight_decay=1e-3),
        fastnet.SparseCategoricalCrossentropy(), "labels", {"sw": True}),
    "activations-deep-mse": (
        lambda: [fastnet.Dense(5, "gelu_tanh"), fastnet.Dense(5, "softplus"),
                 fastnet.Dense(5, "selu"), fastnet.Dense(5, "softsign"),
                 fastnet.Dense(5, "hard_sigmoid"), fastnet.Dense(5, "relu6"),
                 fastnet.Dense(2, "tanh")],
        lambda: fastnet.Adam(0.01), fastnet.MeanSquaredError(), "real", {}),
    # the Cython split step at 2 threads (first layer: 70 x 64 weights, batch 5)
    "ksplit-first-layer": (
        lambda: [fastnet.Dense(64, "relu"), fastnet.Dense(3, "softmax")],
        lambda: fastnet.SGD(0.05, momentum=0.9), fastnet.SparseCategoricalCrossentropy(),
        "labels", {"n_in": 70}),
    # over the parallel thresholds: 64 x 60 x 600 multiply-adds, 64 x 600 activations,
    # 38k parameters
    "wide-parallel": (
        lambda: [fastnet.Dense(600, "sigmoid"), fastnet.Dense(4, "softmax")],
        lambda: fastnet.Adam(0.01), fastnet.SparseCategoricalCrossentropy(), "labels",
        {"n_in": 60, "n": 150, "batch": 64}),
}


def _data(targets, k, n_in, n, sw):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((n, n_in))
    if targets == "labels":
        y = rng.integers(0, k, n)
    elif targets == "onehot":
        y = np.eye(k)[rng.integers(0, k, n)]
    elif targets == "binary":
        y = (rng.random((n, k)) > 0.5).astype(np.float64)
    else:
        y = rng.uniform(-0.8, 0.8, (n, k))
    return X, y, (rng.uniform(0.2, 2.0, n) if sw else None)


def _epoch(name, backend, dtype, n_threads):
    """One epoch of case ``name``: what train_batches wrote (after its last call;
    batch_loss over all calls) and predict's output."""
    layers, opt, loss, targets, o = CASES[name]
    layers = layers()
    k = layers[-1].units
    X, y, sw = _data(targets, k, o.get("n_in", 6), o.get("n", 23), o.get("sw", False))
    m = fastnet.Sequential(layers, backend=backend, seed=11, dtype=dtype)
    m.compile(opt(), loss=loss, metrics=["mae"] if targets == "real" else ["accuracy"])
    be = m._backend
    kernel = be.train_batches
    calls = []

    def recording(batches, network, train_state, buffers, n_threads, diag=None):
        kernel(batches, network, train_state, buffers, n_threads, diag=diag)
        fields = {}
        for record in (batches, network, train_state, buffers):
            fields.update(record._asdict())
        calls.append({key: np.array(fields[key], copy=True)
                      for key in WRITTEN + ("batch_loss",)})

    before = fastnet.get_num_threads()
    fastnet.set_num_threads(n_threads)
    be.train_batches = recording
    try:
        m.fit(X, y, epochs=1, batch_size=o.get("batch", 5), shuffle=True, verbose=0,
              sample_weight=sw)
        pred = m.predict(X, verbose=0)
    finally:
        be.train_batches = kernel
        fastnet.set_num_threads(before)
    assert calls, "fit did not reach train_batches"
    out = {key: calls[-1][key] for key in WRITTEN}
    out["batch_loss"] = np.concatenate([c["batch_loss"] for c in calls])
    out["predict"] = np.asarray(pred)
    return out


def _assert_same(got, want, what, rtol=None):
    assert got.keys() == want.keys()
    for key in want:
        if rtol is None:
            assert np.array_equal(got[key], want[key], equal_nan=True), (
                "%s: %s differs (max |diff| %.3g)" % (what, key, np.max(np.abs(
                    got[key].astype(np.float64) - want[key]))))
        else:
            np.testing.assert_allclose(got[key], want[key], rtol=rtol, atol=rtol,
                                       err_msg="%s: %s" % (what, key))


def _cython_matmul_isa():
    from fastnet._kernels.cython import matmul
    return matmul.isa()["isa"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_epoch_same_bits_on_both_twins_at_1_and_2_threads(name, dtype):
    # (a CPU without FMA runs the Cython matmul's baseline kernel: the exception)
    rtol = (EXCEPTIONS["cython-matmul-baseline"][1][dtype]
            if _cython_matmul_isa() == "baseline" else None)
    want = _epoch(name, "cython", dtype, 1)
    assert np.all(np.isfinite(want["batch_loss"]))
    assert want["params"].dtype == dtype
    for backend, n_threads in (("cython", 2), ("numba", 1), ("numba", 2)):
        _assert_same(_epoch(name, backend, dtype, n_threads), want,
                     "%s %s, %d threads vs cython 1 thread" % (name, backend, n_threads),
                     rtol=rtol if backend == "numba" else None)


@pytest.fixture
def cython_baseline_matmul():
    mm = pytest.importorskip("fastnet._kernels.cython.matmul")
    from fastnet._kernels.cython import _openmp_helpers
    if _openmp_helpers.native_build():
        pytest.skip("-march=native build: gcc fuses the baseline kernel's a * b + c too "
                    "where the CPU has FMA")
    before = mm.isa()["isa"]
    assert mm.select_isa("baseline") == "baseline"
    try:
        yield
    finally:
        mm.select_isa(before)


@pytest.mark.parametrize("name", ["adam-xent-labels-l1l2-bias", "wide-parallel",
                                  "rmsprop-centered-momentum-prelu-clipvalue"])
def test_exception_cython_baseline_matmul_close_to_numba(name, dtype, cython_baseline_matmul):
    reason, rtol = EXCEPTIONS["cython-matmul-baseline"]
    got = _epoch(name, "cython", dtype, 1)
    want = _epoch(name, "numba", dtype, 1)
    # the exception is real (else it should leave the list) ...
    assert not np.array_equal(got["params"], want["params"]), reason
    # ... and only rounding
    _assert_same(got, want, "%s cython (baseline matmul) vs numba" % name, rtol=rtol[dtype])


def test_the_table_covers_every_optimizer_head_and_layer_kind():
    """The cases above reach every optimizer code, loss head and layer kind of
    kernels/defs.py (a new entry there must get a case here)."""
    opts, heads, kinds = set(), set(), set()
    acts = set()
    for name, (layers, opt, loss, targets, o) in CASES.items():
        m = fastnet.Sequential(layers(), backend="numpy", seed=0)
        m.compile(opt(), loss=loss)
        m.build(o.get("n_in", 6))
        opts.add(m.optimizer.code)
        heads.add(m._head)
        kinds.update(int(v) for v in m._layer_table["kind"])
        acts.update(int(v) for v in m._layer_table["act"])
    assert opts == {o["code"] for o in defs.OPTIMIZERS if o["code"] != defs.OPT_NONE}
    assert heads == set(defs.HEADS.values())
    assert kinds == {defs.LAYER_DENSE, defs.LAYER_MAXOUT}
    assert defs.ACT_PRELU in acts


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("l1,l2", [(1e-3, 0.0), (0.0, 1e-2), (1e-3, 1e-2)])
def test_regularize_twins_same_bits_across_tiles(dtype, l1, l2):
    """The penalty's sums (8 interleaved partials per FLAT_TILE tile, then the tiles
    in order) and the gradient terms are the same bits in both twins on a layer of
    more than one tile whose size is not a multiple of 8, with a NaN, a zero and an
    infinite weight in it; the penalty is close to the float64 reference sum."""
    from conftest import make_spec
    from fastnet.backends import get_backend
    layers, P = make_spec(97, [53], [0], use_bias=[True], l1=[l1], l2=[l2])
    rng = np.random.default_rng(5)
    params = rng.standard_normal(P).astype(dtype)
    grads0 = rng.standard_normal(P).astype(dtype)
    out = {}
    for b in ("numba", "cython"):
        for threads in (1, 2):
            g, pen = grads0.copy(), np.full(1, np.nan)
            get_backend(b).regularize(layers, params, g, pen, threads)
            out[b, threads] = (g, pen)
    g0, p0 = out["cython", 1]
    for key, (g, pen) in out.items():
        assert g.tobytes() == g0.tobytes(), key
        assert pen.tobytes() == p0.tobytes(), key
    W = params[:97 * 53].astype(np.float64)
    assert p0[0] == pytest.approx(l1 * np.abs(W).sum() + l2 * (W * W).sum(), rel=1e-12)
    special = params.copy()
    special[[3, 4100, 5000]] = [np.nan, 0.0, np.inf]
    res = {}
    for b in ("numba", "cython"):
        g, pen = grads0.copy(), np.full(1, np.nan)
        get_backend(b).regularize(layers, special, g, pen, 1)
        res[b] = (g, pen)
    assert res["numba"][0].tobytes() == res["cython"][0].tobytes()
    assert np.isnan(res["numba"][1][0]) and np.isnan(res["cython"][1][0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,m", [(784, 512), (700, 401), (1030, 255)])
def test_one_row_split_between_threads_same_bits(dtype, k, m):
    """A single row of a product of at least ROW_PAR_MIN multiply-adds (batch-1
    inference) splits its columns between the threads (16-column blocks; the
    last block ragged for m = 401 and 255, a masked tail in numba): at 1, 2 and 3
    threads, in both twins, it is the same bits as the same row inside a 5-row
    product (the blocked path), and close to the float64 product."""
    from fastnet._kernels.numba import _jit
    from fastnet.backends import get_backend
    assert k * m >= _jit.ROW_PAR_MIN
    rng = np.random.default_rng(k + m)
    A5 = rng.standard_normal((5, k)).astype(dtype)
    B = rng.standard_normal((k, m)).astype(dtype)
    out = {}
    for b in ("numba", "cython"):
        be = get_backend(b)
        for threads in (1, 2, 3):
            C = np.full((1, m), np.nan, dtype)
            be.matmul(A5[2:3], B, C, threads)
            out[b, threads] = C[0]
        C5 = np.full((5, m), np.nan, dtype)
        be.matmul(A5, B, C5, 2)
        out[b, "5 rows"] = C5[2]
    from fastnet._kernels.cython import matmul as mm
    across = mm.isa()["isa"] != "baseline"   # EXCEPTIONS["cython-matmul-baseline"]
    ref = out["cython", 1]
    for key, row in out.items():
        if across or key[0] == "cython":
            assert row.tobytes() == ref.tobytes(), key
        assert row.tobytes() == out[key[0], 1].tobytes(), key
    exact = A5[2].astype(np.float64) @ B.astype(np.float64)
    np.testing.assert_allclose(ref, exact, rtol=0, atol=(1e-4 if dtype == np.float32 else 1e-11) * np.abs(exact).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,k,m", [(37, 77, 513), (128, 256, 512), (5, 30, 784), (9, 1000, 33)])
def test_matmul_nt_same_bits_as_matmul_of_the_transpose(dtype, n, k, m):
    """matmul_nt forms B^T before the product (numba: in 8 x 8 blocks plus ragged
    edges once B^T passes the stack size; Cython: its packs): in both twins, at 1 and
    2 threads, the bits of matmul on the explicit transpose."""
    from fastnet.backends import get_backend
    rng = np.random.default_rng(n + k + m)
    A = rng.standard_normal((n, k)).astype(dtype)
    B = rng.standard_normal((m, k)).astype(dtype)
    Bt = np.ascontiguousarray(B.T)
    for b in ("numba", "cython"):
        be = get_backend(b)
        ref = np.empty((n, m), dtype)
        be.matmul(A, Bt, ref, 1)
        for threads in (1, 2):
            C = np.full((n, m), np.nan, dtype)
            be.matmul_nt(A, B, C, threads)
            assert C.tobytes() == ref.tobytes(), (b, threads)
