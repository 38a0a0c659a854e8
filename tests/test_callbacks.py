"""Tests for fastnet.callbacks, driven by a fake model and a fake fit loop."""

import csv
import io
import math
import os

import numpy as np
import pytest

from fastnet.callbacks import (
    Callback,
    CallbackList,
    CSVLogger,
    EarlyStopping,
    History,
    LearningRateScheduler,
    ModelCheckpoint,
    ProgbarLogger,
    ReduceLROnPlateau,
    TerminateOnNaN,
    configure_callbacks,
)


# ---------------------------------------------------------------------------
# Fakes
# ---------------------------------------------------------------------------


class FakeOptimizer:
    def __init__(self, learning_rate=0.1):
        self._lr = float(learning_rate)

    @property
    def learning_rate(self):
        return self._lr

    @learning_rate.setter
    def learning_rate(self, value):
        self._lr = float(value)


class FakeModel:
    """Exactly the interface callbacks may rely on (no ``save``)."""

    def __init__(self, learning_rate=0.1):
        self.stop_training = False
        self.optimizer = FakeOptimizer(learning_rate)
        self._weights = [np.zeros(3), np.zeros((2, 2))]
        self.saved = []
        self.set_weights_calls = 0
        self.lr_used = []

    def get_weights(self):
        return [w.copy() for w in self._weights]

    def set_weights(self, weights):
        self.set_weights_calls += 1
        self._weights = [np.array(w, copy=True) for w in weights]

    def save_weights(self, path):
        with open(path, "wb") as f:
            np.savez(f, *self._weights)
        self.saved.append(os.fspath(path))

    # -- used by the fake fit loop only --
    def train_one_epoch(self, epoch):
        self.lr_used.append(self.optimizer.learning_rate)
        self._weights = [np.full(3, float(epoch)), np.full((2, 2), float(epoch))]

    @property
    def weights_epoch(self):
        """Which epoch produced the current weights."""
        return int(self._weights[0][0])


class FakeModelWithSave(FakeModel):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.full_saves = []

    def save(self, path):
        with open(path, "wb") as f:
            f.write(b"model")
        self.full_saves.append(os.fspath(path))


class FakeStream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self._tty = tty

    def isatty(self):
        return self._tty


class FakeClock:
    def __init__(self, t=0.0):
        self.t = t

    def __call__(self):
        return self.t


def run_fit(model, script, epochs=None, callbacks=None, verbose=0, steps=4, batch_updates=None):
    """Mimic fit's call order.

    ``script``: per-epoch logs dicts.  ``batch_updates(epoch)`` may return a
    list of ``(batch, logs)`` progress updates sent before ``on_epoch_end``.
    Returns ``(history, callback_list, epochs_run)``.
    """
    epochs = len(script) if epochs is None else epochs
    cbks = configure_callbacks(callbacks, model, verbose, epochs, steps, steps * 32)
    model.stop_training = False
    cbks.on_train_begin()
    epochs_run = 0
    logs = None
    for epoch in range(epochs):
        cbks.on_epoch_begin(epoch)
        model.train_one_epoch(epoch)
        if batch_updates is not None:
            for batch, blogs in batch_updates(epoch):
                cbks.on_train_batch_end(batch, dict(blogs))
        logs = dict(script[epoch])
        cbks.on_epoch_end(epoch, logs)
        epochs_run += 1
        if model.stop_training:
            break
    cbks.on_train_end(logs)
    return cbks.history, cbks, epochs_run


def val_losses(*values):
    return [{"loss": v + 0.1, "val_loss": v} for v in values]


# ---------------------------------------------------------------------------
# Base, CallbackList, configure_callbacks, History
# ---------------------------------------------------------------------------


