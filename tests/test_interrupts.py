"""Ctrl-C, stop_training and the batch hooks of fit, on every backend.

After an interrupt the weights and the optimizer state must be exactly those of
``optimizer.iterations`` updates: checked against a replay of the same batches
one compiled step at a time (the backend's train_batches with a count of 1).
"""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import fastnet
from fastnet import callbacks as fcb
from fastnet._interrupts import SigintGuard
from fastnet._threads import get_num_threads

from conftest import train

N, D, K, BS = 120, 6, 3, 8          # 15 batches per epoch, the last one short
NB = -(-N // BS)


def data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, D)).astype(np.float32)
    y = (np.abs(X[:, 0] * 2 + X[:, 1]) * 1.3).astype(np.int64) % K
    return X, y


def make_model(backend, opt="adam"):
    m = fastnet.Sequential([fastnet.Dense(10, activation="tanh"), fastnet.Dense(K, activation="softmax")],
                           backend=backend, seed=3)
    m.compile(fastnet.Adam(0.01) if opt == "adam" else fastnet.SGD(0.05, momentum=0.9),
              loss="sparse_categorical_crossentropy")
    return m


def replay(backend, X, y, steps, opt="adam"):
    """A fresh model after ``steps`` updates on the batches of shuffle=False
    epochs, one train_batches call per batch."""
    m = make_model(backend, opt)
    m.build(X.shape[1])
    opt_ = m.optimizer
    labels = y.astype(np.int64)
    Y, sw = np.empty((0, K), np.float32), np.empty(0, np.float32)
    perm = np.arange(X.shape[0], dtype=np.int64)
    nb = -(-X.shape[0] // BS)
    work, loss = m._workspace(BS), np.empty(1)
    for t in range(steps):
        train(m._backend, X, Y, labels, sw, perm, BS, t % nb, 1, m._layer_table, m._head,
                                 opt_.code, opt_.hyper(), t, np.uint64(0), m._params, m._grads, opt_.state,
                                 work, loss, np.empty((0, K), np.float32), get_num_threads())
    opt_.iterations = steps
    return m


def assert_same_state(a, b):
    assert a.optimizer.iterations == b.optimizer.iterations
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(a.optimizer.state, b.optimizer.state)


def assert_matches_replay(m, backend, X, y, opt="adam"):
    assert_same_state(m, replay(backend, X, y, m.optimizer.iterations, opt))


def assert_history_whole(m):
    """Every History list has one entry per finished epoch: no half record."""
    lengths = {len(v) for v in m.history.history.values()}
    assert len(lengths) <= 1
    done = m.optimizer.iterations
    n_epochs = lengths.pop() if lengths else 0
    assert n_epochs == done // NB or (done % NB == 0 and n_epochs == done // NB - 1)


@pytest.fixture(autouse=True)
def default_sigint():
    """Every test runs with Python's own SIGINT handler (a runner may start the
    tests with SIGINT ignored, as a shell does for background jobs), and fit
    must leave it in place."""
    prev = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, prev)


class SigintAt(fastnet.Callback):
    """Sends itself SIGINT in hook ``hook`` at (epoch, batch)."""

    def __init__(self, hook, epoch, batch=None):
        super().__init__()
        self.hook, self.at, self.epoch = hook, (epoch, batch), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if self.hook == "on_epoch_begin" and epoch == self.at[0]:
            signal.raise_signal(signal.SIGINT)

    def on_epoch_end(self, epoch, logs=None):
        if self.hook == "on_epoch_end" and epoch == self.at[0]:
            signal.raise_signal(signal.SIGINT)

    def on_train_batch_begin(self, batch, logs=None):
        if self.hook == "on_train_batch_begin" and (self.epoch, batch) == self.at:
            signal.raise_signal(signal.SIGINT)

    def on_train_batch_end(self, batch, logs=None):
        if self.hook == "on_train_batch_end" and (self.epoch, batch) == self.at:
            signal.raise_signal(signal.SIGINT)


