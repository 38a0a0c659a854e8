"""Layers: shapes, initializers and views into the model's flat buffers; no math.

The model owns one flat parameter buffer (and one flat gradient buffer); after
``build`` each Dense layer's ``kernel`` (in, out) and ``bias`` (out,) are views
into it, so one optimizer kernel call updates the whole model.
"""
import numbers

from . import activations as _activations
from . import initializers as _initializers
from . import regularizers as _regularizers


class Layer:
    """Base class of the Sequential layers."""

    _prefix = "layer"

    def __init__(self, name=None):
        if name is not None and not isinstance(name, str):
            raise TypeError("name must be a string or None; got %r" % (name,))
        self.name = name

    def count_params(self):
        return 0

    def get_config(self):
        return {"name": self.name}

    def __repr__(self):
        cfg = {k: v for k, v in self.get_config().items() if k != "name"}
        return "%s(%s)" % (type(self).__name__, ", ".join("%s=%r" % kv for kv in cfg.items()))


class Dense(Layer):
    """A fully connected layer: ``a = activation(x @ kernel + bias)``.

    Parameters follow Keras: ``units`` (output width), ``activation`` (name,
    Activation object or None for linear), ``use_bias``, ``kernel_initializer``
    (default ``"glorot_uniform"``), ``bias_initializer`` (default ``"zeros"``),
    ``kernel_regularizer`` (``fastnet.regularizers.L1/L2/L1L2`` or None).
    ``input_dim`` may be given on the first layer instead of ``model.build``.
    """

    _prefix = "dense"

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, *, input_dim=None, name=None):
        super().__init__(name)
        if isinstance(units, bool) or not isinstance(units, numbers.Integral):
            raise TypeError("Dense: units must be a positive int; got %r" % (units,))
        if units < 1:
            raise ValueError("Dense: units must be >= 1; got %d" % units)
        if not isinstance(use_bias, bool):
            raise TypeError("Dense: use_bias must be a bool; got %r" % (use_bias,))
        if input_dim is not None and (isinstance(input_dim, bool) or not isinstance(input_dim, numbers.Integral)
                                      or input_dim < 1):
            raise ValueError("Dense: input_dim must be a positive int; got %r" % (input_dim,))
        self.units = int(units)
        self.activation = _activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.input_dim = None if input_dim is None else int(input_dim)
        self.kernel = None
        self.bias = None

    def count_params(self, input_dim=None):
        n_in = input_dim if input_dim is not None else self.input_dim
        if n_in is None:
            return None
        return n_in * self.units + (self.units if self.use_bias else 0)

    def get_config(self):
        return {"name": self.name, "units": self.units, "activation": self.activation.name,
                "use_bias": self.use_bias}


class Dropout(Layer):
    """Inverted dropout on the previous layer's output: during ``fit`` each entry
    is zeroed with probability ``rate`` and the kept ones are scaled by
    1 / (1 - rate); inactive in ``predict``/``evaluate``.  The mask comes from a
    counter-based hash of the model's seed, so runs are reproducible on every
    backend and for any thread count."""

    _prefix = "dropout"

    def __init__(self, rate, *, name=None):
        super().__init__(name)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
            raise TypeError("Dropout: rate must be a float in [0, 1); got %r" % (rate,))
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError("Dropout: rate must be in [0, 1); got %r" % (rate,))
        self.rate = float(rate)

    def get_config(self):
        return {"name": self.name, "rate": self.rate}