def test_base_callback_hooks_and_aliases():
    calls = []

    class Legacy(Callback):
        def on_batch_end(self, batch, logs=None):
            calls.append(("end", batch, logs))

        def on_batch_begin(self, batch, logs=None):
            calls.append(("begin", batch, logs))

    cb = Legacy()
    assert cb.model is None and cb.params is None
    model = FakeModel()
    cb.set_model(model)
    cb.set_params({"epochs": 3})
    assert cb.model is model and cb.params == {"epochs": 3}
    cb.on_train_batch_begin(0, {})
    cb.on_train_batch_end(0, {"loss": 1.0})
    assert calls == [("begin", 0, {}), ("end", 0, {"loss": 1.0})]
    base = Callback()
    for hook in ("on_train_begin", "on_train_end", "on_test_begin", "on_predict_end"):
        assert getattr(base, hook)({}) is None
    assert base.on_epoch_begin(0) is None and base.on_epoch_end(0, {}) is None


def test_configure_callbacks_order_params_and_history():
    user = Callback()
    model = FakeModel()
    cbks = configure_callbacks([user], model, verbose=1, epochs=5, steps=7, samples=200)
    assert isinstance(cbks, CallbackList)
    assert cbks.callbacks[0] is user
    assert isinstance(cbks.callbacks[1], History)
    assert isinstance(cbks.callbacks[-1], ProgbarLogger)
    assert cbks.history is cbks.callbacks[1]
    params = {"epochs": 5, "steps": 7, "verbose": 1, "samples": 200}
    for cb in cbks.callbacks:
        assert cb.model is model
        assert cb.params == params
    assert cbks.callbacks[-1].verbose == 1

    # verbose=0: no progress logger; None and a single callback accepted.
    assert not any(
        isinstance(c, ProgbarLogger)
        for c in configure_callbacks(None, model, 0, 1, 1, 1).callbacks
    )
    assert configure_callbacks(user, model, 0, 1, 1, 1).callbacks[0] is user

    # A user-supplied History / ProgbarLogger is reused, not duplicated.
    hist, bar = History(), ProgbarLogger(2, stream=io.StringIO())
    cbks = configure_callbacks([hist, bar], model, 1, 1, 1, 1)
    assert cbks.history is hist and cbks.callbacks == [hist, bar]
    assert bar.verbose == 2  # explicit verbose wins over params


def test_configure_callbacks_rejects_non_callbacks():
    with pytest.raises(TypeError, match=r"callbacks\[1\].*'oops'.*str"):
        configure_callbacks([Callback(), "oops"], FakeModel(), 0, 1, 1, 1)
    with pytest.raises(TypeError, match="EarlyStopping"):
        # the class instead of an instance
        configure_callbacks([EarlyStopping], FakeModel(), 0, 1, 1, 1)
    with pytest.raises(TypeError):
        configure_callbacks(42, FakeModel(), 0, 1, 1, 1)


def test_history_records_epoch_logs():
    script = [{"loss": 1.0, "val_loss": 1.5}, {"loss": 0.5, "val_loss": 0.7}]
    history, _, _ = run_fit(FakeModel(), script)
    assert history.history == {"loss": [1.0, 0.5], "val_loss": [1.5, 0.7]}
    assert history.epoch == [0, 1]
    assert history.params["epochs"] == 2
    assert isinstance(history.model, FakeModel)


def test_history_sees_keys_added_by_user_callbacks():
    # As in Keras 3, History runs after user callbacks, so the learning rate
    # they add to the logs is recorded.
    sched = LearningRateScheduler(lambda epoch, lr: lr * 0.5)
    history, _, _ = run_fit(FakeModel(0.1), val_losses(1, 1, 1), callbacks=[sched])
    assert history.history["learning_rate"] == pytest.approx([0.05, 0.025, 0.0125])


