"""Tests for fastnet.perceptron.Perceptron and fastnet.multiclass (OneVsRest,
load_iris), reproducing the course examples (Raschka, *Python Machine
Learning*, chapter 2)."""

import itertools

import numpy as np
import pytest

from fastnet.multiclass import IRIS_FEATURE_NAMES, OneVsRest, load_iris
from fastnet.perceptron import NotFittedError, Perceptron


# ---------------------------------------------------------------------------
# Reference: Raschka's code (3rd edition), transcribed as literally as
# possible; ``init="zeros"`` gives the 1st-edition initialisation.
# ---------------------------------------------------------------------------

class RaschkaPerceptron:
    def __init__(self, eta=0.01, n_iter=50, random_state=1, init="normal",
                 shuffle=False):
        self.eta = eta
        self.n_iter = n_iter
        self.random_state = random_state
        self.init = init
        self.shuffle = shuffle

    def fit(self, X, y):
        rgen = np.random.RandomState(self.random_state)
        if self.init == "normal":
            self.w_ = rgen.normal(loc=0.0, scale=0.01, size=1 + X.shape[1])
        else:
            self.w_ = np.zeros(1 + X.shape[1])
        self.errors_ = []
        for _ in range(self.n_iter):
            if self.shuffle:  # as in Raschka's AdalineSGD._shuffle
                r = rgen.permutation(len(y))
                X, y = X[r], y[r]
            errors = 0
            for xi, target in zip(X, y):
                update = self.eta * (target - self.predict(xi))
                self.w_[1:] += update * xi
                self.w_[0] += update
                errors += int(update != 0.0)
            self.errors_.append(errors)
        return self

    def net_input(self, X):
        return np.dot(X, self.w_[1:]) + self.w_[0]

    def predict(self, X):
        return np.where(self.net_input(X) >= 0.0, 1, -1)


@pytest.fixture(scope="module")
def iris():
    return load_iris()


@pytest.fixture(scope="module")
def setosa_versicolor(iris):
    X, y, _ = iris
    X2 = X[:100][:, [0, 2]]  # sepal length, petal length
    y2 = np.where(y[:100] == 0, -1, 1)  # setosa -1, versicolor 1
    return X2, y2


# ---------------------------------------------------------------------------
# Iris data file
# ---------------------------------------------------------------------------

def test_load_iris_shape_and_labels(iris):
    X, y, names = iris
    assert X.shape == (150, 4) and X.dtype == np.float64
    assert y.shape == (150,) and y.dtype == np.int64
    assert names == ("Iris-setosa", "Iris-versicolor", "Iris-virginica")
    assert IRIS_FEATURE_NAMES == ("sepal_length", "sepal_width",
                                  "petal_length", "petal_width")
    np.testing.assert_array_equal(y, np.repeat([0, 1, 2], 50))
    np.testing.assert_array_equal(X[0], [5.1, 3.5, 1.4, 0.2])
    np.testing.assert_array_equal(X[-1], [5.9, 3.0, 5.1, 1.8])
    np.testing.assert_allclose(X.mean(axis=0),
                               [5.843333, 3.057333, 3.758, 1.199333],
                               atol=1e-6)


def test_load_iris_matches_scikit_learn(iris):
    datasets = pytest.importorskip("sklearn.datasets")
    ref = datasets.load_iris()
    X, y, names = iris
    np.testing.assert_array_equal(X, ref.data)
    np.testing.assert_array_equal(y, ref.target)
    assert [n.replace("Iris-", "") for n in names] == list(ref.target_names)


# ---------------------------------------------------------------------------
# Course example 1: setosa vs versicolor
# ---------------------------------------------------------------------------

BOOK_ERRORS = [1, 3, 3, 2, 1, 0, 0, 0, 0, 0]


