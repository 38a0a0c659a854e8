"""Splitting data into training and test sets."""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["train_test_split"]


def _n_test(test_size, n: int) -> int:
    """Validate *test_size* and turn it into a number of test samples."""
    if isinstance(test_size, (bool, np.bool_)):
        raise TypeError(
            "train_test_split: 'test_size' must be a float in (0, 1) or an int, got a bool"
        )
    if isinstance(test_size, numbers.Integral):
        n_test = int(test_size)
        if not 1 <= n_test <= n - 1:
            raise ValueError(
                f"train_test_split: 'test_size'={n_test} is out of range: as an "
                f"int it must be between 1 and n_samples - 1 = {n - 1}"
            )
        return n_test
    if isinstance(test_size, numbers.Real):
        frac = float(test_size)
        if not 0.0 < frac < 1.0:  # also rejects NaN
            raise ValueError(
                f"train_test_split: 'test_size'={test_size!r} is out of range: "
                "as a float it must be strictly between 0 and 1"
            )
        # Round away float noise (0.3 * 10 must give 3, not 4).
        n_test = math.ceil(round(frac * n, 9))
        if n_test >= n:
            raise ValueError(
                f"train_test_split: 'test_size'={test_size!r} with {n} samples "
                f"leaves no training samples ({n_test} test samples)"
            )
        return n_test
    raise TypeError(
        "train_test_split: 'test_size' must be a float in (0, 1) or an int, "
        f"got {type(test_size).__name__}"
    )


def _check_seed(seed) -> np.random.Generator:
    if seed is None or isinstance(seed, (np.random.Generator, np.random.SeedSequence)):
        return np.random.default_rng(seed)
    if isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_)):
        if seed < 0:
            raise ValueError(f"train_test_split: 'seed' must be non-negative, got {seed}")
        return np.random.default_rng(int(seed))
    raise TypeError(
        "train_test_split: 'seed' must be None, a non-negative int or a "
        f"numpy.random.Generator, got {type(seed).__name__}"
    )


