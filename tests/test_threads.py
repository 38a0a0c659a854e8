"""The default thread count chosen per workload at run time (fastnet/_threads.py).

Speed itself is judged in bench/threads_under_load.py; these tests pin the
policy (what is tried, when, and what wins for given timings), that choosing
never changes a result, and that explicit settings and tiny work bypass it."""
import os
import threading
import time

import numpy as np
import pytest

import fastnet
from fastnet import _threads

from conftest import COMPILED


@pytest.fixture
def default_threads(monkeypatch):
    old = _threads._n_threads
    _threads._n_threads = None
    _threads._tuners.clear()
    monkeypatch.setattr(_threads, "default_num_threads", lambda: 2)
    yield
    _threads._n_threads = old
    _threads._tuners.clear()


def drive(tuner, cost, calls):
    """Run ``calls`` calls through the tuner with seconds per unit cost(threads);
    returns the (threads, units) sequence."""
    seq = []
    for _ in range(calls):
        nt, units = tuner.threads()
        u = units or 10
        tuner.record(nt, cost(nt) * u, u)
        seq.append((nt, units))
    return seq


@pytest.mark.parametrize("faster", [1, 2])
def test_tuner_keeps_the_faster_count(monkeypatch, faster):
    monkeypatch.setattr(_threads, "others_load", lambda: 0.0)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    tn = _threads.ThreadTuner(2)
    cost = (lambda nt: 1e-3 if nt == faster else 2e-3)
    seq = drive(tn, cost, 12)
    # a round times 1 thread first (safe), then n, each twice
    assert [nt for nt, _ in seq[:4]] == [1, 2, 1, 2]
    assert seq[0][1] == 1                                   # the first probe: one unit
    assert seq[2][1] == int(_threads._PROBE_SECONDS / 1e-3 if faster == 1 else _threads._PROBE_SECONDS / 2e-3)
    assert tn.choice == faster
    assert all(nt == faster and units is None for nt, units in seq[4:])


def test_tuner_never_tries_more_threads_beside_busy_cores(monkeypatch):
    monkeypatch.setattr(_threads, "others_load", lambda: 1.0)     # one core's worth taken
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    tn = _threads.ThreadTuner(2)
    seq = drive(tn, lambda nt: 1e-3, 50)
    assert {nt for nt, _ in seq} == {1}
    assert tn.choice == 1


def test_tuner_waits_for_a_load_reading(monkeypatch):
    reading = [None]
    monkeypatch.setattr(_threads, "others_load", lambda: reading[0])
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    tn = _threads.ThreadTuner(2)
    drive(tn, lambda nt: 1e-3, 1)                  # the first 1-thread probe
    assert tn.threads() == (1, None)               # n not known safe yet: 1 thread, no probe
    tn.record(1, 1e-2, 10)
    assert tn.todo == [2, 1, 2]
    reading[0] = 0.0
    assert tn.threads()[0] == 2


def test_tuner_reprobes_when_the_winner_slows_down(monkeypatch):
    monkeypatch.setattr(_threads, "others_load", lambda: 0.0)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    tn = _threads.ThreadTuner(2)
    rates = {1: 2e-3, 2: 1e-3}
    drive(tn, lambda nt: rates[nt], 6)
    assert tn.choice == 2
    rates[2] = 6e-3                                # another process starts: 2 threads now lose
    seq = drive(tn, lambda nt: rates[nt], 8)
    assert 1 in [nt for nt, _ in seq]              # the loser was timed again ...
    assert tn.choice == 1                          # ... and won
    assert seq[-1][0] == 1


def test_tuner_reprobes_the_loser_from_time_to_time(monkeypatch):
    monkeypatch.setattr(_threads, "others_load", lambda: 0.0)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    tn = _threads.ThreadTuner(2)
    seq = drive(tn, lambda nt: 1e-3 if nt == 1 else 3e-3, 400)   # 10 ms per exploiting call
    probes = [i for i, (nt, _) in enumerate(seq) if nt == 2]
    assert len(probes) >= 3                         # 2 in the first round, then re-probes
    # the re-probes cost a small share of the time (each ~_PROBE_SECONDS)
    spent = sum((1e-3 if nt == 1 else 3e-3) * (u or 10) for nt, u in seq)
    probe_time = sum(3e-3 * (u or 10) for nt, u in seq if nt == 2)
    assert probe_time < 0.1 * spent
    assert tn.choice == 1


def test_explicit_threads_and_tiny_work_bypass_the_tuner(default_threads):
    assert _threads.tuner("train", ("k",), 1 << 30) is not None
    assert _threads.tuner("train", ("k",), 10) is False          # tiny: 1 thread, untimed
    fastnet.set_num_threads(1)
    assert _threads.tuner("train", ("k",), 1 << 30) is None      # fixed: get_num_threads()


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="no /proc/stat")
def test_others_load_reads_proc_stat():
    _threads._load_prev = None
    assert _threads.others_load() is None                        # one reading: no window yet
    time.sleep(_threads._LOAD_WINDOW * 2)
    v = _threads.others_load()
    assert v is not None and 0.0 <= v <= len(os.sched_getaffinity(0)) + 1.0