def test_callbacklist_shares_logs_and_dispatches_in_order():
    seen = []

    class Adder(Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["extra"] = 1.0

    class Reader(Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(dict(logs))

    cbl = CallbackList([Adder(), Reader()], model=FakeModel(), params={"epochs": 1})
    cbl.on_epoch_end(0, {"loss": 2.0})
    assert seen == [{"loss": 2.0, "extra": 1.0}]
    assert len(cbl) == 2 and cbl.history is None


def test_user_callback_can_stop_training():
    events = []

    class StopAtTwo(Callback):
        def on_train_begin(self, logs=None):
            events.append("begin")

        def on_epoch_end(self, epoch, logs=None):
            events.append(epoch)
            if epoch == 1:
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            events.append("end")

    history, _, n = run_fit(FakeModel(), val_losses(5, 4, 3, 2, 1), callbacks=[StopAtTwo()])
    assert n == 2
    assert events == ["begin", 0, 1, "end"]
    assert history.epoch == [0, 1]


# ---------------------------------------------------------------------------
# EarlyStopping
# ---------------------------------------------------------------------------


def _stop(values, **kwargs):
    es = EarlyStopping(**kwargs)
    model = FakeModel()
    script = [{"loss": 1.0, "val_loss": v, "val_accuracy": v} for v in values]
    _, _, n = run_fit(model, script, callbacks=[es])
    return es, model, n


def test_early_stopping_patience_zero():
    es, model, n = _stop([1.0, 0.9, 0.95, 0.8, 0.7])
    assert n == 3 and es.stopped_epoch == 2 and model.stop_training
    assert es.best == 0.9 and es.best_epoch == 1


def test_early_stopping_patience_two():
    es, _, n = _stop([1.0, 0.9, 0.95, 0.96, 0.5], patience=2)
    assert n == 4 and es.stopped_epoch == 3
    # An improvement resets the wait counter.
    es, _, n = _stop([1.0, 0.9, 0.95, 0.85, 0.9, 0.91, 0.1], patience=2)
    assert n == 6 and es.stopped_epoch == 5 and es.best == 0.85


def test_early_stopping_runs_to_the_end_without_stalling():
    es, model, n = _stop([5, 4, 3, 2, 1], patience=0)
    assert n == 5 and es.stopped_epoch == 0 and not model.stop_training


def test_early_stopping_min_delta():
    es, _, n = _stop([1.0, 0.95, 0.85, 0.8], min_delta=-0.1)  # sign ignored
    assert es.min_delta == pytest.approx(-0.1)  # negated for "min" mode
    assert n == 2 and es.stopped_epoch == 1
    _, _, n = _stop([1.0, 0.95, 0.85, 0.8])
    assert n == 4


def test_early_stopping_mode_max_and_auto():
    es, _, n = _stop([0.5, 0.6, 0.55, 0.7], monitor="val_accuracy")
    assert es.mode == "max" and n == 3 and es.best == 0.6
    es, _, n = _stop([0.5, 0.6, 0.55, 0.7], monitor="val_loss", mode="max")
    assert n == 3
    es, _, n = _stop([0.5, 0.6, 0.55, 0.7], monitor="val_accuracy", mode="max", min_delta=0.2)
    assert es.min_delta == pytest.approx(0.2) and n == 2
    for name in ("val_auc", "precision", "val_recall", "f1_score", "specificity", "acc"):
        assert EarlyStopping(monitor=name).mode == "max", name
    for name in ("loss", "val_loss", "val_mse", "mean_absolute_error"):
        assert EarlyStopping(monitor=name).mode == "min", name
    with pytest.warns(UserWarning, match="unknown"):
        assert EarlyStopping(monitor="val_accuracy", mode="bogus").mode == "max"


def test_early_stopping_baseline():
    # Never beating the baseline: wait is not reset by the first "improvement".
    es, _, n = _stop([0.8, 0.9, 0.85, 0.7, 0.6], patience=2, baseline=0.5)
    assert n == 2 and es.stopped_epoch == 1
    _, _, n = _stop([0.8, 0.9, 0.85, 0.7, 0.6], patience=2)
    assert n == 3
    # Beating the baseline behaves normally.
    es, _, n = _stop([0.4, 0.45, 0.46, 0.47], patience=2, baseline=0.5)
    assert n == 3 and es.stopped_epoch == 2


def test_early_stopping_start_from_epoch():
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    es, _, n = _stop(values, start_from_epoch=3)
    assert n == 5 and es.stopped_epoch == 4 and es.best == 4.0 and es.best_epoch == 3
    _, _, n = _stop(values)
    assert n == 2


def test_early_stopping_missing_monitor_warns():
    es = EarlyStopping(monitor="val_f1")
    with pytest.warns(UserWarning, match=r"val_f1.*Available metrics are: loss,val_loss"):
        _, _, n = run_fit(FakeModel(), val_losses(1, 2, 3), callbacks=[es])
    assert n == 3


def test_restore_best_weights_on_early_stop(capsys):
    es, model, n = _stop(
        [1.0, 0.5, 0.7, 0.8, 0.9], patience=2, restore_best_weights=True, verbose=1
    )
    assert n == 4 and es.best_epoch == 1
    assert model.weights_epoch == 1
    np.testing.assert_array_equal(model.get_weights()[1], np.full((2, 2), 1.0))
    out = capsys.readouterr().out
    assert "Epoch 4: early stopping" in out
    assert "Restoring model weights from the end of the best epoch: 2." in out


def test_restore_best_weights_when_epoch_limit_comes_first():
    es, model, n = _stop([1.0, 0.5, 0.7, 0.8], patience=10, restore_best_weights=True)
    assert n == 4 and es.stopped_epoch == 0
    assert model.weights_epoch == 1 and model.set_weights_calls == 1


def test_restore_best_weights_noop_when_best_is_last_epoch():
    es, model, _ = _stop([1.0, 0.9, 0.8], patience=1, restore_best_weights=True)
    assert es.best_epoch == 2 and model.weights_epoch == 2
    assert model.set_weights_calls == 0


def test_no_restore_without_flag_and_reuse_resets_state():
    es = EarlyStopping(patience=1)
    model = FakeModel()
    _, _, n = run_fit(model, val_losses(1.0, 0.5, 0.7, 0.8), callbacks=[es])
    assert n == 3 and model.weights_epoch == 2 and es.best_weights is None
    # Reuse: state is reset in on_train_begin.
    _, _, n = run_fit(model, val_losses(3.0, 2.0, 1.0), callbacks=[es])
    assert n == 3 and es.stopped_epoch == 0 and es.best == 1.0


def test_restore_uses_start_from_epoch_window():
    es, model, _ = _stop(
        [0.1, 1.0, 0.9, 0.95, 0.96], start_from_epoch=1, patience=5,
        restore_best_weights=True,
    )
    assert es.best_epoch == 2 and model.weights_epoch == 2


# ---------------------------------------------------------------------------
# ModelCheckpoint
# ---------------------------------------------------------------------------


def test_checkpoint_every_epoch_creates_dirs(tmp_path):
    path = tmp_path / "a" / "b" / "w-{epoch:02d}.npz"
    model = FakeModel()
    run_fit(model, val_losses(3, 2, 4), callbacks=[ModelCheckpoint(path)])
    names = sorted(os.listdir(tmp_path / "a" / "b"))
    assert names == ["w-01.npz", "w-02.npz", "w-03.npz"]
    with np.load(tmp_path / "a" / "b" / "w-02.npz") as data:
        np.testing.assert_array_equal(data["arr_0"], np.full(3, 1.0))


def test_checkpoint_save_best_only_file_names(tmp_path):
    path = os.path.join(tmp_path, "w-{epoch:02d}-{val_loss:.4f}.npz")
    model = FakeModel()
    cp = ModelCheckpoint(path, save_best_only=True)
    run_fit(model, val_losses(0.5, 0.6, 0.4, 0.45), callbacks=[cp])
    assert sorted(os.listdir(tmp_path)) == ["w-01-0.5000.npz", "w-03-0.4000.npz"]
    assert cp.best == 0.4


def test_checkpoint_save_best_only_max_fixed_name(tmp_path, capsys):
    path = os.path.join(tmp_path, "best.npz")
    model = FakeModel()
    cp = ModelCheckpoint(path, monitor="val_accuracy", save_best_only=True, verbose=1)
    script = [{"val_accuracy": a} for a in (0.5, 0.7, 0.6, 0.8)]
    run_fit(model, script, callbacks=[cp])
    assert model.saved == [path, path, path]
    with np.load(path) as data:
        assert data["arr_0"][0] == 3.0
    out = capsys.readouterr().out
    assert "Epoch 1: val_accuracy improved from -inf to 0.50000" in out
    assert "Epoch 3: val_accuracy did not improve from 0.70000" in out


def test_checkpoint_initial_value_threshold_and_missing_monitor(tmp_path):
    model = FakeModel()
    cp = ModelCheckpoint(
        os.path.join(tmp_path, "w{epoch}.npz"), save_best_only=True, initial_value_threshold=0.45
    )
    run_fit(model, val_losses(0.5, 0.4), callbacks=[cp])
    assert sorted(os.listdir(tmp_path)) == ["w2.npz"]

    cp = ModelCheckpoint(os.path.join(tmp_path, "m{epoch}.npz"), save_best_only=True)
    with pytest.warns(UserWarning, match="val_loss available, skipping"):
        run_fit(FakeModel(), [{"loss": 1.0}], callbacks=[cp])
    assert not os.path.exists(os.path.join(tmp_path, "m1.npz"))


def test_checkpoint_full_model_save(tmp_path):
    model = FakeModelWithSave()
    run_fit(model, val_losses(1), callbacks=[
        ModelCheckpoint(os.path.join(tmp_path, "m.bin"), save_weights_only=False)
    ])
    assert model.full_saves == [os.path.join(tmp_path, "m.bin")] and model.saved == []
    # Without model.save, falls back to save_weights.
    model = FakeModel()
    run_fit(model, val_losses(1), callbacks=[
        ModelCheckpoint(os.path.join(tmp_path, "w.npz"), save_weights_only=False)
    ])
    assert model.saved == [os.path.join(tmp_path, "w.npz")]


def test_checkpoint_save_freq_batches_with_chunks(tmp_path):
    model = FakeModel()
    cp = ModelCheckpoint(os.path.join(tmp_path, "e{epoch}-b{batch}.npz"), save_freq=5)

    def updates(epoch):  # chunked progress updates, 10 batches per epoch
        return [(d - 1, {"batches_done": d, "batches_total": 10, "loss": 1.0}) for d in (3, 6, 9, 10)]

    run_fit(model, val_losses(1, 1), callbacks=[cp], steps=10, batch_updates=updates)
    # epoch 1: 3, 6 -> save; 3, 4; epoch 2: 4+3=7 -> save; 3, 6 -> save; 1
    assert sorted(os.listdir(tmp_path)) == ["e1-b6.npz", "e2-b3.npz", "e2-b9.npz"]
    with pytest.raises(ValueError, match="save_freq"):
        ModelCheckpoint("x.npz", save_freq="batch")
    with pytest.raises(ValueError, match="save_freq"):
        ModelCheckpoint("x.npz", save_freq=0)


def test_checkpoint_bad_format_field(tmp_path):
    cp = ModelCheckpoint(os.path.join(tmp_path, "{val_f1:.2f}.npz"))
    with pytest.raises(KeyError, match="Failed to format"):
        run_fit(FakeModel(), val_losses(1), callbacks=[cp])


# ---------------------------------------------------------------------------
# TerminateOnNaN
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -np.inf])
def test_terminate_on_nan_at_epoch_end(bad, capsys):
    script = [{"loss": 1.0}, {"loss": bad}, {"loss": 0.5}]
    _, _, n = run_fit(FakeModel(), script, callbacks=[TerminateOnNaN()])
    assert n == 2
    assert "Epoch 2: Invalid loss, terminating training" in capsys.readouterr().out


