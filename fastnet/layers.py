"""Layers: shapes, initializers and views into the model's flat buffers; no math.

The model owns one flat parameter buffer (and one flat gradient buffer); after
``build`` each Dense layer's ``kernel`` (in, out) and ``bias`` (out,) (Maxout:
(in, units * pieces) and (units * pieces,)) and each PReLU layer's ``alpha``
(units,) are views into it, so one optimizer kernel call updates the whole model.
"""
import numbers
import weakref

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

    # The model this layer belongs to (a weak reference; None: no model).  A
    # layer's weights are views into one model's buffer, so it cannot be shared.
    _owner_ref = None

    def _owner(self):
        return None if self._owner_ref is None else self._owner_ref()

    def _claim(self, model):
        """Make ``model`` this layer's owner.  ValueError if another model owns
        it, unless that model is gone or failed to build (never built, its
        layers hold no weights: they may start again in a new model)."""
        owner = self._owner()
        if owner is model:
            return
        if owner is not None and not getattr(owner, "_build_failed", False):
            raise ValueError("layer %r already belongs to another model (%r); a layer is part of one "
                             "model only (its weights live in that model): create a new %s for this "
                             "model" % (self.name, owner, type(self).__name__))
        if self._owner_ref is not None:
            # views into a former model's buffer: this model's build makes new ones
            for attr in ("kernel", "bias", "alpha"):
                if getattr(self, attr, None) is not None:
                    setattr(self, attr, None)
        self._owner_ref = weakref.ref(model)

    def __getstate__(self):
        # a copy (copy.copy, copy.deepcopy, pickle) belongs to no model
        state = self.__dict__.copy()
        state.pop("_owner_ref", None)
        return state

    def count_params(self):
        return 0

    def get_weights(self):
        """Copies of this layer's weights, in Keras's order and layout (Dense:
        ``[kernel (in, out), bias (out,)]``; PReLU: ``[alpha (units,)]``); ``[]``
        for a layer without weights or one whose model is not built yet."""
        owner = self._owner()
        if owner is None or not owner.built:
            return []
        return [view.copy() for _, view in owner._layer_weight_views(self)]

    def set_weights(self, weights):
        """Set this layer's weights from a list in the layout of ``get_weights()``
        (a kernel is (in, out), as in Keras: a PyTorch ``nn.Linear.weight`` is
        (out, in) and must be transposed; ``fastnet.interop.from_torch`` does it).
        Every array is checked (count, shape, a real number dtype, finite in the
        model's dtype) before any is written."""
        owner = self._owner()
        if owner is None or not owner.built:
            raise ValueError("%s.set_weights: layer %r has no weights yet: its model must be built first "
                             "(declare the input with fastnet.Input(shape=(n,)) or call model.build(n))"
                             % (type(self).__name__, self.name))
        targets = owner._layer_weight_views(self)
        arrays = owner._check_weight_list(targets, weights, "%s.set_weights" % self.name)
        owner._assign_weights(targets, arrays, "%s.set_weights:" % self.name)

    def get_config(self):
        return {"name": self.name}

    def __repr__(self):
        cfg = {k: v for k, v in self.get_config().items() if k != "name"}
        return "%s(%s)" % (type(self).__name__, ", ".join("%s=%r" % kv for kv in cfg.items()))


def _input_width(shape, who, arg):
    """The feature count n of a Keras input shape ``(n,)`` (an int n is taken too)."""
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise TypeError("%s: %s must be a tuple (n_features,); got %r" % (who, arg, shape))
    if len(shape) != 1:
        hint = ""
        if len(shape) > 1 and all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0
                                  for d in shape):
            size = 1
            for d in shape:
                size *= int(d)
            hint = (" (fastnet models take flat feature vectors: flatten X with X.reshape(len(X), -1) "
                    "and declare %s=(%d,))" % (arg, size))
        raise ValueError("%s: %s must have one dimension, (n_features,); got %r%s" % (who, arg, tuple(shape), hint))
    n = shape[0]
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError("%s: %s must be (n_features,) with a positive int; got %r" % (who, arg, tuple(shape)))
    return int(n)