@pytest.mark.parametrize("seed", range(3))
def test_sigint_in_a_batch_hook_at_random_batches(backend, seed):
    X, y = data()
    rng = np.random.default_rng(seed)
    for hook in ("on_train_batch_end", "on_train_batch_begin"):
        epoch, batch = int(rng.integers(0, 3)), int(rng.integers(0, NB))
        m = make_model(backend)
        with pytest.raises(KeyboardInterrupt):
            m.fit(X, y, epochs=4, batch_size=BS, shuffle=False, verbose=0, callbacks=[SigintAt(hook, epoch, batch)])
        want = epoch * NB + batch + (hook == "on_train_batch_end")
        assert m.optimizer.iterations == want, hook
        assert_matches_replay(m, backend, X, y)
        assert_history_whole(m)


@pytest.mark.parametrize("hook,epoch,done", [("on_epoch_begin", 0, 0), ("on_epoch_begin", 2, 2 * NB),
                                             ("on_epoch_end", 1, 2 * NB)])
def test_sigint_in_an_epoch_hook(backend, hook, epoch, done):
    X, y = data()
    m = make_model(backend)
    fresh = make_model(backend)
    fresh.build(D)
    with pytest.raises(KeyboardInterrupt):
        m.fit(X, y, epochs=4, batch_size=BS, shuffle=False, verbose=2, validation_split=0.0,
              callbacks=[SigintAt(hook, epoch)])
    assert m.optimizer.iterations == done
    assert_matches_replay(m, backend, X, y)
    assert len(m.history.history.get("loss", [])) == epoch
    if done == 0:
        assert_same_state(m, fresh)


def test_sigint_in_validation_and_in_a_builtin_callback(backend, monkeypatch):
    X, y = data()
    Xv, yv = data(40, seed=1)

    # SIGINT while History records epoch 1: deferred until its record is whole
    real = fcb.History.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            signal.raise_signal(signal.SIGINT)
        real(self, epoch, logs)

    monkeypatch.setattr(fcb.History, "on_epoch_end", on_epoch_end)
    m = make_model(backend)
    with pytest.raises(KeyboardInterrupt):
        m.fit(X, y, epochs=4, batch_size=BS, shuffle=False, verbose=0, validation_data=(Xv, yv))
    assert m.optimizer.iterations == 2 * NB
    assert len(m.history.history["loss"]) == len(m.history.history["val_loss"]) == 2
    assert_matches_replay(m, backend, X, y)
    monkeypatch.undo()

    # SIGINT during validation: the epoch's updates are counted, the epoch is not recorded
    calls = []
    real_eval = fastnet.Sequential._evaluate_arrays

    def evaluate(self, *args):
        calls.append(1)
        if len(calls) == 2:
            signal.raise_signal(signal.SIGINT)
        return real_eval(self, *args)

    monkeypatch.setattr(fastnet.Sequential, "_evaluate_arrays", evaluate)
    m = make_model(backend)
    with pytest.raises(KeyboardInterrupt):
        m.fit(X, y, epochs=4, batch_size=BS, shuffle=False, verbose=0, validation_data=(Xv, yv))
    assert m.optimizer.iterations == 2 * NB and len(m.history.history["loss"]) == 1
    assert_matches_replay(m, backend, X, y)