def test_iris_setosa_versicolor_reproduces_book(setosa_versicolor):
    X, y = setosa_versicolor
    ppn = Perceptron(eta=0.1, n_iter=10, random_state=1)
    assert ppn.fit(X, y) is ppn
    # Raschka 3rd ed., fig. "number of updates per epoch": 0 from epoch 6 on
    assert ppn.errors_ == BOOK_ERRORS
    assert all(type(e) is int for e in ppn.errors_)
    assert ppn.errors_[-1] == 0
    np.testing.assert_allclose(
        ppn.w_, [-0.38375655, -0.70611756, 1.83471828], atol=1e-8)
    np.testing.assert_array_equal(ppn.classes_, [-1, 1])
    np.testing.assert_array_equal(ppn.predict(X), y)
    assert ppn.score(X, y) == 1.0
    assert ppn.n_features_in_ == 2


def test_iris_matches_reference_code_exactly(setosa_versicolor):
    X, y = setosa_versicolor
    ref = RaschkaPerceptron(eta=0.1, n_iter=10, random_state=1).fit(X, y)
    ppn = Perceptron(eta=0.1, n_iter=10, random_state=1).fit(X, y)
    assert ref.errors_ == BOOK_ERRORS
    np.testing.assert_array_equal(ppn.w_, ref.w_)


def test_first_edition_zero_init_gives_other_curve(setosa_versicolor):
    # Why the 3rd-edition init is the one used: zero weights (1st edition)
    # also converge by epoch 6 but with a different curve.
    X, y = setosa_versicolor
    ref = RaschkaPerceptron(eta=0.1, n_iter=10, init="zeros").fit(X, y)
    assert ref.errors_ == [2, 2, 3, 2, 1, 0, 0, 0, 0, 0]
    assert ref.errors_ != BOOK_ERRORS


def test_any_two_labels_are_mapped_and_returned(setosa_versicolor, iris):
    X, y = setosa_versicolor
    base = Perceptron(eta=0.1, n_iter=10).fit(X, y)
    names = np.asarray(iris[2])
    y_str = names[(y > 0).astype(int)]  # 'Iris-setosa' / 'Iris-versicolor'
    ppn = Perceptron(eta=0.1, n_iter=10).fit(X, y_str)
    np.testing.assert_array_equal(ppn.classes_, names[:2])
    np.testing.assert_array_equal(ppn.w_, base.w_)
    assert ppn.errors_ == base.errors_
    np.testing.assert_array_equal(ppn.predict(X), y_str)
    assert ppn.score(X, y_str) == 1.0
    # 0/1 labels and floats behave the same
    ppn01 = Perceptron(eta=0.1, n_iter=10).fit(X, (y > 0).astype(int))
    np.testing.assert_array_equal(ppn01.w_, base.w_)
    np.testing.assert_array_equal(ppn01.predict(X), (y > 0).astype(int))
    ppnf = Perceptron(eta=0.1, n_iter=10).fit(X.tolist(), y.astype(float))
    np.testing.assert_array_equal(ppnf.w_, base.w_)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_matches_reference_on_random_data(seed, shuffle):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, 5))
    y = np.where(X @ rng.normal(size=5) + 0.3 > 0, 1, -1)
    y[:3] *= -1  # a little label noise: not separable
    kw = dict(eta=0.05, n_iter=15, random_state=seed, shuffle=shuffle)
    ref = RaschkaPerceptron(**kw).fit(X, y)
    ppn = Perceptron(**kw).fit(X, y)
    np.testing.assert_array_equal(ppn.w_, ref.w_)
    assert ppn.errors_ == ref.errors_


def test_deterministic(setosa_versicolor):
    X, y = setosa_versicolor
    for shuffle in (False, True):
        a = Perceptron(eta=0.1, n_iter=10, shuffle=shuffle).fit(X, y)
        w, errors = a.w_.copy(), list(a.errors_)
        a.fit(X, y)  # refit starts from scratch
        b = Perceptron(eta=0.1, n_iter=10, shuffle=shuffle).fit(X, y)
        np.testing.assert_array_equal(a.w_, w)
        np.testing.assert_array_equal(b.w_, w)
        assert a.errors_ == errors == b.errors_


