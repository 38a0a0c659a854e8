"""Worked examples from the course material, on every backend (float64)."""
import numpy as np
import pytest

import fastnet


def test_computation_graph(backend):
    """a = w x + b, J = (a - y)^2 with x = -2, y = 2, w = 2, b = 8.

    The course uses J = 1/2 (a - y)^2: J = 2, dJ/dw = -4, dJ/db = 2.  fastnet's MSE
    has no 1/2, so J = 4 and the gradients double: -8 and 4."""
    model = fastnet.Sequential([fastnet.Dense(1, input_dim=1)], backend=backend, dtype="float64", seed=0)
    model.compile(optimizer="sgd", loss="mse")
    model.build(1)
    model.set_weights([np.array([[2.0]]), np.array([8.0])])
    X, y = np.array([[-2.0]]), np.array([2.0])
    assert model.predict(X)[0, 0] == pytest.approx(4.0)  # a = 2 * -2 + 8
    assert model.evaluate(X, y, return_dict=True)["loss"] == pytest.approx(4.0)
    gW, gb = model.gradients(X, y)
    assert gW[0, 0] == pytest.approx(-8.0)
    assert gb[0] == pytest.approx(4.0)


def _tanh_net(backend, layers=3):
    weights = [np.array([[0.3, 0.4]]), np.array([0.1, 0.2]),
               np.array([[1.0], [-3.0]]), np.array([0.2]),
               np.array([[2.0]]), np.array([1.0])]
    acts = ["tanh"] * layers
    sizes = [2, 1, 1][:layers]
    model = fastnet.Sequential([fastnet.Dense(u, a) for u, a in zip(sizes, acts)],
                               backend=backend, dtype="float64", seed=0)
    model.build(1)
    model.set_weights(weights[:2 * layers])
    return model


def test_backprop_1_2_1_1_tanh_network(backend):
    """x = 2, t = 1, tanh everywhere, E = 1/2 (y - t)^2 in the course.

    Forward: u1 = [0.7, 1.0], u2 = -1.48, output ~ -0.66.  Deltas: d3 ~ -0.927,
    d2 ~ -0.347, d1 ~ [-0.220, 0.438].  Gradients (rounded in the source):
    dE/db1 ~ [-0.22, 0.44], dE/dW1 ~ [[-0.44, 0.88]], dE/dW2 ~ [[-0.21], [-0.26]],
    dE/db2 ~ [-0.35], dE/dW3 ~ [[0.84]], dE/db3 ~ [-0.93].  fastnet's MSE has no
    1/2, so its gradients are twice these."""
    X, t = np.array([[2.0]]), np.array([1.0])
    # forward values, read off sub-networks with a linear last layer
    first = fastnet.Sequential([fastnet.Dense(2)], backend=backend, dtype="float64")
    first.build(1)
    first.set_weights([np.array([[0.3, 0.4]]), np.array([0.1, 0.2])])
    np.testing.assert_allclose(first.predict(X)[0], [0.7, 1.0], atol=1e-12)
    second = fastnet.Sequential([fastnet.Dense(2, "tanh"), fastnet.Dense(1)], backend=backend, dtype="float64")
    second.build(1)
    second.set_weights([np.array([[0.3, 0.4]]), np.array([0.1, 0.2]), np.array([[1.0], [-3.0]]),
                        np.array([0.2])])
    assert second.predict(X)[0, 0] == pytest.approx(-1.48, abs=0.005)

    model = _tanh_net(backend)
    model.compile(optimizer="sgd", loss="mse")
    out = model.predict(X)[0, 0]
    assert out == pytest.approx(-0.66, abs=0.01)     # the source truncates -0.6658 to -0.66
    assert out == pytest.approx(np.tanh(2 * np.tanh(-1.48) + 1), abs=0.002)
    gW1, gb1, gW2, gb2, gW3, gb3 = [g / 2 for g in model.gradients(X, t)]  # back to E = 1/2 (y - t)^2
    # deltas are the bias gradients
    assert gb3[0] == pytest.approx(-0.927, abs=0.0005)
    assert gb2[0] == pytest.approx(-0.347, abs=0.0005)
    np.testing.assert_allclose(gb1, [-0.220, 0.438], atol=0.0005)
    # gradients as rounded in the source
    np.testing.assert_allclose(gb1, [-0.22, 0.44], atol=0.005)
    np.testing.assert_allclose(gW1, [[-0.44, 0.88]], atol=0.005)
    np.testing.assert_allclose(gW2, [[-0.21], [-0.26]], atol=0.005)
    np.testing.assert_allclose(gb2, [-0.35], atol=0.005)
    np.testing.assert_allclose(gW3, [[0.84]], atol=0.005)
    np.testing.assert_allclose(gb3, [-0.93], atol=0.005)
    # and the loss itself: E = (y - t)^2 without the 1/2
    assert model.evaluate(X, t, return_dict=True)["loss"] == pytest.approx((out - 1.0) ** 2, rel=1e-12)
