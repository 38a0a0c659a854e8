"""Derivatives and gradients against central finite differences (float64), on
every backend: each activation, each loss head, and whole-model backprop."""
import numpy as np
import pytest

import fastnet
from fastnet._kernels import defs
from fastnet.backends import get_backend

EPS = 1e-6


def _fd(f, x, eps=EPS):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        fp = f()
        x[i] = old - eps
        fm = f()
        x[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def _away_from_kinks(shape, rng):
    z = 3 * rng.standard_normal(shape)
    z[np.abs(z) < 1e-3] = 0.5
    z[np.abs(z - 6) < 1e-3] = 5.5
    z[np.abs(np.abs(z) - 3) < 1e-3] = 2.5     # hard_sigmoid's kinks
    return z


@pytest.mark.parametrize("act", [a for a in defs.ACTIVATIONS], ids=[a["name"] for a in defs.ACTIVATIONS])
def test_activation_derivative(backend, act):
    be = get_backend(backend)
    rng = np.random.default_rng(act["code"])
    n, m = 4, 5
    Z = _away_from_kinks((n, m), rng)
    if act["name"] == "relu6":
        Z[0, :3] = [5.9, 6.5, 7.0]
    V = rng.standard_normal((n, m))   # a random cotangent: checks the vector-Jacobian product
    empty = np.empty(0)

    def objective():
        A = np.empty_like(Z)
        be.bias_act_forward(empty, act["code"], 0.3, Z.copy(), A, 1)
        return float((A * V).sum())

    A = np.empty_like(Z)
    be.bias_act_forward(empty, act["code"], 0.3, Z.copy(), A, 1)
    dZ = np.empty_like(Z)
    be.act_backward(Z, A, V, act["code"], 0.3, dZ, 1)
    np.testing.assert_allclose(dZ, _fd(objective, Z), rtol=1e-6, atol=1e-8)


def _loss_fd_case(be, kernel, rng):
    n, k = 5, 4
    Z = 2 * rng.standard_normal((n, k))
    sw = rng.random(n)
    scale = 1.0 / n
    labels = rng.integers(0, k, n).astype(np.int64)
    Ysoft = rng.random((n, k))
    Ysoft /= Ysoft.sum(axis=1, keepdims=True)
    if kernel == "softmax_sparse":
        call = lambda Z, P, loss, d: be.softmax_xent(Z, np.empty((0, k)), labels, sw, scale, P, loss, d, 1)  # noqa: E731
    elif kernel == "softmax_dense":
        call = lambda Z, P, loss, d: be.softmax_xent(Z, Ysoft, np.empty(0, np.int64), sw, scale, P, loss, d, 1)  # noqa: E731
    elif kernel == "sigmoid_bce":
        Yb = (rng.random((n, k)) > 0.5).astype(float)
        call = lambda Z, P, loss, d: be.sigmoid_bce(Z, Yb, sw, scale, P, loss, d, 1)  # noqa: E731
    else:
        Yr = rng.standard_normal((n, k))
        fn = be.mse if kernel == "mse" else be.mae
        call = lambda Z, P, loss, d: fn(Z, Yr, sw, scale, loss, d, 1)  # noqa: E731
    return Z, sw, scale, call


@pytest.mark.parametrize("kernel", ["softmax_sparse", "softmax_dense", "sigmoid_bce", "mse", "mae"])
def test_loss_gradient(backend, kernel):
    be = get_backend(backend)
    rng = np.random.default_rng(len(kernel))
    Z, sw, scale, call = _loss_fd_case(be, kernel, rng)

    def objective():
        P, loss, d = np.empty_like(Z), np.empty(Z.shape[0]), np.empty_like(Z)
        call(Z, P, loss, d)
        return float((sw * loss).sum() * scale)

    P, loss, d = np.empty_like(Z), np.empty(Z.shape[0]), np.empty_like(Z)
    call(Z, P, loss, d)
    np.testing.assert_allclose(d, _fd(objective, Z), rtol=1e-6, atol=1e-9)


MODEL_CASES = [
    ("sparse_logits", ["relu", "tanh", None], fastnet.SparseCategoricalCrossentropy(from_logits=True)),
    ("sparse_softmax", ["sigmoid", "softmax"], fastnet.SparseCategoricalCrossentropy()),
    ("categorical", ["elu", "swish", "softmax"], fastnet.CategoricalCrossentropy()),
    ("binary_logits", ["leaky_relu", None], fastnet.BinaryCrossentropy(from_logits=True)),
    ("multilabel", ["tanh", "sigmoid"], fastnet.BinaryCrossentropy()),
    ("mse_sigmoid", ["sigmoid", "sigmoid"], "mse"),
    ("mse_softmax", ["relu6", "softmax"], "mse"),
    ("mae_linear", ["swish", None], "mae"),
]


@pytest.mark.parametrize("case", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
@pytest.mark.parametrize("regularized", [False, True])
def test_model_gradients_match_finite_differences(backend, case, regularized):
    """model.gradients (O(N+P) backprop) equals naive central differences of
    model.evaluate's loss (O(N x P) forward passes)."""
    name, acts, loss = case
    rng = np.random.default_rng(len(name))
    n, d, k = 7, 4, 3
    widths = [5] * (len(acts) - 1) + [k]
    reg = fastnet.L1L2(l1=0.01, l2=0.02) if regularized else None
    model = fastnet.Sequential([fastnet.Dense(w, a, kernel_regularizer=reg) for w, a in zip(widths, acts)],
                               backend=backend, dtype="float64", seed=3)
    model.compile(optimizer="sgd", loss=loss)
    X = rng.standard_normal((n, d))
    if name.startswith("sparse"):
        y = rng.integers(0, k, n)
    elif name == "categorical":
        y = np.eye(k)[rng.integers(0, k, n)]
    elif name in ("binary_logits", "multilabel"):
        y = (rng.random((n, k)) > 0.5).astype(float)
    else:
        y = rng.random((n, k))
    sw = rng.random(n) + 0.5
    model.build(d)
    weights = model.get_weights()
    grads = model.gradients(X, y, sample_weight=sw)

    fd = []
    for i, w in enumerate(weights):
        def objective(i=i, w=w):
            model.set_weights(weights[:i] + [w] + weights[i + 1:])
            return model.evaluate(X, y, sample_weight=sw, return_dict=True)["loss"]
        fd.append(_fd(objective, w))
    model.set_weights(weights)
    for g, f in zip(grads, fd):
        np.testing.assert_allclose(g, f, rtol=1e-5, atol=1e-7)
