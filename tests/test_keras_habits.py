"""Keras habits (issue 20, section 4): model(X), Input / input_shape, layer and
model weight access, evaluate's return value, fastnet.models / utils, the
*_on_batch methods, Keras spellings, activations for logits, predict_proba and
the regression metrics."""
import io
import contextlib

import numpy as np
import pytest

import fastnet
from fastnet import utils


def _data(n=60, d=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(0, k, n)
    return X, y


def _clf(backend, seed=0, drop=0.0, **kw):
    layers = [fastnet.Input(shape=(5,)), fastnet.Dense(8, "tanh")]
    if drop:
        layers.append(fastnet.Dropout(drop))
    layers.append(fastnet.Dense(3))
    return fastnet.Sequential(layers, backend=backend, seed=seed, **kw)


# ---------------------------------------------------------------- model(X)
def test_call_equals_predict(backend):
    X, _ = _data()
    m = _clf(backend)
    out = m(X)
    assert out.dtype == np.float32 and out.shape == (60, 3)
    np.testing.assert_array_equal(out, m.predict(X))
    # the slow path (a list, float64, a strided view) gives the same values
    np.testing.assert_array_equal(m(X.astype(np.float64)), out)
    np.testing.assert_array_equal(m(X.tolist()), out)
    np.testing.assert_array_equal(m(np.asfortranarray(X)), out)
    if backend == "numpy":
        # the reference backend's products are numpy.matmul: the BLAS picks its kernel
        # by shape (one row: a matrix-vector kernel, whose sums may round differently;
        # OpenBLAS's Haswell kernels on AMD Zen 5 do), so one row agrees to rounding
        np.testing.assert_allclose(m(X[:1]), out[:1], rtol=1e-6, atol=1e-7)
    else:
        # the compiled twins sum every element in the same order whatever the row count
        np.testing.assert_array_equal(m(X[:1]), out[:1])
    # against the NumPy reference forward pass
    W0, b0, W1, b1 = [w.astype(np.float64) for w in m.get_weights()]
    ref = np.tanh(X.astype(np.float64) @ W0 + b0) @ W1 + b1
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_call_checks_its_input(backend):
    m = _clf(backend)
    w = [a.copy() for a in m.get_weights()]
    X, _ = _data()
    X[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        m(X)
    with pytest.raises(ValueError, match="5 inputs"):
        m(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="training=True"):
        m(np.ones((2, 5), np.float32), training=True)
    with pytest.raises(TypeError, match="training"):
        m(np.ones((2, 5), np.float32), training="yes")
    assert all((a == b).all() for a, b in zip(w, m.get_weights()))
    # an unbuilt model builds on first call, as predict does
    u = fastnet.Sequential([fastnet.Dense(2)], backend=backend, seed=0)
    assert u(np.ones((1, 3))).shape == (1, 2) and u.built


# ------------------------------------------------------ Input / input_shape
def test_input_builds_at_construction(backend):
    a = _clf(backend, seed=4)
    assert a.built and a.input_dim == 5 and a.count_params() == 5 * 8 + 8 + 8 * 3 + 3
    assert [l.name for l in a.layers] == ["dense", "dense_1"]    # Input is not a layer of the stack
    b = fastnet.Sequential([fastnet.Dense(8, "tanh", input_shape=(5,)), fastnet.Dense(3)], backend=backend, seed=4)
    c = fastnet.Sequential([fastnet.Dense(8, "tanh", input_dim=5), fastnet.Dense(3)], backend=backend, seed=4)
    d = fastnet.Sequential([fastnet.Dense(8, "tanh"), fastnet.Dense(3)], backend=backend, seed=4)
    assert b.built and c.built and not d.built
    d.build(5)
    for m in (b, c, d):   # the same initial weights as a model built by build(5)
        for x, y in zip(a.get_weights(), m.get_weights()):
            np.testing.assert_array_equal(x, y)


def test_add_after_input_rebuilds_keeping_weights(backend):
    m = fastnet.Sequential(backend=backend, seed=4)
    m.add(fastnet.Input(shape=(5,)))
    assert not m.built                      # no Dense layer yet
    m.add(fastnet.Dense(8, "tanh"))
    assert m.built
    W = np.arange(40, dtype=np.float32).reshape(5, 8) / 40
    m.layers[0].set_weights([W, np.ones(8)])
    m.add(fastnet.Dropout(0.5))             # not a complete model: unbuilt until the next Dense
    assert not m.built and m.layers[0].get_weights() == []
    m.add(fastnet.Dense(3))
    assert m.built
    np.testing.assert_array_equal(m.layers[0].get_weights()[0], W)
    np.testing.assert_array_equal(m.layers[0].get_weights()[1], np.ones(8))
    ref = _clf(backend, seed=4, drop=0.5)   # the new layer's weights: as if built at once
    np.testing.assert_array_equal(m.layers[-1].get_weights()[0], ref.layers[-1].get_weights()[0])
    m.compile("adam", fastnet.SparseCategoricalCrossentropy(from_logits=True))
    X, y = _data()
    m.fit(X, y, epochs=1, verbose=0)
    m.add(fastnet.Dense(2))                 # Keras allows it: the trained weights stay
    trained = m.layers[0].get_weights()[0]
    assert m.count_params() == 5 * 8 + 8 + 8 * 3 + 3 + 3 * 2 + 2
    np.testing.assert_array_equal(m.layers[0].get_weights()[0], trained)


def test_input_bad_arguments(backend):
    for shape, exc, msg in [((28, 28), ValueError, r"reshape\(len\(X\), -1\).*\(784,\)"), ((0,), ValueError, "positive"),
                            ("5", TypeError, "tuple"), ((2.5,), ValueError, "positive"), (None, TypeError, "required")]:
        with pytest.raises(exc, match=msg):
            fastnet.Input(shape=shape)
    assert fastnet.Input(batch_shape=(None, 7)).shape == (7,)
    assert fastnet.Input(shape=7).shape == (7,)
    with pytest.raises(ValueError, match="input_shape"):
        fastnet.Dense(3, input_shape=(4, 4))
    with pytest.raises(ValueError, match="disagree"):
        fastnet.Dense(3, input_shape=(4,), input_dim=5)
    with pytest.raises(ValueError, match="first layer"):
        fastnet.Sequential([fastnet.Dense(3), fastnet.Input(shape=(4,))], backend=backend)
    with pytest.raises(ValueError, match="Input has shape"):
        fastnet.Sequential([fastnet.Input(shape=(4,)), fastnet.Dense(3, input_dim=5)], backend=backend)
    layer = fastnet.InputLayer(shape=(4,), name="inp")
    assert type(layer)(**layer.get_config()) == layer


# --------------------------------------------------------- weights access
def test_layer_get_set_weights(backend):
    m = fastnet.Sequential([fastnet.Input((4,)), fastnet.Dense(3), fastnet.PReLU(), fastnet.Dropout(0.1),
                            fastnet.Dense(2, use_bias=False)], backend=backend, seed=0)
    d0, pr, dr, d1 = m.layers
    W, b = d0.get_weights()
    assert W.shape == (4, 3) and b.shape == (3,)
    assert [a.shape for a in pr.get_weights()] == [(3,)] and dr.get_weights() == []
    assert [a.shape for a in d1.get_weights()] == [(3, 2)]
    W[...] = 7                         # copies, not views
    assert (d0.get_weights()[0] != 7).all()
    X = np.random.default_rng(1).standard_normal((6, 4))
    d0.set_weights([np.eye(4, 3), [1.0, -2.0, 3.0]])
    pr.set_weights([np.array([0.5, 0.5, 0.5])])
    d1.set_weights([np.ones((3, 2))])
    z = X @ np.eye(4, 3) + [1.0, -2.0, 3.0]
    a = np.where(z > 0, z, 0.5 * z)
    np.testing.assert_allclose(m.predict(X), a @ np.ones((3, 2)), rtol=1e-6, atol=1e-6)
    before = [w.copy() for w in m.get_weights()]
    for bad, exc, msg in [([np.eye(4, 3)], ValueError, "expects 2 arrays"),
                          ([np.eye(3, 4), np.zeros(3)], ValueError, r"shape \(4, 3\)"),
                          ([np.eye(4, 3), np.array([1, np.nan, 0])], ValueError, "NaN"),
                          ([np.eye(4, 3).astype(complex), np.zeros(3)], TypeError, "real"),
                          (np.eye(4, 3), TypeError, "list")]:
        with pytest.raises(exc, match=msg):
            d0.set_weights(bad)
    assert all((x == y).all() for x, y in zip(before, m.get_weights()))
    free = fastnet.Dense(3)
    assert free.get_weights() == []
    with pytest.raises(ValueError, match="built"):
        free.set_weights([np.zeros((2, 3)), np.zeros(3)])


def test_get_layer(backend):
    m = _clf(backend, drop=0.2)
    assert m.get_layer("dropout") is m.layers[1]
    assert m.get_layer(name="dense_1") is m.layers[2]
    assert m.get_layer(index=0) is m.layers[0] and m.get_layer(index=-1) is m.layers[2]
    with pytest.raises(ValueError, match="no layer named 'nope'.*'dense', 'dropout', 'dense_1'"):
        m.get_layer("nope")
    with pytest.raises(ValueError, match="out of range"):
        m.get_layer(index=3)
    with pytest.raises(ValueError, match="exactly one"):
        m.get_layer()
    with pytest.raises(ValueError, match="exactly one"):
        m.get_layer("dense", index=0)
    with pytest.raises(TypeError, match="index"):
        m.get_layer(index=1.0)


# ---------------------------------------------------------------- evaluate
def test_evaluate_returns_what_keras_returns(backend):
    X, y = _data()
    m = _clf(backend)
    m.compile("adam", fastnet.SparseCategoricalCrossentropy(from_logits=True))
    loss = m.evaluate(X, y)
    assert isinstance(loss, float)
    logits = m.predict(X)
    assert loss == pytest.approx(fastnet.SparseCategoricalCrossentropy(from_logits=True)(y, logits), rel=1e-5)
    assert m.evaluate(X, y, return_dict=True) == {"loss": loss}
    m2 = _clf(backend)
    m2.compile("adam", fastnet.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy", "mse"])
    loss2, acc, mse = m2.evaluate(X, y)
    assert loss2 == loss and acc == pytest.approx(np.mean(logits.argmax(1) == y))
    assert m2.evaluate(X, y, return_dict=True) == {"loss": loss2, "accuracy": acc, "mse": mse}
    with pytest.raises(TypeError, match="return_dict"):
        m2.evaluate(X, y, return_dict="yes")


def test_verbose_prints_like_keras(backend):
    X, y = _data()
    m = _clf(backend)
    m.compile("adam", fastnet.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    for verbose, bar in ((1, True), ("auto", True), (2, False), (0, None)):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            m.evaluate(X, y, verbose=verbose)
            m.predict(X, verbose=verbose, batch_size=16)
        out = buf.getvalue().splitlines()
        if bar is None:
            assert out == []
            continue
        assert len(out) == 2
        assert out[0].startswith("2/2") and " - loss: " in out[0] and " - accuracy: " in out[0]
        assert out[1].startswith("4/4") and "loss" not in out[1]
        assert ("[====" in out[0]) == bar
    with pytest.raises(ValueError, match="verbose"):
        m.evaluate(X, y, verbose=3)
    with pytest.raises(ValueError, match="verbose"):
        m.predict(X, verbose=True)


# -------------------------------------------------------- models and utils
def test_models_module():
    assert fastnet.models.Sequential is fastnet.Sequential
    assert callable(fastnet.models.load_model)


def test_to_categorical():
    np.testing.assert_array_equal(utils.to_categorical([0, 2, 1]), np.eye(3, dtype=np.float32)[[0, 2, 1]])
    out = utils.to_categorical(np.array([[1], [0]]), num_classes=4, dtype="float64")
    assert out.dtype == np.float64 and out.shape == (2, 4) and out[0, 1] == 1 and out.sum() == 2
    assert utils.to_categorical(np.array([[0, 1], [1, 1]])).shape == (2, 2, 2)
    assert utils.to_categorical([1.0, 0.0]).tolist() == [[0, 1], [1, 0]]
    for bad, exc in [([0, 1.5], ValueError), ([-1, 0], ValueError), (["a"], TypeError), ([True], TypeError)]:
        with pytest.raises(exc):
            utils.to_categorical(bad)
    with pytest.raises(ValueError, match="out of range"):
        utils.to_categorical([0, 3], num_classes=3)


def test_set_random_seed(backend):
    import random
    utils.set_random_seed(123)
    try:
        a1, a2 = _clf(backend, seed=None), _clf(backend, seed=None)
        r1, n1 = random.random(), np.random.random()
        utils.set_random_seed(123)
        b1, b2 = _clf(backend, seed=None), _clf(backend, seed=None)
        assert random.random() == r1 and np.random.random() == n1
        assert a1.seed == b1.seed and a2.seed == b2.seed and a1.seed != a2.seed
        np.testing.assert_array_equal(a2.get_weights()[0], b2.get_weights()[0])
        assert _clf(backend, seed=5).seed == 5          # an explicit seed wins
        utils.set_random_seed(124)
        assert _clf(backend, seed=None).seed != a1.seed
    finally:
        utils._global_seed = None
    with pytest.raises(TypeError):
        utils.set_random_seed(1.5)
    with pytest.raises(ValueError):
        utils.set_random_seed(-1)


# -------------------------------------------------------------- *_on_batch
@pytest.mark.parametrize("opt", ["sgd", "adam", "rmsprop", "adagrad", "adamw"])
def test_train_on_batch_is_fit_with_one_batch(backend, opt):
    X, y = _data(n=40)
    a, b = _clf(backend, drop=0.3), _clf(backend, drop=0.3)
    for m in (a, b):
        m.compile(fastnet.optimizers.get(opt), fastnet.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    for step in range(3):
        rows = slice(10 * step, 10 * step + 10)
        h = a.fit(X[rows], y[rows], batch_size=10, epochs=1, shuffle=False, verbose=0)
        loss, acc = b.train_on_batch(X[rows], y[rows])
        assert loss == pytest.approx(h.history["loss"][0], rel=1e-12)
        assert acc == h.history["accuracy"][0]
        assert a.optimizer.iterations == b.optimizer.iterations == step + 1
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(wa, wb)
        np.testing.assert_array_equal(a.optimizer.state, b.optimizer.state)
    assert a._dropout_rng.integers(1 << 60) == b._dropout_rng.integers(1 << 60)
    logs = b.train_on_batch(X[:5], y[:5], sample_weight=np.ones(5), class_weight={0: 2.0}, return_dict=True)
    assert set(logs) == {"loss", "accuracy"} and b.optimizer.iterations == 4


def test_train_on_batch_bad_input_changes_nothing(backend):
    X, y = _data(n=10)
    m = _clf(backend, drop=0.3)
    with pytest.raises(ValueError, match="compiled"):
        m.train_on_batch(X, y)
    m.compile("adam", fastnet.SparseCategoricalCrossentropy(from_logits=True))
    m.train_on_batch(X, y)
    w = [a.copy() for a in m.get_weights()]
    state = m.optimizer.state.copy()
    rng_state = m._dropout_rng.bit_generator.state
    for args, exc in [((X, y + 3), ValueError), ((X[:, :4], y), ValueError), ((X, y[:9]), ValueError),
                      ((X, y, np.full(10, -1.0)), ValueError)]:
        with pytest.raises(exc):
            m.train_on_batch(*args)
    with pytest.raises(TypeError):
        m.train_on_batch(X, y, class_weight=[1, 2])
    assert all((a == b).all() for a, b in zip(w, m.get_weights()))
    np.testing.assert_array_equal(state, m.optimizer.state)
    assert m.optimizer.iterations == 1 and m._dropout_rng.bit_generator.state == rng_state


def test_test_and_predict_on_batch(backend):
    X, y = _data()
    m = _clf(backend)
    m.compile("sgd", fastnet.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    assert m.test_on_batch(X, y) == m.evaluate(X, y)
    assert m.test_on_batch(X, y, return_dict=True) == m.evaluate(X, y, return_dict=True)
    np.testing.assert_array_equal(m.predict_on_batch(X), m.predict(X))


# ------------------------------------------------------- Keras spellings
def test_keras_spellings_of_optimizer_arguments():
    for cls in (fastnet.Adam, fastnet.AdamW):
        keras = cls(beta_1=0.8, beta_2=0.99, epsilon=1e-6)
        torch_ = cls(betas=(0.8, 0.99), eps=1e-6)
        np.testing.assert_array_equal(keras.hyper(), torch_.hyper())
        assert keras.get_config() == torch_.get_config()
        assert cls(beta_2=0.95).get_config()["betas"] == (0.9, 0.95)
        with pytest.raises(TypeError, match="not both"):
            cls(betas=(0.9, 0.99), beta_1=0.8)
        with pytest.raises(TypeError, match="not both"):
            cls(eps=1e-7, epsilon=1e-7)
        with pytest.raises(ValueError, match="betas"):
            cls(beta_1=1.5)
        # get_config rebuilds an equal optimizer
        cfg = {k: v for k, v in keras.get_config().items() if k != "name"}
        np.testing.assert_array_equal(cls(**cfg).hyper(), keras.hyper())
    np.testing.assert_array_equal(fastnet.RMSprop(rho=0.9).hyper(), fastnet.RMSprop(alpha=0.9).hyper())
    with pytest.raises(TypeError, match="not both"):
        fastnet.RMSprop(alpha=0.9, rho=0.9)
    with pytest.raises(TypeError, match="inside the square root"):
        fastnet.RMSprop(epsilon=1e-7)
    # defaults are PyTorch 2.13's
    assert fastnet.SGD().lr == 1e-3 and fastnet.Adam().lr == 1e-3 and fastnet.RMSprop().lr == 1e-2


def test_keras_spellings_of_regularizers(backend):
    from fastnet import regularizers
    assert isinstance(regularizers.l2(0.02), regularizers.L2) and regularizers.l2(0.02).l2 == 0.02
    assert regularizers.l1(0.03).l1 == 0.03
    r = regularizers.l1_l2(l1=0.01, l2=0.02)
    assert (r.l1, r.l2) == (0.01, 0.02)
    X, y = _data()
    a = fastnet.Sequential([fastnet.Input((5,)), fastnet.Dense(3, kernel_regularizer=regularizers.l2(0.5),
                                                               bias_regularizer=None)], backend=backend, seed=0)
    a.compile("sgd", fastnet.SparseCategoricalCrossentropy(from_logits=True))
    W = a.get_weights()[0].astype(np.float64)
    data = fastnet.SparseCategoricalCrossentropy(from_logits=True)(y, a.predict(X))
    assert a.evaluate(X, y) == pytest.approx(data + 0.5 * (W ** 2).sum(), rel=1e-5)
    with pytest.raises(ValueError, match="unknown regularizer|regularizer"):
        fastnet.Dense(3, bias_regularizer="l7")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bias_regularizer(backend, dtype):
    """Keras's bias_regularizer: l1 sum|b| + l2 sum b^2 in the loss (evaluate), its
    gradient l1 sign(b) + 2 l2 b in model.gradients (against the numpy reference
    and finite differences), training equal to the reference's, and a model file
    keeps it."""
    from fastnet import regularizers
    X, y = _data()
    X = X.astype(dtype)

    def make(be):
        m = fastnet.Sequential([
            fastnet.Input((5,)),
            fastnet.Dense(4, "tanh", bias_initializer="ones", bias_regularizer=regularizers.l1_l2(0.03, 0.2)),
            fastnet.Maxout(3, pieces=2, bias_regularizer=regularizers.l2(0.1), kernel_regularizer=regularizers.l1(0.01)),
            fastnet.Dense(3, bias_regularizer=regularizers.l1(0.05))], backend=be, seed=3, dtype=dtype)
        m.compile(fastnet.SGD(lr=0.1), fastnet.SparseCategoricalCrossentropy(from_logits=True))
        return m

    a = make(backend)
    w = a.get_weights()
    b0, b1, b2 = (w[1].astype(np.float64), w[3].astype(np.float64), w[5].astype(np.float64))
    W1 = w[2].astype(np.float64)
    data = fastnet.SparseCategoricalCrossentropy(from_logits=True)(y, a.predict(X))
    penalty = (0.03 * np.abs(b0).sum() + 0.2 * (b0 ** 2).sum() + 0.1 * (b1 ** 2).sum()
               + 0.01 * np.abs(W1).sum() + 0.05 * np.abs(b2).sum())
    assert penalty > 0.5
    tol = 1e-5 if dtype == "float32" else 1e-12
    assert a.evaluate(X, y) == pytest.approx(data + penalty, rel=tol)
    g = a.gradients(X, y)
    ref = make("numpy").gradients(X, y)
    for x, r in zip(g, ref):
        np.testing.assert_allclose(x, r, rtol=10 * tol, atol=10 * tol)
    if dtype == "float64":   # central differences of evaluate's loss in the biases
        for k, idx in ((1, 2), (3, 0), (5, 1)):
            h = 1e-6
            vals = []
            for s in (h, -h):
                ws = [v.copy() for v in w]
                ws[k][idx] += s
                a.set_weights(ws)
                vals.append(a.evaluate(X, y))
            a.set_weights(w)
            assert (vals[0] - vals[1]) / (2 * h) == pytest.approx(g[k][idx], rel=1e-6, abs=1e-8)
    a.fit(X, y, epochs=2, batch_size=4, verbose=0)
    r = make("numpy")
    r.fit(X, y, epochs=2, batch_size=4, verbose=0)
    for x, v in zip(a.get_weights(), r.get_weights()):
        np.testing.assert_allclose(x, v, rtol=100 * tol, atol=100 * tol)
    import pickle
    c = pickle.loads(pickle.dumps(a))
    assert c.layers[0].bias_regularizer.l2 == 0.2 and c.layers[2].bias_regularizer.l1 == 0.05
    assert c.evaluate(X, y) == a.evaluate(X, y)


# ----------------------------------------- probabilities of logits, metrics
def test_softmax_and_sigmoid_of_logits():
    from fastnet import activations
    z = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]], dtype=np.float32)
    p = activations.softmax(z)
    assert p.dtype == np.float32
    e = np.exp(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(p, [[1, 0, 0], e / e.sum()], rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(activations.softmax(z.T, axis=0), p.T, rtol=1e-6)
    np.testing.assert_allclose(activations.softmax(np.stack([z, z])), np.stack([p, p]), rtol=1e-6)
    s = activations.sigmoid(np.array([-1000.0, -2.0, 0.0, 3.0, 1000.0]))
    np.testing.assert_allclose(s, [0.0, 1 / (1 + np.exp(2.0)), 0.5, 1 / (1 + np.exp(-3.0)), 1.0], rtol=1e-12)
    with pytest.raises(ValueError):
        activations.softmax(1.0)


def test_predict_proba(backend):
    X, y = _data()
    logits = _clf(backend)
    logits.compile("adam", fastnet.SparseCategoricalCrossentropy(from_logits=True))
    P = logits.predict_proba(X)
    Z = logits.predict(X).astype(np.float64)
    ref = np.exp(Z - Z.max(1, keepdims=True))
    np.testing.assert_allclose(P, ref / ref.sum(1, keepdims=True), rtol=1e-5)
    assert P.dtype == np.float32
    soft = fastnet.Sequential([fastnet.Input((5,)), fastnet.Dense(3, "softmax")], backend=backend, seed=0)
    np.testing.assert_array_equal(soft.predict_proba(X), soft.predict(X))      # no compile needed
    bce = fastnet.Sequential([fastnet.Input((5,)), fastnet.Dense(2)], backend=backend, seed=0)
    bce.compile("adam", fastnet.BinaryCrossentropy(from_logits=True))
    np.testing.assert_allclose(bce.predict_proba(X), 1 / (1 + np.exp(-bce.predict(X).astype(np.float64))), rtol=1e-5)
    reg = fastnet.Sequential([fastnet.Input((5,)), fastnet.Dense(1)], backend=backend, seed=0)
    with pytest.raises(ValueError, match="not class probabilities"):
        reg.predict_proba(X)
    reg.compile("adam", "mse")
    with pytest.raises(ValueError, match="not class probabilities"):
        reg.predict_proba(X)


@pytest.mark.parametrize("outputs", [1, 3])
def test_regression_metrics_match_sklearn(outputs):
    sk = pytest.importorskip("sklearn.metrics")
    from fastnet import metrics
    rng = np.random.default_rng(3)
    yt = rng.standard_normal((50, outputs)) + 3.0
    yp = yt + 0.3 * rng.standard_normal((50, outputs))
    sw = rng.uniform(0.1, 2.0, 50)
    shape = (lambda a: a[:, 0]) if outputs == 1 else (lambda a: a)
    for w in (None, sw):
        r2 = metrics.get("r2")(shape(yt), shape(yp), "regression", sample_weight=w)
        assert r2 == pytest.approx(sk.r2_score(yt, yp, sample_weight=w), rel=1e-12)
        mape = metrics.get("mape")(shape(yt), shape(yp), "regression", sample_weight=w)
        assert mape == pytest.approx(100 * sk.mean_absolute_percentage_error(yt, yp, sample_weight=w), rel=1e-12)
        rmse = metrics.RootMeanSquaredError()(shape(yt), shape(yp), "regression", sample_weight=w)
        assert rmse == pytest.approx(np.sqrt(sk.mean_squared_error(yt, yp, sample_weight=w)), rel=1e-12)
        if outputs == 1:
            assert rmse == pytest.approx(sk.root_mean_squared_error(yt, yp, sample_weight=w), rel=1e-12)
    assert metrics.R2Score()(np.ones(4), np.ones(4), "regression") == 1.0       # constant targets
    assert metrics.R2Score()(np.ones(4), np.zeros(4), "regression") == 0.0
    assert metrics.get("root_mean_squared_error").name == "root_mean_squared_error"


def test_regression_metrics_in_fit_and_evaluate(backend):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 5)).astype(np.float32)
    y = X @ rng.standard_normal(5) + 4.0
    m = fastnet.Sequential([fastnet.Input((5,)), fastnet.Dense(1)], backend=backend, seed=0)
    m.compile(fastnet.Adam(0.05), "mse", metrics=["rmse", "r2", "mape"])
    h = m.fit(X, y, epochs=20, verbose=0, validation_split=0.25)
    assert h.history["r2"][-1] > h.history["r2"][0] and "val_rmse" in h.history
    loss, rmse, r2, mape = m.evaluate(X, y)
    p = m.predict(X)[:, 0].astype(np.float64)
    assert rmse == pytest.approx(np.sqrt(np.mean((p - y) ** 2)), rel=1e-5)
    assert loss == pytest.approx(rmse ** 2, rel=1e-5)
    assert r2 == pytest.approx(1 - ((y - p) ** 2).sum() / ((y - y.mean()) ** 2).sum(), rel=1e-5)
    assert mape == pytest.approx(100 * np.mean(np.abs(p - y) / np.abs(y)), rel=1e-5)
    es = fastnet.EarlyStopping(monitor="val_r2")
    es.set_model(m)
    es.on_train_begin()
    assert es.monitor_op(2.0, 1.0)          # r2: higher is better
