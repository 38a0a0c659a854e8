"""Training toolkit on every backend: regularization, dropout, gradcheck,
early stopping with restored weights, multi-label, weights."""
import numpy as np
import pytest

import fastnet


def small_problem(seed=0, n=12, d=5, k=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, k, n)


@pytest.mark.parametrize("reg", [fastnet.L1(0.01), fastnet.L2(0.02), fastnet.L1L2(0.01, 0.03)])
@pytest.mark.parametrize("rate", [0.0, 0.4])
def test_gradcheck_regularized_and_dropout(backend, reg, rate):
    X, y = small_problem()
    layers = [fastnet.Dense(6, "tanh", kernel_regularizer=reg)]
    if rate:
        layers.append(fastnet.Dropout(rate))
    # random biases: a row whose inputs are all dropped must not sit on the relu kink z = 0
    layers += [fastnet.Dense(5, "relu", kernel_regularizer=reg, bias_initializer="random_normal"),
               fastnet.Dense(3)]
    m = fastnet.Sequential(layers, backend=backend, seed=1)
    m.compile(optimizer="adam", loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
    errs = fastnet.gradcheck(m, X, y)
    assert len(errs) == len(m.get_weights()) == 6
    assert max(errs) < 1e-6, errs


def test_gradcheck_detects_a_wrong_gradient(monkeypatch):
    X, y = small_problem()
    m = fastnet.Sequential([fastnet.Dense(4, "sigmoid"), fastnet.Dense(3)], backend="numpy", seed=1)
    m.compile(optimizer="sgd", loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
    import fastnet.backends.numpy_ref as ref
    real = ref._act_grad

    def wrong(z, a, da, act, alpha):  # sigmoid' = a (1 - a) deliberately broken
        g = real(z, a, da, act, alpha)
        return g * 1.01 if act == 1 else g
    monkeypatch.setattr(ref, "_act_grad", wrong)
    errs = fastnet.gradcheck(m, X, y)
    assert errs[0] > 1e-3 and errs[1] > 1e-3


def test_regularization_penalty_in_reported_loss(backend):
    X, y = small_problem(n=30)
    reg = fastnet.L1L2(0.01, 0.05)
    m = fastnet.Sequential([fastnet.Dense(4, "relu", kernel_regularizer=reg), fastnet.Dense(3)],
                           backend=backend, seed=0, dtype="float64")
    m.compile(optimizer="sgd", loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
    m.build(5)
    W0 = m.get_weights()[0]
    data = fastnet.SparseCategoricalCrossentropy(from_logits=True)(y, m.predict(X))
    assert m.evaluate(X, y, return_dict=True)["loss"] == pytest.approx(data + reg(W0), rel=1e-10)
    h = m.fit(X, y, batch_size=30, epochs=1, shuffle=False, verbose=0)
    assert h.history["loss"][0] == pytest.approx(data + reg(W0), rel=1e-10)


def test_l2_gradient_is_2lW_and_biases_not_regularized(backend):
    X, y = small_problem()
    plain = fastnet.Sequential([fastnet.Dense(3)], backend=backend, seed=0, dtype="float64")
    reg = fastnet.Sequential([fastnet.Dense(3, kernel_regularizer=fastnet.L2(0.1))], backend=backend, seed=0,
                             dtype="float64")
    for m in (plain, reg):
        m.compile(optimizer="sgd", loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
    gp, gr = plain.gradients(X, y), reg.gradients(X, y)
    W = plain.get_weights()[0]
    np.testing.assert_allclose(gr[0] - gp[0], 2 * 0.1 * W, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(gr[1], gp[1], rtol=1e-12)


def test_early_stopping_restores_best_weights_when_epoch_limit_comes_first(backend):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4))
    y = (X[:, 0] > 0).astype(int)
    Xv = rng.standard_normal((40, 4))
    yv = rng.integers(0, 2, 40)            # noise: val_loss wanders
    per_epoch = []

    class Record(fastnet.Callback):
        def on_epoch_end(self, epoch, logs=None):
            per_epoch.append(self.model.get_weights())

    m = fastnet.Sequential([fastnet.Dense(8, "relu"), fastnet.Dense(2)], backend=backend, seed=3)
    m.compile(optimizer=fastnet.Adam(0.05), loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
    es = fastnet.EarlyStopping(monitor="val_loss", patience=100, restore_best_weights=True)
    h = m.fit(X, y, epochs=8, validation_data=(Xv, yv), callbacks=[Record(), es], verbose=0)
    vl = h.history["val_loss"]
    assert len(vl) == 8
    best = int(np.argmin(vl))
    assert best != 7, "pick a case whose best epoch is not the last"
    for a, b in zip(m.get_weights(), per_epoch[best]):
        np.testing.assert_array_equal(a, b)


def test_multilabel_sigmoid_bce_with_metrics(backend):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 6))
    Y = np.stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] < -0.5], axis=1).astype(float)
    m = fastnet.Sequential([fastnet.Dense(16, "relu"), fastnet.Dense(3, "sigmoid")], backend=backend, seed=0)
    m.compile(optimizer=fastnet.Adam(0.02), loss="binary_crossentropy", metrics=["accuracy", "auc"])
    h = m.fit(X, Y, epochs=30, batch_size=20, verbose=0)
    assert h.history["loss"][-1] < 0.5 * h.history["loss"][0]
    P = m.predict(X)
    pred = (P > 0.5).astype(float)
    assert (pred == Y).mean() > 0.9
    res = m.evaluate(X, Y, return_dict=True)
    assert res["auc"] > 0.95