class InputLayer(Layer):
    """The model's input declaration, ``fastnet.Input(shape=(n_features,))``.

    As the first layer of a Sequential model (Keras's habit) it fixes the input
    width, and the model is built (its weights initialised) at construction.
    It holds no weights and is not kept in ``model.layers`` (as in Keras).
    ``batch_shape=(None, n)`` is accepted in place of ``shape``."""

    _prefix = "input_layer"

    def __init__(self, shape=None, *, batch_shape=None, name=None):
        super().__init__(name)
        if batch_shape is not None:
            if shape is not None:
                raise ValueError("Input: give shape or batch_shape, not both")
            if not isinstance(batch_shape, (tuple, list)) or len(batch_shape) != 2:
                raise ValueError("Input: batch_shape must be (batch, n_features), e.g. (None, %s); got %r"
                                 % ("n", batch_shape))
            if batch_shape[0] is not None and (isinstance(batch_shape[0], bool) or not isinstance(
                    batch_shape[0], numbers.Integral) or batch_shape[0] < 1):
                raise ValueError("Input: batch_shape[0] must be None or a positive int; got %r"
                                 % (batch_shape[0],))
            shape = tuple(batch_shape[1:])
        if shape is None:
            raise TypeError("Input: shape=(n_features,) is required")
        self.shape = (_input_width(shape, "Input", "shape"),)

    @property
    def input_dim(self):
        return self.shape[0]

    def get_config(self):
        return {"shape": self.shape, "name": self.name}

    def __eq__(self, other):
        return type(other) is InputLayer and other.shape == self.shape and other.name == self.name

    __hash__ = Layer.__hash__


def Input(shape=None, *, batch_shape=None, name=None):
    """Declare the model's input: ``Sequential([fastnet.Input(shape=(784,)),
    Dense(...), ...])`` builds the model at construction (Keras's habit)."""
    return InputLayer(shape, batch_shape=batch_shape, name=name)


class Dense(Layer):
    """A fully connected layer: ``a = activation(x @ kernel + bias)``.

    Parameters follow Keras: ``units`` (output width), ``activation`` (name,
    Activation object or None for linear), ``use_bias``, ``kernel_initializer``
    (default ``"glorot_uniform"``), ``bias_initializer`` (default ``"zeros"``),
    ``kernel_regularizer`` and ``bias_regularizer`` (``fastnet.regularizers.L1/L2/L1L2``,
    their Keras spellings ``regularizers.l1/l2/l1_l2``, or None: Keras's penalty
    ``l1 * sum|w| + l2 * sum w^2`` on the kernel, or on the bias, added to the loss
    and applied inside the compiled step).
    ``input_dim=n`` or Keras's ``input_shape=(n,)`` on the first layer declares
    the input width: the model is then built at construction, as in Keras.
    """

    _prefix = "dense"

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, *, input_dim=None, meprop_k=None,
                 name=None, input_shape=None, bias_regularizer=None):
        super().__init__(name)
        cls = type(self).__name__
        if input_shape is not None:
            n = _input_width(input_shape, cls, "input_shape")
            if input_dim is not None and input_dim != n:
                raise ValueError("%s: input_dim=%r and input_shape=%r disagree" % (cls, input_dim, input_shape))
            input_dim = n
        if isinstance(units, bool) or not isinstance(units, numbers.Integral):
            raise TypeError("%s: units must be a positive int; got %r" % (cls, units))
        if units < 1:
            raise ValueError("%s: units must be >= 1; got %d" % (cls, units))
        if not isinstance(use_bias, bool):
            raise TypeError("%s: use_bias must be a bool; got %r" % (cls, use_bias))
        if input_dim is not None and (isinstance(input_dim, bool) or not isinstance(input_dim, numbers.Integral)
                                      or input_dim < 1):
            raise ValueError("%s: input_dim must be a positive int; got %r" % (cls, input_dim))
        if meprop_k is not None:
            if isinstance(meprop_k, bool) or not isinstance(meprop_k, numbers.Integral):
                raise TypeError("%s: meprop_k must be a positive int or None; got %r" % (cls, meprop_k))
            if not 1 <= meprop_k <= units:
                raise ValueError("%s: meprop_k must be in [1, units=%d]; got %d" % (cls, units, meprop_k))
            meprop_k = int(meprop_k)
        self.meprop_k = meprop_k
        self.units = int(units)
        self.activation = _activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.bias_regularizer = _regularizers.get(bias_regularizer)
        self.input_dim = None if input_dim is None else int(input_dim)
        self.kernel = None
        self.bias = None

    #: columns of z per unit (Maxout: pieces)
    pieces = 1

    def count_params(self, input_dim=None):
        n_in = input_dim if input_dim is not None else self.input_dim
        if n_in is None:
            return None
        zw = self.units * self.pieces
        return n_in * zw + (zw if self.use_bias else 0)

    def get_config(self):
        cfg = {"name": self.name, "units": self.units, "activation": self.activation.name,
               "use_bias": self.use_bias}
        if self.meprop_k is not None:
            cfg["meprop_k"] = self.meprop_k
        return cfg


