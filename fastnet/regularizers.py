"""Weight regularizers with Keras's definitions: L1 adds l1 * sum|W| to the loss
(gradient l1 * sign(W)); L2 adds l2 * sum W^2 (gradient 2 * l2 * W).  Applied to
Dense kernels only (never biases), inside the backend's training step.  Keras's
spellings ``l1(0.01)``, ``l2(0.01)`` and ``l1_l2(l1=..., l2=...)`` are the
same classes."""
import numpy as np


class Regularizer:
    l1 = 0.0
    l2 = 0.0

    def __call__(self, w):
        w = np.asarray(w, dtype=np.float64)
        return self.l1 * np.abs(w).sum() + self.l2 * np.square(w).sum()

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, ", ".join("%s=%r" % kv for kv in self.get_config().items()))


def _coef(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError("%s must be a number; got %r" % (name, value))
    if not (np.isfinite(value) and value >= 0):
        raise ValueError("%s must be a finite number >= 0; got %r" % (name, value))
    return float(value)


class L1L2(Regularizer):
    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = _coef("l1", l1), _coef("l2", l2)


class L1(Regularizer):
    def __init__(self, l1=0.01):
        self.l1 = _coef("l1", l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    def __init__(self, l2=0.01):
        self.l2 = _coef("l2", l2)

    def get_config(self):
        return {"l2": self.l2}


# Keras's lower-case spellings: regularizers.l2(0.01) is L2(0.01)
l1 = L1
l2 = L2
l1_l2 = L1L2


def get(identifier):
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        table = {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2}
        if identifier.lower() not in table:
            raise ValueError("unknown regularizer %r; expected one of l1, l2, l1_l2" % identifier)
        return table[identifier.lower()]()
    raise TypeError("kernel_regularizer must be None, a name or a Regularizer; got %r" % (identifier,))
