"""Activations, by name and as objects with parameters.

``fastnet.activations.get("relu")`` or ``LeakyReLU(0.2)``; a Dense layer accepts
either.  Calling an activation object on an array evaluates it with the NumPy
reference (handy for teaching and plots; training runs in the backend kernels).
"""
import numpy as np

from ._kernels import defs


class Activation:
    """Base class: ``name``, the contract code and the parameter ``alpha``."""

    name = None
    code = None
    alpha = 0.0

    def __call__(self, x):
        from .backends.numpy_ref import _activate
        x = np.asarray(x, dtype=np.result_type(np.asarray(x).dtype, np.float32))
        z = np.atleast_2d(x)
        return _activate(z, self.code, self.alpha).reshape(x.shape)

    def derivative(self, x):
        """g'(x) elementwise (NumPy reference); softmax is not elementwise."""
        from .backends.numpy_ref import _act_grad, _activate
        if self.code == defs.ACT_SOFTMAX:
            raise ValueError("softmax has a Jacobian, not an elementwise derivative")
        x = np.asarray(x, dtype=np.result_type(np.asarray(x).dtype, np.float32))
        z = np.atleast_2d(x)
        a = _activate(z, self.code, self.alpha)
        return _act_grad(z, a, np.ones_like(z), self.code, self.alpha).reshape(x.shape)

    def get_config(self):
        return {"name": self.name}

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))

    def __repr__(self):
        cfg = {k: v for k, v in self.get_config().items() if k != "name"}
        args = ", ".join("%s=%r" % kv for kv in cfg.items())
        return "%s(%s)" % (type(self).__name__, args)


def _simple(cls_name, act_name):
    cls = type(cls_name, (Activation,), {"name": act_name, "code": defs.ACT[act_name],
                                          "__doc__": "The %s activation." % act_name})
    return cls


Linear = _simple("Linear", "linear")
Sigmoid = _simple("Sigmoid", "sigmoid")
Tanh = _simple("Tanh", "tanh")
ReLU = _simple("ReLU", "relu")
ReLU6 = _simple("ReLU6", "relu6")
Swish = _simple("Swish", "swish")
Softmax = _simple("Softmax", "softmax")
Step = _simple("Step", "step")
Softplus = _simple("Softplus", "softplus")
Softsign = _simple("Softsign", "softsign")
Softplus.__doc__ = "log(1 + exp(x)), computed stably (Keras's softplus)."
Softsign.__doc__ = "``x / (1 + abs(x))`` (Keras's softsign)."


class SELU(Activation):
    """Keras's selu: scale * elu(x, alpha) with alpha = 1.6732632423543772 and
    scale = 1.0507009873554805 (Klambauer et al. 2017; pair it with
    ``lecun_normal`` initialization)."""

    name = "selu"
    code = defs.ACT_SELU


class HardSigmoid(Activation):
    """Keras 3's hard_sigmoid: 0 for x <= -3, 1 for x >= 3, x / 6 + 1/2 between
    (= relu6(x + 3) / 6; PyTorch's Hardsigmoid).  (Keras 2's was 0.2 x + 0.5.)"""

    name = "hard_sigmoid"
    code = defs.ACT_HARD_SIGMOID


class GELU(Activation):
    """Gaussian error linear unit, x * Phi(x) with Phi the standard normal CDF
    (Keras's default, ``approximate=False``, via erfc), or with
    ``approximate=True`` the tanh approximation
    0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) (PyTorch's
    ``approximate="tanh"``).  The approximate form's name is ``"gelu_tanh"``."""

    def __init__(self, approximate=False):
        if not isinstance(approximate, (bool, np.bool_)):
            raise TypeError("GELU: approximate must be a bool; got %r" % (approximate,))
        self.approximate = bool(approximate)

    @property
    def name(self):
        return "gelu_tanh" if self.approximate else "gelu"

    @property
    def code(self):
        return defs.ACT_GELU_TANH if self.approximate else defs.ACT_GELU

    def get_config(self):
        return {"name": "gelu", "approximate": self.approximate}