def test_terminate_on_nan_at_batch_end(capsys):
    def updates(epoch):
        loss = float("nan") if epoch == 1 else 1.0
        return [(1, {"batches_done": 2, "batches_total": 4, "loss": loss}),
                (3, {"batches_done": 4, "batches_total": 4, "loss": loss})]

    script = [{"loss": 1.0}, {"loss": 2.0}, {"loss": 0.5}]
    _, _, n = run_fit(FakeModel(), script, callbacks=[TerminateOnNaN()], batch_updates=updates)
    assert n == 2
    out = capsys.readouterr().out
    assert out.count("Invalid loss") == 1 and "Batch 1: Invalid loss" in out


# ---------------------------------------------------------------------------
# Learning-rate callbacks
# ---------------------------------------------------------------------------


def test_learning_rate_scheduler(capsys):
    model = FakeModel(0.1)
    sched = LearningRateScheduler(lambda epoch, lr: lr if epoch == 0 else lr * 0.5, verbose=1)
    history, _, _ = run_fit(model, val_losses(1, 1, 1), callbacks=[sched])
    assert model.lr_used == pytest.approx([0.1, 0.05, 0.025])
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025])
    assert "Epoch 2: LearningRateScheduler setting learning rate to 0.05." in capsys.readouterr().out

    # Old one-argument schedules and NumPy floats are accepted.
    model = FakeModel(0.1)
    run_fit(model, val_losses(1, 1), callbacks=[
        LearningRateScheduler(lambda epoch: np.float32(0.5) ** (epoch + 1))
    ])
    assert model.lr_used == pytest.approx([0.5, 0.25])
    assert isinstance(model.optimizer.learning_rate, float)


