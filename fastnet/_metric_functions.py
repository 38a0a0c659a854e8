"""scikit-learn compatible metric functions (numpy only), re-exported by
:mod:`fastnet.metrics`, where they are documented and imported from.

:func:`accuracy_score`, :func:`precision_score`, :func:`recall_score`,
:func:`f1_score`, :func:`fbeta_score`, :func:`specificity_score`,
:func:`roc_auc_score`, :func:`confusion_matrix` and
:func:`multilabel_confusion_matrix` use scikit-learn's names, argument order,
label handling (ints, floats, bools or strings; ``unique_labels`` of ``y_true``
and ``y_pred``; multilabel indicator matrices) and give the same values
(scikit-learn 1.9 semantics, including ``zero_division`` and
:class:`UndefinedMetricWarning`).  One deliberate difference:
:func:`roc_auc_score` raises ``ValueError`` when ``y_true`` (or a column / class
that takes part in the average) holds a single class, as scikit-learn < 1.6
did, instead of returning ``nan`` with a warning.

The private helpers here (target checks, confusion counts, the binary ROC AUC)
are shared with the Metric classes of :mod:`fastnet.metrics`.
"""

import numbers
import sys
import warnings
from itertools import combinations

import numpy as np

# numpy >= 2.0 renamed trapz to trapezoid (the project supports numpy >= 1.24)
_trapezoid = getattr(np, "trapezoid", None) or getattr(np, "trapz")

__all__ = [
    "UndefinedMetricWarning",
    "accuracy_score",
    "precision_score",
    "recall_score",
    "f1_score",
    "fbeta_score",
    "specificity_score",
    "roc_auc_score",
    "confusion_matrix",
    "multilabel_confusion_matrix",
]


class UndefinedMetricWarning(UserWarning):
    """Warning used when a metric is ill-defined (e.g. precision with no
    predicted samples), mirroring ``sklearn.exceptions.UndefinedMetricWarning``."""


# the Metric classes (fastnet.metrics) warn through _warn too
_OWN_MODULES = (__name__, "fastnet.metrics")


def _warn(message, category=UndefinedMetricWarning):
    """Warn, attributing the warning to the first caller outside fastnet's metric modules."""
    frame = sys._getframe(0)
    level = 1
    while frame is not None and frame.f_globals.get("__name__") in _OWN_MODULES:
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


# ---------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------

_SUPPORTED_TARGETS = ("binary", "multiclass", "multilabel-indicator")
_AVERAGE_OPTIONS = (None, "micro", "macro", "weighted", "samples")


def _to_array(y, name):
    """Convert ``y`` to a numpy array of numbers, bools or (unicode) strings."""
    if y is None:
        raise TypeError(f"{name} must be array-like, got None")
    if isinstance(y, (str, bytes)):
        raise TypeError(f"{name} must be array-like (a sequence or an array), got a string {y!r}")
    if hasattr(y, "toarray") and not isinstance(y, np.ndarray):  # scipy.sparse
        y = y.toarray()
    try:
        arr = np.asarray(y)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} could not be converted to an array: {exc}") from None
    if arr.ndim == 0:
        raise TypeError(f"{name} must be array-like (a sequence or an array), got {type(y).__name__}")
    kind = arr.dtype.kind
    if kind == "O":
        arr = _normalize_object_array(arr, name)
    elif kind == "S":
        raise TypeError(
            f"{name} holds bytes labels, which are not supported; convert the labels to str or int"
        )
    elif kind not in "biufU":
        raise TypeError(f"{name} has unsupported dtype {arr.dtype}; expected numbers, bools or strings")
    return arr


def _normalize_object_array(arr, name):
    values = arr.ravel().tolist()
    if all(isinstance(v, str) for v in values):
        return arr.astype(str)
    if all(isinstance(v, (bool, np.bool_, numbers.Integral)) for v in values):
        return arr.astype(np.int64)
    if all(isinstance(v, numbers.Real) for v in values):
        return arr.astype(np.float64)
    if any(isinstance(v, str) for v in values):
        raise ValueError(
            f"Mix of label input types (string and number) in {name}; labels must all be "
            "strings or all be numbers"
        )
    raise TypeError(f"{name} holds values of unsupported types; expected numbers, bools or strings")


def _to_float_array(y, name):
    if y is None:
        raise TypeError(f"{name} must be array-like, got None")
    if hasattr(y, "toarray") and not isinstance(y, np.ndarray):
        y = y.toarray()
    try:
        arr = np.asarray(y)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} could not be converted to an array: {exc}") from None
    if arr.dtype.kind == "O":
        try:
            arr = arr.astype(np.float64)
        except (ValueError, TypeError):
            raise TypeError(f"{name} must hold numbers, got dtype object with non-numeric values") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise TypeError(f"{name} must be array-like (a sequence or an array), got a scalar")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"Input {name} contains NaN or infinity.")
    return arr


def _check_consistent_length(*named_arrays):
    lengths = [(name, a.shape[0]) for name, a in named_arrays if a is not None]
    if len({n for _, n in lengths}) > 1:
        detail = ", ".join(f"{name} has {n}" for name, n in lengths)
        raise ValueError(f"Found input variables with inconsistent numbers of samples: {detail}")