# ---------------------------------------------------------------------------
# Course example 2: 3 inputs, weights 0.3, threshold 0.4 -> majority gate
# ---------------------------------------------------------------------------

TRUTH_TABLE = np.array(list(itertools.product([0, 1], repeat=3)), dtype=float)
MAJORITY = (TRUTH_TABLE.sum(axis=1) >= 2).astype(int)


def test_majority_gate_from_weights():
    ppn = Perceptron.from_weights([-0.4, 0.3, 0.3, 0.3], classes=(0, 1))
    np.testing.assert_allclose(ppn.net_input(TRUTH_TABLE),
                               0.3 * TRUTH_TABLE.sum(axis=1) - 0.4)
    out = ppn.predict(TRUTH_TABLE)
    np.testing.assert_array_equal(out, MAJORITY)
    assert out.tolist() == [0, 0, 0, 1, 0, 1, 1, 1]
    assert ppn.n_features_in_ == 3


def test_majority_gate_by_setting_weights_raschka_style():
    ppn = Perceptron()
    ppn.w_ = np.array([-0.4, 0.3, 0.3, 0.3])  # no classes_: labels -1/1
    np.testing.assert_array_equal(ppn.predict(TRUTH_TABLE),
                                  np.where(MAJORITY == 1, 1, -1))
    ppn.classes_ = np.array([0, 1])
    np.testing.assert_array_equal(ppn.predict(TRUTH_TABLE), MAJORITY)


def test_majority_gate_is_learnt():
    ppn = Perceptron(eta=0.1, n_iter=20).fit(TRUTH_TABLE, MAJORITY)
    assert ppn.errors_[-1] == 0
    np.testing.assert_array_equal(ppn.predict(TRUTH_TABLE), MAJORITY)


def test_from_weights_validation():
    with pytest.raises(ValueError, match="w"):
        Perceptron.from_weights([0.5])
    with pytest.raises(ValueError, match="w"):
        Perceptron.from_weights([[0.1, 0.2]])
    with pytest.raises(ValueError, match="NaN"):
        Perceptron.from_weights([0.1, np.nan])
    with pytest.raises(ValueError, match="classes"):
        Perceptron.from_weights([0.1, 0.2], classes=(1, 1))
    with pytest.raises(ValueError, match="classes"):
        Perceptron.from_weights([0.1, 0.2], classes=(0, 1, 2))
    w = np.array([0.1, 0.2])
    ppn = Perceptron.from_weights(w, classes=("no", "yes"), eta=0.5)
    w[:] = 9.0  # a private copy is kept
    np.testing.assert_array_equal(ppn.w_, [0.1, 0.2])
    assert ppn.eta == 0.5
    assert ppn.predict([[1.0], [-1.0]]).tolist() == ["yes", "no"]


# ---------------------------------------------------------------------------
# Non-separable data: XOR never converges
# ---------------------------------------------------------------------------

def test_xor_does_not_converge():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    y = np.array([-1, 1, 1, -1])
    for shuffle in (False, True):
        ppn = Perceptron(eta=0.1, n_iter=100, shuffle=shuffle).fit(X, y)
        assert len(ppn.errors_) == 100
        assert min(ppn.errors_) > 0
        assert ppn.score(X, y) < 1.0


