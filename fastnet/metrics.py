"""Evaluation metrics for fastnet (numpy only).

Two public layers, each in its own module, both imported from here:

1. **scikit-learn compatible functions** -- :func:`accuracy_score`,
   :func:`precision_score`, :func:`recall_score`, :func:`f1_score`,
   :func:`fbeta_score`, :func:`specificity_score`, :func:`roc_auc_score`,
   :func:`confusion_matrix` and :func:`multilabel_confusion_matrix`.  They use
   scikit-learn's names, argument order, label handling (ints, floats, bools or
   strings; ``unique_labels`` of ``y_true`` and ``y_pred``; multilabel
   indicator matrices) and give the same values (scikit-learn 1.9 semantics,
   including ``zero_division`` and :class:`UndefinedMetricWarning`).
   One deliberate difference: :func:`roc_auc_score` raises ``ValueError`` when
   ``y_true`` (or a column / class that takes part in the average) holds a
   single class, as scikit-learn < 1.6 did, instead of returning ``nan`` with a
   warning.  They are defined in ``fastnet/_metric_functions.py``.

2. **Metric objects** (defined here) used by ``Model.compile(metrics=[...])``:
   :func:`get` turns a name, a :class:`Metric` (instance or subclass) or a plain
   callable ``f(y_true, y_score) -> float`` into a :class:`Metric`, which is called as
   ``metric(y_true, y_score, task, sample_weight=None) -> float``.

   ``task`` is ``"binary"``, ``"multiclass"``, ``"multilabel"`` or
   ``"regression"``.  ``y_score`` holds probabilities for binary / multilabel
   tasks and scores or probabilities for multiclass tasks.  Semantics:

   * predictions: binary / multilabel use ``y_score > threshold`` (strict, as
     Keras' ``binary_accuracy``; ``threshold=0.5``); multiclass uses
     ``argmax`` (first maximum on ties).
   * ``"accuracy"``: binary -> Keras ``binary_accuracy``; multiclass -> argmax
     match (Keras ``categorical_accuracy``); multilabel -> element-wise mean
     over all labels (Keras ``binary_accuracy``), ``Accuracy(multilabel="subset")``
     gives scikit-learn's subset accuracy instead.
   * ``"precision"``, ``"recall"``, ``"f1"``, ``"specificity"``: default
     ``average="auto"`` means ``"binary"`` (positive class 1) for binary,
     ``"macro"`` for multiclass (over the labels present in ``y_true`` or the
     predictions, exactly like scikit-learn with ``labels=None``) and
     ``"micro"`` for multilabel (what Keras' ``Precision``/``Recall`` compute).
     Undefined ratios (0/0) count as 0.0 without warning (``zero_division=0``).
     Each value equals the scikit-learn function on the thresholded / argmaxed
     predictions with the resolved ``average`` and ``zero_division=0``.
   * ``"auc"``: ROC AUC; binary -> :func:`roc_auc_score`; multiclass ->
     one-vs-rest macro average (a softmax is applied first when the rows of
     ``y_score`` are not probabilities); multilabel -> macro average over
     columns.  Classes / columns whose ``y_true`` holds a single class are
     skipped; if nothing is defined the value is ``nan`` (with an
     :class:`UndefinedMetricWarning`) instead of an error, so that training is
     never interrupted by a batch or validation split lacking a class.
   * ``"mse"``, ``"mae"``, ``"rmse"``, ``"mape"`` (percent), ``"r2"``: mean
     squared / absolute error, its root, the mean absolute percentage error
     and the coefficient of determination, for any task (multiclass integer
     targets are one-hot encoded first).
   * Classification metrics raise ``ValueError`` for ``task="regression"``.

   All Metric values are Python floats.
"""

import inspect
import numbers

import numpy as np

from . import _metric_functions
from ._metric_functions import (  # noqa: F401  (the function API is public here too)
    UndefinedMetricWarning,
    accuracy_score,
    precision_score,
    recall_score,
    f1_score,
    fbeta_score,
    specificity_score,
    roc_auc_score,
    confusion_matrix,
    multilabel_confusion_matrix,
    _UndefinedAUC,
    _binary_roc_auc,
    _check_consistent_length,
    _check_sample_weight,
    _check_zero_division,
    _index_counts,
    _indicator_counts,
    _is_integral_float,
    _score_from_counts,
    _to_array,
    _to_float_array,
    _warn,
)

