"""Learning-rate schedules (Keras's ``keras.optimizers.schedules``).

Pass one as any optimizer's ``lr`` / ``learning_rate``::

    opt = fastnet.Adam(learning_rate=fastnet.schedules.CosineDecay(1e-3, decay_steps=5000))

A schedule maps the optimizer's step (``optimizer.iterations``: the number of
updates applied before this one, as Keras) to the learning rate of that update.
It is applied per step inside ``fit``: the compiled training step takes one
rate per call, so ``fit`` cuts its calls where the rate changes (at the
boundaries of ``PiecewiseConstantDecay`` and of staircase schedules; every
batch for the continuous ones), and the result equals a run that sets the rate
by hand before every batch, bit for bit.  Any callable ``lr(step) -> float``
is accepted too (called with the step before every batch).

The formulas are Keras's, evaluated in float64 (Keras evaluates them in the
rate's dtype, usually float32).  Each class has ``get_config()`` returning its
constructor arguments, so ``type(s)(**s.get_config())`` rebuilds it and model
files keep it.
"""
import bisect
import math
import numbers

__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "CosineDecay",
           "InverseTimeDecay"]

#: ``constant_steps`` of a rate that never changes again
FOREVER = 1 << 62


def _real(cls, name, value, low=None, positive=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError("%s: %s must be a real number; got %r" % (cls, name, value))
    value = float(value)
    if not math.isfinite(value) or (low is not None and value < low) or (positive and value <= 0):
        raise ValueError("%s: %s must be a finite number%s; got %r"
                         % (cls, name, " > 0" if positive else (" >= %g" % low if low is not None else ""),
                            value))
    return value


def _steps(cls, name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError("%s: %s must be an integer; got %r" % (cls, name, value))
    if value < low:
        raise ValueError("%s: %s must be >= %d; got %r" % (cls, name, low, value))
    return int(value)


def _step(step):
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        raise TypeError("a schedule's step must be an integer >= 0; got %r" % (step,))
    return int(step)


class LearningRateSchedule:
    """Base class: ``__call__(step) -> float``, ``get_config()`` and
    ``constant_steps(step)``, the number of steps from ``step`` on (at least 1)
    over which the rate stays ``self(step)``: how many batches ``fit`` may run
    in one compiled call.  Subclass it for a schedule of your own (then
    ``constant_steps`` may stay the default 1; pass the class in
    ``custom_objects`` when loading a model file that uses it)."""

    def __call__(self, step):
        raise NotImplementedError

    def constant_steps(self, step):
        return 1

    def get_config(self):
        raise NotImplementedError

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, repr(sorted(self.get_config().items()))))

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__,
                           ", ".join("%s=%r" % kv for kv in self.get_config().items() if kv[0] != "name"))


class _TimeDecay(LearningRateSchedule):
    """ExponentialDecay and InverseTimeDecay: one argument list, the decay a
    function of p = step / decay_steps (floored with ``staircase=True``)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase, name):
        c = type(self).__name__
        self.initial_learning_rate = _real(c, "initial_learning_rate", initial_learning_rate, 0.0)
        self.decay_steps = _steps(c, "decay_steps", decay_steps)
        self.decay_rate = self._check_rate(c, decay_rate)
        if not isinstance(staircase, bool):
            raise TypeError("%s: staircase must be a bool; got %r" % (c, staircase))
        self.staircase = staircase
        self.name = str(name)

    def __call__(self, step):
        p = _step(step) / self.decay_steps
        return self._decayed(math.floor(p) if self.staircase else p)

    def constant_steps(self, step):
        if self.decay_rate == self._NO_DECAY or self.initial_learning_rate == 0.0:
            return FOREVER
        return self.decay_steps - step % self.decay_steps if self.staircase else 1

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class ExponentialDecay(_TimeDecay):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``; with
    ``staircase=True`` the exponent is ``floor(step / decay_steps)``."""

    _NO_DECAY = 1.0

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    @staticmethod
    def _check_rate(c, rate):
        return _real(c, "decay_rate", rate, positive=True)

    def _decayed(self, p):
        return self.initial_learning_rate * self.decay_rate ** p