@pytest.mark.skipif(not COMPILED, reason="needs a compiled backend")
@pytest.mark.parametrize("backend", COMPILED)
def test_fit_picks_one_thread_when_two_are_slow_and_results_do_not_change(backend, default_threads,
                                                                          monkeypatch):
    monkeypatch.setattr(_threads, "others_load", lambda: 0.0)
    rng = np.random.default_rng(0)
    X = rng.random((600, 64), dtype=np.float32)
    y = rng.integers(0, 10, 600)

    def model():
        m = fastnet.Sequential([fastnet.Dense(100, activation="relu"), fastnet.Dense(10)],
                               backend=backend, seed=1)
        m.compile("adam", fastnet.SparseCategoricalCrossentropy(from_logits=True))
        m.build(64)
        return m

    ref = model()
    fastnet.set_num_threads(1)
    ref.fit(X, y, epochs=3, batch_size=20, verbose=0)
    fastnet.set_num_threads(None)

    m = model()
    calls = []
    inner = m._backend

    class Slow2:  # two threads made slow: a sleep per batch, as beside a busy core
        def __getattr__(self, name):
            return getattr(inner, name)

        def train_batches(self, batches, network, train_state, buffers, n_threads, diag=None):
            nt, cnt = n_threads, batches.n_batches
            calls.append((nt, cnt))
            if nt > 1:
                time.sleep(2e-3 * cnt)
            return inner.train_batches(batches, network, train_state, buffers, n_threads, diag=diag)

    m._backend = Slow2()
    m.fit(X, y, epochs=3, batch_size=20, verbose=0)
    threads_used = [nt for nt, _ in calls]
    assert threads_used[:4] == [1, 2, 1, 2]        # the probing round
    assert set(threads_used[4:]) <= {1, 2} and threads_used[-1] == 1
    assert sum(c for nt, c in calls if nt == 2) <= 0.2 * sum(c for _, c in calls)
    for a, b in zip(ref.get_weights(), m.get_weights()):
        np.testing.assert_array_equal(a, b)        # switching threads never changes a bit


@pytest.mark.skipif(not COMPILED, reason="needs a compiled backend")
@pytest.mark.parametrize("backend", COMPILED)
def test_predict_tuned_and_concurrent_matches_one_thread(backend, default_threads):
    m = fastnet.Sequential([fastnet.Dense(256, activation="relu"), fastnet.Dense(10)], backend=backend, seed=2)
    m.build(300)
    X = np.random.default_rng(1).random((700, 300), dtype=np.float32)
    fastnet.set_num_threads(1)
    want = m.predict(X)
    fastnet.set_num_threads(None)
    outs, errors = [], []

    def work():
        try:
            for i in range(30):
                outs.append(m.predict(X[: 100 + 20 * (i % 5)]))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    ts = [threading.Thread(target=work) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    for o in outs:
        np.testing.assert_array_equal(o, want[: o.shape[0]])
    assert any(isinstance(t, _threads.ThreadTuner) for t in _threads._tuners.values())


def test_pass_threads_leaves_the_cores_other_processes_keep_busy(default_threads, monkeypatch):
    """One-off passes over the data (fit's finite check of X) run on the cores
    others leave: a parallel region beside a busy core waits for its time slice
    (bench/threads_under_load.py, the batch-1 MNIST fit beside a hog)."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    load = [1.0]
    monkeypatch.setattr(_threads, "others_load", lambda: load[0])
    assert _threads.pass_threads() == 1
    load[0] = 0.6                     # most of a core: 2 + 0.6 > 2.25
    assert _threads.pass_threads() == 1
    load[0] = 0.1
    assert _threads.pass_threads() == 2
    load[0] = None                    # no reading yet: the default count
    assert _threads.pass_threads() == 2
    load[0] = 1.0
    fastnet.set_num_threads(2)        # a count the user set is kept
    try:
        assert _threads.pass_threads() == 2
    finally:
        fastnet.set_num_threads(None)


@pytest.mark.parametrize("backend", ["numpy"] + COMPILED)
def test_fit_checks_x_on_the_pass_threads(default_threads, monkeypatch, backend):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(_threads, "others_load", lambda: 1.0)
    model = fastnet.Sequential([fastnet.Dense(4, activation="relu"), fastnet.Dense(3)], backend=backend, seed=0)
    model.compile(optimizer="sgd", loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
    X = np.random.default_rng(0).random((40, 5), dtype=np.float32)
    y = np.arange(40) % 3
    model.build(5)
    seen = []
    real = model._backend.all_finite

    def spy(X, flag, n_threads):
        seen.append(n_threads)
        return real(X, flag, n_threads)
    monkeypatch.setattr(model._backend, "all_finite", spy)
    model.fit(X, y, epochs=1, batch_size=8, verbose=0)
    assert seen and seen[0] == 1