@pytest.mark.parametrize("bad", [1, "0.1", None, float("nan"), float("inf"), np.inf])
def test_learning_rate_scheduler_rejects_non_finite_floats(bad):
    sched = LearningRateScheduler(lambda epoch, lr: bad)
    with pytest.raises(ValueError, match="schedule"):
        run_fit(FakeModel(), val_losses(1), callbacks=[sched])


def test_reduce_lr_on_plateau_cooldown_and_min_lr(capsys):
    model = FakeModel(0.1)
    rlr = ReduceLROnPlateau(factor=0.5, patience=1, cooldown=2, min_lr=0.02, verbose=1)
    history, _, _ = run_fit(model, val_losses(*[1.0] * 8), callbacks=[rlr])
    expected = [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.02, 0.02]
    assert model.lr_used == pytest.approx(expected)
    assert history.history["learning_rate"] == pytest.approx(expected)
    assert model.optimizer.learning_rate == pytest.approx(0.02)
    assert "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.05." in capsys.readouterr().out


def test_reduce_lr_on_plateau_patience_min_delta_and_mode():
    model = FakeModel(1.0)
    rlr = ReduceLROnPlateau(monitor="val_accuracy", factor=0.1, patience=2, min_delta=0.01)
    script = [{"val_accuracy": a} for a in (0.5, 0.6, 0.605, 0.7, 0.7, 0.7, 0.7)]
    run_fit(model, script, callbacks=[rlr])
    # auto -> max; 0.605 is within min_delta (no improvement), 0.7 improves,
    # then two stalled epochs -> reduce after epoch 5 (0-based).
    assert rlr.mode == "max"
    assert model.lr_used == pytest.approx([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.1])


