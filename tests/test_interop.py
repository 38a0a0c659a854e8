"""fastnet.interop: PyTorch and scikit-learn models in and out (issue 20, section 5)."""
import warnings

import numpy as np
import pytest

import fastnet
from fastnet import interop


def _X(n=40, d=6, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(dtype)


# ------------------------------------------------------------------ PyTorch
def _torch_net(torch, dtype):
    nn = torch.nn
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 9), nn.ReLU(), nn.Linear(9, 8), nn.Tanh(), nn.Dropout(0.2),
                         nn.Linear(8, 7, bias=False), nn.LeakyReLU(0.1), nn.Linear(7, 7), nn.PReLU(7),
                         nn.Linear(7, 5), nn.ELU(0.7), nn.Linear(5, 5), nn.SiLU(), nn.Linear(5, 4),
                         nn.Sigmoid(), nn.Linear(4, 4), nn.ReLU6(), nn.Linear(4, 3), nn.Softmax(dim=-1)).to(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_from_torch_and_back(backend, dtype):
    torch = pytest.importorskip("torch")
    tdtype = getattr(torch, dtype)
    net = _torch_net(torch, tdtype).eval()
    X = _X(dtype=dtype)
    with torch.no_grad():
        want = net(torch.from_numpy(X)).numpy()
    m = interop.from_torch(net, backend=backend, seed=0)
    assert m.dtype == np.dtype(dtype) and m.built
    tol = 1e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(m.predict(X), want, rtol=tol, atol=tol)
    # a square layer: the kernel is the transpose of torch's weight
    np.testing.assert_array_equal(m.layers[4].get_weights()[0], net[7].weight.detach().numpy().T)
    back = interop.to_torch(m)
    assert not back.training
    with torch.no_grad():
        again = back(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(again, m.predict(X), rtol=tol, atol=tol)
    assert [type(a).__name__ for a in back] == [type(a).__name__ for a in net]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_keras_activations_from_torch_and_back(backend, dtype):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(6, 8), nn.GELU(), nn.Linear(8, 8), nn.GELU(approximate="tanh"),
                        nn.Linear(8, 7), nn.Softplus(), nn.Linear(7, 7), nn.Softsign(), nn.Linear(7, 6),
                        nn.SELU(), nn.Linear(6, 5), nn.Hardsigmoid(), nn.Linear(5, 3)).to(getattr(torch, dtype)).eval()
    X = 3 * _X(dtype=dtype)
    with torch.no_grad():
        want = net(torch.from_numpy(X)).numpy()
    m = interop.from_torch(net, backend=backend, seed=0)
    tol = 1e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(m.predict(X), want, rtol=tol, atol=tol)
    back = interop.to_torch(m)
    assert [type(a).__name__ for a in back] == [type(a).__name__ for a in net]
    assert back[3].approximate == "tanh" and back[1].approximate == "none"
    with pytest.raises(ValueError, match="Softplus"):
        interop.from_torch(nn.Sequential(nn.Linear(2, 2), nn.Softplus(beta=2.0)))


def test_to_torch_of_a_trained_model(backend):
    torch = pytest.importorskip("torch")
    X = _X()
    y = (X[:, 0] > 0).astype(np.int64)
    m = fastnet.Sequential([fastnet.Input((6,)), fastnet.Dense(8, "relu"), fastnet.Dense(8), fastnet.PReLU(),
                            fastnet.Dense(2)], backend=backend, seed=1)
    m.compile(fastnet.Adam(0.01), fastnet.SparseCategoricalCrossentropy(from_logits=True))
    m.fit(X, y, epochs=3, verbose=0)
    net = interop.to_torch(m)
    with torch.no_grad():
        out = net(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(out, m(X), rtol=1e-6, atol=1e-6)


def test_torch_bad_input():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    cases = [(nn.Sequential(nn.ReLU(), nn.Linear(3, 2)), "before the first Linear"),
             (nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Tanh()), "directly"),
             (nn.Sequential(nn.Linear(3, 2), nn.Linear(4, 2)), "takes 4 inputs"),
             (nn.Sequential(nn.Linear(3, 2), nn.Hardswish()), "not supported"),
             (nn.Sequential(nn.Linear(3, 2), nn.Softmax(dim=0)), "dim"),
             (nn.Sequential(), "no Linear")]
    for net, msg in cases:
        with pytest.raises(ValueError, match=msg):
            interop.from_torch(net, backend="numpy")
    with pytest.raises(TypeError, match="nn.Sequential"):
        interop.from_torch(nn.Linear(3, 2))
    with pytest.raises(TypeError, match="Sequential"):
        interop.to_torch(nn.Linear(3, 2))
    unbuilt = fastnet.Sequential([fastnet.Dense(2)], backend="numpy")
    with pytest.raises(ValueError, match="not built"):
        interop.to_torch(unbuilt)
    maxout = fastnet.Sequential([fastnet.Input((3,)), fastnet.Maxout(2), fastnet.Dense(1)], backend="numpy")
    with pytest.raises(ValueError, match="Maxout"):
        interop.to_torch(maxout)
    step = fastnet.Sequential([fastnet.Input((3,)), fastnet.Dense(1, "step")], backend="numpy")
    with pytest.raises(ValueError, match="step"):
        interop.to_torch(step)


# ------------------------------------------------------------- scikit-learn
def _fit_sk(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # ConvergenceWarning: a few iterations are enough here
        return est.fit(X, y)


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
def test_from_sklearn_classifier(backend, activation):
    nn_sk = pytest.importorskip("sklearn.neural_network")
    X = _X(n=80, dtype=np.float64)
    y = np.array(["a", "b", "c"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)]
    clf = _fit_sk(nn_sk.MLPClassifier(hidden_layer_sizes=(7, 5), activation=activation, max_iter=30, random_state=0), X, y)
    m = interop.from_sklearn(clf, backend=backend)
    P = m.predict(X)
    np.testing.assert_allclose(P, clf.predict_proba(X), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(clf.classes_[m.predict_labels(X)], clf.predict(X))
    # compiled with the matching loss: integer targets are positions in classes_
    codes = np.searchsorted(clf.classes_, y)
    assert m.evaluate(X, codes) == pytest.approx(-np.mean(np.log(P[np.arange(80), codes])), rel=1e-9)


def test_from_sklearn_binary_multilabel_regressor(backend):
    nn_sk = pytest.importorskip("sklearn.neural_network")
    X = _X(n=60, dtype=np.float64)
    yb = (X[:, 0] + X[:, 2] > 0).astype(int)
    clf = _fit_sk(nn_sk.MLPClassifier(hidden_layer_sizes=(5,), max_iter=30, random_state=0), X, yb)
    m = interop.from_sklearn(clf, backend=backend)
    assert m.output_dim == 1
    np.testing.assert_allclose(m.predict(X)[:, 0], clf.predict_proba(X)[:, 1], rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(m.predict_labels(X), clf.predict(X))
    Y = np.stack([yb, X[:, 1] > 0], axis=1).astype(int)
    ml = _fit_sk(nn_sk.MLPClassifier(hidden_layer_sizes=(5,), max_iter=30, random_state=0), X, Y)
    np.testing.assert_allclose(interop.from_sklearn(ml, backend=backend).predict(X), ml.predict_proba(X),
                               rtol=1e-10, atol=1e-12)
    reg = _fit_sk(nn_sk.MLPRegressor(hidden_layer_sizes=(6, 4), activation="tanh", max_iter=30, random_state=0), X, X[:, 0] * 2)
    r = interop.from_sklearn(reg, backend=backend)
    np.testing.assert_allclose(r.predict(X)[:, 0], reg.predict(X), rtol=1e-10, atol=1e-12)
    reg32 = _fit_sk(nn_sk.MLPRegressor(hidden_layer_sizes=(4,), max_iter=20, random_state=0), X.astype(np.float32),
                    X[:, :2].astype(np.float32))
    r32 = interop.from_sklearn(reg32, backend=backend)
    assert r32.dtype == np.float32
    np.testing.assert_allclose(r32.predict(X.astype(np.float32)), reg32.predict(X.astype(np.float32)),
                               rtol=1e-5, atol=1e-6)


def test_from_sklearn_bad_input():
    nn_sk = pytest.importorskip("sklearn.neural_network")
    with pytest.raises(ValueError, match="fitted"):
        interop.from_sklearn(nn_sk.MLPClassifier())
    with pytest.raises(ValueError, match="fitted"):
        interop.from_sklearn(object())
    X = _X(n=30, dtype=np.float64)
    clf = _fit_sk(nn_sk.MLPClassifier(hidden_layer_sizes=(3,), max_iter=5, random_state=0), X, X[:, 0] > 0)
    clf.activation = "gelu"
    with pytest.raises(ValueError, match="gelu"):
        interop.from_sklearn(clf)
