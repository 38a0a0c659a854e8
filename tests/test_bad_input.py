"""Bad input: a clear ValueError/TypeError before any work, model unchanged."""
import numpy as np
import pytest

import fastnet


def trained(backend):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 4))
    y = rng.integers(0, 3, 20)
    m = fastnet.Sequential([fastnet.Dense(5, "relu"), fastnet.Dense(3)], backend=backend, seed=0)
    m.compile(optimizer=fastnet.Adam(0.01), loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
    m.fit(X, y, epochs=1, verbose=0)
    return m, X, y


def snapshot(m):
    return [w.copy() for w in m.get_weights()], m.optimizer.iterations, None if m.optimizer.state is None \
        else m.optimizer.state.copy()


def assert_unchanged(m, snap):
    w, it, st = snap
    for a, b in zip(m.get_weights(), w):
        np.testing.assert_array_equal(a, b)
    assert m.optimizer.iterations == it
    if st is not None:
        np.testing.assert_array_equal(m.optimizer.state, st)


BAD_FIT = [
    ("wrong_features", lambda X, y: (X[:, :3], y), ValueError, r"X has 3 features but layer 'dense'.*expects 4"),
    ("labels_high", lambda X, y: (X, np.where(y == 0, 3, y)), ValueError, r"labels must be in \[0, 3\).*'dense_1'.*found 3"),
    ("labels_negative", lambda X, y: (X, y - 1), ValueError, r"labels must be in \[0, 3\).*found -1"),
    ("labels_fractional", lambda X, y: (X, y + 0.5), ValueError, r"integers"),
    ("nan_X", lambda X, y: (np.where(np.arange(4) == 2, np.nan, X), y), ValueError, r"X contains NaN or inf.*column 2"),
    ("inf_X", lambda X, y: (np.where(np.arange(4) == 1, np.inf, X), y), ValueError, r"NaN or inf"),
    ("nan_y", lambda X, y: (X, np.where(np.arange(20) == 3, np.nan, y.astype(float))), ValueError, r"y contains NaN"),
    ("empty_X", lambda X, y: (X[:0], y[:0]), ValueError, r"empty"),
    ("y_length", lambda X, y: (X, y[:-1]), ValueError, r"y has 19 samples but X has 20"),
    ("X_1d", lambda X, y: (X[:, 0], y), ValueError, r"2-D"),
    ("X_strings", lambda X, y: (np.array([["a"] * 4] * 20), y), TypeError, r"numeric"),
    ("y_2d", lambda X, y: (X, np.eye(3)[y]), ValueError, r"integer class labels of shape"),
]


@pytest.mark.parametrize("case", BAD_FIT, ids=[c[0] for c in BAD_FIT])
def test_bad_fit_input(backend, case):
    _, make, exc, msg = case
    m, X, y = trained(backend)
    snap = snapshot(m)
    Xb, yb = make(X, y)
    with pytest.raises(exc, match=msg):
        m.fit(Xb, yb, epochs=1, verbose=0)
    assert_unchanged(m, snap)


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"epochs": -1}, ValueError, "epochs"), ({"epochs": 1.5}, TypeError, "epochs"),
    ({"batch_size": 0}, ValueError, "batch_size"), ({"validation_split": 1.0}, ValueError, "validation_split"),
    ({"verbose": 5}, ValueError, "verbose"), ({"validation_data": ([1, 2],)}, ValueError, "validation_data"),
    ({"callbacks": ["nope"]}, TypeError, "callbacks"), ({"sample_weight": np.ones(3)}, ValueError, "sample_weight"),
    ({"class_weight": {7: 1.0}}, ValueError, "class_weight"),
])
def test_bad_fit_arguments(backend, kwargs, exc, msg):
    m, X, y = trained(backend)
    snap = snapshot(m)
    with pytest.raises(exc, match=msg):
        m.fit(X, y, **kwargs)
    assert_unchanged(m, snap)


def test_bad_validation_data_is_caught_before_training(backend):
    m, X, y = trained(backend)
    snap = snapshot(m)
    with pytest.raises(ValueError, match=r"validation_data\[1\].*labels"):
        m.fit(X, y, validation_data=(X, y + 10), epochs=1, verbose=0)
    assert_unchanged(m, snap)