def test_reduce_lr_on_plateau_validation_and_missing_monitor():
    with pytest.raises(ValueError, match="factor"):
        ReduceLROnPlateau(factor=1.0)
    rlr = ReduceLROnPlateau(patience=0)
    with pytest.warns(UserWarning, match="val_loss.*Available metrics are: loss"):
        history, _, _ = run_fit(FakeModel(0.1), [{"loss": 1.0}, {"loss": 1.0}], callbacks=[rlr])
    assert history.history["learning_rate"] == [0.1, 0.1]


# ---------------------------------------------------------------------------
# CSVLogger
# ---------------------------------------------------------------------------


def test_csv_logger_content_flush_and_close(tmp_path):
    path = tmp_path / "log.csv"
    seen_mid_training = []

    class Peek(Callback):
        def on_epoch_end(self, epoch, logs=None):
            with open(path) as f:
                seen_mid_training.append(f.read().count("\n"))

    logger = CSVLogger(path)
    script = [
        {"loss": 1.0, "val_loss": 1.5, "accuracy": 0.5},
        {"loss": 0.5, "val_loss": 0.75, "accuracy": 0.75},
    ]
    run_fit(FakeModel(), script, callbacks=[logger, Peek()])
    assert seen_mid_training == [2, 3]  # header + one row per epoch, on disk at each epoch's end
    assert os.listdir(tmp_path) == ["log.csv"]  # no temporary file left behind
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [
        ["epoch", "accuracy", "loss", "val_loss"],
        ["0", "0.5", "1.0", "1.5"],
        ["1", "0.75", "0.5", "0.75"],
    ]


