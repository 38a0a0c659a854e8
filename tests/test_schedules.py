"""Learning-rate schedules (issue 20): Keras's formulas, applied per step inside
fit on every backend and optimizer, bit for bit a run that sets the rate by
hand before every batch; model files and pickles keep them; bad input refused
before anything changes."""
import math
import pickle

import numpy as np
import pytest

import fastnet
from fastnet import schedules as S


def test_values_are_keras_formulas():
    e = S.ExponentialDecay(0.1, decay_steps=4, decay_rate=0.5)
    assert [e(s) for s in (0, 2, 4, 10)] == pytest.approx([0.1, 0.1 * 0.5 ** 0.5, 0.05, 0.1 * 0.5 ** 2.5],
                                                         rel=1e-15)
    es = S.ExponentialDecay(0.1, 4, 0.5, staircase=True)
    assert [es(s) for s in (0, 3, 4, 7, 8)] == [0.1, 0.1, 0.05, 0.05, 0.025]
    i = S.InverseTimeDecay(0.2, 5, 0.5)
    assert [i(s) for s in (0, 5, 7)] == pytest.approx([0.2, 0.2 / 1.5, 0.2 / (1 + 0.5 * 1.4)], rel=1e-15)
    assert S.InverseTimeDecay(0.2, 5, 0.5, staircase=True)(9) == pytest.approx(0.2 / 1.5, rel=1e-15)
    p = S.PiecewiseConstantDecay([3, 7], [1.0, 0.5, 0.1])   # Keras: values[0] while step <= 3
    assert [p(s) for s in range(10)] == [1.0] * 4 + [0.5] * 4 + [0.1] * 2
    c = S.CosineDecay(0.1, decay_steps=10, alpha=0.1)
    want = [0.1 * (0.9 * 0.5 * (1 + math.cos(math.pi * min(s, 10) / 10)) + 0.1) for s in (0, 3, 10, 50)]
    assert [c(s) for s in (0, 3, 10, 50)] == pytest.approx(want, rel=1e-15)
    w = S.CosineDecay(0.0, decay_steps=10, warmup_target=0.2, warmup_steps=4)
    assert [w(s) for s in (0, 2, 4)] == pytest.approx([0.0, 0.1, 0.2], rel=1e-15)
    assert w(9) == pytest.approx(0.2 * 0.5 * (1 + math.cos(math.pi * 0.5)), rel=1e-15)
    assert w(100) == pytest.approx(0.0, abs=1e-18)
    for s in (e, es, i, p, c, w):
        assert type(s)(**s.get_config()) == s
        # constant_steps never claims a longer constant run than the rate has
        for step in range(30):
            n = min(s.constant_steps(step), 40)
            assert n >= 1 and all(s(step + k) == s(step) for k in range(n)), (s, step)