def test_predict_labels(backend):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10, 3))
    ml = fastnet.Sequential([fastnet.Dense(4, "sigmoid")], backend=backend, seed=0)
    P = ml.predict(X)
    np.testing.assert_array_equal(ml.predict_labels(X), (P > 0.5).astype(int))
    np.testing.assert_array_equal(ml.predict_labels(X, threshold=0.7), (P > 0.7).astype(int))
    logits = fastnet.Sequential([fastnet.Dense(1)], backend=backend, seed=0)
    logits.compile(loss=fastnet.BinaryCrossentropy(from_logits=True))
    np.testing.assert_array_equal(logits.predict_labels(X), (logits.predict(X)[:, 0] > 0).astype(int))
    mc = fastnet.Sequential([fastnet.Dense(5)], backend=backend, seed=0)
    np.testing.assert_array_equal(mc.predict_labels(X), np.argmax(mc.predict(X), axis=1))
    with pytest.raises(ValueError, match="threshold"):
        mc.predict_labels(X, threshold=2)


def test_checkpoint_and_csv_logger_integration(backend, tmp_path):
    X, y = small_problem(n=40)
    m = fastnet.Sequential([fastnet.Dense(6, "relu"), fastnet.Dense(3)], backend=backend, seed=0)
    m.compile(optimizer=fastnet.Adam(0.05), loss=fastnet.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
    ck = fastnet.ModelCheckpoint(str(tmp_path / "w-{epoch:02d}.npz"), monitor="loss", save_best_only=False)
    log = fastnet.CSVLogger(str(tmp_path / "log.csv"))
    h = m.fit(X, y, epochs=3, verbose=0, callbacks=[ck, log])
    assert sorted(p.name for p in tmp_path.glob("w-*.npz")) == ["w-01.npz", "w-02.npz", "w-03.npz"]
    m2 = fastnet.Sequential([fastnet.Dense(6, "relu"), fastnet.Dense(3)], backend=backend, seed=99)
    m2.build(5)
    m2.load_weights(str(tmp_path / "w-03.npz"))
    for a, b in zip(m.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    rows = (tmp_path / "log.csv").read_text().strip().splitlines()
    assert rows[0].split(",")[0] == "epoch" and len(rows) == 4
    assert float(rows[-1].split(",")[rows[0].split(",").index("loss")]) == pytest.approx(h.history["loss"][-1])


def test_learning_rate_scheduler_changes_updates(backend):
    X, y = small_problem(n=20)

    def run(cbs):
        m = fastnet.Sequential([fastnet.Dense(3)], backend=backend, seed=0, dtype="float64")
        m.compile(optimizer=fastnet.SGD(0.1), loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
        h = m.fit(X, y, epochs=3, batch_size=20, shuffle=False, verbose=0, callbacks=cbs)
        return m, h
    frozen, h = run([fastnet.LearningRateScheduler(lambda epoch, lr: 0.0)])
    m0 = fastnet.Sequential([fastnet.Dense(3)], backend=backend, seed=0, dtype="float64")
    m0.build(5)
    for a, b in zip(frozen.get_weights(), m0.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert h.history["learning_rate"] == [0.0, 0.0, 0.0]