class Maxout(Dense):
    """Maxout (Goodfellow et al. 2013): each of ``units`` outputs is the maximum of
    ``pieces`` affine functions of the input, ``a_j = max_p (x @ W + b)[j*pieces + p]``.

    It learns its own piecewise-linear convex activation (with 2 pieces it can be
    ReLU, leaky ReLU or ``|x|``) at ``pieces`` times the parameters of a Dense layer:
    ``kernel`` is (in, units * pieces), ``bias`` (units * pieces,).  The gradient
    flows only to the piece that was the maximum (the first one on ties).  A
    Maxout layer is a hidden layer (it cannot be the model's output layer).
    """

    _prefix = "maxout"

    def __init__(self, units, pieces=2, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, *, input_dim=None, name=None,
                 input_shape=None, bias_regularizer=None):
        super().__init__(units, None, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                         input_dim=input_dim, name=name, input_shape=input_shape,
                         bias_regularizer=bias_regularizer)
        if isinstance(pieces, bool) or not isinstance(pieces, numbers.Integral):
            raise TypeError("Maxout: pieces must be an int >= 1; got %r" % (pieces,))
        if pieces < 1:
            raise ValueError("Maxout: pieces must be >= 1; got %d" % pieces)
        self.pieces = int(pieces)

    def get_config(self):
        return {"name": self.name, "units": self.units, "pieces": self.pieces, "use_bias": self.use_bias}


class PReLU(Layer):
    """Parametric ReLU (He et al. 2015): ``a = z if z > 0 else alpha_j * z`` with one
    learnable slope per unit, trained by the optimizer like any weight.

    Place it right after a Dense layer with a linear activation (the default);
    ``init`` is the initial slope (0.25 as in PyTorch's ``nn.PReLU``).  After
    ``build``, ``alpha`` is a (units,) view into the model's parameters.  It is
    not allowed after the output layer (the loss needs the output layer's own
    activation)."""

    _prefix = "p_re_lu"

    def __init__(self, init=0.25, *, name=None):
        super().__init__(name)
        if isinstance(init, bool) or not isinstance(init, numbers.Real) or init != init \
                or abs(float(init)) == float("inf"):
            raise TypeError("PReLU: init must be a finite float; got %r" % (init,))
        self.init = float(init)
        self.alpha = None
        self.units = None

    def count_params(self, input_dim=None):
        n = self.units if self.units is not None else input_dim
        return None if n is None else n

    def get_config(self):
        return {"name": self.name, "init": self.init}


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
