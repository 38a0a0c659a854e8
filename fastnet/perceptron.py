"""Rosenblatt's perceptron, exactly as in Raschka's *Python Machine Learning*.

The algorithm, the weight layout and the initialisation follow the course
material (S. Raschka, *Python Machine Learning*, 3rd edition, chapter 2):

* the weight vector ``w_`` holds the **bias first**: ``w_[0]`` is the bias
  (the negated threshold, ``-theta``) and ``w_[1:]`` are the feature weights;
* the weights are initialised with small random numbers::

      np.random.RandomState(random_state).normal(loc=0.0, scale=0.01,
                                                 size=1 + n_features)

  (the 3rd-edition convention; the 1st edition initialised with zeros, which
  gives a different learning curve -- see ``tests/test_perceptron.py``);
* ``fit`` visits the samples one at a time, in order, and after each sample
  applies ``update = eta * (target - predict(xi))``,
  ``w_[1:] += update * xi`` and ``w_[0] += update``;
* ``errors_[k]`` is the number of non-zero updates (misclassified samples)
  during epoch ``k``;
* ``net_input(X) = X @ w_[1:] + w_[0]`` and ``predict`` thresholds it at 0
  (``net_input >= 0`` gives the positive class).

Internally the targets are -1/+1.  ``fit`` accepts any two class labels: the
sorted labels are stored in ``classes_`` (as in scikit-learn);
``classes_[0]`` is mapped to -1 and ``classes_[1]`` to +1, and ``predict``
returns the original labels.  With the default labels -1/1 nothing changes.

Only numpy and the standard library are used.  Results are deterministic for
an integer ``random_state``: every call of ``fit`` starts from a fresh
``RandomState(random_state)``.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["Perceptron", "NotFittedError"]


class NotFittedError(ValueError, AttributeError):
    """Raised when a method needing learnt weights is called before ``fit``.

    Subclasses both ``ValueError`` and ``AttributeError``, like scikit-learn's
    exception of the same name.
    """


# ---------------------------------------------------------------------------
# input validation helpers (shared with fastnet.multiclass)
# ---------------------------------------------------------------------------

def _check_X(X, name="X"):
    """Return ``X`` as a finite 2-D float64 array (a copy only if needed)."""
    try:
        if np.iscomplexobj(X):
            raise ValueError(f"{name} must be real-valued, got complex data")
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must be a 2-D array of numbers: {exc}") from None
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_features), "
            f"got an array with {arr.ndim} dimension(s) and shape {arr.shape}")
    if arr.shape[0] < 1:
        raise ValueError(f"{name} must contain at least one sample, "
                         f"got shape {arr.shape}")
    if arr.shape[1] < 1:
        raise ValueError(f"{name} must contain at least one feature, "
                         f"got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinity")
    return arr


def _check_y(y, n_samples, name="y"):
    """Return ``y`` as a 1-D array of length ``n_samples`` without NaN/inf."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D array of shape (n_samples,), got an array "
            f"with {arr.ndim} dimension(s) and shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise ValueError(
            f"X and {name} have inconsistent numbers of samples: "
            f"{n_samples} != {arr.shape[0]}")
    if arr.dtype.kind == "c":
        raise ValueError(f"{name} must not contain complex values")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinity")
    if arr.dtype.kind == "O":
        for v in arr:
            if v is None:
                raise ValueError(f"{name} contains None")
            if isinstance(v, numbers.Real) and not np.isfinite(float(v)):
                raise ValueError(f"{name} contains NaN or infinity")
    return arr


def _unique_labels(y, name="y"):
    try:
        return np.unique(y)
    except TypeError as exc:  # e.g. a mix of strings and numbers
        raise ValueError(f"{name} contains labels that cannot be compared "
                         f"(mixed types?): {exc}") from None


def _check_eta(eta):
    if (isinstance(eta, (bool, np.bool_)) or not isinstance(eta, numbers.Real)
            or not np.isfinite(float(eta)) or not float(eta) > 0.0):
        raise ValueError(
            f"eta must be a finite real number > 0, got {eta!r}")


def _check_n_iter(n_iter):
    if (isinstance(n_iter, (bool, np.bool_))
            or not isinstance(n_iter, numbers.Integral) or n_iter < 1):
        raise ValueError(f"n_iter must be an integer >= 1, got {n_iter!r}")


