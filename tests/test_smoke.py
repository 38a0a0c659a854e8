"""Smoke subset: what a user's first minutes exercise, on every backend.

CI runs this file alone against an installed wheel in a fresh virtual
environment with no C compiler (``.ci/run``, and cibuildwheel's test-command),
so it must not need anything but the package and pytest.  Under
``FASTNET_REQUIRE_INSTALLED`` every backend must be there: a wheel whose Cython
kernels or numba backend do not load fails here.
"""
import os

import numpy as np
import pytest

import fastnet

from conftest import BACKENDS


@pytest.fixture(scope="module")
def data():
    X, y = fastnet.datasets.load_digits(as_float=True)
    return X[:400].astype(np.float32), y[:400]


def _model(backend):
    model = fastnet.Sequential([fastnet.Dense(16, activation="relu"), fastnet.Dense(10)],
                               backend=backend, seed=3)
    model.compile(optimizer=fastnet.Adam(learning_rate=1e-2),
                  loss=fastnet.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


@pytest.mark.skipif(not os.environ.get("FASTNET_REQUIRE_INSTALLED"), reason="only in CI (.ci/run)")
def test_every_backend_is_available():
    assert fastnet.backend_status() == {"numpy": None, "numba": None, "cython": None}


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_gradients_fit_save_load(backend, data, tmp_path):
    X, y = data
    ref, model = _model("numpy"), _model(backend)
    ref.build(X.shape[1])
    model.build(X.shape[1])
    for a, b in zip(ref.get_weights(), model.get_weights()):
        assert a.tobytes() == b.tobytes()  # same seed, same initial weights on every backend
    np.testing.assert_allclose(model.predict(X), ref.predict(X), rtol=1e-5, atol=1e-5)
    for g, r in zip(model.gradients(X, y), ref.gradients(X, y)):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-6)

    hist = model.fit(X, y, epochs=5, batch_size=32, verbose=0)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    assert hist.history["accuracy"][-1] > 0.85
    again = _model(backend).fit(X, y, epochs=5, batch_size=32, verbose=0)
    assert again.history["loss"] == hist.history["loss"]  # same seed, same bits

    path = tmp_path / "w.npz"
    model.save_weights(path)
    fresh = _model(backend)
    fresh.build(X.shape[1])
    fresh.load_weights(path)
    assert fresh.predict(X).tobytes() == model.predict(X).tobytes()