def test_predict_and_evaluate_bad_input(backend):
    m, X, y = trained(backend)
    snap = snapshot(m)
    with pytest.raises(ValueError, match="expects 4"):
        m.predict(X[:, :2])
    with pytest.raises(ValueError, match="NaN"):
        m.predict(np.full((2, 4), np.nan))
    with pytest.raises(ValueError, match="empty"):
        m.predict(np.empty((0, 4)))
    with pytest.raises(ValueError, match="labels"):
        m.evaluate(X, y + 3)
    with pytest.raises(ValueError, match="labels"):
        m.gradients(X, y - 5)
    assert_unchanged(m, snap)


def test_fit_before_compile(backend):
    m = fastnet.Sequential([fastnet.Dense(2)], backend=backend, seed=0)
    with pytest.raises(ValueError, match="compile"):
        m.fit(np.ones((3, 2)), np.ones(3))
    assert not m.built
    with pytest.raises(ValueError, match="compile"):
        m.evaluate(np.ones((3, 2)), np.ones(3))


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown activation 'relux'.*relu"):
        fastnet.Dense(3, "relux")
    with pytest.raises(TypeError, match="activation"):
        fastnet.Dense(3, 5)
    m = fastnet.Sequential([fastnet.Dense(2)], seed=0)
    with pytest.raises(ValueError, match="unknown loss 'msee'"):
        m.compile(optimizer="sgd", loss="msee")
    with pytest.raises(ValueError, match="unknown optimizer 'adamx'"):
        m.compile(optimizer="adamx", loss="mse")
    with pytest.raises(ValueError, match="unknown initializer"):
        fastnet.Dense(3, kernel_initializer="glorot")
    with pytest.raises(ValueError, match="backend must be one of"):
        fastnet.Sequential([fastnet.Dense(2)], backend="torch")
    with pytest.raises(ValueError, match="dtype"):
        fastnet.Sequential([fastnet.Dense(2)], dtype="float16")
    with pytest.raises(ValueError, match="units"):
        fastnet.Dense(0)
    with pytest.raises(TypeError, match="units"):
        fastnet.Dense(2.5)
    assert m.loss is None and m.optimizer is None


def test_loss_and_output_activation_mismatch():
    m = fastnet.Sequential([fastnet.Dense(3, "softmax")], seed=0)
    with pytest.raises(ValueError, match=r"from_logits=True\) expects the output layer to produce logits"):
        m.compile(loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
    m = fastnet.Sequential([fastnet.Dense(3)], seed=0)
    with pytest.raises(ValueError, match=r"expects a 'softmax' output layer"):
        m.compile(loss="categorical_crossentropy")
    m = fastnet.Sequential([fastnet.Dense(1, "relu")], seed=0)
    with pytest.raises(ValueError, match=r"'sigmoid' output"):
        m.compile(loss="binary_crossentropy")


def test_set_weights_checks_everything_first(backend):
    m, X, y = trained(backend)
    snap = snapshot(m)
    w = m.get_weights()
    bad_shape = [w[0], w[1], w[2][:, :2], w[3]]
    with pytest.raises(ValueError, match=r"dense_1.kernel must have shape \(5, 3\)"):
        m.set_weights([x * 0 for x in bad_shape])
    with pytest.raises(ValueError, match="expects 4 arrays"):
        m.set_weights(w[:3])
    with pytest.raises(ValueError, match="NaN"):
        m.set_weights([w[0] * 0, w[1], w[2], np.full(3, np.nan)])
    assert_unchanged(m, snap)


def test_optimizer_argument_errors():
    with pytest.raises(ValueError, match="lr"):
        fastnet.SGD(lr=-1)
    with pytest.raises(ValueError, match="betas"):
        fastnet.Adam(betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="Nesterov"):
        fastnet.SGD(0.1, nesterov=True)
    with pytest.raises(TypeError, match="not both"):
        fastnet.Adam(lr=0.1, learning_rate=0.2)
