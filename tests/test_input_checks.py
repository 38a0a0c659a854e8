"""Input checks after the cast to the model's dtype, a rejected fit that leaves
the model and its random streams as they were, the validation split's rows,
layer ownership, set_num_threads and models without a Dense layer.

(tests/test_bad_input.py has the basic shape / label / NaN checks; the cases
here are the ones it does not try.)"""
import copy
import gc
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastnet
from fastnet import _threads

N = 40
BIG = 1e39  # finite in float64, beyond float32 (max 3.4e38)


def _data(kind):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((N, 4))
    labels = np.arange(N) % 3
    if kind == "clf":
        return X, labels
    return X, np.eye(3)[labels]  # "reg": one-hot targets under MSE are a multiclass task


def _model(backend, kind):
    """clf: sparse cross-entropy with dropout (every random stream in use) and
    accuracy; reg: MSE whose accuracy metric needs one-hot targets."""
    if kind == "clf":
        m = fastnet.Sequential([fastnet.Dense(6, "relu"), fastnet.Dropout(0.25), fastnet.Dense(3)],
                               backend=backend, seed=3)
        m.compile(optimizer=fastnet.Adam(0.01), loss=fastnet.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    else:
        m = fastnet.Sequential([fastnet.Dense(6, "tanh"), fastnet.Dense(3)], backend=backend, seed=3)
        m.compile(optimizer=fastnet.SGD(0.05, momentum=0.9), loss="mse", metrics=["accuracy"])
    return m


def _first_fit(m, kind):
    X, y = _data(kind)
    m.fit(X, y, epochs=1, batch_size=8, verbose=0)


def _good_fit(m, kind):
    """Shuffling, dropout, validation split: what a rejected fit must not have disturbed."""
    X, y = _data(kind)
    h = m.fit(X, y, epochs=2, batch_size=8, validation_split=0.25, verbose=0)
    return [w.copy() for w in m.get_weights()], h.history


_REFERENCE = {}


def _reference(backend, kind, state):
    key = (backend, kind, state)
    if key not in _REFERENCE:
        m = _model(backend, kind)
        if state == "trained":
            _first_fit(m, kind)
        _REFERENCE[key] = _good_fit(m, kind)
    return _REFERENCE[key]


def _snapshot(m):
    snap = {"built": m.built, "shuffle": m._shuffle_rng.bit_generator.state,
            "dropout": m._dropout_rng.bit_generator.state, "iterations": m.optimizer.iterations,
            "state": None if m.optimizer.state is None else m.optimizer.state.copy()}
    if m.built:
        snap["weights"] = [w.copy() for w in m.get_weights()]
    return snap


def _assert_unchanged(m, snap):
    now = _snapshot(m)
    assert now["built"] == snap["built"]
    assert now["shuffle"] == snap["shuffle"] and now["dropout"] == snap["dropout"]
    assert now["iterations"] == snap["iterations"]
    if snap["state"] is None:
        assert now["state"] is None
    else:
        np.testing.assert_array_equal(now["state"], snap["state"])
    for a, b in zip(now.get("weights", []), snap.get("weights", [])):
        np.testing.assert_array_equal(a, b)


def _at(a, index, value, dtype=float):
    a = np.array(a, dtype=dtype)
    a[index] = value
    return a


def _gen(items):
    return (c for c in items)


# (id, model kind, fit arguments from (X, y), exception, message)
REJECTED_FITS = [
    # finite in float64, not in float32: named as overflows, with value and position
    ("X_overflow", "clf", lambda X, y: dict(X=_at(X, (3, 2), BIG)), ValueError,
     r"X overflows float32 \(value 1e\+39 at row 3, column 2"),
    ("X_neg_overflow", "clf", lambda X, y: dict(X=_at(X, (5, 0), -3e38 * 10)), ValueError,
     r"X overflows float32 \(value -3e\+39 at row 5, column 0"),
    ("y_mse_overflow", "reg", lambda X, y: dict(y=_at(y, (7, 1), 1e300)), ValueError,
     r"y overflows float32 \(value 1e\+300 at row 7, column 1"),
    ("sample_weight_overflow", "clf", lambda X, y: dict(sample_weight=_at(np.ones(N), 3, BIG)), ValueError,
     r"sample_weight overflows float32 \(value 1e\+39 at index 3"),
    ("class_weight_overflow", "clf", lambda X, y: dict(class_weight={0: 1.0, 1: BIG}), ValueError,
     r"class_weight: weight of class 1 overflows float32"),
    ("class_weight_times_sample_weight", "clf",
     lambda X, y: dict(sample_weight=_at(np.ones(N), 4, 1e20), class_weight={y[4]: 1e20}), ValueError,
     r"sample_weight \* class_weight overflows float32 \(value 1e\+40 at index 4"),
    ("validation_X_overflow", "clf", lambda X, y: dict(validation_data=(_at(X, (1, 1), BIG), y)), ValueError,
     r"validation_data\[0\] overflows float32 \(value 1e\+39 at row 1, column 1"),
    ("validation_y_overflow", "reg", lambda X, y: dict(validation_data=(X, _at(y, (2, 0), -1e300))), ValueError,
     r"validation_data\[1\] overflows float32 \(value -1e\+300 at row 2, column 0"),
    ("validation_weight_overflow", "clf",
     lambda X, y: dict(validation_data=(X, y, _at(np.ones(N), 9, BIG))), ValueError,
     r"validation_data\[2\] overflows float32 \(value 1e\+39 at index 9"),
    # NaN / inf stay NaN / inf (not overflows)
    ("X_inf", "clf", lambda X, y: dict(X=_at(X, (2, 3), -np.inf)), ValueError,
     r"X contains NaN or inf \(-inf at row 2, column 3"),
    ("sample_weight_nan", "clf", lambda X, y: dict(sample_weight=_at(np.ones(N), 6, np.nan)), ValueError,
     r"sample_weight contains NaN or inf \(nan at index 6"),
    ("sample_weight_negative", "clf", lambda X, y: dict(sample_weight=_at(np.ones(N), 8, -2.0)), ValueError,
     r"sample_weight must be >= 0; got -2.0 at index 8"),
    ("class_weight_inf", "clf", lambda X, y: dict(class_weight={2: np.inf}), ValueError,
     r"class_weight: weight of class 2 must be a finite number"),
    # complex, datetime64, timedelta64
    ("X_complex", "clf", lambda X, y: dict(X=X + 0j), TypeError, r"X must be real-valued; got dtype complex128"),
    ("X_datetime64", "clf", lambda X, y: dict(X=X.astype("datetime64[s]")), TypeError,
     r"X must be a numeric array; got dtype datetime64\[s\]"),
    ("X_timedelta64", "clf", lambda X, y: dict(X=X.astype("timedelta64[ms]")), TypeError,
     r"X must be a numeric array; got dtype timedelta64\[ms\]"),
    ("y_complex", "clf", lambda X, y: dict(y=y + 0j), TypeError, r"y must be real-valued; got dtype complex128"),
    ("y_complex_mse", "reg", lambda X, y: dict(y=y.astype(np.complex64)), TypeError,
     r"y must be real-valued; got dtype complex64"),
    ("y_datetime64", "clf", lambda X, y: dict(y=y.astype("datetime64[D]")), TypeError,
     r"y must be a numeric array; got dtype datetime64\[D\]"),
    ("y_timedelta64", "clf", lambda X, y: dict(y=y.astype("timedelta64[s]")), TypeError,
     r"y must be a numeric array; got dtype timedelta64\[s\]"),
    ("sample_weight_complex", "clf", lambda X, y: dict(sample_weight=np.ones(N) * 1j), TypeError,
     r"sample_weight must be real-valued; got dtype complex128"),
    ("sample_weight_timedelta64", "clf", lambda X, y: dict(sample_weight=np.ones(N, "timedelta64[s]")),
     TypeError, r"sample_weight must be a numeric array; got dtype timedelta64\[s\]"),
    ("validation_y_complex", "clf", lambda X, y: dict(validation_data=(X, y + 1j)), TypeError,
     r"validation_data\[1\] must be real-valued"),
    # labels beyond int64 are reported as given (not wrapped to -9223372036854775808)
    ("labels_uint64_huge", "clf", lambda X, y: dict(y=_at(y, 5, 2 ** 63 + 5, np.uint64)), ValueError,
     r"labels must be in \[0, 3\) .* found 9223372036854775813$"),
    ("labels_float_1e19", "clf", lambda X, y: dict(y=_at(y, 5, 1e19)), ValueError,
     r"labels must be in \[0, 3\) .* found 1e\+19$"),
    ("labels_float_minus_1e30", "clf", lambda X, y: dict(y=_at(y, 0, -1e30)), ValueError, r"found -1e\+30$"),
    # argument checks that come before the split and the build
    ("validation_split_1", "clf", lambda X, y: dict(validation_split=1.0), ValueError, r"validation_split"),
    ("validation_split_negative", "clf", lambda X, y: dict(validation_split=-0.1), ValueError,
     r"validation_split"),
    ("validation_split_nan", "clf", lambda X, y: dict(validation_split=float("nan")), ValueError,
     r"validation_split"),
    ("validation_split_str", "clf", lambda X, y: dict(validation_split="0.2"), ValueError, r"validation_split"),
    ("validation_split_no_train_rows", "clf", lambda X, y: dict(validation_split=0.99), ValueError,
     r"validation_split=0.99 leaves 0 training and 40 validation samples"),
    ("class_weight_not_dict", "clf", lambda X, y: dict(class_weight=[1.0, 2.0, 3.0]), TypeError,
     r"class_weight must be a dict"),
    ("class_weight_bad_class", "clf", lambda X, y: dict(class_weight={3: 1.0}), ValueError,
     r"class_weight: class 3 is not an integer class index in \[0, 3\)"),
    ("class_weight_str_weight", "clf", lambda X, y: dict(class_weight={0: "2"}), TypeError,
     r"class_weight: weight of class 0 must be a number"),
    ("class_weight_negative", "clf", lambda X, y: dict(class_weight={0: -1.0}), ValueError,
     r"class_weight: weight of class 0 must be a finite number >= 0"),
    ("metric_task_mismatch", "reg", lambda X, y: dict(y=y * 0.5 + 0.1), ValueError,
     r"metric 'accuracy' is not defined for task 'regression'"),
    ("metric_task_mismatch_with_split", "reg", lambda X, y: dict(y=y * 0.5 + 0.1, validation_split=0.25),
     ValueError, r"metric 'accuracy' is not defined for task 'regression'"),
    ("callbacks_with_split", "clf", lambda X, y: dict(callbacks=[object()], validation_split=0.25), TypeError,
     r"callbacks\[0\]"),
    ("callbacks_str", "clf", lambda X, y: dict(callbacks="EarlyStopping"), TypeError, r"callbacks"),
    ("callbacks_item", "clf", lambda X, y: dict(callbacks=[fastnet.callbacks.History(), 5]), TypeError,
     r"callbacks\[1\]"),
    ("callbacks_generator", "clf", lambda X, y: dict(callbacks=_gen([fastnet.callbacks.EarlyStopping(), None])),
     TypeError, r"callbacks\[1\] is None"),
    ("epochs_negative", "clf", lambda X, y: dict(epochs=-1), ValueError, r"epochs"),
    ("batch_size_float", "clf", lambda X, y: dict(batch_size=8.0), TypeError, r"batch_size"),
    ("shuffle_str", "clf", lambda X, y: dict(shuffle="yes"), TypeError, r"shuffle"),
    ("diagnostics_int", "clf", lambda X, y: dict(diagnostics=1), TypeError, r"diagnostics"),
    ("initial_epoch_negative", "clf", lambda X, y: dict(initial_epoch=-1), ValueError, r"initial_epoch"),
    ("verbose_bad", "clf", lambda X, y: dict(verbose=3), ValueError, r"verbose"),
    ("validation_data_shape", "clf", lambda X, y: dict(validation_data=(X,)), ValueError, r"validation_data"),
    ("validation_data_labels", "clf", lambda X, y: dict(validation_data=(X, y + 3)), ValueError,
     r"validation_data\[1\]: labels must be in"),
    ("y_length", "clf", lambda X, y: dict(y=y[:-1], validation_split=0.25), ValueError,
     r"y has 39 samples but X has 40"),
]


@pytest.mark.parametrize("state", ["fresh", "trained"])
@pytest.mark.parametrize("case", REJECTED_FITS, ids=[c[0] for c in REJECTED_FITS])
def test_rejected_fit_changes_nothing(backend, case, state):
    """The right exception and message; the weights, optimizer state and
    iterations and the random streams as they were (a fresh model stays
    unbuilt); the next fit equals that of a model that never saw the bad one,
    bit for bit."""
    _, kind, make, exc, msg = case
    m = _model(backend, kind)
    if state == "trained":
        _first_fit(m, kind)
    snap = _snapshot(m)
    X, y = _data(kind)
    kwargs = dict(X=X, y=y, epochs=1, batch_size=8, verbose=0)
    kwargs.update(make(X, y))
    with np.errstate(all="raise"):  # the checks themselves warn about nothing
        with pytest.raises(exc, match=msg):
            m.fit(kwargs.pop("X"), kwargs.pop("y"), **kwargs)
    _assert_unchanged(m, snap)
    weights, history = _good_fit(m, kind)
    ref_weights, ref_history = _reference(backend, kind, state)
    for a, b in zip(weights, ref_weights):
        np.testing.assert_array_equal(a, b)
    assert history == ref_history


def test_rejected_fit_when_the_optimizer_belongs_to_another_model(backend):
    X, y = _data("clf")
    opt = fastnet.Adam(0.01)
    models = []
    for _ in range(2):
        m = fastnet.Sequential([fastnet.Dense(3)], backend=backend, seed=0)
        m.compile(optimizer=opt, loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
        models.append(m)
    models[1].fit(X, y, verbose=0)
    snap = _snapshot(models[1])
    with pytest.raises(ValueError, match="already used by another model"):
        models[0].fit(X, y, verbose=0)
    assert not models[0].built  # refused before the build
    _assert_unchanged(models[1], snap)


def test_float64_model_takes_what_float32_cannot_hold(backend):
    """The overflow check is the model's dtype's: 1e39 is a valid float64."""
    X, y = _data("clf")
    m = fastnet.Sequential([fastnet.Dense(3)], backend=backend, seed=0, dtype="float64")
    m.compile(optimizer="sgd", loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
    Xb = _at(X, (0, 0), BIG)
    out = m.predict(Xb)
    assert np.isfinite(out[1:]).all() and abs(out[0]).max() > 1e37
    assert m.evaluate(X, y, sample_weight=_at(np.ones(N), 0, BIG), return_dict=True)["loss"] > 1e36
    m32 = fastnet.Sequential([fastnet.Dense(3)], backend=backend, seed=0)
    m32.compile(optimizer="sgd", loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(ValueError, match=r"X overflows float32 \(value 1e\+39 at row 0, column 0"):
        m32.predict(Xb)


def test_predict_evaluate_gradients_check_after_the_cast(backend):
    X, y = _data("reg")
    m = _model(backend, "reg")
    _first_fit(m, "reg")
    snap = _snapshot(m)
    with np.errstate(all="raise"):
        with pytest.raises(ValueError, match=r"X overflows float32 \(value 1e\+39 at row 4, column 1"):
            m.predict(_at(X, (4, 1), BIG))
        with pytest.raises(ValueError, match=r"X overflows float32"):
            m.predict(_at(X[:1], (0, 3), BIG).astype(np.float64, order="F"))
        with pytest.raises(ValueError, match=r"y overflows float32 \(value 1e\+300 at row 0, column 2"):
            m.evaluate(X, _at(y, (0, 2), 1e300))
        with pytest.raises(ValueError, match=r"sample_weight overflows float32 \(value 1e\+39 at index 1"):
            m.evaluate(X, y, sample_weight=_at(np.ones(N), 1, BIG))
        with pytest.raises(TypeError, match=r"y must be real-valued"):
            m.gradients(X, y + 0j)
        with pytest.raises(TypeError, match=r"X must be a numeric array; got dtype timedelta64"):
            m.predict(X.astype("timedelta64[s]"))
        with pytest.raises(TypeError, match=r"sample_weight must be a numeric array; got dtype datetime64"):
            m.evaluate(X, y, sample_weight=np.ones(N, "datetime64[s]"))
    _assert_unchanged(m, snap)


# ------------------------------------------------------------ validation split
def _fit_rows(m, X, y, **kw):
    """(rows trained on, rows validated on) by one fit: X[:, 0] is the row number."""
    seen = []
    original = m._evaluate_arrays

    def spy(Xv, *args, **kwargs):
        seen.append(Xv[:, 0].astype(np.int64))
        return original(Xv, *args, **kwargs)

    m._evaluate_arrays = spy
    try:
        m.fit(X, y, epochs=1, batch_size=16, verbose=0, **kw)
    finally:
        del m._evaluate_arrays
    val = np.sort(seen[0])
    return np.setdiff1d(np.arange(X.shape[0]), val), val


@pytest.mark.parametrize("kind", ["stratified", "plain"])
def test_validation_split_takes_the_same_rows_on_every_fit(backend, kind):
    n = 200
    rng = np.random.default_rng(0)
    X = np.column_stack([np.arange(n), rng.standard_normal((n, 3))])
    labels = rng.integers(0, 4, n)
    if kind == "stratified":
        y, loss = labels, fastnet.SparseCategoricalCrossentropy(from_logits=True)
    else:
        y, loss = rng.standard_normal((n, 4)), "mse"

    def model(seed):
        m = fastnet.Sequential([fastnet.Dense(8, "relu"), fastnet.Dense(4)], backend=backend, seed=seed)
        m.compile(optimizer="adam", loss=loss)
        return m

    m = model(7)
    train1, val1 = _fit_rows(m, X, y, validation_split=0.2)
    train2, val2 = _fit_rows(m, X, y, validation_split=0.2)
    assert len(val1) == 40 and len(train1) == 160
    np.testing.assert_array_equal(val1, val2)
    assert not set(train1) & set(val2)  # the second fit never validates on the first's training rows
    assert not np.array_equal(val1, np.arange(160, 200))  # shuffled, not the last rows
    if kind == "stratified":
        # each class gives its share: floor or ceil of 0.2 * count
        counts, share = np.bincount(labels[val1], minlength=4), 0.2 * np.bincount(labels, minlength=4)
        assert (np.abs(counts - share) < 1).all()
    else:
        _, val_small = _fit_rows(m, X, y, validation_split=0.1)  # a smaller split holds out a subset
        assert set(val_small) < set(val1)
    # a function of seed, n and labels: a fresh model with the seed agrees; another seed differs
    np.testing.assert_array_equal(_fit_rows(model(7), X, y, validation_split=0.2)[1], val1)
    assert not np.array_equal(_fit_rows(model(8), X, y, validation_split=0.2)[1], val1)


def test_stratified_split_keeps_a_training_row_of_every_class():
    """Rounding gives the left-over validation rows to classes that keep a
    training row: a class of one sample is never held out whole."""
    m = fastnet.Sequential([fastnet.Dense(3)], backend="numpy", seed=0)
    m.compile(loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
    for seed in range(5):
        m.seed = seed
        labels = np.array([0] * 9 + [1] + [2] * 3, dtype=np.int64)
        tr, va = m._split(labels, np.empty((0, 3)), 13, 0.15)   # n_val = 2
        assert len(va) == 2 and set(labels[tr]) == {0, 1, 2}


# -------------------------------------------------------------- layer ownership
def test_layer_belongs_to_one_model(backend):
    X = np.random.default_rng(0).standard_normal((5, 3))
    layers = [fastnet.Dense(4, "relu"), fastnet.Dense(2)]
    m1 = fastnet.Sequential(layers, backend=backend, seed=0)
    # reusing the list: refused, and the second model takes nothing
    with pytest.raises(ValueError, match=r"layer 'dense' already belongs to another model .*create a new Dense"):
        fastnet.Sequential(layers, backend=backend, seed=1)
    out1 = m1.predict(X)
    m2 = fastnet.Sequential([fastnet.Dense(4, "relu")], backend=backend, seed=1)
    with pytest.raises(ValueError, match=r"layer 'dense_1' already belongs to another model"):
        m2.add(layers[1])
    assert len(m2.layers) == 1
    m2.predict(X)
    # m1's layers still show m1's weights (before, they became views into the second model's buffer)
    np.testing.assert_array_equal(m1.predict(X), out1)
    assert np.shares_memory(layers[0].kernel, m1._params) and np.shares_memory(layers[1].bias, m1._params)


def test_failed_constructor_takes_no_layer(backend):
    d = fastnet.Dense(3)
    with pytest.raises(TypeError, match="fastnet layer"):
        fastnet.Sequential([d, "relu"], backend=backend)
    with pytest.raises(ValueError, match="duplicate layer name"):
        fastnet.Sequential([d, fastnet.Dense(2, name="dense")], backend=backend)
    assert d.name is None and d._owner() is None
    m = fastnet.Sequential([d], backend=backend, seed=0)
    assert m.predict(np.ones((2, 5))).shape == (2, 3) and d.name == "dense"


def test_layers_of_a_model_that_failed_to_build_can_start_again(backend):
    X, y = _data("clf")
    hidden, drop = fastnet.Dense(6, "relu"), fastnet.Dropout(0.5)
    bad = fastnet.Sequential([hidden, drop], backend=backend, seed=0)
    with pytest.raises(ValueError, match="Dropout after the output layer"):
        bad.compile(loss="mse")
    good = fastnet.Sequential([hidden, drop, fastnet.Dense(3)], backend=backend, seed=0)
    good.compile(optimizer="adam", loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
    good.fit(X, y, verbose=0)
    assert np.shares_memory(hidden.kernel, good._params)
    # the failed model no longer owns them: it says so instead of using them
    with pytest.raises(ValueError, match="now belongs to another model"):
        bad.build(4)
    with pytest.raises(ValueError, match="now belongs to another model"):
        bad.predict(X)
    # a built model's layers stay its own
    with pytest.raises(ValueError, match="already belongs to another model"):
        fastnet.Sequential([hidden], backend=backend)


def test_a_copied_layer_belongs_to_no_model(backend):
    m = fastnet.Sequential([fastnet.Dense(2, "tanh", name="out")], backend=backend, seed=0)
    m.build(3)
    for clone in (copy.copy(m.layers[0]), copy.deepcopy(m.layers[0]), pickle.loads(pickle.dumps(m.layers[0]))):
        m2 = fastnet.Sequential([clone], backend=backend, seed=1)
        m2.build(4)
        assert clone.kernel.shape == (4, 2) and np.shares_memory(clone.kernel, m2._params)
        assert clone.activation.name == "tanh" and clone.name == "out"
    assert np.shares_memory(m.layers[0].kernel, m._params)


def test_layers_of_a_deleted_model_are_free(backend):
    d = fastnet.Dense(2)
    m = fastnet.Sequential([d], backend=backend, seed=0)
    m.build(3)
    del m
    gc.collect()
    m2 = fastnet.Sequential([d], backend=backend, seed=0)
    assert d.kernel is None  # no view into the deleted model's buffer
    m2.build(5)
    assert d.kernel.shape == (5, 2) and np.shares_memory(d.kernel, m2._params)


# ------------------------------------------------------------------ empty models
NO_DENSE = {"empty": (lambda: [], None), "dropout": (lambda: [fastnet.Dropout(0.5)], "Dropout 'dropout' before"),
            "prelu": (lambda: [fastnet.PReLU()], "PReLU 'p_re_lu' must come right after a Dense layer")}


@pytest.mark.parametrize("kind", sorted(NO_DENSE))
def test_model_without_dense_layer(backend, kind):
    make, after = NO_DENSE[kind]
    m = fastnet.Sequential(make(), backend=backend, seed=0)
    X = np.ones((3, 4))
    msg = r"the model has no Dense layer \(it has %s\); add one with model.add\(fastnet.Dense\(units\)\)" % (
        "no layers" if kind == "empty" else type(m.layers[0]).__name__ + " '" + m.layers[0].name + "'")
    for what, call in [("build", lambda: m.build(4)), ("predict", lambda: m.predict(X)),
                       ("compile", lambda: m.compile(loss="mse")), ("fit", lambda: m.fit(X, np.ones(3))),
                       ("summary", lambda: m.summary(print_fn=print)), ("predict", lambda: m.predict_labels(X))]:
        with pytest.raises(ValueError, match="^%s: %s$" % (what, msg)):
            call()
    assert not m.built and m.loss is None
    m.add(fastnet.Dense(2))
    if after is None:
        assert m.predict(X).shape == (3, 2)
    else:
        with pytest.raises(ValueError, match=after):
            m.predict(X)


# ---------------------------------------------------------------- set_num_threads
def test_set_num_threads_arguments():
    cores = len(os.sched_getaffinity(0))
    try:
        fastnet.set_num_threads(np.int64(1))
        assert fastnet.get_num_threads() == 1 and type(_threads._n_threads) is int
        fastnet.set_num_threads(np.uint8(cores))
        assert fastnet.get_num_threads() == cores
        for bad in (True, 2.0, "2", np.float64(2), [2]):
            with pytest.raises(TypeError, match="set_num_threads: n must be a positive int"):
                fastnet.set_num_threads(bad)
        for bad in (0, -3, np.int32(0)):
            with pytest.raises(ValueError, match="set_num_threads: n must be >= 1"):
                fastnet.set_num_threads(bad)
        assert fastnet.get_num_threads() == cores  # refused calls change nothing
        with pytest.warns(RuntimeWarning, match=r"4096 threads requested but this process can run on %d "
                                                r"cores; using %d" % (cores, cores)):
            fastnet.set_num_threads(4096)
        assert fastnet.get_num_threads() == cores
    finally:
        fastnet.set_num_threads(None)


def test_set_num_threads_beyond_the_cores_trains():
    """Before the clamp, the cython backend died with n=4096 ("libgomp: Thread
    creation failed") and n=100000 (SIGSEGV): a subprocess, so that a
    regression fails this test instead of killing the suite."""
    code = textwrap.dedent("""
        import os, warnings
        import numpy as np
        import fastnet
        cores = len(os.sched_getaffinity(0))
        X = np.random.default_rng(0).standard_normal((300, 20))
        y = (X[:, 0] > 0).astype(int)
        for n in (4096, 100000):
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                fastnet.set_num_threads(n)
            assert [x.category for x in w] == [RuntimeWarning] and fastnet.get_num_threads() == cores, w
            for b in fastnet.available_backends():
                m = fastnet.Sequential([fastnet.Dense(64, "relu"), fastnet.Dense(2)], backend=b, seed=0)
                m.compile(optimizer="adam", loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
                m.fit(X, y, epochs=2, batch_size=100, verbose=0)
                assert np.isfinite(m.predict(X)).all()
        print("ok")
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "ok", (res.returncode, res.stdout, res.stderr[-2000:])
