"""Moving models between fastnet, PyTorch and scikit-learn.

* ``from_torch(nn.Sequential)`` builds the equivalent fastnet model and
  ``to_torch(model)`` the reverse: ``nn.Linear`` layers, each followed by at
  most one supported activation module (``ReLU``, ``Sigmoid``, ``Tanh``,
  ``LeakyReLU``, ``ELU``, ``ReLU6``, ``SiLU``, ``GELU`` (both forms),
  ``Softplus``, ``Softsign``, ``SELU``, ``Hardsigmoid``, ``Softmax`` over the last
  dimension, ``Identity``, ``PReLU``) and ``Dropout``.  torch is imported only
  when these are called.
* ``from_sklearn(mlp)`` builds the model of a fitted ``MLPClassifier`` /
  ``MLPRegressor``: its outputs are the estimator's ``predict_proba``
  (classifiers: softmax over the classes, or one sigmoid unit per label /
  for the positive class of a binary problem) and ``predict`` (regressors).

Layouts: a fastnet (and Keras, and scikit-learn ``coefs_``) kernel is
(in, out) and a layer computes ``x @ kernel + bias``; PyTorch's
``nn.Linear.weight`` is (out, in) and computes ``x @ weight.T + bias``.  The
converters transpose; ``model.set_weights`` cannot tell a forgotten transpose
of a square layer from the right weights, so these are the supported path.
"""
import numbers

import numpy as np

from . import activations as _activations
from .layers import Dense, Dropout, Input, Maxout, PReLU
from .model import Sequential
from ._kernels import defs

__all__ = ["from_torch", "to_torch", "from_sklearn"]


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("fastnet.interop: PyTorch is not installed (pip install torch)") from None
    return torch


def _model_dtype(dtype, weights_dtype):
    if dtype is not None:
        return dtype
    return "float64" if weights_dtype == np.float64 else "float32"


# ---------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------
def _torch_activation(module, nn):
    """The fastnet activation of a torch activation module (None if it is not one)."""
    simple = {nn.ReLU: _activations.ReLU, nn.ReLU6: _activations.ReLU6, nn.Sigmoid: _activations.Sigmoid,
              nn.Tanh: _activations.Tanh, nn.SiLU: _activations.Swish, nn.Identity: _activations.Linear,
              nn.Softsign: _activations.Softsign, nn.SELU: _activations.SELU,
              nn.Hardsigmoid: _activations.HardSigmoid}
    if type(module) in simple:
        return simple[type(module)]()
    if isinstance(module, nn.GELU):
        return _activations.GELU(approximate=module.approximate == "tanh")
    if isinstance(module, nn.Softplus):
        # torch's threshold returns x where beta x > threshold: within e^-threshold of log1p(e^x)
        if module.beta != 1 or module.threshold < 20:
            raise ValueError("from_torch: Softplus(beta=%r, threshold=%r) is not supported; fastnet's "
                             "softplus is beta=1 (threshold >= 20)" % (module.beta, module.threshold))
        return _activations.Softplus()
    if isinstance(module, nn.LeakyReLU):
        return _activations.LeakyReLU(module.negative_slope)
    if isinstance(module, nn.ELU):
        return _activations.ELU(module.alpha)
    if isinstance(module, nn.Softmax):
        if module.dim not in (-1, 1):
            raise ValueError("from_torch: Softmax(dim=%r) is not supported; fastnet's softmax is over the "
                             "features (dim=-1 or 1)" % (module.dim,))
        return _activations.Softmax()
    return None