class InverseTimeDecay(_TimeDecay):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)``; with
    ``staircase=True``, ``floor(step / decay_steps)`` in place of the ratio."""

    _NO_DECAY = 0.0

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="InverseTimeDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    @staticmethod
    def _check_rate(c, rate):
        return _real(c, "decay_rate", rate, 0.0)

    def _decayed(self, p):
        return self.initial_learning_rate / (1.0 + self.decay_rate * p)


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i - 1] < step <= boundaries[i]``, ``values[-1]`` after the last
    boundary (Keras's convention); ``len(values) == len(boundaries) + 1``."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        c = type(self).__name__
        if not isinstance(boundaries, (list, tuple)) or not isinstance(values, (list, tuple)):
            raise TypeError("%s: boundaries and values must be lists; got %r and %r"
                            % (c, boundaries, values))
        if len(values) != len(boundaries) + 1:
            raise ValueError("%s: values must have one more element than boundaries; got %d values for "
                             "%d boundaries" % (c, len(values), len(boundaries)))
        self.boundaries = [int(b) if isinstance(b, numbers.Integral) and not isinstance(b, bool)
                           else _real(c, "boundaries[%d]" % i, b) for i, b in enumerate(boundaries)]
        if any(b1 <= b0 for b0, b1 in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError("%s: boundaries must be strictly increasing; got %r" % (c, list(boundaries)))
        self.values = [_real(c, "values[%d]" % i, v, 0.0) for i, v in enumerate(values)]
        self.name = str(name)

    def _piece(self, step):
        return bisect.bisect_left(self.boundaries, step)   # first boundary >= step

    def __call__(self, step):
        return self.values[self._piece(_step(step))]

    def constant_steps(self, step):
        i = self._piece(step)
        if i == len(self.boundaries):
            return FOREVER
        # steps step .. floor(boundaries[i]) keep values[i]
        return max(1, math.floor(self.boundaries[i]) - step + 1)

    def get_config(self):
        return {"boundaries": list(self.boundaries), "values": list(self.values), "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Keras's cosine decay with optional linear warmup.  Without warmup:
    ``initial_learning_rate * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha)``
    with ``s = min(step, decay_steps)``.  With ``warmup_target``: the rate goes
    linearly from ``initial_learning_rate`` to ``warmup_target`` over
    ``warmup_steps``, then decays from ``warmup_target`` as above over
    ``decay_steps`` (``s = min(step, warmup_steps + decay_steps) - warmup_steps``)."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        c = type(self).__name__
        self.initial_learning_rate = _real(c, "initial_learning_rate", initial_learning_rate, 0.0)
        self.decay_steps = _steps(c, "decay_steps", decay_steps)
        self.alpha = _real(c, "alpha", alpha)
        self.warmup_target = None if warmup_target is None else _real(c, "warmup_target", warmup_target, 0.0)
        self.warmup_steps = _steps(c, "warmup_steps", warmup_steps, 0)
        if self.warmup_target is None and self.warmup_steps:
            raise ValueError("%s: warmup_steps=%d needs a warmup_target" % (c, self.warmup_steps))
        self.name = str(name)

    def _decay(self, s, start):
        cosine = 0.5 * (1.0 + math.cos(math.pi * (s / self.decay_steps)))
        return start * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        s = _step(step)
        if self.warmup_target is None:
            return self._decay(min(s, self.decay_steps), self.initial_learning_rate)
        s = min(s, self.decay_steps + self.warmup_steps)
        if s < self.warmup_steps:
            delta = self.warmup_target - self.initial_learning_rate
            return delta * (s / self.warmup_steps) + self.initial_learning_rate
        return self._decay(s - self.warmup_steps, self.warmup_target)

    def constant_steps(self, step):
        end = self.decay_steps + (self.warmup_steps if self.warmup_target is not None else 0)
        return FOREVER if step >= end else 1

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}