__all__ = _metric_functions.__all__ + [
    # Metric objects
    "Metric",
    "Accuracy",
    "Precision",
    "Recall",
    "Specificity",
    "F1Score",
    "AUC",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "RootMeanSquaredError",
    "MeanAbsolutePercentageError",
    "R2Score",
    "FunctionMetric",
    "get",
]


# ---------------------------------------------------------------------------
# Metric objects for Model.compile(metrics=[...])
# ---------------------------------------------------------------------------

_TASKS = ("binary", "multiclass", "multilabel", "regression")
_CLASSIFICATION_TASKS = ("binary", "multiclass", "multilabel")


def _check_task(task):
    if task not in _TASKS:
        raise ValueError(f"task must be one of {_TASKS}, got {task!r}")
    return task


def _metric_arrays(y_true, y_score, sample_weight, name):
    yt = _to_array(y_true, "y_true")
    if yt.dtype.kind == "U":
        raise ValueError(
            f"metric {name!r}: y_true must be numeric (0/1 or integer class indices), got strings"
        )
    ys = _to_float_array(y_score, "y_score")
    _check_consistent_length(("y_true", yt), ("y_score", ys))
    if yt.shape[0] == 0:
        raise ValueError(f"metric {name!r}: y_true and y_score are empty")
    if sample_weight is not None:
        sw = np.asarray(sample_weight)
        if sw.ndim == 2 and sw.shape[1] == 1:
            sample_weight = sw.reshape(-1)
    sw = _check_sample_weight(sample_weight, yt.shape[0], allow_all_zero=True)
    if sw is not None:
        sw = sw.astype(np.float64)
    if yt.dtype.kind == "f" and not np.all(np.isfinite(yt)):
        raise ValueError(f"metric {name!r}: y_true contains NaN or infinity")
    return yt, ys, sw


def _check_01(yt, name, task):
    if yt.dtype.kind != "b" and not np.all((yt == 0) | (yt == 1)):
        raise ValueError(f"metric {name!r}: y_true for task {task!r} must contain only 0/1 values")
    return yt != 0


def _prepare_classification(y_true, y_score, task, sample_weight, name):
    """Validated arrays per task.

    binary: yt (n,) bool, ys (n,); multiclass: yt (n,) int in [0, k), ys (n, k);
    multilabel: yt (n, k) bool, ys (n, k).
    """
    yt, ys, sw = _metric_arrays(y_true, y_score, sample_weight, name)
    if task == "binary":
        if ys.ndim == 2 and ys.shape[1] == 1:
            ys = ys.reshape(-1)
        if ys.ndim != 1:
            raise ValueError(
                f"metric {name!r}: y_score for task 'binary' must have shape (n,) or (n, 1), "
                f"got {ys.shape}"
            )
        if yt.ndim == 2 and yt.shape[1] == 1:
            yt = yt.reshape(-1)
        if yt.ndim != 1:
            raise ValueError(
                f"metric {name!r}: y_true for task 'binary' must have shape (n,) or (n, 1), "
                f"got {yt.shape}"
            )
        return _check_01(yt, name, task), ys, sw
    if task == "multiclass":
        if ys.ndim != 2 or ys.shape[1] < 2:
            raise ValueError(
                f"metric {name!r}: y_score for task 'multiclass' must have shape (n, k) with "
                f"k >= 2, got {ys.shape}"
            )
        k = ys.shape[1]
        if yt.ndim == 2 and yt.shape[1] == 1:
            yt = yt.reshape(-1)
        if yt.ndim == 1:
            if yt.dtype.kind == "f" and not _is_integral_float(yt):
                raise ValueError(
                    f"metric {name!r}: y_true for task 'multiclass' must hold integer class "
                    "indices or one-hot rows"
                )
            yt = yt.astype(np.int64)
            if yt.min() < 0 or yt.max() >= k:
                raise ValueError(
                    f"metric {name!r}: y_true class indices must be in [0, {k}) to match "
                    f"y_score with {k} columns, got values in [{yt.min()}, {yt.max()}]"
                )
        elif yt.ndim == 2 and yt.shape[1] == k:
            yt = np.argmax(yt, axis=1)
        else:
            raise ValueError(
                f"metric {name!r}: y_true for task 'multiclass' must have shape (n,) or "
                f"(n, {k}) (one-hot), got {yt.shape}"
            )
        return yt, ys, sw
    # multilabel
    if ys.ndim == 1:
        ys = ys.reshape(-1, 1)
    if yt.ndim == 1:
        yt = yt.reshape(-1, 1)
    if ys.ndim != 2 or yt.shape != ys.shape:
        raise ValueError(
            f"metric {name!r}: y_true and y_score for task 'multilabel' must both have shape "
            f"(n, k), got {yt.shape} and {ys.shape}"
        )
    return _check_01(yt, name, task), ys, sw