def _check_sample_weight(sample_weight, n_samples, allow_all_zero=False):
    if sample_weight is None:
        return None
    if isinstance(sample_weight, (str, bytes)):
        raise TypeError("sample_weight must be array-like of numbers, got a string")
    try:
        sw = np.asarray(sample_weight)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"sample_weight could not be converted to an array: {exc}") from None
    if sw.dtype.kind == "O":
        try:
            sw = sw.astype(np.float64)
        except (ValueError, TypeError):
            raise TypeError("sample_weight must hold numbers") from None
    if sw.dtype.kind not in "biuf":
        raise TypeError(f"sample_weight must hold numbers, got dtype {sw.dtype}")
    if sw.dtype.kind == "b":
        sw = sw.astype(np.int64)
    if sw.ndim == 0:
        sw = np.full(n_samples, sw.item(), dtype=sw.dtype)
    if sw.ndim != 1:
        raise ValueError(f"sample_weight must be 1-D (or a scalar), got shape {sw.shape}")
    if sw.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight has {sw.shape[0]} entries but y_true has {n_samples} samples"
        )
    if sw.dtype.kind == "f" and not np.all(np.isfinite(sw)):
        raise ValueError("sample_weight contains NaN or infinity")
    if not allow_all_zero and n_samples and not np.any(sw):
        raise ValueError("sample_weight must contain at least one non-zero number")
    return sw


def _is_integral_float(y):
    return y.dtype.kind == "f" and bool(np.all(y == np.floor(y)))


def _is_multilabel(y):
    if not (y.ndim == 2 and y.shape[1] > 1):
        return False
    if y.dtype.kind not in "biuf":
        return False
    labels = np.unique(y)
    return labels.shape[0] < 3 and (y.dtype.kind in "biu" or _is_integral_float(labels))


def _type_of_target(y, name):
    """scikit-learn's ``type_of_target`` for an array from :func:`_to_array`."""
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise ValueError(f"Input {name} contains NaN or infinity.")
    if _is_multilabel(y):
        return "multilabel-indicator"
    if y.ndim not in (1, 2):
        return "unknown"
    if min(y.shape) == 0:
        return "binary" if y.ndim == 1 else "unknown"
    multi = y.ndim == 2 and y.shape[1] > 1
    suffix = "-multioutput" if multi else ""
    if y.dtype.kind == "f" and np.any(y != np.floor(y)):
        return "continuous" + suffix
    if multi or np.unique(y).shape[0] > 2:
        return "multiclass" + suffix
    return "binary"


def _unsupported_target_message(name, y_type, y):
    if y_type.startswith("continuous"):
        return (
            f"{name} contains continuous values ({y_type} is not supported); classification "
            "metrics need class labels -- threshold or argmax the scores first"
        )
    if y_type.endswith("multioutput"):
        return (
            f"{name} is a 2-D array of shape {y.shape} that is not a multilabel indicator "
            f"matrix ({y_type} is not supported); a 2-D {name} must contain only 0/1 values"
        )
    return f"{name} has an unsupported shape {y.shape} or content ({y_type} is not supported)"


def _label_kind(y):
    return "string" if y.dtype.kind == "U" else "number"


def _union_labels(y_true, y_pred):
    kt, kp = _label_kind(y_true), _label_kind(y_pred)
    if kt != kp:
        raise ValueError(
            f"Mix of label input types (string and number): y_true has {kt} labels "
            f"and y_pred has {kp} labels"
        )
    return np.union1d(y_true, y_pred)


def _check_targets(y_true, y_pred, sample_weight=None):
    """Validate a pair of label arrays; see sklearn.metrics._classification."""
    y_true = _to_array(y_true, "y_true")
    y_pred = _to_array(y_pred, "y_pred")
    _check_consistent_length(("y_true", y_true), ("y_pred", y_pred))
    if y_true.shape[0] == 0:
        raise ValueError(
            "Found empty input array (y_true and y_pred) while a minimum of 1 sample is required."
        )
    sample_weight = _check_sample_weight(sample_weight, y_true.shape[0])
    type_true = _type_of_target(y_true, "y_true")
    type_pred = _type_of_target(y_pred, "y_pred")
    for name, t, arr in (("y_true", type_true, y_true), ("y_pred", type_pred, y_pred)):
        if t not in _SUPPORTED_TARGETS:
            raise ValueError(_unsupported_target_message(name, t, arr))
    types = {type_true, type_pred}
    if types == {"binary", "multiclass"}:
        types = {"multiclass"}
    if len(types) > 1:
        raise ValueError(
            f"Classification metrics can't handle a mix of {type_true} (y_true) and "
            f"{type_pred} (y_pred) targets"
        )
    y_type = types.pop()
    if y_type == "multilabel-indicator":
        if y_true.shape[1] != y_pred.shape[1]:
            raise ValueError(
                "Multi-label binary indicator input with different numbers of labels: "
                f"y_true has {y_true.shape[1]} columns, y_pred has {y_pred.shape[1]}"
            )
        labels = np.arange(y_true.shape[1])
    else:
        y_true = y_true.reshape(-1)
        y_pred = y_pred.reshape(-1)
        labels = _union_labels(y_true, y_pred)
        if y_type == "binary" and labels.shape[0] > 2:
            y_type = "multiclass"
    return y_type, labels, y_true, y_pred, sample_weight