def _check_random_state(random_state):
    if random_state is None:
        return
    if (isinstance(random_state, (bool, np.bool_))
            or not isinstance(random_state, numbers.Integral)
            or not 0 <= random_state < 2 ** 32):
        raise ValueError(
            "random_state must be None or an integer in [0, 2**32), "
            f"got {random_state!r}")


def _check_shuffle(shuffle):
    if not isinstance(shuffle, (bool, np.bool_)):
        raise ValueError(f"shuffle must be a bool, got {shuffle!r}")


_PARAM_CHECKS = {
    "eta": _check_eta,
    "n_iter": _check_n_iter,
    "random_state": _check_random_state,
    "shuffle": _check_shuffle,
}


class Perceptron:
    """Rosenblatt's perceptron classifier (Raschka's formulation).

    Parameters
    ----------
    eta : float, default 0.01
        Learning rate, > 0.
    n_iter : int, default 50
        Number of passes (epochs) over the training set, >= 1.
    random_state : int or None, default 1
        Seed of the ``np.random.RandomState`` used to draw the initial
        weights (``normal(0, 0.01)``, bias first) and, with ``shuffle``, the
        per-epoch sample order.  ``None`` seeds from the OS (not
        reproducible).
    shuffle : bool, default False
        If True, the training samples are visited in a new random order in
        every epoch (drawn from the same ``RandomState`` after the weight
        initialisation and applied to the previous epoch's order, exactly
        as ``X, y = self._shuffle(X, y)`` in Raschka's ``AdalineSGD``).  The
        book's ``Perceptron`` does not shuffle, hence the default.

    Attributes
    ----------
    w_ : ndarray of shape (1 + n_features,)
        Learnt weights; ``w_[0]`` is the bias, ``w_[1:]`` the feature weights.
    errors_ : list of int
        Number of misclassifications (non-zero updates) in each epoch.
    classes_ : ndarray of shape (2,)
        The two class labels; ``classes_[0]`` is predicted when the net input
        is < 0 and ``classes_[1]`` when it is >= 0.
    n_features_in_ : int
        Number of features seen during ``fit``.
    """

    def __init__(self, eta=0.01, n_iter=50, random_state=1, shuffle=False):
        for name, value in (("eta", eta), ("n_iter", n_iter),
                            ("random_state", random_state),
                            ("shuffle", shuffle)):
            _PARAM_CHECKS[name](value)
        self.eta = eta
        self.n_iter = n_iter
        self.random_state = random_state
        self.shuffle = shuffle

    # -- scikit-learn style parameter handling ------------------------------

    def get_params(self, deep=True):
        """Return the constructor parameters as a dict."""
        return {"eta": self.eta, "n_iter": self.n_iter,
                "random_state": self.random_state, "shuffle": self.shuffle}

    def set_params(self, **params):
        """Set constructor parameters (validated first); return ``self``."""
        for name, value in params.items():
            if name not in _PARAM_CHECKS:
                raise ValueError(
                    f"invalid parameter {name!r} for Perceptron; valid "
                    f"parameters are {sorted(_PARAM_CHECKS)}")
            _PARAM_CHECKS[name](value)
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = {"eta": 0.01, "n_iter": 50, "random_state": 1,
                    "shuffle": False}
        args = ", ".join(
            f"{k}={v!r}" for k, v in self.get_params().items()
            if not (type(v) is type(defaults[k]) and v == defaults[k]))
        return f"Perceptron({args})"

    # -- construction from known weights -------------------------------------

    @classmethod
    def from_weights(cls, w, classes=(-1, 1), **params):
        """Build an already "fitted" perceptron from a weight vector.

        Parameters
        ----------
        w : array-like of shape (1 + n_features,)
            Weights with the bias first: ``w[0]`` is the bias (``-theta``
            for a threshold ``theta``), ``w[1:]`` the feature weights.
        classes : sequence of two distinct labels, default (-1, 1)
            ``classes[0]`` is output when the net input is < 0,
            ``classes[1]`` when it is >= 0 (the order given is kept).
        **params
            Constructor parameters (``eta``, ``n_iter``, ...), used only if
            the perceptron is trained again later.

        Examples
        --------
        The majority gate of three inputs with weights 0.3 and threshold 0.4:
        ``Perceptron.from_weights([-0.4, .3, .3, .3], classes=(0, 1))``.
        """
        self = cls(**params)
        self.w_ = _check_weights(w)
        self.classes_ = _check_classes(classes)
        self.n_features_in_ = self.w_.shape[0] - 1
        self.errors_ = []
        return self

    # -- training -------------------------------------------------------------

    def fit(self, X, y):
        """Fit the weights to training data; return ``self``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) with exactly two distinct labels.
        """
        for name, check in _PARAM_CHECKS.items():
            check(getattr(self, name))
        X = _check_X(X)
        y = _check_y(y, X.shape[0])
        classes = _unique_labels(y)
        if classes.shape[0] != 2:
            raise ValueError(
                f"y must contain exactly two classes, got {classes.shape[0]}"
                + (f": {classes.tolist()!r}" if classes.shape[0] <= 10
                   else ""))
        # classes_[0] -> -1, classes_[1] -> +1
        targets = np.where(y == classes[1], 1, -1)

        rgen = np.random.RandomState(self.random_state)
        w = rgen.normal(loc=0.0, scale=0.01, size=1 + X.shape[1])
        w_feat = w[1:]  # a view: in-place updates change w
        eta = float(self.eta)
        errors = []
        n_samples = X.shape[0]
        order = np.arange(n_samples)
        for _ in range(int(self.n_iter)):
            if self.shuffle:
                # Raschka's AdalineSGD does ``X, y = self._shuffle(X, y)``
                # each epoch, i.e. the permutations compound.
                order = order[rgen.permutation(n_samples)]
            n_err = 0
            for i in order:
                xi = X[i]
                # predict(xi): np.where(net_input >= 0.0, 1, -1)
                pred = 1 if np.dot(xi, w_feat) + w[0] >= 0.0 else -1
                update = eta * (targets[i] - pred)
                if update != 0.0:
                    w_feat += update * xi
                    w[0] += update
                    n_err += 1
            errors.append(n_err)

        self.w_ = w
        self.errors_ = errors
        self.classes_ = classes
        self.n_features_in_ = X.shape[1]
        return self

    # -- prediction ----------------------------------------------------------

    def _fitted_weights(self):
        if not hasattr(self, "w_"):
            raise NotFittedError(
                "this Perceptron is not fitted yet; call fit(X, y) or build "
                "it with Perceptron.from_weights(w, classes)")
        return _check_weights(self.w_, name="w_")

    def _fitted_classes(self):
        # A perceptron whose w_ was assigned by hand (Raschka-style) but has
        # no classes_ uses the book's labels -1/1.
        classes = getattr(self, "classes_", None)
        if classes is None:
            return np.array([-1, 1])
        return np.asarray(classes)

    def net_input(self, X):
        """Return ``X @ w_[1:] + w_[0]``, shape (n_samples,)."""
        w = self._fitted_weights()
        X = _check_X(X)
        if X.shape[1] != w.shape[0] - 1:
            raise ValueError(
                f"X has {X.shape[1]} features, but this Perceptron expects "
                f"{w.shape[0] - 1}")
        return np.dot(X, w[1:]) + w[0]

    def decision_function(self, X):
        """Alias of :meth:`net_input` (scikit-learn naming)."""
        return self.net_input(X)

    def predict(self, X):
        """Return ``classes_[1]`` where ``net_input(X) >= 0``, else
        ``classes_[0]``."""
        net = self.net_input(X)
        classes = self._fitted_classes()
        return classes[(net >= 0.0).astype(np.intp)]

    def score(self, X, y):
        """Return the mean accuracy of ``predict(X)`` against ``y``."""
        pred = self.predict(X)
        y = _check_y(y, pred.shape[0])
        return float(np.mean(pred == y))


def _check_weights(w, name="w"):
    try:
        arr = np.array(w, dtype=np.float64)  # always a private copy
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a 1-D array of numbers: {exc}") \
            from None
    if arr.ndim != 1 or arr.shape[0] < 2:
        raise ValueError(
            f"{name} must be a 1-D array of length 1 + n_features >= 2 "
            f"(bias first), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinity")
    return arr


def _check_classes(classes):
    arr = np.asarray(classes)
    if arr.ndim != 1 or arr.shape[0] != 2:
        raise ValueError(
            "classes must be a sequence of exactly two labels, "
            f"got {classes!r}")
    if arr[0] == arr[1]:
        raise ValueError(
            f"classes must be two distinct labels, got {classes!r}")
    return arr