def test_csv_logger_separator_append_and_missing_keys(tmp_path):
    path = str(tmp_path / "log.csv")
    run_fit(FakeModel(), [{"loss": 1.0, "val_loss": 2.0}], callbacks=[CSVLogger(path, separator=";")])
    run_fit(FakeModel(), [{"loss": 3.0}], callbacks=[CSVLogger(path, separator=";", append=True)])
    with open(path) as f:
        lines = f.read().splitlines()
    assert lines == ["epoch;loss;val_loss", "0;1.0;2.0", "0;3.0"]
    # Without append the file is overwritten; keys missing later are NA.
    run_fit(FakeModel(), [{"loss": 1.0, "val_loss": 2.0}, {"loss": 0.5}], callbacks=[CSVLogger(path)])
    with open(path) as f:
        assert f.read().splitlines() == ["epoch,loss,val_loss", "0,1.0,2.0", "1,0.5,NA"]


# ---------------------------------------------------------------------------
# Progress display
# ---------------------------------------------------------------------------


def _progbar(verbose, tty, epochs=2, steps=4):
    stream = FakeStream(tty)
    bar = ProgbarLogger(verbose, stream=stream)
    bar.set_params({"epochs": epochs, "steps": steps, "verbose": verbose, "samples": 128})
    clock = FakeClock()
    bar._clock = clock
    return bar, stream, clock


EPOCH_LOGS = {"loss": 0.34125, "val_loss": 0.5, "accuracy": 0.90123, "val_accuracy": 0.85}


def test_progress_verbose_0_is_silent(capsys):
    bar, stream, clock = _progbar(0, tty=True)
    bar.on_train_begin()
    bar.on_epoch_begin(0)
    bar.on_train_batch_end(0, {"batches_done": 1, "batches_total": 4, "loss": 1.0})
    bar.on_epoch_end(0, dict(EPOCH_LOGS))
    bar.on_train_end()
    assert stream.getvalue() == ""
    run_fit(FakeModel(), val_losses(1, 2), verbose=0)
    assert capsys.readouterr().out == ""


def test_progress_verbose_2_one_line_per_epoch():
    bar, stream, clock = _progbar(2, tty=True, epochs=10)
    clock.t = 100.0
    bar.on_epoch_begin(2)
    bar.on_train_batch_end(0, {"batches_done": 2, "batches_total": 4, "loss": 1.0})
    clock.t = 101.2
    bar.on_epoch_end(2, dict(EPOCH_LOGS))
    assert stream.getvalue() == (
        "Epoch 3/10 - 1.2s - loss: 0.3412 - accuracy: 0.9012"
        " - val_loss: 0.5000 - val_accuracy: 0.8500\n"
    )