def _check_zero_division(zero_division):
    if isinstance(zero_division, str):
        if zero_division == "warn":
            return 0.0
    elif isinstance(zero_division, numbers.Real):
        if zero_division in (0, 1):
            return float(zero_division)
        if np.isnan(zero_division):
            return np.nan
    raise ValueError(
        f"zero_division must be 'warn', 0.0, 1.0 or np.nan, got {zero_division!r}"
    )


def _check_labels_arg(labels):
    """None, or ``labels`` as a 1-D array (TypeError for a scalar or a string)."""
    if labels is None:
        return None
    if isinstance(labels, (str, bytes)) or np.ndim(labels) == 0:
        raise TypeError(f"labels must be array-like (a list of labels), got {labels!r}")
    return np.asarray(labels).reshape(-1)


def _contains(labels, value):
    try:
        return any(v == value for v in np.asarray(labels).tolist())
    except Exception:  # pragma: no cover - exotic comparisons
        return False


# ---------------------------------------------------------------------------
# Counting (per-label confusion matrices)
# ---------------------------------------------------------------------------


def _index_counts(ti, pi, n_classes, sample_weight):
    """One-vs-rest (tp, fp, fn, tn) per class for integer-encoded labels."""
    match = ti == pi
    if sample_weight is None:
        tp = np.bincount(ti[match], minlength=n_classes)
        pred = np.bincount(pi, minlength=n_classes)
        true = np.bincount(ti, minlength=n_classes)
        fp, fn = pred - tp, true - tp
        return tp, fp, fn, ti.shape[0] - tp - fp - fn
    tp = np.bincount(ti[match], weights=sample_weight[match], minlength=n_classes)
    pred = np.bincount(pi, weights=sample_weight, minlength=n_classes)
    true = np.bincount(ti, weights=sample_weight, minlength=n_classes)
    fp, fn = pred - tp, true - tp
    tn = sample_weight.sum() - tp - fp - fn
    # The subtractions above can leave rounding noise (~1e-16) where the exact
    # value is 0, which would turn an undefined 0/0 ratio into 0 or 1.  Zero
    # the cells that hold no sample of non-zero weight.
    nz = sample_weight != 0
    tp_n = np.bincount(ti[match & nz], minlength=n_classes)
    fp_n = np.bincount(pi[nz], minlength=n_classes) - tp_n
    fn_n = np.bincount(ti[nz], minlength=n_classes) - tp_n
    tn_n = np.count_nonzero(nz) - tp_n - fp_n - fn_n
    fp[fp_n == 0] = 0.0
    fn[fn_n == 0] = 0.0
    tn[tn_n == 0] = 0.0
    return tp, fp, fn, tn


def _indicator_counts(yt, yp, sample_weight, samplewise):
    """(tp, fp, fn, tn) per column (or per sample if samplewise) for boolean indicators."""
    cells = (yt & yp, ~yt & yp, yt & ~yp, ~yt & ~yp)
    if samplewise:
        counts = [c.sum(axis=1) for c in cells]
        if sample_weight is not None:
            counts = [c * sample_weight for c in counts]
    elif sample_weight is None:
        counts = [c.sum(axis=0) for c in cells]
    else:
        counts = [sample_weight @ c for c in cells]
    return tuple(counts)


def _mcm_counts(y_true, y_pred, present_labels, labels, sample_weight, samplewise):
    """(tp, fp, fn, tn) per selected label, like sklearn's multilabel_confusion_matrix.

    ``labels`` is None (all present labels) or an array of labels (1-D targets)
    or column indices (multilabel targets).
    """
    if y_true.ndim == 1:
        if samplewise:
            raise ValueError(
                "Samplewise metrics are not available outside of multilabel classification."
            )
        ti = np.searchsorted(present_labels, y_true)
        pi = np.searchsorted(present_labels, y_pred)
        counts = _index_counts(ti, pi, present_labels.shape[0], sample_weight)
        if labels is None:
            return counts
        lookup = {v: i for i, v in enumerate(present_labels.tolist())}
        idx = np.array([lookup.get(v, -1) for v in np.asarray(labels).tolist()], dtype=np.intp)
        valid = idx >= 0
        safe = np.where(valid, idx, 0)
        tp, fp, fn, tn = counts
        # a label absent from the data: tp = fp = fn = 0, every sample is a true negative
        total = y_true.shape[0] if sample_weight is None else sample_weight.sum()
        return (np.where(valid, tp[safe], 0), np.where(valid, fp[safe], 0),
                np.where(valid, fn[safe], 0), np.where(valid, tn[safe], total))
    else:
        if labels is not None:
            cols = np.asarray(labels)
            if cols.ndim != 1 or (cols.size and cols.dtype.kind not in "iu"):
                raise ValueError(
                    "labels must be a 1-D list of column indices for multilabel targets, "
                    f"got {labels!r}"
                )
            n_cols = y_true.shape[1]
            if cols.size and cols.max() > n_cols - 1:
                raise ValueError(
                    "All labels must be in [0, n labels) for multilabel targets. "
                    f"Got {cols.max()} > {n_cols - 1}"
                )
            if cols.size and cols.min() < 0:
                raise ValueError(
                    "All labels must be in [0, n labels) for multilabel targets. "
                    f"Got {cols.min()} < 0"
                )
            y_true = y_true[:, cols]
            y_pred = y_pred[:, cols]
    return _indicator_counts(y_true != 0, y_pred != 0, sample_weight, samplewise)