@pytest.mark.parametrize("opt", ["sgd", "adagrad", "rmsprop", "adam", "adamw"])
@pytest.mark.parametrize("kind", ["piecewise", "cosine", "callable"])
def test_schedule_equals_rate_set_by_hand_per_batch(backend, opt, kind):
    """fit with a schedule == fit(..., epochs=1) one batch at a time with the
    rate set by hand, bit for bit (weights, state, losses)."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((70, 6))
    y = (X[:, 0] - X[:, 1] > 0).astype(np.int64)
    sched = {"piecewise": S.PiecewiseConstantDecay([3, 9], [0.05, 0.02, 0.004]),
             "cosine": S.CosineDecay(0.05, decay_steps=12, alpha=0.1),
             "callable": lambda step: 0.03 / (1 + step)}[kind]

    def make(lr):
        m = fastnet.Sequential([fastnet.Dense(7, "tanh"), fastnet.Dense(2)], backend=backend, seed=5)
        m.compile(optimizer=fastnet.optimizers.get(opt).__class__(learning_rate=lr),
                  loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
        return m

    a = make(sched)
    ha = a.fit(X, y, epochs=2, batch_size=10, shuffle=False, verbose=0)
    b = make(0.01)
    for _ in range(2):
        for start in range(0, 70, 10):
            b.optimizer.learning_rate = sched(b.optimizer.iterations)
            b.fit(X[start:start + 10], y[start:start + 10], epochs=1, batch_size=10, shuffle=False, verbose=0)
    assert a.optimizer.iterations == b.optimizer.iterations == 14
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(a.optimizer.state, b.optimizer.state)
    assert a.optimizer.learning_rate == sched(14)
    assert np.isfinite(ha.history["loss"]).all()


def test_schedule_thread_count_invariant_and_train_on_batch(backend):
    rng = np.random.default_rng(8)
    X = rng.standard_normal((300, 20))
    y = rng.integers(0, 3, 300)
    out = []
    was = fastnet.get_num_threads()
    for threads in (1, 2):
        fastnet.set_num_threads(threads)
        try:
            m = fastnet.Sequential([fastnet.Dense(32, "relu"), fastnet.Dense(3)], backend=backend, seed=2)
            m.compile(optimizer=fastnet.Adam(learning_rate=S.ExponentialDecay(0.01, 5, 0.7, staircase=True)),
                      loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
            m.fit(X, y, epochs=1, batch_size=16, verbose=0)
            m.train_on_batch(X[:16], y[:16])
            out.append(m.get_weights())
        finally:
            fastnet.set_num_threads(was)
    for u, v in zip(*out):
        np.testing.assert_array_equal(u, v)


def test_schedule_round_trips_through_files_and_pickle(backend, tmp_path):
    rng = np.random.default_rng(9)
    X = rng.standard_normal((60, 4))
    y = X @ rng.standard_normal((4, 2))

    def make():
        m = fastnet.Sequential([fastnet.Dense(6, "gelu"), fastnet.Dense(2)], backend=backend, seed=1)
        m.compile(optimizer=fastnet.SGD(learning_rate=S.CosineDecay(0.05, 20, warmup_target=0.1, warmup_steps=5),
                                        momentum=0.9), loss="mse")
        return m

    full = make()
    full.fit(X, y, epochs=4, batch_size=8, verbose=0)
    part = make()
    part.fit(X, y, epochs=2, batch_size=8, verbose=0)
    part.save(tmp_path / "m.fastnet")
    for resumed in (fastnet.load_model(tmp_path / "m.fastnet"), pickle.loads(pickle.dumps(part))):
        assert resumed.optimizer.learning_rate_schedule == part.optimizer.learning_rate_schedule
        resumed.fit(X, y, epochs=2, batch_size=8, verbose=0)
        for u, v in zip(full.get_weights(), resumed.get_weights()):
            np.testing.assert_array_equal(u, v)


def test_learning_rate_property_is_keras_3():
    s = S.PiecewiseConstantDecay([2], [0.1, 0.01])
    opt = fastnet.Adam(learning_rate=s)
    assert opt.learning_rate == 0.1 and opt.learning_rate_schedule is s
    opt.iterations = 3
    assert opt.learning_rate == 0.01 and opt.hyper()[0] == 0.01
    with pytest.raises(TypeError, match="cannot be set to a number"):
        opt.learning_rate = 0.5
    opt.learning_rate = S.ExponentialDecay(0.2, 1, 0.5)       # another schedule: allowed
    assert opt.learning_rate == pytest.approx(0.025)
    assert fastnet.Adam(0.1).learning_rate_schedule is None


def test_bad_schedules_are_refused_before_anything_changes(backend):
    with pytest.raises(TypeError, match="number, a fastnet.schedules schedule or a callable"):
        fastnet.SGD(learning_rate="cosine")
    with pytest.raises(TypeError, match="not the class"):
        fastnet.SGD(learning_rate=S.CosineDecay)
    with pytest.raises(TypeError, match="must take the step"):
        fastnet.Adam(learning_rate=lambda: 0.1)
    with pytest.raises(ValueError, match="at step 0"):
        fastnet.Adam(learning_rate=lambda step: -1.0)
    for bad, exc in [(lambda: S.ExponentialDecay(0.1, 0, 0.5), ValueError),
                     (lambda: S.ExponentialDecay(0.1, 2.5, 0.5), TypeError),
                     (lambda: S.ExponentialDecay(float("nan"), 2, 0.5), ValueError),
                     (lambda: S.InverseTimeDecay(0.1, 2, -1.0), ValueError),
                     (lambda: S.PiecewiseConstantDecay([5, 2], [1.0, 0.5, 0.1]), ValueError),
                     (lambda: S.PiecewiseConstantDecay([5], [1.0]), ValueError),
                     (lambda: S.CosineDecay(0.1, 10, warmup_steps=3), ValueError),
                     (lambda: S.ExponentialDecay(0.1, 2, 0.5, staircase=1), TypeError)]:
        with pytest.raises(exc):
            bad()
    X = np.random.default_rng(0).standard_normal((20, 3))
    y = X[:, :1]
    m = fastnet.Sequential([fastnet.Dense(4, "tanh"), fastnet.Dense(1)], backend=backend, seed=0)
    m.compile(optimizer=fastnet.SGD(learning_rate=lambda step: 0.1 if step < 2 else float("nan")), loss="mse")
    m.fit(X, y, epochs=1, batch_size=10, verbose=0)           # steps 0, 1
    before = [w.copy() for w in m.get_weights()]
    with pytest.raises(ValueError, match="at step 2"):
        m.fit(X, y, epochs=1, batch_size=10, verbose=0)
    with pytest.raises(ValueError, match="at step 2"):
        m.train_on_batch(X, y)
    for cb in (fastnet.ReduceLROnPlateau(monitor="loss"), fastnet.LearningRateScheduler(lambda e, lr: lr)):
        with pytest.raises(TypeError, match="sets the learning rate between epochs"):
            m.fit(X, y, epochs=1, verbose=0, callbacks=[cb])
    assert m.optimizer.iterations == 2
    for u, v in zip(before, m.get_weights()):
        np.testing.assert_array_equal(u, v)