def test_progress_verbose_1_non_tty_prints_only_final_lines():
    bar, stream, clock = _progbar(1, tty=False, epochs=2, steps=4)
    for epoch in range(2):
        bar.on_epoch_begin(epoch)
        for d in range(1, 5):
            clock.t += 0.5
            bar.on_train_batch_end(d - 1, {"batches_done": d, "batches_total": 4, "loss": 1.0 / d})
        bar.on_epoch_end(epoch, dict(EPOCH_LOGS))
    out = stream.getvalue()
    assert "\r" not in out and "ETA" not in out
    final = (
        "  4/4 [==============================] - 2.0s 500ms/step - loss: 0.3412"
        " - accuracy: 0.9012 - val_loss: 0.5000 - val_accuracy: 0.8500"
    )
    assert out.splitlines() == ["Epoch 1/2", final, "Epoch 2/2", final]


def test_progress_verbose_1_tty_live_updates_and_throttling():
    bar, stream, clock = _progbar(1, tty=True, epochs=10, steps=20)
    bar.on_epoch_begin(2)
    for d in range(1, 21):
        clock.t = d / 32  # exact binary fractions: no rounding surprises
        bar.on_train_batch_end(d - 1, {"batches_done": d, "batches_total": 20, "loss": 0.5, "accuracy": 0.75})
    bar.on_epoch_end(2, dict(EPOCH_LOGS))
    out = stream.getvalue()
    assert out.startswith("Epoch 3/10\n\r")
    frames = out.split("\r")[1:]
    # Throttled to one draw per 0.2 s: batches 1, 8, 15, then the final state
    # (20/20) is always drawn, then the epoch's closing line.
    assert [f.split("[")[0].strip() for f in frames] == ["1/20", "8/20", "15/20", "20/20", "20/20"]
    assert frames[1].startswith("   8/20 [===========>..................]")
    assert "- ETA: 0s - loss: 0.5000 - accuracy: 0.7500" in frames[1]
    assert frames[-1].rstrip(" \n").endswith(
        "- 0.6s 31ms/step - loss: 0.3412 - accuracy: 0.9012 - val_loss: 0.5000 - val_accuracy: 0.8500"
    )
    assert frames[-1].endswith("\n") and out.count("\n") == 2


def test_progress_verbose_1_tty_chunked_updates_and_eta():
    bar, stream, clock = _progbar(1, tty=True, epochs=10, steps=469)
    bar.on_epoch_begin(2)
    clock.t = 0.5
    bar.on_train_batch_end(119, {"batches_done": 120, "batches_total": 469, "loss": 0.34121, "accuracy": 0.90123})
    out = stream.getvalue()
    assert out == (
        "Epoch 3/10\n\r  120/469 [======>.......................]"
        " - ETA: 1s - loss: 0.3412 - accuracy: 0.9012"
    )


def test_progress_default_progbar_writes_to_stdout(capsys):
    run_fit(FakeModel(), val_losses(0.5, 0.25), verbose=1, steps=3)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    assert lines[1].startswith("  3/3 [==============================] - ")
    assert "loss: 0.6000 - val_loss: 0.5000" in lines[1]
    assert "\r" not in out  # captured stdout is not a TTY


def test_progress_verbose_2_through_fit_logs_learning_rate(capsys):
    sched = LearningRateScheduler(lambda e, lr: lr)
    run_fit(FakeModel(0.01), val_losses(0.5), verbose=2, callbacks=[sched])
    line = capsys.readouterr().out
    assert line.startswith("Epoch 1/1 - ") and line.count("\n") == 1
    assert line.rstrip().endswith("- loss: 0.6000 - learning_rate: 0.0100 - val_loss: 0.5000")