# ---------------------------------------------------------------------------
# Ratios and averaging
# ---------------------------------------------------------------------------


def _warn_prf(average, modifier, msg_start, result_size):
    axis0, axis1 = "sample", "label"
    if average == "samples":
        axis0, axis1 = axis1, axis0
    msg = (
        f"{msg_start} ill-defined and being set to 0.0 {{0}} no {modifier} {axis0}s. "
        "Use `zero_division` parameter to control this behavior."
    )
    if result_size == 1:
        msg = msg.format("due to")
    else:
        msg = msg.format(f"in {axis1}s with")
    _warn(msg)


def _prf_divide(numerator, denominator, metric, modifier, average, warn, zero_division):
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.array(denominator, dtype=np.float64)
    mask = denominator == 0
    denominator[mask] = 1.0
    result = numerator / denominator
    if not mask.any():
        return result
    result[mask] = _check_zero_division(zero_division)
    if warn and isinstance(zero_division, str) and zero_division == "warn":
        _warn_prf(average, modifier, f"{metric.capitalize()} is", result.shape[0])
    return result


def _nanaverage(a, weights=None):
    a = np.asarray(a, dtype=np.float64)
    if a.shape[0] == 0:
        return np.nan
    mask = np.isnan(a)
    if mask.all():
        return np.nan
    if weights is None:
        return float(np.mean(a[~mask]))
    weights = np.asarray(weights, dtype=np.float64)[~mask]
    a = a[~mask]
    if weights.sum() == 0:  # all weights are zero: ignore them
        return float(np.mean(a))
    return float(np.average(a, weights=weights))


def _score_from_counts(metric, tp, fp, fn, tn, average, sample_weight, zero_division, beta=1.0, warn=True):
    """Ratio ``metric`` from per-label counts, averaged as sklearn does."""
    tp = np.atleast_1d(tp)
    fp = np.atleast_1d(fp)
    fn = np.atleast_1d(fn)
    tn = np.atleast_1d(tn)
    true_sum = tp + fn
    if average == "micro":
        tp, fp, fn, tn = (np.atleast_1d(x.sum()) for x in (tp, fp, fn, tn))
    pred_sum = tp + fp
    if metric == "precision":
        result = _prf_divide(tp, pred_sum, "precision", "predicted", average, warn, zero_division)
    elif metric == "recall":
        result = _prf_divide(tp, tp + fn, "recall", "true", average, warn, zero_division)
    elif metric == "specificity":
        result = _prf_divide(tn, tn + fp, "specificity", "negative", average, warn, zero_division)
    elif metric == "f-score":
        beta2 = beta**2
        # sklearn: beta=inf gives recall and beta=0 precision, without warnings
        if np.isposinf(beta):
            return _score_from_counts("recall", tp, fp, fn, tn, average, sample_weight,
                                      zero_division, warn=False)
        if beta == 0:
            return _score_from_counts("precision", tp, fp, fn, tn, average, sample_weight,
                                      zero_division, warn=False)
        denom = beta2 * np.asarray(tp + fn, dtype=np.float64) + np.asarray(pred_sum, dtype=np.float64)
        result = _prf_divide(
            (1 + beta2) * np.asarray(tp, dtype=np.float64), denom,
            "f-score", "true nor predicted", average, warn, zero_division,
        )
    else:  # pragma: no cover
        raise AssertionError(metric)
    if average is None:
        return result
    if average == "weighted":
        weights = true_sum
    elif average == "samples":
        weights = sample_weight
    else:
        weights = None
    return _nanaverage(result, weights)


def _set_wise_labels(y_type, present_labels, average, labels, pos_label):
    if average not in _AVERAGE_OPTIONS and average != "binary":
        raise ValueError(
            f"average has to be one of {('binary',) + _AVERAGE_OPTIONS}, got {average!r}"
        )
    if average == "binary":
        if y_type == "binary":
            if not _contains(present_labels, pos_label) and present_labels.shape[0] >= 2:
                raise ValueError(
                    f"pos_label={pos_label!r} is not a valid label. It should be one of "
                    f"{present_labels.tolist()}"
                )
            return [pos_label]
        options = list(_AVERAGE_OPTIONS)
        if y_type == "multiclass":
            options.remove("samples")
        raise ValueError(
            f"Target is {y_type} but average='binary'. Please choose another average "
            f"setting, one of {options!r}."
        )
    if pos_label not in (None, 1):
        _warn(
            f"Note that pos_label (set to {pos_label!r}) is ignored when average != 'binary' "
            f"(got {average!r}). You may use labels=[pos_label] to specify a single positive class.",
            UserWarning,
        )
    return labels


def _set_wise_score(metric, y_true, y_pred, *, beta=1.0, labels=None, pos_label=1,
                    average="binary", sample_weight=None, zero_division="warn"):
    _check_zero_division(zero_division)
    if average not in _AVERAGE_OPTIONS and average != "binary":
        raise ValueError(
            f"average has to be one of {('binary',) + _AVERAGE_OPTIONS}, got {average!r}"
        )
    labels = _check_labels_arg(labels)
    y_type, present, y_true, y_pred, sample_weight = _check_targets(y_true, y_pred, sample_weight)
    labels = _set_wise_labels(y_type, present, average, labels, pos_label)
    samplewise = average == "samples"
    if samplewise and y_type != "multilabel-indicator":
        raise ValueError(
            "Samplewise metrics (average='samples') are not available outside of multilabel "
            "classification."
        )
    tp, fp, fn, tn = _mcm_counts(y_true, y_pred, present, labels, sample_weight, samplewise)
    return _score_from_counts(metric, tp, fp, fn, tn, average, sample_weight, zero_division, beta=beta)


