"""Losses, by Keras name and class.

Each loss is the mean over the batch (and over output units for MSE, MAE and
binary cross-entropy), as in Keras and PyTorch.  In training, softmax + cross-
entropy and sigmoid + binary cross-entropy always run as one fused, stable kernel
on the logits (delta p - y), whether the model outputs logits
(``from_logits=True`` with a linear last layer) or probabilities
(``from_logits=False`` with a softmax / sigmoid last layer).

Calling a loss object on arrays, ``loss(y_true, y_pred)``, evaluates it in NumPy
with Keras's semantics (probabilities clipped to [1e-7, 1 - 1e-7] when not
from logits).
"""
import numpy as np

from ._kernels import defs

_EPS = 1e-7


class Loss:
    """Base class.  ``head(last_activation_code)`` maps the loss onto the
    backend's fused loss heads, or raises ValueError when the output layer's
    activation does not fit the loss."""

    name = None
    from_logits = False
    sparse = False           # targets are integer class labels

    def __init__(self, from_logits=False):
        if not isinstance(from_logits, (bool, np.bool_)):
            raise TypeError("from_logits must be a bool; got %r" % (from_logits,))
        self.from_logits = bool(from_logits)

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}

    def __repr__(self):
        return "%s(from_logits=%r)" % (type(self).__name__, self.from_logits)

    def head(self, last_act):
        raise NotImplementedError

    def __call__(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(y_pred, dtype=np.float64)
        per = self._per_sample(np.asarray(y_true), y_pred)
        if sample_weight is not None:
            per = per * np.asarray(sample_weight, dtype=np.float64).reshape(-1)
        return float(per.sum() / per.shape[0])


def _act_name(code):
    return next(a["name"] for a in defs.ACTIVATIONS if a["code"] == code)


class MeanSquaredError(Loss):
    """mean((y_pred - y_true)^2) over units and samples."""

    name = "mse"

    def __init__(self):
        super().__init__(False)

    def head(self, last_act):
        return defs.HEAD_MSE

    def get_config(self):
        return {"name": self.name}

    def __repr__(self):
        return "MeanSquaredError()"

    def _per_sample(self, y, p):
        y = y.reshape(p.shape).astype(np.float64)
        return ((p - y) ** 2).reshape(p.shape[0], -1).mean(axis=1)


class MeanAbsoluteError(Loss):
    """``mean(|y_pred - y_true|)`` over units and samples."""

    name = "mae"

    def __init__(self):
        super().__init__(False)

    def head(self, last_act):
        return defs.HEAD_MAE

    def get_config(self):
        return {"name": self.name}

    def __repr__(self):
        return "MeanAbsoluteError()"

    def _per_sample(self, y, p):
        y = y.reshape(p.shape).astype(np.float64)
        return np.abs(p - y).reshape(p.shape[0], -1).mean(axis=1)


class _Xent(Loss):
    head_code = defs.HEAD_SOFTMAX_XENT
    prob_act = defs.ACT_SOFTMAX

    def head(self, last_act):
        want = defs.ACT_LINEAR if self.from_logits else self.prob_act
        if last_act != want:
            if self.from_logits:
                raise ValueError(
                    "%s(from_logits=True) expects the output layer to produce logits "
                    "(activation 'linear'); it has %r. Use from_logits=False with a %r "
                    "output, or remove the output activation."
                    % (type(self).__name__, _act_name(last_act), _act_name(self.prob_act)))
            raise ValueError(
                "%s(from_logits=False) expects a %r output layer; it has %r. Use "
                "from_logits=True with a linear output layer (logits) instead."
                % (type(self).__name__, _act_name(self.prob_act), _act_name(last_act)))
        return self.head_code


def _log_softmax(z):
    s = z - z.max(axis=1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=1, keepdims=True))


class CategoricalCrossentropy(_Xent):
    """-sum_j y_j log p_j with one-hot (or soft) targets."""

    name = "categorical_crossentropy"

    def _per_sample(self, y, p):
        y = y.astype(np.float64).reshape(p.shape)
        if self.from_logits:
            logp = _log_softmax(p)
        else:
            p = p / p.sum(axis=1, keepdims=True)
            logp = np.log(np.clip(p, _EPS, 1 - _EPS))
        return -(y * logp).sum(axis=1)


class SparseCategoricalCrossentropy(_Xent):
    """-log p_label with integer class labels."""

    name = "sparse_categorical_crossentropy"
    sparse = True

    def _per_sample(self, y, p):
        y = y.reshape(-1).astype(np.int64)
        if self.from_logits:
            logp = _log_softmax(p)
        else:
            p = p / p.sum(axis=1, keepdims=True)
            logp = np.log(np.clip(p, _EPS, 1 - _EPS))
        return -logp[np.arange(p.shape[0]), y]


class BinaryCrossentropy(_Xent):
    """mean_j -(y log p + (1 - y) log(1 - p)), p = sigmoid output."""

    name = "binary_crossentropy"
    head_code = defs.HEAD_SIGMOID_BCE
    prob_act = defs.ACT_SIGMOID

    def _per_sample(self, y, p):
        p = p.reshape(p.shape[0], -1)
        y = y.astype(np.float64).reshape(p.shape)
        if self.from_logits:
            per = np.maximum(p, 0) - p * y + np.log1p(np.exp(-np.abs(p)))
        else:
            p = np.clip(p, _EPS, 1 - _EPS)
            per = -(y * np.log(p) + (1 - y) * np.log(1 - p))
        return per.mean(axis=1)


_BY_NAME = {
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "binary_crossentropy": BinaryCrossentropy, "bce": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}
NAMES = sorted(_BY_NAME)


def get(identifier):
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in _BY_NAME:
            raise ValueError("unknown loss %r; expected one of %s" % (identifier, ", ".join(NAMES)))
        return _BY_NAME[key]()
    raise TypeError("loss must be a name (%s) or a Loss instance; got %r" % (", ".join(NAMES), identifier))