def _stratified_indices(labels: np.ndarray, n_test: int, rng: np.random.Generator, what: str):
    """Split ``range(n)`` so each class keeps its share in both parts.

    The number of test samples of every class is within one of its exact
    share ``n_test * n_class / n`` (largest-remainder apportionment, with
    ties broken at random), so the same holds for the training part.
    """
    n = labels.shape[0]
    if labels.ndim == 1:
        classes, inv = np.unique(labels, return_inverse=True)
    else:  # one row per sample: stratify on the combination of columns
        classes, inv = np.unique(labels, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    counts = np.bincount(inv)
    n_classes = counts.size
    n_train = n - n_test

    too_few = np.flatnonzero(counts < 2)
    if too_few.size:
        shown = ", ".join(repr(classes[i].tolist()) for i in too_few[:5])
        more = f" and {too_few.size - 5} more" if too_few.size > 5 else ""
        raise ValueError(
            f"train_test_split: cannot stratify: {too_few.size} class(es) in "
            f"{what} have only 1 member ({shown}{more}); every class needs "
            "at least 2 members"
        )
    if n_test < n_classes or n_train < n_classes:
        raise ValueError(
            f"train_test_split: cannot stratify {n_classes} classes into "
            f"{n_train} training and {n_test} test samples; each part needs at "
            f"least one sample per class (adjust 'test_size')"
        )

    # Exact integer apportionment of n_test over the classes.
    num = n_test * counts
    per_class = num // n
    shortfall = n_test - int(per_class.sum())
    if shortfall:
        remainder = num % n
        order = np.lexsort((rng.random(n_classes), -remainder))
        per_class[order[:shortfall]] += 1

    # Random order within each class, grouped by class.
    perm = rng.permutation(n)
    grouped = perm[np.argsort(inv[perm], kind="stable")]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    cls = inv[grouped]
    rank = np.arange(n) - starts[cls]
    is_test = rank < per_class[cls]
    test = rng.permutation(grouped[is_test])
    train = rng.permutation(grouped[~is_test])
    return train, test


def train_test_split(X, y, test_size=0.25, stratify=False, seed=None, shuffle=True):
    """Split arrays into random training and test subsets.

    Parameters
    ----------
    X : array_like, shape (n_samples, ...)
        Samples; indexed along the first axis.
    y : array_like, shape (n_samples, ...)
        Targets, same number of samples as ``X``.
    test_size : float or int, default 0.25
        A float strictly between 0 and 1 is the fraction of samples put in
        the test set (rounded up, as in scikit-learn); an int is the exact
        number of test samples, between 1 and ``n_samples - 1``.
    stratify : bool or array_like, default False
        If True, split so that each class of ``y`` (1-D class labels: ints,
        strings, ...) has the same share in the training and test sets as in
        the whole data, to within one sample.  An array of ``n_samples``
        labels stratifies on those labels instead of ``y``; a 2-D array
        stratifies on the combination of the values in each row.  Every
        class needs at least 2 members and each part at least one sample per
        class.  Requires ``shuffle=True``.
    seed : int, numpy.random.Generator or None, default None
        Seed for :func:`numpy.random.default_rng`.  The same int always gives
        the same split; None gives a different split each call.
    shuffle : bool, default True
        If False, the data are not shuffled: the first ``n_samples -
        n_test`` samples form the training set and the rest the test set.

    Returns
    -------
    X_train, X_test, y_train, y_test : numpy.ndarray
        The split data, in scikit-learn's order.  Inputs that are not numpy
        arrays are converted with :func:`numpy.asarray`.

    Raises
    ------
    ValueError
        If ``X``, ``y`` and ``stratify`` do not have the same number of
        samples, ``test_size`` is out of range, or stratification is
        impossible (a class with fewer than 2 members, too few samples for
        the number of classes, or ``shuffle=False``).
    TypeError
        If ``test_size``, ``seed``, ``shuffle`` or ``stratify`` has the
        wrong type.

    Examples
    --------
    >>> import numpy as np
    >>> X, y = np.arange(20).reshape(10, 2), np.array([0, 1] * 5)
    >>> X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2,
    ...                                           stratify=True, seed=0)
    >>> X_tr.shape, X_te.shape, np.bincount(y_te)
    ((8, 2), (2, 2), array([1, 1]))
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim == 0:
        raise ValueError("train_test_split: 'X' must be an array of samples, got a scalar")
    if y.ndim == 0:
        raise ValueError("train_test_split: 'y' must be an array of targets, got a scalar")
    n = X.shape[0]
    if y.shape[0] != n:
        raise ValueError(
            "train_test_split: 'X' and 'y' have different numbers of samples: "
            f"{n} and {y.shape[0]}"
        )
    if n < 2:
        raise ValueError(f"train_test_split: need at least 2 samples to split, got {n}")
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"train_test_split: 'shuffle' must be a bool, got {type(shuffle).__name__}")
    n_test = _n_test(test_size, n)
    rng = _check_seed(seed)

    if stratify is None or stratify is False:
        labels = None
    elif stratify is True:
        labels = y
        what = "'y'"
    elif isinstance(stratify, (bool, np.bool_, str, bytes)) or not hasattr(stratify, "__len__"):
        raise TypeError(
            "train_test_split: 'stratify' must be a bool or an array of labels, "
            f"got {type(stratify).__name__}"
        )
    else:
        labels = np.asarray(stratify)
        what = "'stratify'"
        if labels.ndim == 0 or labels.shape[0] != n:
            got = "a scalar" if labels.ndim == 0 else f"{labels.shape[0]} labels"
            raise ValueError(
                f"train_test_split: 'stratify' must have one label per sample "
                f"({n}), got {got}"
            )

    if labels is not None:
        if not shuffle:
            raise ValueError(
                "train_test_split: stratified splitting requires shuffle=True"
            )
        if labels.ndim > 2:
            raise ValueError(
                f"train_test_split: cannot stratify on {what} with "
                f"{labels.ndim} dimensions; give 1-D class labels"
            )
        train, test = _stratified_indices(labels, n_test, rng, what)
    elif shuffle:
        perm = rng.permutation(n)
        test, train = perm[:n_test], perm[n_test:]
    else:
        train, test = np.arange(n - n_test), np.arange(n - n_test, n)

    return X[train], X[test], y[train], y[test]