# ---------------------------------------------------------------------------
# scikit-learn compatible classification functions
# ---------------------------------------------------------------------------


def accuracy_score(y_true, y_pred, *, normalize=True, sample_weight=None):
    """Accuracy classification score (``sklearn.metrics.accuracy_score``).

    For multilabel indicator inputs this is the *subset* accuracy: a sample
    counts as correct only if its whole row of labels matches.  With
    ``normalize=False`` the (weighted) number of correct samples is returned.
    """
    if not isinstance(normalize, (bool, np.bool_)):
        raise TypeError(f"normalize must be a bool, got {normalize!r}")
    y_type, _, y_true, y_pred, sample_weight = _check_targets(y_true, y_pred, sample_weight)
    if y_type == "multilabel-indicator":
        score = ~np.any(y_true != y_pred, axis=1)
    else:
        score = y_true == y_pred
    if not normalize:
        if sample_weight is None:
            return float(np.sum(score))
        return float(np.dot(score, sample_weight))
    if sample_weight is None:
        return float(np.mean(score))
    if sample_weight.sum() == 0:  # e.g. weights of mixed signs
        raise ValueError("sample_weight sums to zero; the normalized accuracy is undefined")
    return float(np.average(score, weights=sample_weight))


def precision_score(y_true, y_pred, *, labels=None, pos_label=1, average="binary",
                    sample_weight=None, zero_division="warn"):
    """Precision ``tp / (tp + fp)`` (``sklearn.metrics.precision_score``).

    ``average`` is one of ``"binary"`` (only ``pos_label``), ``"micro"``,
    ``"macro"``, ``"weighted"`` (by support), ``"samples"`` (multilabel only)
    or ``None`` (per-label array, in the order of ``labels``).
    When ``tp + fp == 0`` the value is ``zero_division`` (``"warn"``: 0.0 and
    an :class:`UndefinedMetricWarning`; ``np.nan`` values are left out of
    averages).
    """
    return _set_wise_score("precision", y_true, y_pred, labels=labels, pos_label=pos_label,
                           average=average, sample_weight=sample_weight,
                           zero_division=zero_division)


def recall_score(y_true, y_pred, *, labels=None, pos_label=1, average="binary",
                 sample_weight=None, zero_division="warn"):
    """Recall (sensitivity) ``tp / (tp + fn)`` (``sklearn.metrics.recall_score``).

    See :func:`precision_score` for ``labels``, ``pos_label``, ``average`` and
    ``zero_division``.
    """
    return _set_wise_score("recall", y_true, y_pred, labels=labels, pos_label=pos_label,
                           average=average, sample_weight=sample_weight,
                           zero_division=zero_division)


def fbeta_score(y_true, y_pred, *, beta, labels=None, pos_label=1, average="binary",
                sample_weight=None, zero_division="warn"):
    """F-beta score ``(1+b^2) tp / ((1+b^2) tp + b^2 fn + fp)`` (``sklearn.metrics.fbeta_score``).

    ``zero_division`` applies when ``tp + fn + fp == 0`` (scikit-learn >= 1.3
    semantics).
    """
    if not isinstance(beta, numbers.Real) or isinstance(beta, bool) or not beta >= 0:
        raise ValueError(f"beta must be a non-negative number, got {beta!r}")
    return _set_wise_score("f-score", y_true, y_pred, beta=float(beta), labels=labels,
                           pos_label=pos_label, average=average,
                           sample_weight=sample_weight, zero_division=zero_division)


def f1_score(y_true, y_pred, *, labels=None, pos_label=1, average="binary",
             sample_weight=None, zero_division="warn"):
    """F1 score ``2 tp / (2 tp + fn + fp)`` (``sklearn.metrics.f1_score``).

    See :func:`precision_score` for the arguments; ``zero_division`` applies
    when ``tp + fn + fp == 0``.
    """
    return _set_wise_score("f-score", y_true, y_pred, beta=1.0, labels=labels,
                           pos_label=pos_label, average=average,
                           sample_weight=sample_weight, zero_division=zero_division)


def specificity_score(y_true, y_pred, *, labels=None, pos_label=1, average="binary",
                      sample_weight=None, zero_division="warn"):
    """Specificity (true negative rate) ``tn / (tn + fp)``.

    For ``average="binary"`` this is the specificity of ``pos_label``, i.e. the
    recall of the negative class.  Otherwise every label is treated
    one-vs-rest: ``"macro"`` is the mean of the per-label specificities,
    ``"micro"`` is ``sum(tn) / (sum(tn) + sum(fp))`` over labels,
    ``"weighted"`` weights labels by their support (number of true samples),
    ``"samples"`` (multilabel) averages per-sample specificities and ``None``
    returns the per-label array.  This matches
    ``imblearn.metrics.specificity_score``.  When ``tn + fp == 0`` (no negative
    samples) the value is ``zero_division`` (see :func:`precision_score`).
    """
    return _set_wise_score("specificity", y_true, y_pred, labels=labels, pos_label=pos_label,
                           average=average, sample_weight=sample_weight,
                           zero_division=zero_division)