def _weighted_mean(values, sw):
    values = np.asarray(values, dtype=np.float64)
    if sw is None:
        return float(np.mean(values))
    total = sw.sum()
    if total == 0:
        return float("nan")
    return float(np.dot(values, sw) / total)


class Metric:
    """Base class of the metrics used by ``Model.compile(metrics=[...])``.

    Subclasses implement :meth:`compute`; calling the object validates
    ``task`` and returns a Python float::

        value = metric(y_true, y_score, task, sample_weight=None)

    :meth:`check_task` raises ``ValueError`` for a task the metric does not
    support (classification metrics on ``"regression"``).

    Attributes
    ----------
    name : str
        Key of the metric in the training history (``"val_" + name`` for the
        validation value).
    greater_is_better : bool or None
        Direction of improvement (``None`` when unknown), e.g. for early
        stopping.
    """

    name = "metric"
    greater_is_better = True
    tasks = _CLASSIFICATION_TASKS

    def __init__(self, *, name=None):
        if name is not None:
            if not isinstance(name, str) or not name:
                raise TypeError(f"name must be a non-empty string, got {name!r}")
            self.name = name

    def check_task(self, task):
        """Raise ValueError unless this metric is defined for ``task`` (the model
        calls this before training starts)."""
        task = _check_task(task)
        if task not in self.tasks:
            hint = "; use 'mse' or 'mae' for regression" if task == "regression" else ""
            raise ValueError(
                f"metric {self.name!r} is not defined for task {task!r} (it supports "
                f"{', '.join(self.tasks)}){hint}"
            )
        return task

    def __call__(self, y_true, y_score, task, sample_weight=None):
        task = self.check_task(task)
        return float(self.compute(y_true, y_score, task, sample_weight))

    def compute(self, y_true, y_score, task, sample_weight=None):  # pragma: no cover
        raise NotImplementedError

    def _config_repr(self):
        return ""

    def __repr__(self):
        cfg = self._config_repr()
        sep = ", " if cfg else ""
        return f"{type(self).__name__}({cfg}{sep}name={self.name!r})"


def _check_threshold(threshold):
    if not isinstance(threshold, numbers.Real) or isinstance(threshold, bool) or not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    return float(threshold)


class Accuracy(Metric):
    """Accuracy.

    * binary: ``mean((y_score > threshold) == y_true)`` (Keras ``binary_accuracy``);
    * multiclass: ``mean(argmax(y_score) == y_true)``;
    * multilabel: ``multilabel="elementwise"`` (default, Keras
      ``binary_accuracy``) averages the per-label matches over all labels;
      ``multilabel="subset"`` counts a sample only if all its labels match
      (scikit-learn's :func:`accuracy_score`).

    Sample weights give a weighted mean over samples.
    """

    name = "accuracy"

    def __init__(self, threshold=0.5, multilabel="elementwise", *, name=None):
        super().__init__(name=name)
        self.threshold = _check_threshold(threshold)
        if multilabel not in ("elementwise", "subset"):
            raise ValueError(f"multilabel must be 'elementwise' or 'subset', got {multilabel!r}")
        self.multilabel = multilabel

    def _config_repr(self):
        return f"threshold={self.threshold}, multilabel={self.multilabel!r}"

    def compute(self, y_true, y_score, task, sample_weight=None):
        yt, ys, sw = _prepare_classification(y_true, y_score, task, sample_weight, self.name)
        if task == "binary":
            correct = (ys > self.threshold) == yt
        elif task == "multiclass":
            correct = np.argmax(ys, axis=1) == yt
        else:
            match = (ys > self.threshold) == yt
            correct = match.all(axis=1) if self.multilabel == "subset" else match.mean(axis=1)
        return _weighted_mean(correct, sw)