def from_torch(module, backend="auto", seed=None, dtype=None):
    """The fastnet ``Sequential`` equivalent to the PyTorch ``nn.Sequential``
    ``module`` (built, not compiled; weights copied, kernels transposed to
    (in, out)).  ``dtype`` defaults to that of the torch weights (float64
    stays float64, anything else becomes float32).  Unsupported modules raise
    ValueError naming them, before anything is built."""
    torch = _torch()
    nn = torch.nn
    if not isinstance(module, nn.Sequential):
        raise TypeError("from_torch expects a torch.nn.Sequential; got %s" % type(module).__name__)
    layers, weights = [], []
    last_dense = None   # the Dense layer an activation module may still attach to
    prev_out = None
    kinds = set()
    for i, child in enumerate(module):
        where = "module %d (%s)" % (i, type(child).__name__)
        if isinstance(child, nn.Flatten) and i == 0:
            continue   # a no-op on (n, features) input
        if isinstance(child, nn.Linear):
            if prev_out is not None and child.in_features != prev_out:
                raise ValueError("from_torch: %s takes %d inputs but the previous layer gives %d"
                                 % (where, child.in_features, prev_out))
            W = child.weight.detach().cpu().numpy()
            kinds.add(W.dtype)
            b = None if child.bias is None else child.bias.detach().cpu().numpy()
            dense = Dense(child.out_features, use_bias=b is not None)
            layers.append(dense)
            weights.append((dense, [W.T] + ([b] if b is not None else [])))
            last_dense, prev_out = dense, child.out_features
            continue
        if not weights:
            raise ValueError("from_torch: %s comes before the first Linear layer; fastnet models start "
                             "with a Linear layer" % where)
        if isinstance(child, nn.Dropout):
            layers.append(Dropout(float(child.p)))
            continue
        if isinstance(child, nn.PReLU):
            if last_dense is None or layers[-1] is not last_dense:
                raise ValueError("from_torch: %s must follow a Linear layer directly" % where)
            slope = child.weight.detach().cpu().numpy().reshape(-1)
            if slope.shape[0] not in (1, last_dense.units):
                raise ValueError("from_torch: %s has %d parameters; expected 1 or %d"
                                 % (where, slope.shape[0], last_dense.units))
            prelu = PReLU()
            layers.append(prelu)
            weights.append((prelu, [np.broadcast_to(slope, (last_dense.units,)).copy()]))
            last_dense = None
            continue
        act = _torch_activation(child, nn)
        if act is None:
            raise ValueError("from_torch: %s is not supported (supported: Linear, ReLU, ReLU6, Sigmoid, Tanh, "
                             "SiLU, LeakyReLU, ELU, GELU, Softplus, Softsign, SELU, Hardsigmoid, Softmax(dim=-1), "
                             "Identity, PReLU, Dropout)" % where)
        if last_dense is None or layers[-1] is not last_dense:
            raise ValueError("from_torch: %s must follow a Linear layer directly (one activation per "
                             "Linear layer)" % where)
        last_dense.activation = act
        last_dense = None
    if not weights:
        raise ValueError("from_torch: the module has no Linear layer")
    n_in = weights[0][1][0].shape[0]
    wdtype = np.float64 if kinds == {np.dtype(np.float64)} else np.float32
    model = Sequential([Input(shape=(n_in,))] + layers, backend=backend, seed=seed,
                       dtype=_model_dtype(dtype, wdtype))
    for layer, arrays in weights:
        layer.set_weights(arrays)
    return model


def _torch_module_of(act, nn):
    code = act.code
    table = {defs.ACT_RELU: nn.ReLU, defs.ACT_RELU6: nn.ReLU6, defs.ACT_SIGMOID: nn.Sigmoid,
             defs.ACT_TANH: nn.Tanh, defs.ACT_SWISH: nn.SiLU, defs.ACT_SOFTPLUS: nn.Softplus,
             defs.ACT_SOFTSIGN: nn.Softsign, defs.ACT_SELU: nn.SELU, defs.ACT_HARD_SIGMOID: nn.Hardsigmoid}
    if code == defs.ACT_GELU:
        return nn.GELU()
    if code == defs.ACT_GELU_TANH:
        return nn.GELU(approximate="tanh")
    if code == defs.ACT_LINEAR:
        return None
    if code in table:
        return table[code]()
    if code == defs.ACT_LEAKY_RELU:
        return nn.LeakyReLU(act.alpha)
    if code == defs.ACT_ELU:
        return nn.ELU(act.alpha)
    if code == defs.ACT_SOFTMAX:
        return nn.Softmax(dim=-1)
    raise ValueError("to_torch: activation %r has no PyTorch module" % act.name)


def to_torch(model):
    """A PyTorch ``nn.Sequential`` computing what ``model.predict`` computes
    (in the model's dtype; kernels transposed to ``nn.Linear``'s (out, in)).
    Dropout layers become ``nn.Dropout`` (active only in ``train()`` mode)."""
    torch = _torch()
    nn = torch.nn
    if not isinstance(model, Sequential):
        raise TypeError("to_torch expects a fastnet Sequential; got %s" % type(model).__name__)
    model._require_built("to_torch")
    tdtype = torch.float64 if model.dtype == np.float64 else torch.float32
    for layer in model.layers:   # every check before anything is built
        if isinstance(layer, Maxout):
            raise ValueError("to_torch: Maxout layer %r has no PyTorch module" % layer.name)
        if isinstance(layer, Dense):
            _torch_module_of(layer.activation, nn)
    mods = []
    with torch.no_grad():
        for layer in model.layers:
            if isinstance(layer, Dense):
                w = layer.get_weights()
                lin = nn.Linear(w[0].shape[0], layer.units, bias=layer.use_bias, dtype=tdtype)
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w[0].T)))
                if layer.use_bias:
                    lin.bias.copy_(torch.from_numpy(w[1]))
                mods.append(lin)
                act = _torch_module_of(layer.activation, nn)
                if act is not None:
                    mods.append(act)
            elif isinstance(layer, PReLU):
                alpha = layer.get_weights()[0]
                pr = nn.PReLU(num_parameters=alpha.shape[0], dtype=tdtype)
                pr.weight.copy_(torch.from_numpy(alpha))
                mods.append(pr)
            elif isinstance(layer, Dropout):
                mods.append(nn.Dropout(layer.rate))
            else:
                raise ValueError("to_torch: layer %r (%s) has no PyTorch module" % (layer.name, type(layer).__name__))
    return nn.Sequential(*mods).eval()


