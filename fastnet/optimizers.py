"""Optimizers with PyTorch's ``torch.optim`` update rules and argument names.

Every optimizer updates the model's whole flat parameter buffer with one fused
kernel call per step (``optimizer_update`` in the backend contract; inside the
compiled training step for the compiled backends).  Defaults are PyTorch's
(2.13: SGD's ``lr`` is 1e-3, as Adam's).  Keras's spellings are accepted where
they mean the same thing: ``learning_rate=`` for ``lr``; Adam / AdamW's
``beta_1`` / ``beta_2`` for ``betas`` and ``epsilon`` for ``eps``; RMSprop's
``rho`` for ``alpha``.  (Keras's Adam adds its epsilon to sqrt(v) before the
bias correction, PyTorch after it: the updates differ by a factor
sqrt(1 - beta_2^t) on epsilon, which matters only while v is of epsilon's
size.  Keras's RMSprop and Adagrad add epsilon inside the square root, so
their ``epsilon`` is not accepted: pass PyTorch's ``eps``.)

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
from ._memory import aligned_zeros
from . import schedules  # noqa: F401  (Keras's path: fastnet.optimizers.schedules)


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


_FOREVER = 1 << 62


def _is_schedule(value):
    """A schedule object or a callable step -> lr (a number is not one)."""
    return callable(value) and not isinstance(value, (numbers.Real, np.ndarray))


def _lr_arg(cls, name, value):
    """A learning rate: a number >= 0, a ``fastnet.schedules`` schedule, or a
    callable step -> lr (checked at step 0 here, at every step in training)."""
    if _is_schedule(value):
        if isinstance(value, type):
            raise TypeError("%s: %s must be a schedule object, not the class %s (instantiate it)"
                            % (cls, name, value.__name__))
        try:
            first = value(0)
        except TypeError as e:
            raise TypeError("%s: the %s schedule %r must take the step (an int) and return the rate: "
                            "calling it with 0 raised %s" % (cls, name, value, e)) from None
        if isinstance(first, np.ndarray) and first.ndim == 0:
            first = first[()]
        _num(cls, "%s at step 0" % name, first)
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError("%s: %s must be a number, a fastnet.schedules schedule or a callable step -> "
                        "learning rate; got %r" % (cls, name, value))
    return _num(cls, name, value)


class _Default(float):
    """A default value that remembers it was not given (prints as the float)."""

    def __repr__(self):
        return float.__repr__(self)


#: Adam's default betas (a distinct object: an explicit betas=(0.9, 0.999) is told from the default)
_DEFAULT_BETAS = (0.9, 0.999)


def _alias(cls, name, value, alias, alias_value):
    """``value`` of the PyTorch argument ``name``, or that of its Keras spelling
    ``alias`` (TypeError when both are given)."""
    if alias_value is None:
        return value
    if not isinstance(value, _Default):
        raise TypeError("%s: give %s or its Keras spelling %s, not both" % (cls, name, alias))
    return alias_value


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
        self._h = {"lr": _lr_arg(cls, "lr", lr)}
        self._clip = clips
        self.iterations = 0
        self.state = None
        self._owner = None

    # -- hyper-parameters --------------------------------------------------
    @property
    def learning_rate(self):
        """The rate of the next update (as Keras 3: with a schedule, its value at
        ``iterations``; the schedule itself is ``learning_rate_schedule``)."""
        return self._lr_at(self.iterations)

    @learning_rate.setter
    def learning_rate(self, value):
        cls = type(self).__name__
        if self.learning_rate_schedule is not None and not _is_schedule(value):
            # Keras 3 refuses it the same way
            raise TypeError("%s: this optimizer's learning rate is the schedule %r, so it cannot be set "
                            "to a number; create the optimizer with a float learning rate (or assign "
                            "another schedule)" % (cls, self._h["lr"]))
        self._h["lr"] = _lr_arg(cls, "learning_rate", value)

    lr = learning_rate

    @property
    def learning_rate_schedule(self):
        """The schedule (a ``fastnet.schedules`` object or a callable step -> lr)
        given as the learning rate, else None."""
        lr = self._h["lr"]
        return lr if _is_schedule(lr) else None

    def _lr_at(self, step):
        """The learning rate of update number ``step`` (0-based), checked."""
        sched = self.learning_rate_schedule
        if sched is None:
            return self._h["lr"]
        value = sched(int(step))
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value[()]
        return _num(type(self).__name__, "learning rate from the schedule %r at step %d" % (sched, step),
                    value)

    def _check_fit(self, callbacks):
        """Before a fit changes anything: the schedule's next rate is valid, and no
        callback that sets the rate between epochs meets a schedule (Keras 3 raises
        the same TypeError, but only when the callback first sets the rate)."""
        sched = self.learning_rate_schedule
        if sched is None:
            return
        from .callbacks import LearningRateScheduler, ReduceLROnPlateau
        for cb in callbacks or ():
            if isinstance(cb, (LearningRateScheduler, ReduceLROnPlateau)):
                raise TypeError("%s sets the learning rate between epochs, but this %s's learning rate is "
                                "the schedule %r; use one or the other"
                                % (type(cb).__name__, type(self).__name__, sched))
        self._lr_at(self.iterations)

    def _constant_steps(self):
        """How many updates from ``iterations`` on share its learning rate (>= 1):
        the most batches one compiled call may run."""
        sched = self.learning_rate_schedule
        if sched is None:
            return _FOREVER
        steps = getattr(sched, "constant_steps", None)
        return max(1, int(steps(int(self.iterations)))) if steps is not None else 1

    def hyper(self):
        """The float64 hyper-parameter vector of the kernel contract (the
        learning rate of update number ``iterations``)."""
        h = np.zeros(defs.NH)
        for name, value in self._h.items():
            h[defs.HYPER[name]] = float(self._lr_at(self.iterations) if name == "lr" else value)
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
        return aligned_zeros((defs.N_STATE, n_params), dtype)

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

    def __init__(self, lr=_Default(0.001), momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0,
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
    """torch.optim.RMSprop (centered and momentum variants); Keras's ``rho`` is
    accepted for ``alpha``."""

    name = "rmsprop"
    code = defs.OPT_RMSPROP
    slots = ("square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, lr=_Default(0.01), alpha=_Default(0.99), eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, maximize=False, *, learning_rate=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, rho=None, epsilon=None):
        super().__init__(lr, learning_rate, clipnorm, clipvalue, global_clipnorm)
        c = type(self).__name__
        if epsilon is not None:
            raise TypeError("RMSprop: epsilon (Keras) is not accepted: Keras adds it inside the square root, "
                            "PyTorch's eps (used here) outside; pass eps=")
        alpha = _alias(c, "alpha", alpha, "rho", rho)
        self._h.update(alpha=_num(c, "alpha", alpha), eps=_num(c, "eps", eps),
                       weight_decay=_num(c, "weight_decay", weight_decay),
                       momentum=_num(c, "momentum", momentum), centered=_flag(c, "centered", centered),
                       maximize=_flag(c, "maximize", maximize))


class Adam(Optimizer):
    """torch.optim.Adam (L2 weight decay added to the gradient; amsgrad)."""

    name = "adam"
    code = defs.OPT_ADAM
    slots = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(self, lr=_Default(0.001), betas=_DEFAULT_BETAS, eps=_Default(1e-8), weight_decay=0.0,
                 amsgrad=False, maximize=False, *, learning_rate=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, beta_1=None, beta_2=None, epsilon=None):
        super().__init__(lr, learning_rate, clipnorm, clipvalue, global_clipnorm)
        c = type(self).__name__
        if beta_1 is not None or beta_2 is not None:
            if betas is not _DEFAULT_BETAS:
                raise TypeError("%s: give betas or Keras's beta_1 / beta_2, not both" % c)
            betas = (_DEFAULT_BETAS[0] if beta_1 is None else beta_1, _DEFAULT_BETAS[1] if beta_2 is None else beta_2)
        eps = _alias(c, "eps", eps, "epsilon", epsilon)
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
    """torch.optim.AdamW: decoupled weight decay ``p *= 1 - lr * weight_decay``."""

    name = "adamw"
    code = defs.OPT_ADAMW

    def __init__(self, lr=_Default(0.001), betas=_DEFAULT_BETAS, eps=_Default(1e-8), weight_decay=0.01,
                 amsgrad=False, maximize=False, *, learning_rate=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, beta_1=None, beta_2=None, epsilon=None):
        super().__init__(lr, betas, eps, weight_decay, amsgrad, maximize, learning_rate=learning_rate,
                         clipnorm=clipnorm, clipvalue=clipvalue, global_clipnorm=global_clipnorm,
                         beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)


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