class _CountMetric(Metric):
    """Precision / recall / F1 / specificity from thresholded or argmaxed predictions."""

    _metric = None
    _valid_averages = ("auto", "binary", "micro", "macro", "weighted", "samples")

    def __init__(self, average="auto", threshold=0.5, zero_division=0.0, *, name=None):
        super().__init__(name=name)
        if average is None:
            raise ValueError(
                "average=None gives per-class values, but a Metric must return one float; use "
                f"one of {self._valid_averages}"
            )
        if average not in self._valid_averages:
            raise ValueError(f"average must be one of {self._valid_averages}, got {average!r}")
        self.average = average
        self.threshold = _check_threshold(threshold)
        _check_zero_division(zero_division)
        self.zero_division = zero_division

    def _config_repr(self):
        return f"average={self.average!r}, threshold={self.threshold}, zero_division={self.zero_division!r}"

    def _resolve_average(self, task):
        if self.average == "auto":
            return {"binary": "binary", "multiclass": "macro", "multilabel": "micro"}[task]
        if self.average == "binary" and task != "binary":
            raise ValueError(
                f"metric {self.name!r}: average='binary' is only valid for task 'binary', "
                f"got task {task!r}"
            )
        if self.average == "samples" and task != "multilabel":
            raise ValueError(
                f"metric {self.name!r}: average='samples' is only valid for task 'multilabel', "
                f"got task {task!r}"
            )
        return self.average

    def compute(self, y_true, y_score, task, sample_weight=None):
        average = self._resolve_average(task)
        yt, ys, sw = _prepare_classification(y_true, y_score, task, sample_weight, self.name)
        if task == "multilabel":
            tp, fp, fn, tn = _indicator_counts(
                yt, ys > self.threshold, sw, samplewise=(average == "samples")
            )
        else:
            if task == "binary":
                ti = yt.astype(np.intp)
                pi = (ys > self.threshold).astype(np.intp)
                k = 2
            else:
                ti = yt.astype(np.intp)
                pi = np.argmax(ys, axis=1)
                k = ys.shape[1]
            tp, fp, fn, tn = _index_counts(ti, pi, k, sw)
            if average == "binary":
                sel = np.array([1])
            else:  # labels present in y_true or the predictions, as sklearn's labels=None
                sel = np.nonzero(np.bincount(ti, minlength=k) + np.bincount(pi, minlength=k))[0]
            tp, fp, fn, tn = tp[sel], fp[sel], fn[sel], tn[sel]
        return _score_from_counts(self._metric, tp, fp, fn, tn, average, sw,
                                  self.zero_division, warn=False)


class Precision(_CountMetric):
    """Precision ``tp / (tp + fp)``; see the module docstring for ``average="auto"``."""

    name = "precision"
    _metric = "precision"


class Recall(_CountMetric):
    """Recall ``tp / (tp + fn)``; see the module docstring for ``average="auto"``."""

    name = "recall"
    _metric = "recall"


class Specificity(_CountMetric):
    """Specificity ``tn / (tn + fp)``; see :func:`specificity_score`."""

    name = "specificity"
    _metric = "specificity"


class F1Score(_CountMetric):
    """F1 score ``2 tp / (2 tp + fp + fn)``; see the module docstring for ``average="auto"``."""

    name = "f1"
    _metric = "f-score"


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _auc_or_nan(y_bin, y_score, sw):
    try:
        return _binary_roc_auc(y_bin, y_score, sw)
    except _UndefinedAUC:
        return float("nan")


class AUC(Metric):
    """ROC AUC.

    binary: :func:`roc_auc_score`; multiclass: one-vs-rest over the ``k``
    columns of ``y_score`` (softmax applied first if the rows are not
    probabilities); multilabel: per column.  ``average`` is ``"macro"``
    (default), ``"weighted"`` (by number of positives) or ``"micro"``
    (all columns pooled).  Columns with a single class in ``y_true`` are left
    out; if none is defined the value is ``nan`` with an
    :class:`UndefinedMetricWarning`.
    """

    name = "auc"

    def __init__(self, average="macro", *, name=None):
        super().__init__(name=name)
        if average not in ("macro", "weighted", "micro"):
            raise ValueError(f"average must be one of ('macro', 'weighted', 'micro'), got {average!r}")
        self.average = average

    def _config_repr(self):
        return f"average={self.average!r}"

    def compute(self, y_true, y_score, task, sample_weight=None):
        yt, ys, sw = _prepare_classification(y_true, y_score, task, sample_weight, self.name)
        if task == "binary":
            value = _auc_or_nan(yt, ys, sw)
        else:
            if task == "multiclass":
                if not (np.all(ys >= 0) and np.allclose(ys.sum(axis=1), 1.0)):
                    ys = _softmax(ys)
                yt = yt[:, None] == np.arange(ys.shape[1])[None, :]
            value = self._average_columns(yt, ys, sw)
        if np.isnan(value):
            _warn(
                f"metric {self.name!r}: ROC AUC is not defined because y_true contains a single "
                "class (per column); returning nan"
            )
        return value

    def _average_columns(self, yt, ys, sw):
        if self.average == "micro":
            return _auc_or_nan(yt.ravel(), ys.ravel(), None if sw is None else np.repeat(sw, yt.shape[1]))
        values, weights = [], []
        for c in range(yt.shape[1]):
            v = _auc_or_nan(yt[:, c], ys[:, c], sw)
            if not np.isnan(v):
                values.append(v)
                weights.append(yt[:, c].sum() if sw is None else sw @ yt[:, c])
        if not values:
            return float("nan")
        if self.average == "weighted":
            weights = np.asarray(weights, dtype=np.float64)
            if weights.sum() == 0:
                return float("nan")
            return float(np.average(values, weights=weights))
        return float(np.mean(values))


