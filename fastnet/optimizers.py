"""Optimizers with PyTorch's ``torch.optim`` update rules and argument names.

Every optimizer updates the model's whole flat parameter buffer with one fused
kernel call per step (``optimizer_update`` in the backend contract; inside the
compiled training step for the compiled backends).  ``learning_rate=`` is
accepted as an alias of ``lr`` (Keras spelling).

State (PyTorch's ``state`` dict) lives in one array of shape
(3, n_params), rows in the order of the optimizer's ``slots``; ``iterations``
counts the steps taken (PyTorch's ``step``).

Gradient clipping (keyword-only, Keras's meaning, at most one of them):
``clipnorm`` clips each parameter array's gradient (each layer's kernel, bias and
PReLU slopes separately) to that L2 norm, ``global_clipnorm`` clips all gradients
together to that global norm, ``clipvalue`` clips every gradient element to
[-clipvalue, clipvalue].  It is applied to the gradient (after regularization,
before weight decay, ``maximize`` and the optimizer's rule) inside the fused
update kernel; ``model.gradients`` still returns the unclipped gradients.
"""
import numbers

import numpy as np

from ._kernels import defs


def _num(cls, name, value, low=0.0, high=None, high_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError("%s: %s must be a real number; got %r" % (cls, name, value))
    value = float(value)
    if not np.isfinite(value) or value < low or (high is not None and (value >= high if high_open else value > high)):
        rng = "[%g, %g%s" % (low, high, ")" if high_open else "]") if high is not None else ">= %g" % low
        raise ValueError("%s: invalid %s %r (expected %s)" % (cls, name, value, rng))
    return value


def _flag(cls, name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError("%s: %s must be a bool; got %r" % (cls, name, value))
    return bool(value)


class _Default(float):
    """A default value that remembers it was not given (prints as the float)."""

    def __repr__(self):
        return float.__repr__(self)


class Optimizer:
    """Base class.  Subclasses set ``name``, ``code``, ``slots`` and fill
    ``self._h`` (name -> value) in ``__init__``."""

    name = None
    code = defs.OPT_NONE
    slots = ()

    def __init__(self, lr, learning_rate, clipnorm=None, clipvalue=None, global_clipnorm=None):
        cls = type(self).__name__
        if learning_rate is not None:
            if not isinstance(lr, _Default):
                raise TypeError("%s: give lr or its alias learning_rate, not both" % cls)
            lr = learning_rate
        clips = {}
        for name, value in (("clipnorm", clipnorm), ("clipvalue", clipvalue),
                            ("global_clipnorm", global_clipnorm)):
            if value is not None:
                clips[name] = _num(cls, name, value)
                if clips[name] <= 0:
                    raise ValueError("%s: %s must be > 0 (or None for no clipping); got %r"
                                     % (cls, name, value))
        if len(clips) > 1:
            raise ValueError("%s: only one of clipnorm, clipvalue and global_clipnorm can be set; got %s"
                             % (cls, ", ".join(sorted(clips))))
        self._h = {"lr": _num(cls, "lr", lr)}
        self._clip = clips
        self.iterations = 0
        self.state = None
        self._owner = None

    # -- hyper-parameters --------------------------------------------------
    @property
    def learning_rate(self):
        return self._h["lr"]

    @learning_rate.setter
    def learning_rate(self, value):
        self._h["lr"] = _num(type(self).__name__, "learning_rate", value)

    lr = learning_rate

    def hyper(self):
        """The float64 hyper-parameter vector of the kernel contract."""
        h = np.zeros(defs.NH)
        for name, value in self._h.items():
            h[defs.HYPER[name]] = float(value)
        for name, value in self._clip.items():
            h[defs.HYPER[name]] = float(value)
        return h

    @property
    def clipnorm(self):
        return self._clip.get("clipnorm")

    @property
    def clipvalue(self):
        return self._clip.get("clipvalue")

    @property
    def global_clipnorm(self):
        return self._clip.get("global_clipnorm")

    def get_config(self):
        cfg = {"name": self.name}
        cfg.update(self._config())
        return cfg

    def _config(self):
        cfg = dict(self._h)
        cfg.update(self._clip)
        return cfg

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, ", ".join("%s=%r" % kv for kv in self._config().items()))

    # -- state ---------------------------------------------------------------
    def _initial_state(self, n_params, dtype):
        return np.zeros((defs.N_STATE, n_params), dtype=dtype)

    def _check_owner(self, model):
        """ValueError if another (live) model uses this optimizer."""
        if self._owner is not None and self._owner() is not None and self._owner() is not model:
            raise ValueError("this %s instance is already used by another model; create a new "
                             "optimizer for each model" % type(self).__name__)

    def _bind(self, model, n_params, dtype):
        """Create (or check) the state for ``model``'s flat buffer."""
        self._check_owner(model)
        if self.state is None or self.state.shape[1] != n_params or self.state.dtype != dtype:
            self.state = self._initial_state(n_params, dtype)
            self.iterations = 0
        import weakref
        self._owner = weakref.ref(model)

    def reset(self):
        """Forget the state and the step count."""
        self.state = None
        self.iterations = 0


class SGD(Optimizer):
    """torch.optim.SGD: momentum, dampening, Nesterov, weight decay, maximize."""

    name = "sgd"
    code = defs.OPT_SGD
    slots = ("momentum_buffer",)

    def __init__(self, lr=_Default(0.01), momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0,
                 maximize=False, *, learning_rate=None, clipnorm=None, clipvalue=None, global_clipnorm=None):
        super().__init__(lr, learning_rate, clipnorm, clipvalue, global_clipnorm)
        c = type(self).__name__
        self._h.update(momentum=_num(c, "momentum", momentum), dampening=_num(c, "dampening", dampening),
                       nesterov=_flag(c, "nesterov", nesterov),
                       weight_decay=_num(c, "weight_decay", weight_decay),
                       maximize=_flag(c, "maximize", maximize))
        if self._h["nesterov"] and (self._h["momentum"] <= 0 or self._h["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening")


class Adagrad(Optimizer):
    """torch.optim.Adagrad."""

    name = "adagrad"
    code = defs.OPT_ADAGRAD
    slots = ("sum",)

    def __init__(self, lr=_Default(0.01), lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                 maximize=False, *, learning_rate=None, clipnorm=None, clipvalue=None, global_clipnorm=None):
        super().__init__(lr, learning_rate, clipnorm, clipvalue, global_clipnorm)
        c = type(self).__name__
        self._h.update(lr_decay=_num(c, "lr_decay", lr_decay), weight_decay=_num(c, "weight_decay", weight_decay),
                       initial_accumulator_value=_num(c, "initial_accumulator_value", initial_accumulator_value),
                       eps=_num(c, "eps", eps), maximize=_flag(c, "maximize", maximize))

    def _initial_state(self, n_params, dtype):
        state = super()._initial_state(n_params, dtype)
        state[0] = self._h["initial_accumulator_value"]
        return state


class RMSprop(Optimizer):
    """torch.optim.RMSprop (centered and momentum variants)."""

    name = "rmsprop"
    code = defs.OPT_RMSPROP
    slots = ("square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, lr=_Default(0.01), alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 maximize=False, *, learning_rate=None, clipnorm=None, clipvalue=None, global_clipnorm=None):
        super().__init__(lr, learning_rate, clipnorm, clipvalue, global_clipnorm)
        c = type(self).__name__
        self._h.update(alpha=_num(c, "alpha", alpha), eps=_num(c, "eps", eps),
                       weight_decay=_num(c, "weight_decay", weight_decay),
                       momentum=_num(c, "momentum", momentum), centered=_flag(c, "centered", centered),
                       maximize=_flag(c, "maximize", maximize))


class Adam(Optimizer):
    """torch.optim.Adam (L2 weight decay added to the gradient; amsgrad)."""

    name = "adam"
    code = defs.OPT_ADAM
    slots = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(self, lr=_Default(0.001), betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 maximize=False, *, learning_rate=None, clipnorm=None, clipvalue=None, global_clipnorm=None):
        super().__init__(lr, learning_rate, clipnorm, clipvalue, global_clipnorm)
        c = type(self).__name__
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError("%s: betas must be a pair (beta1, beta2); got %r" % (c, betas))
        wd = weight_decay
        self._h.update(beta1=_num(c, "betas[0]", betas[0], 0.0, 1.0, True),
                       beta2=_num(c, "betas[1]", betas[1], 0.0, 1.0, True),
                       eps=_num(c, "eps", eps), weight_decay=_num(c, "weight_decay", wd),
                       amsgrad=_flag(c, "amsgrad", amsgrad), maximize=_flag(c, "maximize", maximize))

    def _config(self):
        cfg = super()._config()
        cfg["betas"] = (cfg.pop("beta1"), cfg.pop("beta2"))
        return cfg


class AdamW(Adam):
    """torch.optim.AdamW: decoupled weight decay p *= 1 - lr * weight_decay."""

    name = "adamw"
    code = defs.OPT_ADAMW

    def __init__(self, lr=_Default(0.001), betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, amsgrad=False,
                 maximize=False, *, learning_rate=None, clipnorm=None, clipvalue=None, global_clipnorm=None):
        super().__init__(lr, betas, eps, weight_decay, amsgrad, maximize, learning_rate=learning_rate,
                         clipnorm=clipnorm, clipvalue=clipvalue, global_clipnorm=global_clipnorm)


_BY_NAME = {"sgd": SGD, "adagrad": Adagrad, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}
NAMES = sorted(_BY_NAME)


def get(identifier):
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in _BY_NAME:
            raise ValueError("unknown optimizer %r; expected one of %s" % (identifier, ", ".join(NAMES)))
        return _BY_NAME[key]()
    raise TypeError("optimizer must be a name (%s) or an Optimizer; got %r" % (", ".join(NAMES), identifier))
