"""One-vs-rest multi-class wrapper for binary (-1/+1) classifiers, and the
Iris data loader used by the course examples.

``OneVsRest(estimator_factory)`` trains one binary classifier per class
(that class = +1, every other class = -1) and predicts the class whose
classifier gives the largest net input.  Any estimator works if it has
``fit(X, y)`` accepting labels -1/1 and either ``decision_function(X)`` or
``net_input(X)`` returning one real score per sample, for instance
``fastnet.perceptron.Perceptron``::

    from fastnet.perceptron import Perceptron
    ovr = OneVsRest(lambda: Perceptron(eta=0.1, n_iter=50)).fit(X, y)

Only numpy and the standard library are used.
"""

from __future__ import annotations

import csv
import importlib.resources
import io

import numpy as np

from .perceptron import _check_X, _check_y, _unique_labels

__all__ = ["OneVsRest", "load_iris"]


class OneVsRest:
    """One-vs-rest (one-vs-all) multi-class classifier.

    Parameters
    ----------
    estimator_factory : callable
        Called with no arguments once per class; must return a *new*
        unfitted binary estimator with ``fit(X, y)`` (``y`` in {-1, 1}) and
        ``decision_function(X)`` or ``net_input(X)`` (used in that order of
        preference).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Sorted class labels.
    estimators_ : list of estimators
        ``estimators_[k]`` separates ``classes_[k]`` (+1) from the rest (-1).
        One estimator per class is trained even when there are two classes,
        so ``decision_function`` always has ``n_classes`` columns.
    n_features_in_ : int
        Number of features seen during ``fit``.

    Notes
    -----
    ``predict`` takes ``classes_[argmax(decision_function(X), axis=1)]``;
    ties go to the class that comes first in ``classes_``.  The scores of
    the binary estimators are compared directly, so they should be on a
    common scale (e.g. standardise the features for perceptrons).
    """

    def __init__(self, estimator_factory):
        _check_factory(estimator_factory)
        self.estimator_factory = estimator_factory

    def get_params(self, deep=True):
        return {"estimator_factory": self.estimator_factory}

    def set_params(self, **params):
        for name, value in params.items():
            if name != "estimator_factory":
                raise ValueError(
                    f"invalid parameter {name!r} for OneVsRest; valid "
                    "parameters are ['estimator_factory']")
            _check_factory(value)
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self):
        return f"OneVsRest(estimator_factory={self.estimator_factory!r})"

    def fit(self, X, y):
        """Fit one binary estimator per class; return ``self``."""
        _check_factory(self.estimator_factory)
        X = _check_X(X)
        y = _check_y(y, X.shape[0])
        classes = _unique_labels(y)
        if classes.shape[0] < 2:
            raise ValueError(
                "y must contain at least two classes, got "
                f"{classes.shape[0]}: {classes.tolist()!r}")

        estimators = []
        for k, label in enumerate(classes):
            est = self.estimator_factory()
            _check_estimator(est)
            if any(est is prev for prev in estimators):
                raise ValueError(
                    "estimator_factory returned the same object twice; it "
                    "must return a new estimator on every call")
            y_bin = np.where(y == label, 1, -1)
            est.fit(X, y_bin)
            estimators.append(est)

        self.classes_ = classes
        self.estimators_ = estimators
        self.n_features_in_ = X.shape[1]
        return self

    def decision_function(self, X):
        """Return the binary estimators' scores, shape
        (n_samples, n_classes)."""
        if not hasattr(self, "estimators_"):
            from .perceptron import NotFittedError
            raise NotFittedError(
                "this OneVsRest is not fitted yet; call fit(X, y) first")
        X = _check_X(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but this OneVsRest expects "
                f"{self.n_features_in_}")
        scores = np.empty((X.shape[0], len(self.estimators_)),
                          dtype=np.float64)
        for k, est in enumerate(self.estimators_):
            fn = getattr(est, "decision_function", None)
            if not callable(fn):
                fn = est.net_input
            s = np.asarray(fn(X), dtype=np.float64)
            if s.shape not in ((X.shape[0],), (X.shape[0], 1)):
                raise ValueError(
                    f"estimator {k} returned scores of shape {s.shape}; "
                    f"expected ({X.shape[0]},)")
            scores[:, k] = s.reshape(-1)
        return scores

    def predict(self, X):
        """Return ``classes_[argmax(decision_function(X), axis=1)]``."""
        scores = self.decision_function(X)
        return self.classes_[np.argmax(scores, axis=1)]

    def score(self, X, y):
        """Return the mean accuracy of ``predict(X)`` against ``y``."""
        pred = self.predict(X)
        y = _check_y(y, pred.shape[0])
        return float(np.mean(pred == y))


def _check_factory(factory):
    if not callable(factory):
        raise TypeError(
            "estimator_factory must be a callable returning a new estimator, "
            f"got {factory!r}")


def _check_estimator(est):
    if not callable(getattr(est, "fit", None)):
        raise TypeError(
            "estimator_factory must return an estimator with a fit(X, y) "
            f"method; got {est!r}")
    if not (callable(getattr(est, "decision_function", None))
            or callable(getattr(est, "net_input", None))):
        raise TypeError(
            "estimator_factory must return an estimator with a "
            f"decision_function(X) or net_input(X) method; got {est!r}")


# ---------------------------------------------------------------------------
# Iris data
# ---------------------------------------------------------------------------

IRIS_FEATURE_NAMES = ("sepal_length", "sepal_width", "petal_length",
                      "petal_width")


def load_iris():
    """Load Fisher's Iris data shipped with fastnet.

    Returns
    -------
    X : ndarray of shape (150, 4), float64
        Sepal length, sepal width, petal length, petal width (cm), in the
        order of ``IRIS_FEATURE_NAMES``.
    y : ndarray of shape (150,), int64
        Class codes 0, 1, 2 (50 samples each, rows 0-49, 50-99, 100-149).
    names : tuple of str
        Class names for the codes: ``('Iris-setosa', 'Iris-versicolor',
        'Iris-virginica')`` (the UCI spelling used in the course material).

    The data (``fastnet/datasets/data/iris.csv``) are the same values as
    scikit-learn's copy, i.e. Fisher's published table; the UCI
    ``iris.data`` file differs in two setosa rows (35 and 38, 1-based),
    which does not affect the course examples.
    """
    res = (importlib.resources.files("fastnet")
           / "datasets" / "data" / "iris.csv")
    text = res.read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], [r for r in rows[1:] if r]
    if tuple(header[:4]) != IRIS_FEATURE_NAMES or len(body) != 150:
        raise RuntimeError("fastnet's iris.csv is corrupt")
    X = np.array([[float(v) for v in r[:4]] for r in body], dtype=np.float64)
    labels = [r[4] for r in body]
    names = tuple(dict.fromkeys(labels))  # first-appearance order
    code = {name: i for i, name in enumerate(names)}
    y = np.array([code[v] for v in labels], dtype=np.int64)
    return X, y, names