class LeakyReLU(Activation):
    """x if x > 0 else negative_slope * x (default slope 0.01, as PyTorch)."""

    name = "leaky_relu"
    code = defs.ACT_LEAKY_RELU

    def __init__(self, negative_slope=0.01):
        _check_float("negative_slope", negative_slope)
        self.alpha = float(negative_slope)

    def get_config(self):
        return {"name": self.name, "negative_slope": self.alpha}


class ELU(Activation):
    """x if x > 0 else alpha * (exp(x) - 1) (default alpha 1.0)."""

    name = "elu"
    code = defs.ACT_ELU

    def __init__(self, alpha=1.0):
        _check_float("alpha", alpha)
        if alpha < 0:
            raise ValueError("ELU: alpha must be >= 0; got %r" % (alpha,))
        self.alpha = float(alpha)

    def get_config(self):
        return {"name": self.name, "alpha": self.alpha}


def _check_float(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError("%s must be a number; got %r" % (name, value))
    if not np.isfinite(value):
        raise ValueError("%s must be finite; got %r" % (name, value))


_BY_NAME = {
    "linear": Linear, None: Linear, "sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU,
    "leaky_relu": LeakyReLU, "relu6": ReLU6, "elu": ELU, "swish": Swish, "silu": Swish,
    "softmax": Softmax, "step": Step, "gelu": GELU, "gelu_tanh": lambda: GELU(approximate=True),
    "softplus": Softplus, "softsign": Softsign, "selu": SELU, "hard_sigmoid": HardSigmoid,
}
NAMES = sorted(k for k in _BY_NAME if k is not None)


def get(identifier):
    """An Activation from a name, an Activation instance or None (linear)."""
    if isinstance(identifier, Activation):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Activation):
        return identifier()
    if identifier is None or isinstance(identifier, str):
        key = identifier.lower() if isinstance(identifier, str) else None
        if key not in _BY_NAME:
            raise ValueError("unknown activation %r; expected one of %s"
                             % (identifier, ", ".join(NAMES)))
        return _BY_NAME[key]()
    raise TypeError("activation must be a name (%s), an Activation or None; got %r"
                    % (", ".join(NAMES), identifier))


# Keras-style functions
def linear(x):
    return Linear()(x)


def sigmoid(x):
    """The logistic function 1 / (1 + exp(-x)), elementwise and stable for
    both signs: turns the logits of a model trained with
    ``BinaryCrossentropy(from_logits=True)`` into probabilities
    (``fastnet.activations.sigmoid(model.predict(X))``; ``model.predict_proba``
    does it for you).  Float32 input gives float32, anything else float64."""
    return Sigmoid()(x)


def tanh(x):
    return Tanh()(x)


def relu(x):
    return ReLU()(x)


def leaky_relu(x, negative_slope=0.01):
    return LeakyReLU(negative_slope)(x)


def relu6(x):
    return ReLU6()(x)


def elu(x, alpha=1.0):
    return ELU(alpha)(x)


def swish(x):
    return Swish()(x)


silu = swish


def gelu(x, approximate=False):
    """x * Phi(x) (Keras's gelu; ``approximate=True``: the tanh form)."""
    return GELU(approximate)(x)


def softplus(x):
    """log(1 + exp(x)), computed stably."""
    return Softplus()(x)


def softsign(x):
    """``x / (1 + abs(x))`` (Keras's softsign)."""
    return Softsign()(x)


def selu(x):
    """scale * elu(x, alpha), Keras's constants (see SELU)."""
    return SELU()(x)


def hard_sigmoid(x):
    """Keras 3's piecewise-linear sigmoid: clip(x / 6 + 1/2, 0, 1)."""
    return HardSigmoid()(x)


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along ``axis`` (the last: one row per sample),
    computed stably (the maximum is subtracted first): turns the logits of a
    model trained with ``SparseCategoricalCrossentropy(from_logits=True)`` /
    ``CategoricalCrossentropy(from_logits=True)`` into class probabilities
    (``fastnet.activations.softmax(model.predict(X))``; ``model.predict_proba``
    does it for you).  Float32 input gives float32, anything else float64."""
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("softmax needs at least one axis; got a scalar")
    x = x.astype(np.result_type(x.dtype, np.float32), copy=False)
    if x.ndim <= 2 and axis in (-1, x.ndim - 1):
        return Softmax()(x)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)
