"""Weight initializers.  Each is called as ``init(shape, rng, dtype)`` with a
``numpy.random.Generator`` derived from the model's seed, so the same seed gives
bit-identical initial weights.  Fans follow Keras: for a Dense kernel of shape
(in, out), fan_in = in and fan_out = out."""
import numpy as np


class Initializer:
    name = None

    def __call__(self, shape, rng, dtype="float32"):
        return np.asarray(self._draw(tuple(shape), rng), dtype=np.float64).astype(dtype)

    def _fans(self, shape):
        if len(shape) == 1:
            return shape[0], shape[0]
        return shape[0], shape[1]

    def get_config(self):
        return {"name": self.name}

    def __repr__(self):
        cfg = {k: v for k, v in self.get_config().items() if k != "name"}
        return "%s(%s)" % (type(self).__name__, ", ".join("%s=%r" % kv for kv in cfg.items()))


class Zeros(Initializer):
    name = "zeros"

    def _draw(self, shape, rng):
        return np.zeros(shape)


class Ones(Initializer):
    name = "ones"

    def _draw(self, shape, rng):
        return np.ones(shape)


class Constant(Initializer):
    name = "constant"

    def __init__(self, value=0.0):
        self.value = float(value)

    def _draw(self, shape, rng):
        return np.full(shape, self.value)

    def get_config(self):
        return {"name": self.name, "value": self.value}


class RandomNormal(Initializer):
    name = "random_normal"

    def __init__(self, mean=0.0, stddev=0.05):
        if not stddev >= 0:
            raise ValueError("RandomNormal: stddev must be >= 0; got %r" % (stddev,))
        self.mean, self.stddev = float(mean), float(stddev)

    def _draw(self, shape, rng):
        return rng.normal(self.mean, self.stddev, size=shape)

    def get_config(self):
        return {"name": self.name, "mean": self.mean, "stddev": self.stddev}


class RandomUniform(Initializer):
    name = "random_uniform"

    def __init__(self, minval=-0.05, maxval=0.05):
        if not maxval >= minval:
            raise ValueError("RandomUniform: maxval must be >= minval; got %r < %r" % (maxval, minval))
        self.minval, self.maxval = float(minval), float(maxval)

    def _draw(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, size=shape)

    def get_config(self):
        return {"name": self.name, "minval": self.minval, "maxval": self.maxval}


class _VarianceScaling(Initializer):
    scale = 1.0
    mode = "fan_in"
    distribution = "uniform"

    def _draw(self, shape, rng):
        fan_in, fan_out = self._fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        var = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = np.sqrt(3.0 * var)
            return rng.uniform(-limit, limit, size=shape)
        # Keras: truncated normal at 2 stddev, stddev corrected by 0.87962566103423978
        std = np.sqrt(var) / 0.87962566103423978
        out = rng.normal(0.0, std, size=shape)
        bad = np.abs(out) > 2 * std
        while bad.any():
            out[bad] = rng.normal(0.0, std, size=int(bad.sum()))
            bad = np.abs(out) > 2 * std
        return out


class GlorotUniform(_VarianceScaling):
    """U(-l, l), l = sqrt(6 / (fan_in + fan_out))."""
    name, mode, distribution = "glorot_uniform", "fan_avg", "uniform"


class GlorotNormal(_VarianceScaling):
    """Truncated normal, stddev sqrt(2 / (fan_in + fan_out))."""
    name, mode, distribution = "glorot_normal", "fan_avg", "normal"


class HeUniform(_VarianceScaling):
    """U(-l, l), l = sqrt(6 / fan_in)."""
    name, scale, mode, distribution = "he_uniform", 2.0, "fan_in", "uniform"


class HeNormal(_VarianceScaling):
    """Truncated normal, stddev sqrt(2 / fan_in)."""
    name, scale, mode, distribution = "he_normal", 2.0, "fan_in", "normal"


class LecunNormal(_VarianceScaling):
    """Truncated normal, stddev sqrt(1 / fan_in)."""
    name, scale, mode, distribution = "lecun_normal", 1.0, "fan_in", "normal"


class LecunUniform(_VarianceScaling):
    name, scale, mode, distribution = "lecun_uniform", 1.0, "fan_in", "uniform"


_BY_NAME = {cls.name: cls for cls in (Zeros, Ones, Constant, RandomNormal, RandomUniform,
                                       GlorotUniform, GlorotNormal, HeUniform, HeNormal,
                                       LecunNormal, LecunUniform)}
NAMES = sorted(_BY_NAME)


def get(identifier):
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in _BY_NAME:
            raise ValueError("unknown initializer %r; expected one of %s" % (identifier, ", ".join(NAMES)))
        return _BY_NAME[key]()
    raise TypeError("initializer must be a name (%s) or an Initializer; got %r"
                    % (", ".join(NAMES), identifier))