def confusion_matrix(y_true, y_pred, *, labels=None, sample_weight=None, normalize=None):
    """Confusion matrix ``C[i, j]`` = (weighted) count of true label i predicted as j
    (``sklearn.metrics.confusion_matrix``).

    Rows / columns follow ``labels`` (default: sorted union of the labels in
    ``y_true`` and ``y_pred``); samples whose labels are not in ``labels`` are
    ignored.  ``normalize`` is ``None``, ``"true"`` (rows sum to 1),
    ``"pred"`` (columns sum to 1) or ``"all"``.  Integer counts (int64) are
    returned unless weights are floats or ``normalize`` is set.
    """
    if normalize not in ("true", "pred", "all", None):
        raise ValueError(
            f"normalize must be one of {{'true', 'pred', 'all', None}}, got {normalize!r}"
        )
    y_type, present, y_true, y_pred, sample_weight = _check_targets(y_true, y_pred, sample_weight)
    if y_type not in ("binary", "multiclass"):
        raise ValueError(f"{y_type} is not supported by confusion_matrix")
    labels = _check_labels_arg(labels)
    if labels is None:
        labels = present
    else:
        if labels.size == 0:
            raise ValueError("'labels' should contain at least one label.")
        true_values = set(np.unique(y_true).tolist())
        if not any(v in true_values for v in labels.tolist()):
            raise ValueError("At least one label specified must be in y_true")
    n_labels = labels.shape[0]
    lookup = {v: i for i, v in enumerate(labels.tolist())}
    class_to_label = np.array([lookup.get(v, -1) for v in present.tolist()], dtype=np.intp)
    ti = class_to_label[np.searchsorted(present, y_true)]
    pi = class_to_label[np.searchsorted(present, y_pred)]
    keep = (ti >= 0) & (pi >= 0)
    flat = ti[keep] * n_labels + pi[keep]
    if sample_weight is None:
        cm = np.bincount(flat, minlength=n_labels * n_labels).astype(np.int64)
    else:
        cm = np.bincount(flat, weights=sample_weight[keep], minlength=n_labels * n_labels)
        if sample_weight.dtype.kind in "biu":
            cm = np.rint(cm).astype(np.int64)
    cm = cm.reshape(n_labels, n_labels)
    if normalize is not None:
        with np.errstate(all="ignore"):
            if normalize == "true":
                cm = cm / cm.sum(axis=1, keepdims=True)
            elif normalize == "pred":
                cm = cm / cm.sum(axis=0, keepdims=True)
            else:
                cm = cm / cm.sum()
        cm = np.nan_to_num(cm)
    if cm.shape == (1, 1):
        _warn(
            "A single label was found in 'y_true' and 'y_pred'. For the confusion matrix to "
            "have the correct shape, use the 'labels' parameter to pass all known labels.",
            UserWarning,
        )
    return cm


def multilabel_confusion_matrix(y_true, y_pred, *, sample_weight=None, labels=None, samplewise=False):
    """One-vs-rest 2x2 confusion matrices ``[[tn, fp], [fn, tp]]`` per label
    (``sklearn.metrics.multilabel_confusion_matrix``), shape ``(n_labels, 2, 2)``.

    With ``samplewise=True`` (multilabel only) one matrix per sample.
    """
    labels = _check_labels_arg(labels)
    y_type, present, y_true, y_pred, sample_weight = _check_targets(y_true, y_pred, sample_weight)
    tp, fp, fn, tn = _mcm_counts(y_true, y_pred, present, labels, sample_weight, samplewise)
    return np.stack([tn, fp, fn, tp]).T.reshape(-1, 2, 2)


# ---------------------------------------------------------------------------
# ROC AUC
# ---------------------------------------------------------------------------


class _UndefinedAUC(ValueError):
    pass


def _roc_curve_counts(y_bin, y_score, sample_weight):
    """Cumulative (fps, tps) at each distinct threshold, like sklearn's roc_curve
    (zero-weight samples removed, collinear points dropped, origin prepended)."""
    if sample_weight is not None:
        nonzero = sample_weight != 0
        y_bin, y_score, sample_weight = y_bin[nonzero], y_score[nonzero], sample_weight[nonzero]
    # the order inside a group of tied scores does not matter: only the
    # cumulative sums at the end of each group are used
    order = np.argsort(-y_score)
    y_score = y_score[order]
    y_bin = y_bin[order].astype(np.float64)
    threshold_idxs = np.r_[np.nonzero(np.diff(y_score))[0], y_bin.shape[0] - 1]
    if sample_weight is None:
        tps = np.cumsum(y_bin)[threshold_idxs]
        fps = 1 + threshold_idxs.astype(np.float64) - tps
    else:
        sample_weight = sample_weight[order].astype(np.float64)
        tps = np.cumsum(y_bin * sample_weight)[threshold_idxs]
        fps = np.cumsum((1 - y_bin) * sample_weight)[threshold_idxs]
    if fps.shape[0] > 2:  # drop_intermediate=True
        keep = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        fps, tps = fps[keep], tps[keep]
    return np.r_[0.0, fps], np.r_[0.0, tps]


