"""PReLU, Maxout, gradient clipping, meProp and training diagnostics through the
public API, on every backend: hand-computed values, finite differences, the
NumPy reference, and the behaviour a user sees."""
import warnings

import numpy as np
import pytest

import fastnet
from fastnet._kernels import defs

from conftest import BACKENDS


def xent():
    return fastnet.SparseCategoricalCrossentropy(from_logits=True)


def data(n=40, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = rng.integers(0, k, n)
    return X, y


# ---------------------------------------------------------------------------
# PReLU
# ---------------------------------------------------------------------------
def test_prelu_forward_by_hand(backend):
    m = fastnet.Sequential([fastnet.Dense(2, use_bias=False, input_dim=2), fastnet.PReLU(),
                            fastnet.Dense(1, use_bias=False)], backend=backend, dtype="float64")
    m.build()
    W0 = np.array([[1.0, -1.0], [2.0, 0.5]])
    W1 = np.array([[1.0], [10.0]])
    m.set_weights([W0, np.array([0.25, 0.1]), W1])
    X = np.array([[1.0, 1.0], [-1.0, 0.0]])
    # z = [[3, -0.5], [-1, 1]] -> a = [[3, -0.05], [-0.25, 1]] -> out = [[2.5], [9.75]]
    np.testing.assert_allclose(m.predict(X), [[2.5], [9.75]], rtol=1e-12)


def test_prelu_initial_slope_weights_and_summary(backend):
    m = fastnet.Sequential([fastnet.Dense(4, input_dim=3), fastnet.PReLU(), fastnet.Dense(2)],
                           backend=backend)
    m.build()
    w = m.get_weights()
    assert [a.shape for a in w] == [(3, 4), (4,), (4,), (4, 2), (2,)]
    np.testing.assert_array_equal(w[2], 0.25)
    assert m.layers[1].alpha.shape == (4,)
    lines = []
    m.summary(print_fn=lines.append)
    assert "p_re_lu (PReLU)" in lines[0] and "Total params: 30" in lines[0]
    assert m.count_params() == 30


def test_prelu_slopes_are_trained(backend):
    X, y = data()
    m = fastnet.Sequential([fastnet.Dense(8), fastnet.PReLU(init=0.1), fastnet.Dense(3)], backend=backend, seed=1)
    m.compile(fastnet.SGD(0.1), loss=xent())
    m.fit(X, y, epochs=3, batch_size=8, verbose=0)
    a = m.layers[1].alpha
    assert np.abs(a - 0.1).max() > 1e-4


@pytest.mark.parametrize("model_fn", ["prelu", "maxout", "both"])
def test_gradcheck_prelu_maxout(backend, model_fn):
    layers = {
        "prelu": [fastnet.Dense(5), fastnet.PReLU(), fastnet.Dense(3)],
        "maxout": [fastnet.Maxout(4, pieces=3), fastnet.Dense(3)],
        "both": [fastnet.Maxout(4, pieces=2, kernel_regularizer=fastnet.L2(0.01)), fastnet.Dropout(0.2),
                 fastnet.Dense(5, use_bias=False), fastnet.PReLU(), fastnet.Dense(3)],
    }[model_fn]
    X, y = data(n=12)
    m = fastnet.Sequential(layers, backend=backend, seed=2, dtype="float64")
    m.compile("sgd", loss=xent())
    errs = fastnet.gradcheck(m, X, y)
    assert max(errs) < 1e-6, errs


def test_prelu_misplaced_is_refused():
    with pytest.raises(ValueError, match="PReLU .* right after a Dense layer with a linear activation"):
        fastnet.Sequential([fastnet.Dense(4, "relu", input_dim=2), fastnet.PReLU(), fastnet.Dense(1)]).build()
    with pytest.raises(ValueError, match="after the output layer"):
        fastnet.Sequential([fastnet.Dense(4, input_dim=2), fastnet.Dense(1), fastnet.PReLU()]).build()
    with pytest.raises(ValueError, match="right after a Dense"):
        fastnet.Sequential([fastnet.Maxout(4, input_dim=2), fastnet.PReLU(), fastnet.Dense(1)]).build()
    with pytest.raises(TypeError, match="init"):
        fastnet.PReLU(init=float("nan"))


# ---------------------------------------------------------------------------
# Maxout
# ---------------------------------------------------------------------------
def test_maxout_forward_by_hand_and_params(backend):
    m = fastnet.Sequential([fastnet.Maxout(2, pieces=3, input_dim=2), fastnet.Dense(1, use_bias=False)],
                           backend=backend, dtype="float64")
    m.build()
    assert m.layers[0].count_params(2) == 2 * 6 + 6 == m.count_params() - 2
    lines = []
    m.summary(print_fn=lines.append)
    assert "maxout (Maxout)" in lines[0] and "18" in lines[0]
    W = np.array([[1.0, -1.0, 0.0, 2.0, 0.0, -3.0],
                  [0.0, 1.0, 2.0, 0.0, 1.0, 1.0]])
    b = np.array([0.0, 0.0, -5.0, 0.0, 0.0, 1.0])
    m.set_weights([W, b, np.array([[1.0], [100.0]])])
    X = np.array([[1.0, 2.0], [-1.0, 0.5]])
    z = X @ W + b
    a = z.reshape(2, 2, 3).max(axis=2)
    np.testing.assert_allclose(m.predict(X)[:, 0], a[:, 0] + 100 * a[:, 1], rtol=1e-12)


def test_maxout_two_pieces_is_relu(backend):
    """Piece 0 = a Dense layer's affine map, piece 1 = 0: Maxout equals ReLU."""
    rng = np.random.default_rng(4)
    dense = fastnet.Sequential([fastnet.Dense(5, "relu", input_dim=3), fastnet.Dense(2)], backend=backend, seed=3)
    dense.build()
    W, b, W2, b2 = dense.get_weights()
    mx = fastnet.Sequential([fastnet.Maxout(5, pieces=2, input_dim=3), fastnet.Dense(2)], backend=backend)
    mx.build()
    Wm = np.zeros((3, 10), np.float32)
    bm = np.zeros(10, np.float32)
    Wm[:, 0::2], bm[0::2] = W, b + rng.standard_normal(5).astype(np.float32)
    mx.set_weights([Wm, bm, W2, b2])
    dense.set_weights([W, bm[0::2], W2, b2])
    X = rng.standard_normal((20, 3))
    np.testing.assert_allclose(mx.predict(X), dense.predict(X), rtol=1e-5, atol=1e-6)


def test_maxout_learns_digits(backend, digits):
    X, y = digits
    m = fastnet.Sequential([fastnet.Maxout(32, pieces=2), fastnet.Dense(10)], backend=backend, seed=0)
    m.compile(fastnet.Adam(3e-3), loss=xent(), metrics=["accuracy"])
    h = m.fit(X[:1400], y[:1400], epochs=15, batch_size=32, verbose=0)
    assert h.history["loss"][-1] < 0.5 * h.history["loss"][0]
    assert m.evaluate(X[1400:], y[1400:], return_dict=True)["accuracy"] > 0.9


def test_maxout_misplaced_and_bad_args():
    with pytest.raises(ValueError, match="Maxout .* cannot be the output layer"):
        fastnet.Sequential([fastnet.Maxout(3, input_dim=2)]).build()
    with pytest.raises(ValueError, match="pieces must be >= 1"):
        fastnet.Maxout(3, pieces=0)
    with pytest.raises(TypeError, match="pieces"):
        fastnet.Maxout(3, pieces=2.5)


# ---------------------------------------------------------------------------
# gradient clipping
# ---------------------------------------------------------------------------
def _one_step(backend, opt, X, y):
    m = fastnet.Sequential([fastnet.Dense(4, "tanh", input_dim=X.shape[1]), fastnet.PReLU() if False else
                            fastnet.Dense(3)], backend=backend, seed=5, dtype="float64")
    m.compile(opt, loss=xent())
    m.build()
    before = m.get_weights()
    grads = m.gradients(X, y)
    m.fit(X, y, epochs=1, batch_size=X.shape[0], shuffle=False, verbose=0)
    return before, grads, m.get_weights()


@pytest.mark.parametrize("clip", ["clipnorm", "clipvalue", "global_clipnorm"])
def test_clipping_by_hand(backend, clip):
    """One SGD step (lr 1) against the Keras definitions computed by hand from
    model.gradients."""
    X, y = data(n=10, d=4)
    X = X * 20                                   # large gradients, so clipping bites
    c = 0.05
    before, g, after = _one_step(backend, fastnet.SGD(1.0, **{clip: c}), X, y)
    if clip == "clipnorm":
        want = [gi * min(1.0, c / np.linalg.norm(gi)) for gi in g]
        assert all(np.linalg.norm(gi) > c for gi in g)
    elif clip == "clipvalue":
        want = [np.clip(gi, -c, c) for gi in g]
        assert max(np.abs(gi).max() for gi in g) > c
    else:
        total = np.sqrt(sum((gi ** 2).sum() for gi in g))
        assert total > c
        want = [gi * c / total for gi in g]
    for b, a, w in zip(before, after, want):
        np.testing.assert_allclose(b - a, w, rtol=1e-9, atol=1e-12)


def test_clipping_with_adam_matches_reference(backend):
    X, y = data(n=64, d=6)
    res = {}
    for be in {backend, "numpy"}:
        m = fastnet.Sequential([fastnet.Dense(8, "relu"), fastnet.Dense(3)], backend=be, seed=3, dtype="float64")
        m.compile(fastnet.Adam(0.01, clipnorm=0.1), loss=xent())
        m.fit(X, y, epochs=2, batch_size=16, verbose=0)
        res[be] = m.get_weights()
    for a, b in zip(res[backend], res["numpy"]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_clipping_arguments():
    with pytest.raises(ValueError, match="only one of clipnorm, clipvalue and global_clipnorm"):
        fastnet.Adam(clipnorm=1.0, clipvalue=0.5)
    with pytest.raises(ValueError, match="clipnorm must be > 0"):
        fastnet.SGD(clipnorm=0)
    with pytest.raises(TypeError, match="clipvalue"):
        fastnet.RMSprop(clipvalue="1")
    opt = fastnet.AdamW(global_clipnorm=2.0)
    assert opt.global_clipnorm == 2.0 and opt.clipnorm is None
    assert opt.hyper()[defs.H_GLOBAL_CLIPNORM] == 2.0
    assert "global_clipnorm=2.0" in repr(opt)


# ---------------------------------------------------------------------------
# meProp
# ---------------------------------------------------------------------------
def _meprop_model(backend, k1, k2, dtype="float32"):
    m = fastnet.Sequential([fastnet.Dense(20, "relu", meprop_k=k1), fastnet.Dense(12, "tanh", meprop_k=k2),
                            fastnet.Dense(3)], backend=backend, seed=7, dtype=dtype)
    m.compile(fastnet.SGD(0.05, momentum=0.9), loss=xent())
    return m


def test_meprop_full_width_is_exactly_backprop(backend):
    X, y = data(n=50)
    full = _meprop_model(backend, None, None)
    same = _meprop_model(backend, 20, 12)
    h1 = full.fit(X, y, epochs=2, batch_size=10, verbose=0)
    h2 = same.fit(X, y, epochs=2, batch_size=10, verbose=0)
    for a, b in zip(full.get_weights(), same.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert h1.history["loss"] == h2.history["loss"]


def test_meprop_small_k_matches_reference(backend):
    X, y = data(n=50)
    res = {}
    for be in {backend, "numpy"}:
        m = _meprop_model(be, 3, 2, dtype="float64")
        m.fit(X, y, epochs=2, batch_size=10, verbose=0)
        res[be] = m.get_weights()
    for a, b in zip(res[backend], res["numpy"]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    # and it is not ordinary backprop
    full = _meprop_model("numpy", None, None, dtype="float64")
    full.fit(X, y, epochs=2, batch_size=10, verbose=0)
    assert max(np.abs(a - b).max() for a, b in zip(full.get_weights(), res["numpy"])) > 1e-3


def test_meprop_only_k_columns_change_per_example(backend):
    """One example, one SGD step: only k columns of the meProp layer's kernel move."""
    X, y = data(n=1, d=5)
    m = fastnet.Sequential([fastnet.Dense(10, "tanh", meprop_k=3), fastnet.Dense(3)], backend=backend, seed=1,
                           dtype="float64")
    m.compile(fastnet.SGD(0.5), loss=xent())
    m.build(5)
    before = m.get_weights()[0]
    m.fit(X, y, epochs=1, batch_size=1, verbose=0)
    moved = np.abs(m.get_weights()[0] - before).max(axis=0) > 0
    assert moved.sum() == 3


def test_meprop_bad_args():
    with pytest.raises(ValueError, match="meprop_k must be in \\[1, units=4\\]"):
        fastnet.Dense(4, meprop_k=5)
    with pytest.raises(ValueError, match="meprop_k"):
        fastnet.Dense(4, meprop_k=0)
    with pytest.raises(TypeError, match="meprop_k"):
        fastnet.Dense(4, meprop_k=1.5)


# ---------------------------------------------------------------------------
# diagnostics
# ---------------------------------------------------------------------------
def _dead_model(backend, n_dead):
    m = fastnet.Sequential([fastnet.Dense(4, "relu", input_dim=3), fastnet.Dense(2)], backend=backend, seed=0)
    m.compile(fastnet.SGD(0.01), loss=xent())
    m.build()
    W, b, W2, b2 = m.get_weights()
    W[:, :n_dead] = 0.0
    b[:n_dead] = -1.0          # z = -1 for every input: never active, zero gradient, stays dead
    b[n_dead:] = 5.0           # the live ones are active on these inputs
    m.set_weights([W, b, W2, b2])
    return m


def test_dead_relu_unit_built_by_hand_is_reported(backend):
    X, _ = data(n=30, d=3)
    y = np.arange(30) % 2
    m = _dead_model(backend, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # 25% dead: no warning
        h = m.fit(X, y, epochs=2, batch_size=8, verbose=0, diagnostics=True)
    d = h.diagnostics["dense"]
    assert d["dead_relu"] == [0.25, 0.25]
    assert d["saturated_units"] == [None, None]
    assert h.diagnostics["dense_1"]["dead_relu"] == [None, None]
    assert np.isclose(d["weight_norm"][-1], np.linalg.norm(m.get_weights()[0]))
    m3 = _dead_model(backend, 3)
    with pytest.warns(fastnet.diagnostics.DiagnosticsWarning, match="75% of layer 'dense'.*dead"):
        h3 = m3.fit(X, y, epochs=1, batch_size=8, verbose=0, diagnostics=True)
    assert h3.diagnostics["dense"]["dead_relu"] == [0.75]


def test_saturated_units_reported(backend):
    X, y = data(n=30, d=3)
    m = fastnet.Sequential([fastnet.Dense(4, "sigmoid", input_dim=3), fastnet.Dense(3)], backend=backend, seed=0)
    m.compile(fastnet.SGD(0.001), loss=xent())
    m.build()
    W, b, W2, b2 = m.get_weights()
    b[:2] = 50.0               # two units pinned at a = 1
    W[:, :2] = 0.0
    W[:, 2:] = 0.01            # two units near a = 0.5
    m.set_weights([W, b, W2, b2])
    with pytest.warns(fastnet.diagnostics.DiagnosticsWarning, match="50% of layer 'dense'.*saturated"):
        h = m.fit(X, y, epochs=1, batch_size=10, verbose=0, diagnostics=True)
    d = h.diagnostics["dense"]
    assert d["saturated_units"] == [0.5] and d["dead_relu"] == [None]
    assert np.isclose(d["saturated_fraction"][0], 0.5)


def test_fused_output_layer_has_no_saturation_counts(backend):
    """A sigmoid output trained with binary cross-entropy holds logits in the
    training pass: it reports no saturation (None), the hidden layer does."""
    X, _ = data(n=30, d=3)
    y = (X[:, 0] > 0).astype(float)
    m = fastnet.Sequential([fastnet.Dense(4, "tanh", input_dim=3), fastnet.Dense(1, "sigmoid")], backend=backend,
                           seed=0)
    m.compile(fastnet.SGD(0.01), loss="binary_crossentropy")
    m.build()
    W, b, W2, b2 = m.get_weights()
    m.set_weights([W, b, W2 * 0 + 100.0, b2])    # output saturated, if it were counted
    h = m.fit(X, y, epochs=1, batch_size=10, verbose=0, diagnostics=True)
    assert h.diagnostics["dense_1"]["saturated_units"] == [None]
    assert h.diagnostics["dense"]["saturated_units"][0] is not None


def test_grad_norm_is_the_mean_batch_gradient_norm(backend):
    X, y = data(n=24)
    m = fastnet.Sequential([fastnet.Dense(5, "tanh"), fastnet.Dense(3)], backend=backend, seed=0, dtype="float64")
    m.compile(fastnet.SGD(0.0), loss=xent())    # lr 0: every batch sees the same weights
    m.build(6)
    want = []
    for l in range(2):
        norms = []
        for s in range(0, 24, 8):
            g = m.gradients(X[s:s + 8], y[s:s + 8])
            norms.append(np.sqrt(sum((a ** 2).sum() for a in g[2 * l:2 * l + 2])))
        want.append(np.mean(norms))
    h = m.fit(X, y, epochs=1, batch_size=8, shuffle=False, verbose=0, diagnostics=True)
    got = [h.diagnostics[name]["grad_norm"][0] for name in ("dense", "dense_1")]
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_diverging_run_names_epoch_batch_layer_and_stage(backend):
    X, y = data(n=40, d=5)
    X = X.astype(np.float32)
    m = fastnet.Sequential([fastnet.Dense(8, "relu"), fastnet.Dense(6, "tanh"), fastnet.Dense(3)], backend=backend,
                           seed=1)
    m.compile(fastnet.SGD(1e40), loss=xent())
    with pytest.raises(fastnet.NonFiniteError) as info:
        m.fit(X, y, epochs=3, batch_size=4, verbose=0, diagnostics=True)
    e = info.value
    assert (e.epoch, e.batch, e.layer, e.stage) == (0, 0, "dense", "update")
    assert "epoch 0, batch 0, layer 'dense', stage 'update'" in str(e)
    assert isinstance(e, FloatingPointError)
    assert m.optimizer.iterations == 1
    # a large but finite step: the weights survive, the next forward pass overflows
    m2 = fastnet.Sequential([fastnet.Dense(8, "relu"), fastnet.Dense(6, "tanh"), fastnet.Dense(3)], backend=backend,
                            seed=1)
    m2.compile(fastnet.SGD(1e30), loss=xent())
    with pytest.raises(fastnet.NonFiniteError, match="stage 'forward'") as info2:
        m2.fit(X, y, epochs=3, batch_size=4, verbose=0, diagnostics=True)
    assert info2.value.batch >= 1 and info2.value.stage == "forward"


def test_diagnostics_off_changes_nothing(backend):
    X, y = data(n=40)
    res = []
    for diag in (False, True):
        m = fastnet.Sequential([fastnet.Dense(8, "relu"), fastnet.Dropout(0.2), fastnet.Dense(3)],
                               backend=backend, seed=3)
        m.compile(fastnet.Adam(0.01), loss=xent())
        h = m.fit(X, y, epochs=2, batch_size=8, verbose=0, diagnostics=diag)
        res.append((m.get_weights(), h))
    for a, b in zip(res[0][0], res[1][0]):
        np.testing.assert_array_equal(a, b)
    assert res[0][1].diagnostics == {} and set(res[1][1].diagnostics) == {"dense", "dense_1"}
    assert "dense" in fastnet.diagnostics.format_table(res[1][1])
    # without diagnostics a diverging run is not stopped by an error (Keras behaviour)
    m = fastnet.Sequential([fastnet.Dense(8, "relu"), fastnet.Dense(3)], backend=backend, seed=1)
    m.compile(fastnet.SGD(1e40), loss=xent())
    m.fit(X.astype(np.float32), y, epochs=1, batch_size=4, verbose=0)


def test_diagnostics_argument_checked():
    X, y = data(n=10)
    m = fastnet.Sequential([fastnet.Dense(3)], seed=0)
    m.compile("sgd", loss=xent())
    with pytest.raises(TypeError, match="diagnostics must be a bool"):
        m.fit(X, y, diagnostics="yes", verbose=0)
    assert not m.built


def test_save_load_and_set_weights_with_prelu_and_maxout(backend, tmp_path):
    X, y = data(n=20)
    mk = lambda: fastnet.Sequential([fastnet.Maxout(5, pieces=2), fastnet.Dense(4), fastnet.PReLU(),  # noqa: E731
                                     fastnet.Dense(3)], backend=backend, seed=0)
    m = mk()
    m.compile(fastnet.Adam(0.01), loss=xent())
    m.fit(X, y, epochs=2, batch_size=5, verbose=0)
    m.save_weights(tmp_path / "w.npz")
    m2 = mk()
    m2.build(6)
    m2.load_weights(tmp_path / "w.npz")
    for a, b in zip(m.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(m.predict(X), m2.predict(X))
    with pytest.raises(ValueError, match="p_re_lu.alpha must have shape \\(4,\\)"):
        w = m2.get_weights()
        w[4] = np.zeros(5)
        m2.set_weights(w)