@pytest.mark.parametrize("verbose", [0, 1, 2])
def test_sigint_from_a_timer_thread_during_chunked_training(backend, verbose, capsys):
    """No batch hooks: the epochs run in chunks; the signal lands anywhere
    (a chunk, validation, metrics, callbacks, between epochs)."""
    X, y = data(600)
    Xv, yv = data(100, seed=1)
    rng = np.random.default_rng(verbose)
    for delay in rng.uniform(0.02, 0.4, size=2):
        m = make_model(backend, "sgd")
        m.compile(m.optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
        t0 = time.perf_counter()
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                m.fit(X, y, epochs=100000, batch_size=BS, shuffle=False, verbose=verbose,
                      validation_data=(Xv, yv))
        finally:
            timer.cancel()
        assert time.perf_counter() - t0 < delay + 5.0
        assert m.optimizer.iterations > 0
        assert_same_state(m, replay(backend, X, y, m.optimizer.iterations, "sgd"))
        lengths = {len(v) for v in m.history.history.values()}
        assert len(lengths) <= 1
    capsys.readouterr()


@pytest.mark.parametrize("seed", range(2))
def test_interrupted_then_resumed_equals_uninterrupted(backend, seed):
    X, y = data()
    epochs = 3
    whole = make_model(backend)
    whole.fit(X, y, epochs=epochs, batch_size=BS, shuffle=False, verbose=0)
    rng = np.random.default_rng(10 + seed)
    epoch, batch = int(rng.integers(0, epochs)), int(rng.integers(0, NB - 1))
    m = make_model(backend)
    with pytest.raises(KeyboardInterrupt):
        m.fit(X, y, epochs=epochs, batch_size=BS, shuffle=False, verbose=0,
              callbacks=[SigintAt("on_train_batch_end", epoch, batch)])
    done = m.optimizer.iterations
    assert done == epoch * NB + batch + 1
    r = done % NB
    # finish the interrupted epoch on its remaining rows (same batch boundaries), then the rest
    m.fit(X[r * BS:], y[r * BS:], epochs=1, batch_size=BS, shuffle=False, verbose=0)
    m.fit(X, y, epochs=epochs - epoch - 1, batch_size=BS, shuffle=False, verbose=0)
    assert_same_state(m, whole)


@pytest.mark.parametrize("seed", range(2))
def test_stop_training_in_batch_hooks_and_hook_calls(backend, seed):
    X, y = data()
    rng = np.random.default_rng(20 + seed)
    calls = []

    class Recorder(fastnet.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            calls.append(("epoch_begin", epoch))

        def on_train_batch_begin(self, batch, logs=None):
            calls.append(("begin", batch, dict(logs)))

        def on_train_batch_end(self, batch, logs=None):
            calls.append(("end", batch, dict(logs)))

        def on_epoch_end(self, epoch, logs=None):
            calls.append(("epoch_end", epoch, dict(logs)))

    class OldNames(fastnet.Callback):
        """Keras' old hook names: called by the default train-batch hooks."""

        def __init__(self, stop_at):
            super().__init__()
            self.stop_at, self.epoch, self.seen = stop_at, None, []

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_batch_begin(self, batch, logs=None):
            self.seen.append(("b", batch))

        def on_batch_end(self, batch, logs=None):
            self.seen.append(("e", batch))
            if (self.epoch, batch) == self.stop_at:
                self.model.stop_training = True

    m0 = make_model(backend)
    m0.build(D)
    first_loss = m0.evaluate(X[:BS], y[:BS], return_dict=True)["loss"]
    e, b = int(rng.integers(1, 3)), int(rng.integers(0, NB))
    m = make_model(backend)
    old = OldNames(stop_at=(e, b))
    h = m.fit(X, y, epochs=5, batch_size=BS, shuffle=False, verbose=0, callbacks=[Recorder(), old])
    assert m.optimizer.iterations == e * NB + b + 1
    assert_matches_replay(m, backend, X, y)
    # every batch of the e whole epochs, then batches 0..b of epoch e, each hook once
    want = list(range(NB)) * e + list(range(b + 1))
    ends = [c for c in calls if c[0] == "end"]
    assert [c[1] for c in calls if c[0] == "begin"] == want
    assert [c[1] for c in ends] == want
    assert all(c[2] == {} for c in calls if c[0] == "begin")
    assert [c[2]["batches_done"] for c in ends] == [c[1] + 1 for c in ends]
    assert all(c[2]["batches_total"] == NB for c in ends)
    assert [c[0] for c in calls].count("epoch_end") == e + 1
    assert old.seen == [(kind, i) for i in want for kind in "be"]
    # the logs' loss is the running mean over the epoch's samples: batch 0's is the
    # initial model's loss on the first batch; an epoch's last one is the epoch's loss
    np.testing.assert_allclose(ends[0][2]["loss"], first_loss, rtol=1e-5)
    epoch_ends = [c for c in calls if c[0] == "epoch_end"]
    last = [i for i, c in enumerate(ends) if c[1] == NB - 1] + [len(ends) - 1]
    for i, c in zip(last, epoch_ends):
        np.testing.assert_allclose(ends[i][2]["loss"], c[2]["loss"], rtol=1e-12)
    assert h.history["loss"] == [c[2]["loss"] for c in epoch_ends]


def test_stop_training_from_another_thread_stops_within_a_chunk(backend):
    X, y = data(2000)
    m = make_model(backend, "sgd")
    timer = threading.Timer(0.2, setattr, (m, "stop_training", True))
    timer.start()
    t0 = time.perf_counter()
    try:
        h = m.fit(X, y, epochs=100000, batch_size=BS, shuffle=False, verbose=0)
    finally:
        timer.cancel()
    assert time.perf_counter() - t0 < 5.0
    assert len(h.history["loss"]) == -(-m.optimizer.iterations // -(-2000 // BS))
    assert_same_state(m, replay(backend, X, y, m.optimizer.iterations, "sgd"))


def test_which_callbacks_need_every_batch(tmp_path):
    class User(fastnet.Callback):
        def on_batch_end(self, batch, logs=None):
            pass

    class Bar(fcb.ProgbarLogger):
        def on_train_batch_begin(self, batch, logs=None):
            pass

    assert not fcb.Callback()._implements_train_batch_hooks()
    assert User()._implements_train_batch_hooks() and Bar()._implements_train_batch_hooks()
    for cb in (fcb.ProgbarLogger(), fcb.TerminateOnNaN(), fcb.History(), fcb.EarlyStopping(),
               fcb.ModelCheckpoint(str(tmp_path / "w.npz"))):
        assert not cb._implements_train_batch_hooks(), cb
    assert fcb.ModelCheckpoint(str(tmp_path / "w.npz"), save_freq=4)._implements_train_batch_hooks()


def test_checkpoint_save_freq_counts_every_batch(backend, tmp_path):
    X, y = data()
    m = make_model(backend)
    cp = fcb.ModelCheckpoint(str(tmp_path / "w-{epoch}-{batch}.npz"), save_freq=4)
    m.fit(X, y, epochs=2, batch_size=BS, verbose=0, callbacks=[cp])
    # 15 batches per epoch: saves after 4, 8, 12; then 16 -> batch 1 of epoch 2, 5, 9, 13
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["w-1-4.npz", "w-1-8.npz", "w-1-12.npz", "w-2-1.npz", "w-2-5.npz", "w-2-9.npz", "w-2-13.npz"])


def test_previous_handler_restored_and_custom_handler_honoured(backend):
    X, y = data()
    got = []

    def handler(signum, frame):
        got.append(signum)

    class Boom(fastnet.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise ValueError("boom")

    m = make_model(backend)
    with pytest.raises(ValueError, match="boom"):
        m.fit(X, y, epochs=2, batch_size=BS, verbose=0, callbacks=[Boom()])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    prev = signal.signal(signal.SIGINT, handler)
    try:
        # a handler that does not raise: training goes on, the handler ran once per signal
        h = m.fit(X, y, epochs=3, batch_size=BS, verbose=0, callbacks=[SigintAt("on_train_batch_end", 1, 4),
                                                                       SigintAt("on_epoch_begin", 2)])
        assert got == [signal.SIGINT, signal.SIGINT] and len(h.history["loss"]) == 3
        assert signal.getsignal(signal.SIGINT) is handler
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        m.fit(X, y, epochs=1, batch_size=BS, verbose=0, callbacks=[SigintAt("on_train_batch_end", 0, 2)])
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, prev)


def test_fit_in_another_thread_leaves_signals_alone(backend):
    X, y = data()
    m = make_model(backend)
    out = []
    t = threading.Thread(target=lambda: out.append(m.fit(X, y, epochs=2, batch_size=BS, verbose=0)))
    t.start()
    t.join()
    assert len(out[0].history["loss"]) == 2 and m.optimizer.iterations == 2 * NB


def test_guard_defers_and_delivers():
    with SigintGuard() as g:
        assert g.installed and signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        signal.raise_signal(signal.SIGINT)  # recorded only
        signal.raise_signal(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            g.poll()
        g.poll()  # the two signals are delivered once
        with pytest.raises(KeyboardInterrupt):
            g.call(signal.raise_signal, signal.SIGINT)  # delivered at once inside call
        assert g.call(lambda a: a + 1, 1) == 2
    # a signal still pending at a normal exit is delivered after the restore
    with pytest.raises(KeyboardInterrupt):
        with SigintGuard():
            signal.raise_signal(signal.SIGINT)
    with pytest.raises(ValueError):  # another exception on its way: the signal is dropped
        with SigintGuard():
            signal.raise_signal(signal.SIGINT)
            raise ValueError


def test_diagnostics_non_finite_counts_the_applied_updates(backend):
    X, y = data()
    X = X * 30
    m = fastnet.Sequential([fastnet.Dense(10, activation="relu"), fastnet.Dense(K, activation="softmax")],
                           backend=backend, seed=3)
    m.compile(fastnet.SGD(1e12), loss="sparse_categorical_crossentropy")
    with pytest.raises(fastnet.NonFiniteError) as info:
        m.fit(X, y, epochs=3, batch_size=BS, shuffle=False, verbose=0, diagnostics=True)
    e = info.value
    want = e.epoch * NB + e.batch + (e.stage == "update")
    assert m.optimizer.iterations == want and want >= 1
    twin = fastnet.Sequential([fastnet.Dense(10, activation="relu"), fastnet.Dense(K, activation="softmax")],
                              backend=backend, seed=3)
    twin.compile(fastnet.SGD(1e12), loss="sparse_categorical_crossentropy")
    twin.build(D)
    if e.stage != "update":
        labels = y.astype(np.int64)
        perm = np.arange(N, dtype=np.int64)
        for t in range(want):
            train(twin._backend, X, np.empty((0, K), np.float32), labels, np.empty(0, np.float32), perm,
                                        BS, t % NB, 1, twin._layer_table, twin._head, twin.optimizer.code,
                                        twin.optimizer.hyper(), t, np.uint64(0), twin._params, twin._grads,
                                        twin.optimizer.state, twin._workspace(BS), np.empty(1),
                                        np.empty((0, K), np.float32), get_num_threads())
        for u, v in zip(m.get_weights(), twin.get_weights()):
            np.testing.assert_array_equal(u, v)


LATENCY_CHILD = textwrap.dedent("""
    import signal, sys, time
    import numpy as np
    import fastnet
    signal.signal(signal.SIGINT, signal.default_int_handler)  # an ignored SIGINT is inherited
    be = sys.argv[1]
    fastnet.set_num_threads(1)  # no thread waits at a barrier for a core a busy machine took
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1024, 32)).astype(np.float32)
    y = rng.integers(0, 10, 1024)
    m = fastnet.Sequential([fastnet.Dense(512, activation="relu"), fastnet.Dense(512, activation="relu"),
                            fastnet.Dense(10, activation="softmax")], backend=be, seed=0)
    m.compile("sgd", "sparse_categorical_crossentropy")
    m.fit(X[:64], y[:64], epochs=1, batch_size=32, verbose=0)  # compiles / loads the kernels
    t = time.perf_counter()
    m.fit(X, y, epochs=1, batch_size=32, verbose=0)
    per_batch = (time.perf_counter() - t) / 32
    Xl, yl = np.tile(X, (128, 1)), np.tile(y, 128)  # one epoch of 4096 batches: >= 4 s
    print("READY", per_batch, flush=True)
    try:
        m.fit(Xl, yl, epochs=1, batch_size=32, verbose=0)
        print("DONE", flush=True)
    except KeyboardInterrupt:
        print("INTERRUPTED", time.monotonic(), m.optimizer.iterations, flush=True)
""")


def test_sigint_latency_in_a_long_epoch(backend):
    """A long verbose=0 epoch (4096 batches, >= 4 s) stops within about one
    chunk (0.1 s) of SIGINT, not at its end.  The bound allows for a busy
    machine: 1.5 s plus a few batch times as measured in the child."""
    proc = subprocess.Popen([sys.executable, "-c", LATENCY_CHILD, backend], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().split()
        assert line and line[0] == "READY", proc.stderr.read()
        per_batch = float(line[1])
        time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    words = out.split()
    assert words and words[0] == "INTERRUPTED", (out, err)
    latency = float(words[1]) - sent
    assert latency < 1.5 + 4 * per_batch, (latency, per_batch)
    # 34 updates before the long epoch; some of it counted, not all of it run
    assert 34 < int(words[2]) < 34 + 4096