class _ErrorMetric(Metric):
    tasks = _TASKS
    greater_is_better = False

    def _prepare(self, y_true, y_score, task, sample_weight):
        yt, ys, sw = _metric_arrays(y_true, y_score, sample_weight, self.name)
        yt = yt.astype(np.float64)
        if task == "multiclass" and ys.ndim == 2 and (yt.ndim == 1 or yt.shape == (ys.shape[0], 1)) and ys.shape[1] > 1:
            idx = yt.reshape(-1)
            if not _is_integral_float(idx) or idx.min() < 0 or idx.max() >= ys.shape[1]:
                raise ValueError(
                    f"metric {self.name!r}: y_true for task 'multiclass' must hold class indices "
                    f"in [0, {ys.shape[1]})"
                )
            yt = (idx.astype(np.int64)[:, None] == np.arange(ys.shape[1])[None, :]).astype(np.float64)
        if yt.shape != ys.shape:
            if yt.size == ys.size and (yt.ndim == 1 or ys.ndim == 1):
                yt = yt.reshape(ys.shape)
            else:
                raise ValueError(
                    f"metric {self.name!r}: y_true shape {yt.shape} does not match y_score shape "
                    f"{ys.shape}"
                )
        n = yt.shape[0]
        return yt.reshape(n, -1), ys.reshape(n, -1), sw

    def compute(self, y_true, y_score, task, sample_weight=None):
        yt, ys, sw = self._prepare(y_true, y_score, task, sample_weight)
        return _weighted_mean(self._errors(ys - yt).mean(axis=1), sw)


class MeanSquaredError(_ErrorMetric):
    """Mean squared error (averaged over outputs, weighted mean over samples)."""

    name = "mse"

    @staticmethod
    def _errors(diff):
        return diff * diff


class MeanAbsoluteError(_ErrorMetric):
    """Mean absolute error (averaged over outputs, weighted mean over samples)."""

    name = "mae"

    @staticmethod
    def _errors(diff):
        return np.abs(diff)


class RootMeanSquaredError(_ErrorMetric):
    """Root of the mean squared error: ``sqrt(mse)`` (Keras's definition; for
    one output it equals scikit-learn's ``root_mean_squared_error``; for several
    outputs scikit-learn averages the per-output roots instead)."""

    name = "rmse"

    def compute(self, y_true, y_score, task, sample_weight=None):
        yt, ys, sw = self._prepare(y_true, y_score, task, sample_weight)
        diff = ys - yt
        return float(np.sqrt(_weighted_mean((diff * diff).mean(axis=1), sw)))


class MeanAbsolutePercentageError(_ErrorMetric):
    """``100 * mean(|y_true - y_pred| / max(|y_true|, 1e-7))``, in percent as
    Keras (scikit-learn's ``mean_absolute_percentage_error`` is the same as a
    fraction, with a smaller floor for ``|y_true|``)."""

    name = "mape"

    def compute(self, y_true, y_score, task, sample_weight=None):
        yt, ys, sw = self._prepare(y_true, y_score, task, sample_weight)
        err = np.abs(ys - yt) / np.maximum(np.abs(yt), 1e-7)
        return 100.0 * _weighted_mean(err.mean(axis=1), sw)