# ---------------------------------------------------------------------------
# Validation and sklearn-style API
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(eta=0), "eta"), (dict(eta=-0.1), "eta"), (dict(eta=np.nan), "eta"),
    (dict(eta=np.inf), "eta"), (dict(eta="0.1"), "eta"),
    (dict(eta=True), "eta"),
    (dict(n_iter=0), "n_iter"), (dict(n_iter=1.5), "n_iter"),
    (dict(n_iter=10.0), "n_iter"), (dict(n_iter=True), "n_iter"),
    (dict(random_state=-1), "random_state"),
    (dict(random_state=1.5), "random_state"),
    (dict(shuffle="yes"), "shuffle"),
])
def test_bad_params(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Perceptron(**kwargs)
    with pytest.raises(ValueError, match=match):
        Perceptron().set_params(**kwargs)
    ppn = Perceptron()
    for k, v in kwargs.items():
        setattr(ppn, k, v)  # bypassing set_params: caught by fit
    with pytest.raises(ValueError, match=match):
        ppn.fit([[0.0], [1.0]], [-1, 1])


def test_good_params_accepted():
    Perceptron(eta=np.float32(0.5), n_iter=np.int64(3), random_state=None,
               shuffle=np.bool_(True)).fit([[0.0], [1.0]], [-1, 1])


@pytest.mark.parametrize("X, y, match", [
    ([1.0, 2.0], [-1, 1], "X must be a 2-D"),
    (np.zeros((2, 1, 1)), [-1, 1], "X must be a 2-D"),
    (np.zeros((0, 2)), [], "at least one sample"),
    (np.zeros((2, 0)), [-1, 1], "at least one feature"),
    ([[0.0], [np.nan]], [-1, 1], "X contains NaN"),
    ([[0.0], [np.inf]], [-1, 1], "X contains NaN"),
    ([["a"], ["b"]], [-1, 1], "X must be"),
    ([[1j], [2.0]], [-1, 1], "X must be real"),
    ([[0.0], [1.0]], [-1, 1, 1], "inconsistent numbers of samples"),
    ([[0.0], [1.0]], [[-1], [1]], "y must be a 1-D"),
    ([[0.0], [1.0]], [1, 1], "exactly two classes"),
    ([[0.0], [1.0], [2.0]], [0, 1, 2], "exactly two classes"),
    ([[0.0], [1.0]], [0.0, np.nan], "y contains NaN"),
    ([[0.0], [1.0]], ["a", None], "y contains None"),
])
def test_bad_input(X, y, match):
    ppn = Perceptron()
    with pytest.raises(ValueError, match=match):
        ppn.fit(X, y)
    assert not hasattr(ppn, "w_")


def test_failed_fit_leaves_previous_model(setosa_versicolor):
    X, y = setosa_versicolor
    ppn = Perceptron(eta=0.1, n_iter=10).fit(X, y)
    w = ppn.w_.copy()
    with pytest.raises(ValueError):
        ppn.fit(X, np.ones(100))
    np.testing.assert_array_equal(ppn.w_, w)
    assert ppn.errors_ == BOOK_ERRORS


def test_not_fitted_and_feature_mismatch(setosa_versicolor):
    X, y = setosa_versicolor
    ppn = Perceptron()
    for method in (ppn.predict, ppn.net_input, ppn.decision_function):
        with pytest.raises(NotFittedError):
            method(X)
    assert issubclass(NotFittedError, ValueError)
    assert issubclass(NotFittedError, AttributeError)
    ppn.fit(X, y)
    with pytest.raises(ValueError, match="features"):
        ppn.predict(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="2-D"):
        ppn.predict(X[0])
    with pytest.raises(ValueError, match="inconsistent"):
        ppn.score(X, y[:10])


def test_get_set_params_and_repr():
    ppn = Perceptron(eta=0.1, n_iter=10)
    assert ppn.get_params() == {"eta": 0.1, "n_iter": 10, "random_state": 1,
                                "shuffle": False}
    assert ppn.set_params(n_iter=5, shuffle=True) is ppn
    assert ppn.get_params()["n_iter"] == 5 and ppn.shuffle is True
    with pytest.raises(ValueError, match="invalid parameter 'alpha'"):
        ppn.set_params(alpha=1.0)
    assert repr(Perceptron()) == "Perceptron()"
    assert repr(Perceptron(eta=0.1, n_iter=10)) == \
        "Perceptron(eta=0.1, n_iter=10)"


def test_sklearn_clone_compatible(setosa_versicolor):
    base = pytest.importorskip("sklearn.base")
    X, y = setosa_versicolor
    ppn = Perceptron(eta=0.1, n_iter=10).fit(X, y)
    twin = base.clone(ppn)
    assert twin.get_params() == ppn.get_params()
    assert not hasattr(twin, "w_")
    np.testing.assert_array_equal(twin.fit(X, y).w_, ppn.w_)


# ---------------------------------------------------------------------------
# One-vs-rest on all three Iris classes
# ---------------------------------------------------------------------------

def _standardised_iris(iris):
    X, y, _ = iris
    return (X - X.mean(axis=0)) / X.std(axis=0), y


def _ovr():
    return OneVsRest(lambda: Perceptron(eta=0.1, n_iter=50, random_state=1,
                                        shuffle=True))


def test_ovr_iris_accuracy(iris):
    X, y = _standardised_iris(iris)
    ovr = _ovr()
    assert ovr.fit(X, y) is ovr
    np.testing.assert_array_equal(ovr.classes_, [0, 1, 2])
    assert len(ovr.estimators_) == 3
    assert len({id(e) for e in ovr.estimators_}) == 3
    scores = ovr.decision_function(X)
    assert scores.shape == (150, 3) and scores.dtype == np.float64
    for k, est in enumerate(ovr.estimators_):
        np.testing.assert_array_equal(scores[:, k], est.net_input(X))
    pred = ovr.predict(X)
    np.testing.assert_array_equal(pred, ovr.classes_[scores.argmax(axis=1)])
    acc = ovr.score(X, y)
    # observed: 0.96 exactly (random_state 0..14 give 0.887..0.96)
    assert acc == pytest.approx(144 / 150)
    assert acc >= 0.9  # the requirement; the line above pins the exact value
    # setosa is linearly separable from the rest: its perceptron converges
    assert ovr.estimators_[0].errors_[-1] == 0


def test_ovr_deterministic_and_string_labels(iris):
    X, y = _standardised_iris(iris)
    a = _ovr().fit(X, y)
    b = _ovr().fit(X, y)
    np.testing.assert_array_equal(a.decision_function(X),
                                  b.decision_function(X))
    names = np.asarray(iris[2])
    c = _ovr().fit(X, names[y])
    np.testing.assert_array_equal(c.classes_, names)
    np.testing.assert_array_equal(c.predict(X), names[a.predict(X)])


def test_ovr_uses_decision_function_when_present():
    class Stub:
        def fit(self, X, y):
            self.sign = 1.0 if y[0] == 1 else -1.0
            return self

        def decision_function(self, X):
            return self.sign * np.asarray(X)[:, 0]

    X = np.array([[1.0], [2.0], [3.0]])
    ovr = OneVsRest(Stub).fit(X, ["a", "b", "b"])
    np.testing.assert_array_equal(ovr.decision_function(X),
                                  [[1, -1], [2, -2], [3, -3]])
    assert ovr.predict(X).tolist() == ["a", "a", "a"]


def test_ovr_bad_input(iris):
    X, y = _standardised_iris(iris)
    with pytest.raises(TypeError, match="callable"):
        OneVsRest(Perceptron())
    with pytest.raises(TypeError, match="fit"):
        OneVsRest(object).fit(X, y)

    class NoScore:
        def fit(self, X, y):
            return self

    with pytest.raises(TypeError, match="net_input"):
        OneVsRest(NoScore).fit(X, y)
    shared = Perceptron()
    with pytest.raises(ValueError, match="new estimator"):
        OneVsRest(lambda: shared).fit(X, y)
    with pytest.raises(ValueError, match="at least two classes"):
        _ovr().fit(X, np.zeros(150))
    with pytest.raises(ValueError, match="inconsistent"):
        _ovr().fit(X, y[:10])
    with pytest.raises(ValueError, match="NaN"):
        _ovr().fit(np.full((3, 2), np.nan), [0, 1, 2])
    with pytest.raises(NotFittedError):
        _ovr().predict(X)
    ovr = _ovr().fit(X, y)
    with pytest.raises(ValueError, match="features"):
        ovr.predict(X[:, :2])
    assert ovr.get_params()["estimator_factory"] is ovr.estimator_factory
    with pytest.raises(ValueError, match="invalid parameter"):
        ovr.set_params(n_jobs=2)