# ---------------------------------------------------------------------------
# scikit-learn
# ---------------------------------------------------------------------------
_SK_ACT = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_SK_OUT = {"identity": "linear", "logistic": "sigmoid", "softmax": "softmax"}


def from_sklearn(mlp, backend="auto", seed=None, dtype=None):
    """The fastnet ``Sequential`` of a fitted scikit-learn ``MLPClassifier`` /
    ``MLPRegressor`` (its ``coefs_`` are already (in, out)).

    The model's outputs are ``mlp.predict_proba(X)`` for a multi-class
    classifier (softmax), the probability of ``mlp.classes_[1]`` for a binary
    one (one sigmoid unit: sklearn's second column) or of each label for a
    multi-label one, and ``mlp.predict(X)`` (as (n, n_outputs)) for a
    regressor.  It is compiled with the matching loss (sparse categorical /
    binary cross-entropy on probabilities, or mse; integer targets are the
    positions in ``mlp.classes_``) and Adam with the estimator's
    ``learning_rate_init``; scikit-learn's L2 term ``alpha`` is not carried
    over (it is scaled by the batch size there).  ``dtype`` defaults to that
    of ``coefs_``."""
    coefs = getattr(mlp, "coefs_", None)
    intercepts = getattr(mlp, "intercepts_", None)
    out_act = getattr(mlp, "out_activation_", None)
    if coefs is None or intercepts is None or out_act is None:
        raise ValueError("from_sklearn expects a fitted MLPClassifier / MLPRegressor (with coefs_, "
                         "intercepts_ and out_activation_); got %s" % type(mlp).__name__)
    hidden = getattr(mlp, "activation", None)
    if hidden not in _SK_ACT:
        raise ValueError("from_sklearn: unsupported hidden activation %r (expected one of %s)"
                         % (hidden, ", ".join(sorted(_SK_ACT))))
    if out_act not in _SK_OUT:
        raise ValueError("from_sklearn: unsupported output activation %r" % (out_act,))
    if not isinstance(coefs, (list, tuple)) or len(coefs) != len(intercepts) or not coefs:
        raise ValueError("from_sklearn: coefs_ and intercepts_ must be lists of the same, positive length")
    arrays = []
    for i, (W, b) in enumerate(zip(coefs, intercepts)):
        W, b = np.asarray(W), np.asarray(b)
        if W.ndim != 2 or b.shape != (W.shape[1],) or (i and W.shape[0] != arrays[-1][0].shape[1]):
            raise ValueError("from_sklearn: coefs_[%d] %s and intercepts_[%d] %s do not chain"
                             % (i, W.shape, i, b.shape))
        arrays.append((W, b))
    wdtype = np.float32 if arrays[0][0].dtype == np.float32 else np.float64
    layers = [Input(shape=(arrays[0][0].shape[0],))]
    for i, (W, _) in enumerate(arrays):
        last = i == len(arrays) - 1
        layers.append(Dense(W.shape[1], _SK_OUT[out_act] if last else _SK_ACT[hidden]))
    model = Sequential(layers, backend=backend, seed=seed, dtype=_model_dtype(dtype, wdtype))
    model.set_weights([a for pair in arrays for a in pair])
    from . import losses, optimizers
    loss = {"softmax": losses.SparseCategoricalCrossentropy(), "logistic": losses.BinaryCrossentropy(),
            "identity": losses.MeanSquaredError()}[out_act]
    lr = getattr(mlp, "learning_rate_init", 1e-3)
    lr = float(lr) if isinstance(lr, numbers.Real) and lr > 0 else 1e-3
    model.compile(optimizer=optimizers.Adam(lr=lr), loss=loss)
    return model