def _binary_roc_auc(y_bin, y_score, sample_weight=None, max_fpr=None, what="y_true"):
    """ROC AUC of a 0/1 (or bool) vector; raises _UndefinedAUC for a single class."""
    y_bin = np.asarray(y_bin) != 0
    n_pos = int(np.count_nonzero(y_bin))
    if n_pos == 0 or n_pos == y_bin.shape[0]:
        raise _UndefinedAUC(
            f"Only one class present in {what}. ROC AUC score is not defined in that case."
        )
    fps, tps = _roc_curve_counts(y_bin, y_score, sample_weight)
    if fps[-1] <= 0 or tps[-1] <= 0:
        raise _UndefinedAUC(
            f"Only one class with non-zero sample_weight present in {what}. ROC AUC score is "
            "not defined in that case."
        )
    fpr = fps / fps[-1]
    tpr = tps / tps[-1]
    if max_fpr is None or max_fpr == 1:
        return float(_trapezoid(tpr, fpr))
    stop = np.searchsorted(fpr, max_fpr, "right")
    x_interp = [fpr[stop - 1], fpr[stop]]
    y_interp = [tpr[stop - 1], tpr[stop]]
    tpr = np.append(tpr[:stop], np.interp(max_fpr, x_interp, y_interp))
    fpr = np.append(fpr[:stop], max_fpr)
    partial_auc = float(_trapezoid(tpr, fpr))
    min_area = 0.5 * max_fpr**2
    max_area = max_fpr
    return 0.5 * (1 + (partial_auc - min_area) / (max_area - min_area))


def _average_binary_auc(y_true, y_score, average, sample_weight, max_fpr, what):
    """sklearn's _average_binary_score for an (n, k) indicator and (n, k) scores."""
    n_samples, n_cols = y_true.shape
    y_true = y_true != 0
    if average == "micro":
        sw = None if sample_weight is None else np.repeat(sample_weight, n_cols)
        return _binary_roc_auc(y_true.ravel(), y_score.ravel(), sw, max_fpr, what)
    score_weight = sample_weight
    average_weight = None
    axis_name = "column"
    if average == "weighted":
        if sample_weight is None:
            average_weight = y_true.sum(axis=0).astype(np.float64)
        else:
            average_weight = np.asarray(sample_weight, dtype=np.float64) @ y_true
        if np.isclose(average_weight.sum(), 0.0):
            return 0.0
    elif average == "samples":
        average_weight = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        score_weight = None
        y_true, y_score = y_true.T, y_score.T
        axis_name = "sample"
    n_items = y_true.shape[1]
    scores = np.zeros(n_items)
    for c in range(n_items):
        if average_weight is not None and average_weight[c] == 0:
            continue  # sklearn forces the score of zero-weight items to 0
        scores[c] = _binary_roc_auc(
            y_true[:, c], y_score[:, c], score_weight, max_fpr, f"{what} ({axis_name} {c})"
        )
    if average is None:
        return scores
    if average_weight is not None and average_weight.sum() == 0:
        raise ValueError("sample_weight sums to zero; the 'samples' average is undefined")
    return float(np.average(scores, weights=average_weight))


def roc_auc_score(y_true, y_score, *, average="macro", sample_weight=None, max_fpr=None,
                  multi_class="raise", labels=None):
    """Area under the ROC curve (``sklearn.metrics.roc_auc_score``).

    * binary ``y_true`` (any two labels; the greater one is positive):
      ``y_score`` is 1-D (or ``(n, 1)``) scores of the positive class.
    * multilabel indicator ``y_true`` (n, k): ``y_score`` (n, k); ``average`` in
      ``"macro"``, ``"micro"``, ``"weighted"``, ``"samples"``, ``None``.
    * multiclass ``y_true``: ``y_score`` (n, k) probabilities (rows sum to 1)
      with ``multi_class="ovr"`` (averages ``"macro"``, ``"micro"``,
      ``"weighted"``, ``None``) or ``"ovo"`` (Hand & Till; ``"macro"``,
      ``"weighted"``).  Columns follow ``labels`` (default ``sorted(unique(y_true))``).

    Ties are handled exactly: the curve is the trapezoidal ROC over distinct
    thresholds (equivalently Mann-Whitney U with ties counted 1/2); with
    ``sample_weight`` the weighted ROC curve is used.  ``max_fpr`` gives the
    McClish-standardized partial AUC (binary only).

    Raises ``ValueError`` if ``y_true`` (or a column / class taking part in
    the average) contains only one class.
    """
    if average not in _AVERAGE_OPTIONS:
        raise ValueError(f"average has to be one of {_AVERAGE_OPTIONS}, got {average!r}")
    if max_fpr is not None:
        if not isinstance(max_fpr, numbers.Real) or not 0 < max_fpr <= 1:
            raise ValueError(f"Expected max_fpr in range (0, 1], got: {max_fpr!r}")
    y_true = _to_array(y_true, "y_true")
    y_score = _to_float_array(y_score, "y_score")
    _check_consistent_length(("y_true", y_true), ("y_score", y_score))
    if y_true.shape[0] == 0:
        raise ValueError("Found empty input array (y_true) while a minimum of 1 sample is required.")
    sample_weight = _check_sample_weight(sample_weight, y_true.shape[0])
    y_type = _type_of_target(y_true, "y_true")

    try:
        if y_type == "multiclass" or (
            y_type == "binary" and y_score.ndim == 2 and y_score.shape[1] > 2
        ):
            if max_fpr is not None and max_fpr != 1.0:
                raise ValueError(
                    "Partial AUC computation not available in multiclass setting, 'max_fpr' "
                    f"must be set to `None`, received `max_fpr={max_fpr}` instead"
                )
            return _multiclass_roc_auc(y_true.reshape(-1) if y_true.ndim == 2 else y_true,
                                       y_score, labels, multi_class, average, sample_weight)
        if y_type == "binary":
            y_true = y_true.reshape(-1)
            if y_score.ndim == 2 and y_score.shape[1] == 1:
                y_score = y_score.reshape(-1)
            if y_score.ndim != 1:
                raise ValueError(
                    f"y_score must be 1-D for binary y_true, got shape {y_score.shape}; pass the "
                    "scores of the positive (greater) label, e.g. y_score[:, 1]"
                )
            classes = np.unique(y_true)
            y_bin = y_true == classes[-1] if classes.shape[0] == 2 else np.zeros(y_true.shape, bool)
            return _binary_roc_auc(y_bin, y_score, sample_weight, max_fpr)
        if y_type == "multilabel-indicator":
            if y_score.shape != y_true.shape:
                raise ValueError(
                    f"y_score must have the same shape as the multilabel y_true {y_true.shape}, "
                    f"got {y_score.shape}"
                )
            return _average_binary_auc(y_true, y_score, average, sample_weight, max_fpr, "y_true")
    except _UndefinedAUC as exc:
        raise ValueError(str(exc)) from None
    raise ValueError(f"y_true: {y_type} format is not supported")