class R2Score(_ErrorMetric):
    """Coefficient of determination ``1 - SS_res / SS_tot`` per output, averaged
    over the outputs (scikit-learn's ``r2_score`` and Keras's ``R2Score`` with
    ``multioutput="uniform_average"``; sample weights weight both sums).  An
    output whose targets are constant scores 1.0 if predicted exactly, else 0.0
    (scikit-learn's ``force_finite=True``)."""

    name = "r2"
    greater_is_better = True

    def compute(self, y_true, y_score, task, sample_weight=None):
        yt, ys, sw = self._prepare(y_true, y_score, task, sample_weight)
        w = np.ones(yt.shape[0]) if sw is None else np.asarray(sw, dtype=np.float64)
        if w.sum() == 0:
            return float("nan")
        res = (w[:, None] * (yt - ys) ** 2).sum(axis=0)
        mean = (w[:, None] * yt).sum(axis=0) / w.sum()
        tot = (w[:, None] * (yt - mean) ** 2).sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.where(tot > 0, 1.0 - res / np.where(tot > 0, tot, 1.0), np.where(res == 0, 1.0, 0.0))
        return float(r2.mean())


def _accepts_kwarg(fn, kwarg):
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind is inspect.Parameter.VAR_KEYWORD
        or (p.name == kwarg and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                           inspect.Parameter.KEYWORD_ONLY))
        for p in params
    )


class FunctionMetric(Metric):
    """Wraps a callable ``fn(y_true, y_score) -> float``.

    ``y_true`` and ``y_score`` are passed through unchanged.  If ``fn``
    accepts a ``sample_weight`` (or ``task``) keyword it is passed; otherwise
    sample weights are ignored.  The name defaults to ``fn.__name__``.
    """

    tasks = _TASKS
    greater_is_better = None

    def __init__(self, fn, *, name=None):
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        if name is None:
            name = getattr(fn, "__name__", None) or type(fn).__name__
        super().__init__(name=name)
        self.fn = fn
        self._pass_weight = _accepts_kwarg(fn, "sample_weight")
        self._pass_task = _accepts_kwarg(fn, "task")

    def compute(self, y_true, y_score, task, sample_weight=None):
        kwargs = {}
        if self._pass_task:
            kwargs["task"] = task
        if self._pass_weight and sample_weight is not None:
            kwargs["sample_weight"] = sample_weight
        value = self.fn(y_true, y_score, **kwargs)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise TypeError(
                f"metric function {self.name!r} must return a number, got {type(value).__name__}"
            ) from None


_REGISTRY = {
    "accuracy": Accuracy,
    "acc": Accuracy,
    "precision": Precision,
    "recall": Recall,
    "specificity": Specificity,
    "f1": F1Score,
    "f1_score": F1Score,
    "auc": AUC,
    "roc_auc": AUC,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "rmse": RootMeanSquaredError,
    "root_mean_squared_error": RootMeanSquaredError,
    "mape": MeanAbsolutePercentageError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "r2": R2Score,
    "r2_score": R2Score,
}


def get(identifier):
    """Return a :class:`Metric` for ``identifier``.

    * a name (case-insensitive): ``"accuracy"``/``"acc"``, ``"precision"``,
      ``"recall"``, ``"specificity"``, ``"f1"``/``"f1_score"``,
      ``"auc"``/``"roc_auc"``, ``"mse"``/``"mean_squared_error"``,
      ``"mae"``/``"mean_absolute_error"``, ``"rmse"``/``"root_mean_squared_error"``,
      ``"mape"``/``"mean_absolute_percentage_error"``, ``"r2"``/``"r2_score"``;
      the metric's ``name`` (its
      History key) is the string as given, like Keras;
    * a :class:`Metric` instance (returned as is) or subclass (instantiated);
    * a callable ``f(y_true, y_score) -> float`` (wrapped in
      :class:`FunctionMetric`, named ``f.__name__``).
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, str):
        cls = _REGISTRY.get(identifier.strip().lower())
        if cls is None:
            raise ValueError(
                f"Unknown metric {identifier!r}. Valid names: {', '.join(sorted(_REGISTRY))}; "
                "or pass a Metric instance or a callable f(y_true, y_score) -> float"
            )
        return cls(name=identifier.strip())
    if callable(identifier):
        return FunctionMetric(identifier)
    raise TypeError(
        f"metric must be a name, a Metric or a callable f(y_true, y_score) -> float, got {identifier!r}"
    )