def _multiclass_roc_auc(y_true, y_score, labels, multi_class, average, sample_weight):
    if y_score.ndim != 2:
        raise ValueError(
            "`y_score` needs to be of shape `(n_samples, n_classes)`, since `y_true` contains "
            f"multiple classes. Got `y_score.shape={y_score.shape}`."
        )
    if multi_class == "raise":
        raise ValueError(
            "multi_class must be in ('ovo', 'ovr'): y_true is multiclass, pass "
            "multi_class='ovr' (one-vs-rest) or 'ovo' (one-vs-one)"
        )
    if not np.allclose(1, y_score.sum(axis=1)):
        raise ValueError(
            "Target scores need to be probabilities for multiclass roc_auc, i.e. they should "
            "sum up to 1.0 over classes (y_score rows)"
        )
    average_options = ("macro", "weighted", None)
    if multi_class == "ovr":
        average_options = ("micro",) + average_options
    if average not in average_options:
        raise ValueError(f"average must be one of {average_options} for multiclass problems")
    if multi_class not in ("ovo", "ovr"):
        raise ValueError(
            f"multi_class={multi_class!r} is not supported for multiclass ROC AUC, "
            "multi_class must be in ('ovo', 'ovr')"
        )
    if average is None and multi_class == "ovo":
        raise NotImplementedError("average=None is not implemented for multi_class='ovo'.")
    if labels is not None:
        classes_in = np.asarray(labels).reshape(-1)
        classes = np.unique(classes_in)
        if classes.shape[0] != classes_in.shape[0]:
            raise ValueError("Parameter 'labels' must be unique")
        if not np.array_equal(classes, classes_in):
            raise ValueError("Parameter 'labels' must be ordered")
        if classes.shape[0] != y_score.shape[1]:
            raise ValueError(
                f"Number of given labels, {classes.shape[0]}, not equal to the number of "
                f"columns in 'y_score', {y_score.shape[1]}"
            )
        if _label_kind(classes) != _label_kind(y_true) or np.setdiff1d(y_true, classes).size:
            raise ValueError("'y_true' contains labels not in parameter 'labels'")
    else:
        classes = np.unique(y_true)
        if classes.shape[0] != y_score.shape[1]:
            raise ValueError(
                f"Number of classes in y_true ({classes.shape[0]}) not equal to the number of "
                f"columns in 'y_score' ({y_score.shape[1]})"
            )
    if multi_class == "ovo":
        if sample_weight is not None:
            raise ValueError(
                "sample_weight is not supported for multiclass one-vs-one ROC AUC, "
                "'sample_weight' must be None in this case."
            )
        y_enc = np.searchsorted(classes, y_true)
        present = np.unique(y_enc)
        pairs = list(combinations(present.tolist(), 2))
        pair_scores = np.empty(len(pairs))
        prevalence = np.empty(len(pairs)) if average == "weighted" else None
        for ix, (a, b) in enumerate(pairs):
            a_mask = y_enc == a
            b_mask = y_enc == b
            ab_mask = a_mask | b_mask
            if prevalence is not None:
                prevalence[ix] = np.mean(ab_mask)
            a_score = _binary_roc_auc(a_mask[ab_mask], y_score[ab_mask, a])
            b_score = _binary_roc_auc(b_mask[ab_mask], y_score[ab_mask, b])
            pair_scores[ix] = (a_score + b_score) / 2
        return float(np.average(pair_scores, weights=prevalence))
    y_onehot = y_true[:, None] == classes[None, :]
    return _average_binary_auc(y_onehot, y_score, average, sample_weight, None, "y_true")


# documented (autodoc), pickled and registered (saving.py) as fastnet.metrics.<name>,
# the public path they had before this module was split out of it
for _name in __all__:
    globals()[_name].__module__ = "fastnet.metrics"
del _name
