"""Sequential: the Keras-style model.  It plans; the backend computes.

The model validates input, owns one flat parameter buffer (the layers' kernels
and biases are views into it), one flat gradient buffer, the optimizer state and
a workspace, and calls the backend's kernels (``fastnet/backends/_api.py``).
Python runs between chunks of batches (for progress and callbacks), never
between layers.
"""
import contextlib as _contextlib
import numbers
import os as _os
import threading as _threading
import time

import numpy as np

from . import _io
from . import activations as _activations
from . import callbacks as _callbacks
from . import diagnostics as _diagnostics
from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from ._kernels import defs
from ._interrupts import SigintGuard as _SigintGuard
from . import _threads
from ._threads import get_num_threads, pass_threads
from .backends import _api, get_backend, resolve_name
from .backends._geometry import geometry
from .layers import Dense, Dropout, InputLayer, Layer, Maxout, PReLU
from . import utils as _utils
from ._memory import aligned_empty, aligned_zeros

_DTYPES = {"float32": np.float32, "float64": np.float64}
# Rows per forward call in predict/evaluate when no batch_size is given.
_PREDICT_CHUNK = 4096
# Each thread's reusable forward workspace, up to _SCRATCH_MAX elements per dtype: a
# fresh array per call cost about 1 us of a batch-1 predict (bench/REPORT.md's
# predict overhead); a thread runs one forward pass at a time, so none is shared.
_SCRATCH = _threading.local()
_SCRATCH_MAX = 1 << 16


def _scratch(size, dtype):
    """A forward workspace of at least ``size`` elements of ``dtype``."""
    if size > _SCRATCH_MAX:
        return aligned_empty(size, dtype)
    buf = getattr(_SCRATCH, dtype.char, None)
    if buf is None:
        buf = aligned_empty(_SCRATCH_MAX, dtype)
        setattr(_SCRATCH, dtype.char, buf)
    return buf


# Seconds per compiled training call (a chunk of batches): Ctrl-C, stop_training
# and progress wait at most this long; Python between chunks is then negligible.
_CHUNK_SECONDS = 0.1

# Independent random streams derived from the model's seed.
_STREAM_INIT, _STREAM_SHUFFLE, _STREAM_SPLIT, _STREAM_DROPOUT = range(4)


def _weight_dtype_problem(dtype):
    """None for a dtype weights may come in (real floats and integers), else what
    they must be instead."""
    if np.issubdtype(dtype, np.floating) or (np.issubdtype(dtype, np.integer) and dtype != np.bool_):
        return None
    return "a real float or integer array"


def _weight_key_order(key):
    """(position, name) of a save_weights key "NNN:name"; (-1, key) if it is not one."""
    num, sep, name = key.partition(":")
    if sep and num.isascii() and num.isdigit() and len(num) < 10:
        return int(num), name
    return -1, key


def _fspath(filepath, who):
    try:
        return _os.fspath(filepath)
    except TypeError:
        raise TypeError("%s: filepath must be a str or os.PathLike; got %s"
                        % (who, type(filepath).__name__)) from None


def _next_chunk(chunk, elapsed, rows, batch_size, nb):
    """Batches for the next compiled call: _CHUNK_SECONDS at the rate (per row:
    the last batch may be short) of the call that took ``elapsed`` for ``rows``,
    at most 4 times the last plan ``chunk`` (one fast-looking call cannot
    commit the loop to a long one)."""
    want = _CHUNK_SECONDS * rows / (max(elapsed, 1e-9) * batch_size)
    return max(1, min(nb, 4 * chunk, int(want)))


def _compile_notice(backend, verbose):
    """The backend's compile notice (numba's: one line to stdout when a kernel
    compiles) when ``verbose``; a no-op otherwise."""
    hook = getattr(backend, "compile_notice", None)
    if not verbose or hook is None:
        return _contextlib.nullcontext()
    return hook(lambda line: print(line, flush=True))


def _rng(seed, stream):
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))


def _check_real_dtype(arr, name):
    """TypeError unless arr holds real numbers (bool, integers, floats): not
    complex, datetime64 / timedelta64 (timedelta64 counts as an integer to
    NumPy), strings or objects."""
    if arr.dtype.kind == "c":
        raise TypeError("%s must be real-valued; got dtype %s" % (name, arr.dtype))
    if arr.dtype.kind not in "biuf":
        raise TypeError("%s must be a numeric array; got dtype %s" % (name, arr.dtype))


def _where(index):
    return "index %d" % index[0] if len(index) == 1 else "row %d, column %d" % tuple(index[:2])


def _cast_finite(arr, dtype, name, what=None):
    """arr as a C-contiguous array of ``dtype`` whose elements are all finite.
    A NaN or inf in arr, or a finite value beyond ``dtype``'s range (1e39 in
    float32), raises ValueError naming ``name``, the value and its position."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(arr, dtype=dtype)
    if arr.dtype.kind != "f":  # integers and bools fit any float dtype
        return out
    flat = out.reshape(out.shape[0], -1) if out.ndim else out.reshape(1, 1)
    # in chunks of rows: no full-size temporary next to the caller's data
    step = max(1, (1 << 20) // max(1, flat.shape[1]))
    for start in range(0, flat.shape[0], step):
        block = flat[start:start + step]
        if np.isfinite(block).all():
            continue
        bad = np.argwhere(~np.isfinite(block))[0]
        index = (start + bad[0],) + tuple(bad[1:]) if out.ndim > 1 else (start + bad[0],)
        value = arr[index] if out.ndim else arr[()]
        if not np.isfinite(value):
            raise ValueError("%s contains NaN or inf (%s at %s)" % (name, value, _where(index)))
        raise ValueError("%s overflows %s (value %.6g at %s; the largest %s is %.6g)"
                         % (what or name, np.dtype(dtype), value, _where(index), np.dtype(dtype),
                            np.finfo(dtype).max))
    return out


class Sequential:
    """A stack of Dense (and Dropout) layers trained by one backend.

    Parameters
    ----------
    layers : list of Layer
    backend : "numpy" | "numba" | "cython" | "auto"
        Chosen per model, so one process can compare backends.  "auto" picks
        the fastest available (``fastnet.backends.AUTO_ORDER``).
    seed : int or None
        Everything random (initial weights, shuffling, validation split,
        dropout masks) derives from it; None draws one from the OS (readable
        afterwards as ``model.seed``).
    dtype : "float32" (default) or "float64"
    """

    def __init__(self, layers=None, backend="auto", seed=None, dtype="float32", name="sequential"):
        self.backend_name = resolve_name(backend)
        self._backend = get_backend(self.backend_name)
        if isinstance(dtype, type) and dtype in (np.float32, np.float64):
            dtype = dtype.__name__
        dtype = str(np.dtype(dtype)) if isinstance(dtype, np.dtype) else dtype
        if dtype not in _DTYPES:
            raise ValueError("dtype must be 'float32' or 'float64'; got %r" % (dtype,))
        self.dtype = np.dtype(_DTYPES[dtype])
        if seed is None:
            seed = _utils._next_seed()  # from fastnet.utils.set_random_seed, else the OS
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError("seed must be a non-negative int or None; got %r" % (seed,))
        self.seed = int(seed)
        self.name = name
        self.layers = []
        self.built = False
        self.optimizer = None
        self.loss = None
        self.metrics = []
        self.stop_training = False
        self.history = None
        self._shuffle_rng = _rng(self.seed, _STREAM_SHUFFLE)
        self._dropout_rng = _rng(self.seed, _STREAM_DROPOUT)
        self._build_failed = False  # its layers may then be taken by another model (Layer._claim)
        # fastnet.Input(...) given as the first layer (not kept in self.layers, as in Keras)
        self._input_layer = None
        # built from a declared input width (Input / input_shape / input_dim): rebuilt as layers are added
        self._auto_built = False
        self._constructing = True
        if layers is not None:
            if isinstance(layers, Layer):
                layers = [layers]
            if not isinstance(layers, (list, tuple)):
                raise TypeError("layers must be a list of fastnet layers; got %r" % (layers,))
            # all or nothing: a constructor that fails leaves every layer as it was
            before = [(layer, layer.__dict__.get("_owner_ref"), layer.name) for layer in layers
                      if isinstance(layer, Layer)]
            try:
                for layer in layers:
                    self.add(layer)
            except Exception:
                for layer, ref, name in before:
                    if layer._owner() is self:
                        layer._owner_ref, layer.name = ref, name
                self.layers = []
                raise
        self._constructing = False
        self._autobuild()

    # ------------------------------------------------------------------ layers
    def add(self, layer):
        """Append a layer (before the model is built)."""
        if not isinstance(layer, Layer):
            raise TypeError("Sequential.add expects a fastnet layer (Dense, Dropout); got %r" % (layer,))
        if isinstance(layer, InputLayer):
            self._add_input(layer)
            return
        if self.built and not self._auto_built:
            raise ValueError("cannot add layers to a built model")
        if self._input_layer is not None and isinstance(layer, Dense) and not self._dense() \
                and layer.input_dim is not None and layer.input_dim != self._input_layer.input_dim:
            raise ValueError("layer %r declares input_dim=%d but the model's Input has shape (%d,)"
                             % (layer.name, layer.input_dim, self._input_layer.input_dim))
        if any(layer is existing for existing in self.layers):
            raise ValueError("layer %r is already in this model" % (layer.name,))
        if layer.name is not None and any(l.name == layer.name for l in self.layers):
            raise ValueError("duplicate layer name %r" % layer.name)
        layer._claim(self)  # ValueError if another model owns it
        if layer.name is None:
            n = sum(type(l) is type(layer) for l in self.layers)
            layer.name = layer._prefix if n == 0 else "%s_%d" % (layer._prefix, n)
        self.layers.append(layer)
        if not self._constructing:
            self._autobuild()

    def _dense(self):
        return [l for l in self.layers if isinstance(l, Dense)]

    def _plan_layers(self):
        """The weight layers (Dense, Maxout), the dropout rate applied to each
        one's output and the PReLU layer folded into each (or None)."""
        for layer in self.layers:
            if layer._owner() is not self:
                raise ValueError("layer %r now belongs to another model (it was added to one after this "
                                 "model failed to build): build a new model" % (layer.name,))
        dense, drops, prelus = [], [], []
        for layer in self.layers:
            if isinstance(layer, Dense):
                dense.append(layer)
                drops.append(0.0)
                prelus.append(None)
            elif isinstance(layer, Dropout):
                if not dense:
                    raise ValueError("Dropout %r before the first Dense layer is not supported "
                                     "(dropout applies to a Dense layer's output)" % layer.name)
                keep = (1.0 - drops[-1]) * (1.0 - layer.rate)
                drops[-1] = 1.0 - keep
            elif isinstance(layer, PReLU):
                prev = self.layers[self.layers.index(layer) - 1] if self.layers.index(layer) > 0 else None
                if not isinstance(prev, Dense) or isinstance(prev, Maxout) \
                        or prev.activation.code != defs.ACT_LINEAR:
                    raise ValueError("PReLU %r must come right after a Dense layer with a linear activation "
                                     "(e.g. Dense(64), PReLU()); it follows %r"
                                     % (layer.name, None if prev is None else prev.name))
                prelus[-1] = layer
        if not dense:
            raise ValueError("the model has no Dense layer")
        if drops[-1] > 0:
            raise ValueError("Dropout after the output layer %r is not supported" % dense[-1].name)
        if prelus[-1] is not None:
            raise ValueError("PReLU %r after the output layer %r is not supported: the loss needs the output "
                             "layer's own activation" % (prelus[-1].name, dense[-1].name))
        if isinstance(dense[-1], Maxout):
            raise ValueError("Maxout %r cannot be the output layer; add a Dense output layer after it"
                             % dense[-1].name)
        return dense, drops, prelus
    @property
    def input_dim(self):
        return self._input_dim if self.built else None

    @property
    def output_dim(self):
        dense = self._dense()
        return dense[-1].units if dense else None

    def build(self, input_dim=None):
        """Create the weights for inputs of ``input_dim`` features."""
        try:
            self._build(input_dim)
        except Exception:
            self._build_failed = not self.built
            raise
        self._build_failed = False

    def _build(self, input_dim):
        self._require_dense("build")
        dense, drops, prelus = self._plan_layers()
        if input_dim is None:
            input_dim = dense[0].input_dim
        if input_dim is None:
            raise ValueError("build: input_dim is required (or give input_dim= to the first Dense layer)")
        if isinstance(input_dim, (tuple, list)) and len(input_dim) == 1:
            input_dim = input_dim[0]
        if isinstance(input_dim, bool) or not isinstance(input_dim, numbers.Integral) or input_dim < 1:
            raise ValueError("build: input_dim must be a positive int; got %r" % (input_dim,))
        if self.built:
            if input_dim != self._input_dim:
                raise ValueError("the model is already built for %d input features; got input_dim=%d"
                                 % (self._input_dim, input_dim))
            return
        if dense[0].input_dim is not None and dense[0].input_dim != input_dim:
            raise ValueError("layer %r was declared with input_dim=%d but build got %d"
                             % (dense[0].name, dense[0].input_dim, input_dim))
        L = len(dense)
        layers = defs.new_layers(L)
        pos, n_in = 0, int(input_dim)
        for l, layer in enumerate(dense):
            zw = layer.units * layer.pieces
            layers[l]["n_in"] = n_in
            layers[l]["n_out"] = layer.units
            layers[l]["act"] = defs.ACT_PRELU if prelus[l] is not None else layer.activation.code
            layers[l]["kind"] = defs.LAYER_MAXOUT if isinstance(layer, Maxout) else defs.LAYER_DENSE
            layers[l]["pieces"] = layer.pieces
            layers[l]["topk"] = layer.meprop_k or 0
            layers[l]["w_offset"] = pos
            pos += n_in * zw
            if layer.use_bias:
                layers[l]["b_offset"] = pos
                pos += zw
            else:
                layers[l]["b_offset"] = -1
            if prelus[l] is not None:
                layers[l]["slopes_offset"] = pos
                pos += layer.units
            else:
                layers[l]["slopes_offset"] = -1
            layers[l]["act_param"] = layer.activation.alpha
            layers[l]["dropout"] = drops[l]
            reg = layer.kernel_regularizer
            if reg is not None:
                layers[l]["l1"] = reg.l1
                layers[l]["l2"] = reg.l2
            reg = layer.bias_regularizer
            if reg is not None and layer.use_bias:
                layers[l]["bias_l1"] = reg.l1
                layers[l]["bias_l2"] = reg.l2
            n_in = layer.units
        params = aligned_zeros(pos, self.dtype)
        rng = _rng(self.seed, _STREAM_INIT)
        for l, layer in enumerate(dense):
            W, b = self._views(params, layers, l)
            W[...] = layer.kernel_initializer((W.shape[0], W.shape[1]), rng, self.dtype)
            if b is not None:
                b[...] = layer.bias_initializer((b.shape[0],), rng, self.dtype)
            if prelus[l] is not None:
                self._slopes(params, layers, l)[...] = prelus[l].init
        self._layer_table = layers
        self._params = params
        self._grads = aligned_zeros(pos, self.dtype)
        self._input_dim = int(input_dim)
        self._work = None
        self._work_key = None
        for l, layer in enumerate(dense):
            layer.kernel, layer.bias = self._views(params, layers, l)
            if prelus[l] is not None:
                prelus[l].units = layer.units
                prelus[l].alpha = self._slopes(params, layers, l)
        self._prelus = prelus
        self.built = True
        if self.optimizer is not None:
            self.optimizer._bind(self, params.shape[0], self.dtype)

    @staticmethod
    def _views(buf, layers, l):
        """W and b (None without a bias) of weight layer l in buf."""
        return geometry(layers).views(buf, l)[:2]

    @staticmethod
    def _slopes(buf, layers, l):
        """The PReLU slopes of weight layer l (None without PReLU)."""
        return geometry(layers).views(buf, l)[2]

    def count_params(self):
        self._require_built("count_params")
        return int(self._params.shape[0])

    # ------------------------------------------------------------ Keras habits
    def _add_input(self, layer):
        """``fastnet.Input(shape=(n,))`` as the first layer: declares the input width."""
        if self.layers or self._input_layer is not None or self.built:
            raise ValueError("fastnet.Input must be the model's first layer; this model already has %s"
                             % ("an Input" if self._input_layer is not None else
                                "layers (%s)" % ", ".join(repr(l.name) for l in self.layers) if self.layers
                                else "weights"))
        layer._claim(self)
        if layer.name is None:
            layer.name = layer._prefix
        self._input_layer = layer

    def _declared_input_dim(self):
        if self._input_layer is not None:
            return self._input_layer.input_dim
        dense = self._dense()
        return dense[0].input_dim if dense else None

    def _autobuild(self):
        """Build (or rebuild, keeping the weights of the layers already there) a
        model whose input width is declared, as Keras does at construction and
        at each ``add``.  A stack that is not a valid model yet (no Dense layer,
        or one ending in Dropout / PReLU while it is being assembled) stays
        unbuilt until it is."""
        n_in = self._declared_input_dim()
        if n_in is None or (self.built and not self._auto_built):
            return
        saved = getattr(self, "_pending_weights", None) or {}
        if self.built:  # the layers' views into the buffer (a layer just added has none yet)
            for layer in self.layers:
                for attr in ("kernel", "bias", "alpha"):
                    view = getattr(layer, attr, None)
                    if view is not None:
                        saved["%s.%s" % (layer.name, attr)] = view.copy()
        try:
            self._plan_layers()
        except ValueError:
            if self.built:
                self.built = False
                for layer in self.layers:
                    for attr in ("kernel", "bias", "alpha"):
                        if getattr(layer, attr, None) is not None:
                            setattr(layer, attr, None)
            self._pending_weights = saved
            return
        self.built = False
        self.build(n_in)
        for name, view in self._weight_views(self._params):
            old = saved.get(name)
            if old is not None and old.shape == view.shape:
                view[...] = old
        self._pending_weights = None
        self._auto_built = True

    def _layer_weight_views(self, layer):
        """(name, view) of ``layer``'s weights (see ``_weight_views``)."""
        return [(name, view) for name, view in self._weight_views(self._params)
                if name.rpartition(".")[0] == layer.name]

    def get_layer(self, name=None, index=None):
        """The layer called ``name``, or ``self.layers[index]`` (Keras's get_layer:
        exactly one of the two; a negative index counts from the end)."""
        if (name is None) == (index is None):
            raise ValueError("get_layer: give exactly one of name= or index=; got name=%r, index=%r"
                             % (name, index))
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, numbers.Integral):
                raise TypeError("get_layer: index must be an int; got %r" % (index,))
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError("get_layer: index %d is out of range: the model has %d layers"
                                 % (index, len(self.layers)))
            return self.layers[index]
        if not isinstance(name, str):
            raise TypeError("get_layer: name must be a str; got %r" % (name,))
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError("get_layer: no layer named %r; the model's layers are %s"
                         % (name, ", ".join(repr(l.name) for l in self.layers) or "none"))

    def __call__(self, X, training=False):
        """``model(X)``: what ``predict(X)`` returns (Keras's habit), with a fast
        path for small float inputs of the model's dtype.  ``training=True``
        (dropout in the forward pass) is not supported: fastnet applies dropout
        only inside the training step."""
        if training is not None and training is not False:
            if isinstance(training, (bool, np.bool_)) and training:
                raise ValueError("model(X, training=True) is not supported: dropout is applied only "
                                 "inside fit / train_on_batch; use model(X) for inference")
            raise TypeError("training must be a bool; got %r" % (training,))
        return self.predict(X)

    def predict_proba(self, X, batch_size=None, verbose=0):
        """Class probabilities: the outputs of a softmax / sigmoid output layer,
        or the softmax (categorical cross-entropies) / sigmoid (binary) of the
        logits of a linear output layer compiled with ``from_logits=True``.
        Shape (n, units): per class for softmax, per label (probability of 1)
        for sigmoid."""
        self._require_dense("predict_proba")
        last = self._dense()[-1].activation.code
        loss = self.loss
        if last in (defs.ACT_SOFTMAX, defs.ACT_SIGMOID):
            squash = None
        elif last == defs.ACT_LINEAR and loss is not None and loss.from_logits and isinstance(
                loss, (_losses.CategoricalCrossentropy, _losses.SparseCategoricalCrossentropy)):
            squash = _activations.softmax
        elif last == defs.ACT_LINEAR and loss is not None and loss.from_logits and isinstance(
                loss, _losses.BinaryCrossentropy):
            squash = _activations.sigmoid
        else:
            raise ValueError("predict_proba: the model's outputs are not class probabilities (output layer "
                             "%r has activation %r and the loss is %r); use a softmax / sigmoid output layer "
                             "or compile a linear one with a from_logits=True cross-entropy"
                             % (self._dense()[-1].name, self._dense()[-1].activation.name, loss))
        out = self.predict(X, batch_size=batch_size, verbose=verbose)
        return out if squash is None else squash(out).astype(self.dtype, copy=False)

    def _keras_logs(self, logs, return_dict):
        """Keras's return value of evaluate / *_on_batch: the loss alone without
        metrics, [loss, metric, ...] with them, the dict with return_dict=True."""
        if not isinstance(return_dict, (bool, np.bool_)):
            raise TypeError("return_dict must be a bool; got %r" % (return_dict,))
        if return_dict:
            return logs
        return logs["loss"] if len(logs) == 1 else list(logs.values())

    @staticmethod
    def _check_verbose(verbose):
        if verbose == "auto":
            return 1
        if isinstance(verbose, (bool, np.bool_)) or verbose not in (0, 1, 2):
            raise ValueError("verbose must be 0, 1, 2 or 'auto'; got %r" % (verbose,))
        return int(verbose)

    @staticmethod
    def _report(verbose, n, batch_size, seconds, logs=None):
        """Keras's one-line summary of predict / evaluate (verbose 1: with the bar)."""
        if not verbose:
            return
        steps = max(1, -(-n // (batch_size or 32)))
        head = "%d/%d" % (steps, steps)
        if verbose == 1:
            head += " [" + "=" * 30 + "]"
        line = "%s - %s %s%s" % (head, _callbacks._format_duration(seconds),
                                 _callbacks._format_per_step(seconds / steps),
                                 _callbacks._format_logs(logs) if logs else "")
        _callbacks._print_msg(line)

    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on the batch (x, y) with the compiled step ``fit``
        uses (``fit(x, y, batch_size=len(x), epochs=1, shuffle=False)`` gives the
        same weights, optimizer state and random streams, bit for bit).  Returns
        the batch's loss (and metrics) from the forward pass before the update,
        in Keras's form (see ``evaluate``).  ``optimizer.iterations`` grows by 1."""
        self._require_dense("train_on_batch")
        self._require_compiled("train_on_batch")
        if not isinstance(return_dict, (bool, np.bool_)):
            raise TypeError("return_dict must be a bool; got %r" % (return_dict,))
        self.optimizer._check_owner(self)
        self.optimizer._check_fit(())
        Xc, labels, Y, sw, task = self._check_training_data(x, y, sample_weight, class_weight, "x")
        n = Xc.shape[0]
        # ---- all checks passed: from here on the model may change
        with _SigintGuard():
            if not self.built:
                self.build(Xc.shape[1])
            self.optimizer._bind(self, self._params.shape[0], self.dtype)
            scores = np.empty((n if self.metrics else 0, self.output_dim), dtype=self.dtype)
            batch_loss = np.empty(1, dtype=np.float64)
            key = np.uint64(self._dropout_rng.integers(0, 2 ** 64, dtype=np.uint64))
            self._backend.train_batches(
                _api.Batches(Xc, Y, labels, sw, np.arange(n, dtype=np.int64), n, 0, 1),
                _api.Network(self._layer_table, self._head, self._params),
                _api.TrainState(self.optimizer.code, self.optimizer.hyper(), self.optimizer.iterations, key,
                                self.optimizer.state),
                _api.Buffers(self._grads, self._workspace(n), batch_loss, scores), get_num_threads())
            self.optimizer.iterations += 1
        logs = {"loss": float(batch_loss[0])}
        if self.metrics:
            logs.update(self._metric_values(labels, Y, scores, task, sw if sw.shape[0] else None))
        return self._keras_logs(logs, return_dict)

    def test_on_batch(self, x, y, sample_weight=None, return_dict=False):
        """Loss (and metrics) on one batch, in Keras's form: ``evaluate`` of (x, y)."""
        return self.evaluate(x, y, sample_weight=sample_weight, return_dict=return_dict)

    def predict_on_batch(self, x):
        """The outputs for one batch: ``predict(x)``."""
        return self.predict(x)

    # ----------------------------------------------------------------- compile
    def compile(self, optimizer="adam", loss=None, metrics=None):
        """Set the optimizer (name or object), the loss (name or object) and metrics."""
        self._require_dense("compile")
        opt = _optimizers.get(optimizer)
        if loss is None:
            raise ValueError("compile: loss is required; one of %s or a fastnet.losses.Loss"
                             % ", ".join(_losses.NAMES))
        loss_obj = _losses.get(loss)
        try:
            dense = self._plan_layers()[0]
        except ValueError:
            self._build_failed = not self.built
            raise
        head = loss_obj.head(dense[-1].activation.code)  # raises on a mismatch
        if isinstance(metrics, (str, _metrics.Metric)) or callable(metrics) and not isinstance(metrics, (list, tuple)):
            metrics = [metrics]
        metric_objs = [_metrics.get(m) for m in (metrics or [])]
        names = [m.name for m in metric_objs]
        if len(set(names)) != len(names):
            raise ValueError("compile: duplicate metric names %r" % names)
        if self.built:
            opt._bind(self, self._params.shape[0], self.dtype)
        self.optimizer, self.loss, self.metrics, self._head = opt, loss_obj, metric_objs, head

    # ---------------------------------------------------------- input checking
    def _check_X(self, X, name="X"):
        # fast path (fit on a float32 dataset, batch-1 predict): a C-contiguous 2-D
        # ndarray of the model's dtype and width that the backend's all_finite kernel
        # (one pass at memory speed, faster than X.sum()) finds finite is returned as
        # is; anything else takes the full checks below, which give the precise error
        if (type(X) is np.ndarray and X.dtype == self.dtype and X.ndim == 2 and self.built
                and X.shape[0] > 0 and X.shape[1] == self._input_dim and X.flags.c_contiguous):
            flag = np.zeros(1, dtype=np.int64)
            self._backend.all_finite(X, flag, pass_threads())
            if flag[0]:
                return X
        if hasattr(X, "toarray") and not isinstance(X, np.ndarray):
            raise TypeError("%s: sparse matrices are not supported; pass a dense array" % name)
        try:
            arr = np.asarray(X)
        except Exception as exc:  # noqa: BLE001
            raise TypeError("%s must be array-like; got %s (%s)" % (name, type(X).__name__, exc)) from None
        _check_real_dtype(arr, name)
        if arr.ndim != 2:
            raise ValueError("%s must be 2-D (samples, features); got shape %s%s"
                             % (name, arr.shape, " (use X.reshape(-1, 1) for one feature or "
                                "X.reshape(len(X), -1) for images)" if arr.ndim in (1, 3) else ""))
        if arr.shape[0] == 0:
            raise ValueError("%s is empty: it has 0 samples" % name)
        if arr.shape[1] == 0:
            raise ValueError("%s has 0 features" % name)
        self._require_dense(name)
        dense = self._dense()
        want = self._input_dim if self.built else dense[0].input_dim
        if want is not None and arr.shape[1] != want:
            raise ValueError("%s has %d features but layer %r (the first layer) expects %d inputs"
                             % (name, arr.shape[1], dense[0].name, want))
        return _cast_finite(arr, self.dtype, name)

    def _check_y(self, y, n, name="y"):
        """Targets in the form the loss head needs: (labels int64, Y float)."""
        try:
            arr = np.asarray(y)
        except Exception as exc:  # noqa: BLE001
            raise TypeError("%s must be array-like; got %s (%s)" % (name, type(y).__name__, exc)) from None
        _check_real_dtype(arr, name)
        if arr.shape[:1] != (n,):
            raise ValueError("%s has %s samples but X has %d"
                             % (name, arr.shape[0] if arr.ndim else "no", n))
        k = self.output_dim
        out_name = self._dense()[-1].name
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = np.argwhere(~np.isfinite(arr))[0]
            raise ValueError("%s contains NaN or inf (%s at %s)" % (name, arr[tuple(bad)], _where(bad)))
        empty_f = np.empty((0, k), dtype=self.dtype)
        empty_i = np.empty(0, dtype=np.int64)
        if self.loss.sparse:
            if arr.ndim == 2 and arr.shape[1] == 1:
                arr = arr[:, 0]
            if arr.ndim != 1:
                raise ValueError("%s: %s expects integer class labels of shape (n,); got shape %s "
                                 "(use CategoricalCrossentropy for one-hot targets)"
                                 % (name, type(self.loss).__name__, arr.shape))
            if arr.dtype.kind == "f" and np.any(arr != np.round(arr)):
                bad = np.flatnonzero(arr != np.round(arr))[0]
                raise ValueError("%s: class labels must be integers; got %r at index %d"
                                 % (name, float(arr[bad]), bad))
            # the range is checked before the cast to int64 (uint64 2**63 + 5 or
            # 1e19 would wrap) and reported as given
            lo, hi = arr.min(), arr.max()
            if lo < 0 or hi >= k:
                bad = lo if lo < 0 else hi
                shown = int(bad) if arr.dtype.kind != "f" or abs(bad) < 1e15 else "%r" % float(bad)
                raise ValueError("%s: labels must be in [0, %d) for the output layer %r with %d units; "
                                 "found %s" % (name, k, out_name, k, shown))
            return np.ascontiguousarray(arr, dtype=np.int64), empty_f
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] != k:
            raise ValueError("%s has shape %s but the output layer %r has %d units (expected (%d, %d)%s)"
                             % (name, arr.shape, out_name, k, n, k,
                                "; for integer labels use SparseCategoricalCrossentropy"
                                if isinstance(self.loss, _losses.CategoricalCrossentropy) else ""))
        Y = _cast_finite(arr, self.dtype, name)
        if isinstance(self.loss, (_losses.BinaryCrossentropy, _losses.CategoricalCrossentropy)):
            if Y.min() < 0 or Y.max() > 1:
                raise ValueError("%s: %s targets must lie in [0, 1]" % (name, type(self.loss).__name__))
        return empty_i, Y

    def _check_sample_weight(self, sample_weight, n, name="sample_weight"):
        if sample_weight is None:
            return np.empty(0, dtype=self.dtype)
        try:
            sw = np.asarray(sample_weight)
        except Exception as exc:  # noqa: BLE001
            raise TypeError("%s must be array-like; got %s (%s)"
                            % (name, type(sample_weight).__name__, exc)) from None
        _check_real_dtype(sw, name)
        if sw.ndim == 2 and sw.shape[1] == 1:
            sw = sw[:, 0]
        if sw.shape != (n,):
            raise ValueError("%s must have shape (%d,); got %s" % (name, n, sw.shape))
        out = _cast_finite(sw, self.dtype, name)
        if (out < 0).any():
            bad = np.flatnonzero(out < 0)[0]
            raise ValueError("%s must be >= 0; got %r at index %d" % (name, sw[bad].item(), bad))
        return out

    def _class_weights(self, class_weight, labels, Y, n):
        if not isinstance(class_weight, dict):
            raise TypeError("class_weight must be a dict {class: weight}; got %r" % (class_weight,))
        k = self.output_dim
        table = np.ones(max(k, 2), dtype=np.float64)
        for cls, w in class_weight.items():
            if isinstance(cls, bool) or not isinstance(cls, numbers.Integral) or not 0 <= cls < table.shape[0]:
                raise ValueError("class_weight: class %r is not an integer class index in [0, %d)"
                                 % (cls, table.shape[0]))
            if isinstance(w, bool) or not isinstance(w, numbers.Real):
                raise TypeError("class_weight: weight of class %r must be a number; got %r" % (cls, w))
            try:
                wf = float(w)
            except OverflowError:  # a finite int beyond float64
                wf = float("inf") if w > 0 else float("-inf")
            if w != w or w < 0 or (not isinstance(w, numbers.Integral) and abs(wf) == float("inf")):
                raise ValueError("class_weight: weight of class %r must be a finite number >= 0; got %r"
                                 % (cls, w))
            top = float(np.finfo(self.dtype).max)
            if wf > top:
                raise ValueError("class_weight: weight of class %r overflows %s (value %.6g; the largest %s "
                                 "is %.6g)" % (cls, self.dtype, wf, self.dtype, top))
            table[cls] = wf
        if labels.shape[0]:
            return table[labels]
        if k == 1:  # binary with one sigmoid unit: class = the 0/1 target
            return table[(Y[:, 0] > 0.5).astype(np.int64)]
        if isinstance(self.loss, _losses.BinaryCrossentropy):
            # multi-label: a sample weighs the mean of its positive labels' weights (1 if none)
            pos = Y > 0.5
            cnt = pos.sum(axis=1)
            tot = (pos * table[None, :k]).sum(axis=1)
            return np.where(cnt > 0, tot / np.maximum(cnt, 1), 1.0)
        return table[np.argmax(Y, axis=1)]

    def _check_training_data(self, X, y, sample_weight, class_weight, x_name="X"):
        """(X, labels, Y, sample weights times class weights, task), all checked,
        and every metric checked against the task."""
        Xc = self._check_X(X, x_name)
        n = Xc.shape[0]
        labels, Y = self._check_y(y, n)
        sw = self._check_sample_weight(sample_weight, n)
        if class_weight is not None:
            cw = self._class_weights(class_weight, labels, Y, n)
            sw = _cast_finite(cw * (sw if sw.shape[0] else 1.0), self.dtype, "sample_weight",
                              "sample_weight * class_weight" if sw.shape[0] else "class_weight")
        task = self._task(labels, Y)
        for m in self.metrics:
            m_check = getattr(m, "check_task", None)
            if m_check is not None:
                m_check(task)
        return Xc, labels, Y, sw, task

    def _task(self, labels, Y):
        if self.loss.sparse or isinstance(self.loss, _losses.CategoricalCrossentropy):
            return "multiclass"
        if isinstance(self.loss, _losses.BinaryCrossentropy):
            return "binary" if self.output_dim == 1 else "multilabel"
        k = self.output_dim
        if k > 1 and Y.shape[0] and np.all((Y == 0) | (Y == 1)) and np.all(Y.sum(axis=1) == 1):
            return "multiclass"
        return "regression"

    def _require_compiled(self, what):
        if self.loss is None or self.optimizer is None:
            raise ValueError("%s: the model must be compiled first: call "
                             "model.compile(optimizer=..., loss=...)" % what)

    def _require_dense(self, what):
        if not self._dense():
            have = ", ".join("%s %r" % (type(l).__name__, l.name) for l in self.layers) or "no layers"
            raise ValueError("%s: the model has no Dense layer (it has %s); add one with "
                             "model.add(fastnet.Dense(units))" % (what, have))

    def _require_built(self, what):
        if not self.built:
            raise ValueError("%s: the model is not built yet; call model.build(input_dim) or fit/predict "
                             "first" % what)

    # --------------------------------------------------------------------- fit
    def fit(self, X, y, epochs=1, batch_size=32, shuffle=True, validation_data=None, validation_split=0.0,
            verbose=1, callbacks=None, sample_weight=None, class_weight=None, initial_epoch=0,
            diagnostics=False):
        """Train; returns a History whose ``history["loss"]`` holds, per epoch, the
        mean over the epoch's samples of the batch losses computed in each batch's
        forward pass before that batch's update (Keras 3 semantics).

        ``diagnostics=True`` records per layer and epoch the share of dead ReLU
        units, of saturated sigmoid/tanh units and the weight and gradient norms
        in ``history.diagnostics`` (warning about dying ReLUs and saturation),
        and stops with ``fastnet.diagnostics.NonFiniteError`` naming the epoch,
        batch, layer and stage where a NaN or inf first appeared (the weights are
        then those of that moment).  Off, it costs nothing.

        ``validation_split=f`` holds out ``ceil(f * n)`` rows, shuffled and, for
        class labels, stratified (each class gives its share).  Which rows is a
        function of the model's seed, n and the labels only: every ``fit`` of a
        model on the same data validates on the same rows, so a second ``fit``
        never validates on rows an earlier one trained on (and a larger ``f``
        holds out a superset of a smaller one's rows).

        Every argument is checked before anything changes: a rejected ``fit``
        (ValueError / TypeError) leaves the weights, the optimizer state and the
        random streams as they were, so the next ``fit`` gives what it would
        have given without the rejected one."""
        # every check comes before the first change to the model and its random
        # streams: a rejected fit leaves the next fit as a fresh model's
        self._require_dense("fit")
        self._require_compiled("fit")
        if not isinstance(diagnostics, (bool, np.bool_)):
            raise TypeError("diagnostics must be a bool; got %r" % (diagnostics,))
        epochs = self._int_arg("epochs", epochs, 0)
        initial_epoch = self._int_arg("initial_epoch", initial_epoch, 0)
        batch_size = 32 if batch_size is None else self._int_arg("batch_size", batch_size, 1)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError("shuffle must be a bool; got %r" % (shuffle,))
        if verbose == "auto":
            verbose = 1
        if verbose not in (0, 1, 2) or isinstance(verbose, bool):
            raise ValueError("verbose must be 0, 1, 2 or 'auto'; got %r" % (verbose,))
        if isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real) \
                or not 0.0 <= validation_split < 1.0:
            raise ValueError("validation_split must be a float in [0, 1); got %r" % (validation_split,))
        callbacks = _callbacks.check_callbacks(callbacks)
        self.optimizer._check_owner(self)
        self.optimizer._check_fit(callbacks)
        # the task (and the metrics' fit to it) of the whole data, before any split
        Xc, labels, Y, sw, task = self._check_training_data(X, y, sample_weight, class_weight)
        n = Xc.shape[0]
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be a tuple (X_val, y_val) or (X_val, y_val, sample_weight)")
            Xv = self._check_X(validation_data[0], "validation_data[0]")
            lv, Yv = self._check_y(validation_data[1], Xv.shape[0], "validation_data[1]")
            swv = self._check_sample_weight(validation_data[2] if len(validation_data) == 3 else None,
                                            Xv.shape[0], "validation_data[2]")
            val = (Xv, lv, Yv, swv)
        elif validation_split > 0:
            train_idx, val_idx = self._split(labels, Y, n, validation_split)
            take = lambda a, idx: a[idx] if a.shape[0] else a  # noqa: E731
            val = (Xc[val_idx], take(labels, val_idx), take(Y, val_idx), take(sw, val_idx))
            Xc, labels, Y, sw = Xc[train_idx], take(labels, train_idx), take(Y, train_idx), take(sw, train_idx)
            n = Xc.shape[0]

        # ---- all checks passed: from here on the model may change
        # SIGINT is deferred while the model changes and delivered (KeyboardInterrupt)
        # once the applied batches are accounted for: see fastnet/_interrupts.py
        with _SigintGuard() as guard:
            if not self.built:
                self.build(Xc.shape[1])
            self.optimizer._bind(self, self._params.shape[0], self.dtype)
            be = self._backend
            k = self.output_dim
            nb = _api.n_batches(n, batch_size)
            work = self._workspace(batch_size)
            batch_loss = np.empty(nb, dtype=np.float64)
            sizes = np.full(nb, batch_size, dtype=np.float64)
            sizes[-1] = n - (nb - 1) * batch_size
            want_scores = bool(self.metrics)
            scores = np.empty((n if want_scores else 0, k), dtype=self.dtype)
            cbs = _callbacks.configure_callbacks(callbacks, self, verbose, epochs, nb, n)
            cbs._guard = guard if guard.installed else None
            self.stop_training = False
            self.history = cbs.history
            # one batch per compiled call when a callback needs every batch's hooks (Keras);
            # otherwise chunks of ~_CHUNK_SECONDS (the latency of Ctrl-C and stop_training)
            per_batch = cbs._implements_train_batch_hooks()
            # the per-chunk hook only where a callback has one (History and the like have not)
            chunk_hook = per_batch or any(
                type(cb).on_train_batch_end is not _callbacks.Callback.on_train_batch_end
                or type(cb).on_batch_end is not _callbacks.Callback.on_batch_end for cb in cbs)
            diag = np.zeros(geometry(self._layer_table).diag_size) if diagnostics else None
            layer_names = [layer.name for layer in self._dense()]
            warned = set()
            self.__dict__.pop("_resume_initial_epoch", None)
            cbs.on_train_begin({})
            # BackupAndRestore found a backup: continue after its last completed epoch
            initial_epoch = max(initial_epoch, self.__dict__.pop("_resume_initial_epoch", initial_epoch))
            chunk = 1
            # the thread count: fixed, or timed per workload (fastnet/_threads.py: tuner)
            macs, wkey = self._workload_key(self._layer_table)
            tn = _threads.tuner("train", wkey + (batch_size,), 3 * macs * batch_size)
            nt = 1 if tn is False else get_num_threads()
            clock = time.perf_counter
            # the contract's checks on the first call; later calls pass the same arrays, the
            # model's own, with scalars it computed: unchecked (the checks are a visible share
            # of a small model's fit: bench/sklearn_vs_fastnet.py's digits rows)
            train = be.train_batches
            for epoch in range(initial_epoch, epochs):
                cbs.on_epoch_begin(epoch, {})
                if diag is not None:
                    _diagnostics.reset(diag)
                perm = (self._shuffle_rng.permutation(n) if shuffle else np.arange(n)).astype(np.int64, copy=False)
                key = np.uint64(self._dropout_rng.integers(0, 2 ** 64, dtype=np.uint64))
                guard.poll()
                first = 0
                loss_sum = 0.0
                while first < nb:
                    if per_batch:
                        cnt = 1
                        cbs.on_train_batch_begin(first, {})
                    else:
                        # a learning-rate schedule: no call runs past a change of the rate
                        cnt = min(chunk, nb - first, self.optimizer._constant_steps())
                    if tn:
                        nt, units = tn.threads()
                        if units is not None:
                            cnt = min(cnt, units)
                    t_start = clock()
                    with _compile_notice(be, verbose):  # numba: one line when it compiles (a cache miss)
                        train(
                            _api.Batches(Xc, Y, labels, sw, perm, batch_size, first, cnt),
                            _api.Network(self._layer_table, self._head, self._params),
                            _api.TrainState(self.optimizer.code, self.optimizer.hyper(),
                                            self.optimizer.iterations, key, self.optimizer.state),
                            _api.Buffers(self._grads, work, batch_loss[first:first + cnt], scores),
                            nt, diag=diag)
                    elapsed = clock() - t_start
                    train = getattr(be.train_batches, "unchecked", be.train_batches)
                    if diag is not None:
                        stage = diag[defs.DG_STAGE]
                        if stage != defs.STAGE_NONE:
                            # the batches before the bad one were applied, the bad one only
                            # when its update made the non-finite value (a bad forward,
                            # loss or backward pass returns before the update)
                            self.optimizer.iterations += int(diag[defs.DG_BATCH]) - first + (
                                stage == defs.STAGE_UPDATE)
                        _diagnostics.check(diag, epoch, layer_names)
                    self.optimizer.iterations += cnt
                    if chunk_hook:  # the running loss is for the hook only
                        loss_sum += float(batch_loss[first:first + cnt] @ sizes[first:first + cnt])
                    first += cnt
                    rows_done = min(first * batch_size, n) - (first - cnt) * batch_size
                    if tn:
                        tn.record(nt, elapsed, rows_done / batch_size)
                    if not per_batch:
                        chunk = _next_chunk(chunk, elapsed, rows_done, batch_size, nb)
                    guard.poll()
                    if chunk_hook:
                        cbs.on_train_batch_end(first - 1, {
                            "batches_done": first, "batches_total": nb,
                            "loss": loss_sum / min(first * batch_size, n)})
                    if self.stop_training:
                        break
                # the epoch's samples so far (all of them unless stop_training ended it early)
                rows = min(first * batch_size, n)
                logs = {"loss": float((batch_loss[:first] * sizes[:first]).sum() / rows)}
                if want_scores:
                    p = perm[:rows]
                    lab_e = labels[p] if labels.shape[0] else labels
                    Y_e = Y[p] if Y.shape[0] else Y
                    sw_e = sw[p] if sw.shape[0] else None
                    logs.update(guard.call(self._metric_values, lab_e, Y_e, scores[:rows], task, sw_e))
                if val is not None:
                    vlogs = guard.call(self._evaluate_arrays, *val, None, task)
                    logs.update({"val_" + key_: v for key_, v in vlogs.items()})
                if diag is not None:
                    _diagnostics.record(cbs.history, _diagnostics.epoch_record(
                        diag, self._layer_table, self._params, layer_names,
                        self._head in (defs.HEAD_SOFTMAX_XENT, defs.HEAD_SIGMOID_BCE)), warned, epoch)
                self._epochs_done = getattr(self, "_epochs_done", 0) + 1
                cbs.on_epoch_end(epoch, logs)
                guard.poll()
                if self.stop_training:
                    break
            cbs.on_train_end({})
        return cbs.history

    @staticmethod
    def _int_arg(name, value, low):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError("%s must be an int; got %r" % (name, value))
        if value < low:
            raise ValueError("%s must be >= %d; got %d" % (name, low, value))
        return int(value)

    def _split(self, labels, Y, n, fraction):
        """(train rows, validation rows), shuffled and stratified for class labels.

        A function of the seed, n, the class labels and the fraction only (no
        random stream advances): every fit of a model on the same data
        validates on the same rows, so repeated fits never validate on rows an
        earlier fit trained on; a larger fraction takes a superset of rows
        (unstratified; stratified up to the rounding of each class's share)."""
        n_val = int(np.ceil(n * fraction))
        if n_val < 1 or n_val >= n:
            raise ValueError("validation_split=%r leaves %d training and %d validation samples of %d"
                             % (fraction, n - n_val, n_val, n))
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(_STREAM_SPLIT, n)))
        perm = rng.permutation(n)
        task_labels = None
        if labels.shape[0]:
            task_labels = labels
        elif isinstance(self.loss, _losses.CategoricalCrossentropy) or (
                isinstance(self.loss, _losses.BinaryCrossentropy) and Y.shape[1] == 1):
            task_labels = np.argmax(Y, axis=1) if Y.shape[1] > 1 else (Y[:, 0] > 0.5).astype(np.int64)
        if task_labels is None:
            return np.sort(perm[n_val:]), np.sort(perm[:n_val])
        # stratified: class c gives floor(fraction * count_c) rows, and the
        # n_val - sum(...) rows left go one each to the classes with the largest
        # remainders (ties in a seeded order), classes that keep a training row
        # first; a class's validation rows are its first in the permutation
        classes, inv = np.unique(task_labels, return_inverse=True)
        counts = np.bincount(inv)
        share = counts * fraction
        quotas = np.floor(share).astype(np.int64)
        short = n_val - int(quotas.sum())
        order = np.lexsort((rng.permutation(len(classes)), quotas - share, quotas + 1 >= counts))
        quotas[order[:short]] += 1
        rows = perm[np.argsort(inv[perm], kind="stable")]       # by class, each in permutation order
        rank = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
        is_val = np.zeros(n, dtype=bool)
        is_val[rows] = rank < quotas[inv[rows]]
        return np.flatnonzero(~is_val), np.flatnonzero(is_val)

    def _workspace(self, batch_size):
        key = ("train", batch_size)
        if self._work_key != key:
            self._work = aligned_zeros(_api.workspace_size(self._layer_table, batch_size), self.dtype)
            self._work_key = key
        return self._work

    def _metric_values(self, labels, Y, scores, task, sw):
        y_true = labels if labels.shape[0] else (Y[:, 0] if task == "binary" else Y)
        y_score = scores[:, 0] if task == "binary" else scores
        return {m.name: float(m(y_true, y_score, task, sample_weight=sw)) for m in self.metrics}

    # ------------------------------------------------------- predict/evaluate
    def _workload_key(self, layers):
        """(multiply-adds per row of a forward pass, the architecture's identity
        for the thread tuners) of ``layers``, cached per layers object."""
        cached = self.__dict__.get("_workload_cache")
        if cached is not None and cached[0] is layers:
            return cached[1], cached[2]
        macs = geometry(layers).macs
        key = (self._backend.NAME, np.dtype(self.dtype).char, layers.tobytes())
        self._workload_cache = (layers, macs, key)
        return macs, key

    def _forward(self, X, layers, batch_size, run=None):
        """The forward pass over X in chunks (``batch_size`` rows, else
        _PREDICT_CHUNK).  ``run``: the backend's ``predictor`` for one chunk's
        X not yet checked for finite values; None is then returned, nothing
        computed, when X holds a non-finite value."""
        n = X.shape[0]
        k = int(layers[-1]["n_out"])
        out = np.empty((n, k), dtype=self.dtype)
        chunk = batch_size or _PREDICT_CHUNK
        rows = min(chunk, n)
        # the workspace size (a Python loop over the layers) and the thread tuner
        # are cached for the last (layers, rows, thread limit): repeated small
        # predicts skip them; the buffer is this thread's (_scratch)
        cached = self.__dict__.get("_fwd_cache")
        if cached is not None and cached[0] is layers and cached[1] == rows and (
                cached[2] is False or cached[2] == _threads.limit()):
            size, tn = cached[3], cached[4]
        else:
            size = _api.forward_workspace_size(layers, rows)
            macs, key = self._workload_key(layers)
            tn = _threads.tuner("forward", key + (rows,), macs * rows)
            self._fwd_cache = (layers, rows, tn is not False and _threads.limit(), size, tn)
        work = _scratch(size, self.dtype)
        # (the contract's checks are skipped: the spec, parameters and buffers are the
        # model's own, X passed _check_X or predict's fast path)
        fwd, params = self._backend.forward, self._params
        fwd = run or getattr(fwd, "unchecked", fwd)
        if n <= chunk and tn is False:  # one call, tiny work: 1 thread
            if fwd(X, layers, params, work, out, 1) is False:
                return None
            self._fwd_threads = 1
            return out
        if not tn and run is not None:
            nt = 1 if tn is False else get_num_threads()
            if run(X, layers, params, work, out, nt) is False:
                return None
            self._fwd_threads = nt
            return out
        if not tn:  # fixed threads, or 1 for tiny work
            nt = self._fwd_threads = 1 if tn is False else get_num_threads()
            for start in range(0, n, chunk):
                stop = min(start + chunk, n)
                fwd(X[start:stop], layers, params, work, out[start:stop], nt)
            return out
        clock = time.perf_counter
        if n <= chunk:
            nt = tn.threads()[0]
            t0 = clock()
            if fwd(X, layers, params, work, out, nt) is False:
                return None
            tn.record(nt, clock() - t0, n)
            self._fwd_threads = nt
            return out
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            nt = self._fwd_threads = tn.threads()[0]
            t0 = clock()
            fwd(X[start:stop], layers, params, work, out[start:stop], nt)
            tn.record(nt, clock() - t0, stop - start)
        return out

    def predict(self, X, batch_size=None, verbose=0):
        """The last layer's activations (logits when the last layer is linear).
        Works before ``compile``; builds the model on first use.  ``verbose``
        as in Keras (default 0 here): 1 or "auto" prints the finished progress
        bar with the time, 2 the line without the bar."""
        # fast path: a C-contiguous block of the model's dtype goes straight to the
        # backend's predictor, which checks it is finite (on the calling thread: one
        # pass at memory speed) and runs the forward pass in one call; anything
        # else, or a non-finite X, takes the full checks below
        if (type(X) is np.ndarray and batch_size is None and type(verbose) is int and not verbose and self.built
                and X.dtype is self.dtype and X.ndim == 2 and X.shape[1] == self._input_dim
                and 0 < X.shape[0] <= _PREDICT_CHUNK and X.flags.c_contiguous):
            run = self.__dict__.get("_predictor")
            if run is None or run[0] is not self._backend:
                run = self._predictor = (self._backend, self._backend.predictor(self.dtype))
            out = self._forward(X, self._layer_table, None, run[1])
            if out is not None:
                return out
        self._require_dense("predict")
        if batch_size is not None:
            batch_size = self._int_arg("batch_size", batch_size, 1)
        verbose = self._check_verbose(verbose)
        t0 = time.perf_counter()
        Xc = self._check_X(X)
        if not self.built:
            self.build(Xc.shape[1])
        out = self._forward(Xc, self._layer_table, batch_size)
        self._report(verbose, Xc.shape[0], batch_size, time.perf_counter() - t0)
        return out

    def predict_labels(self, X, threshold=0.5, batch_size=None):
        """Class predictions: argmax for softmax / multi-class outputs (integer
        labels); for sigmoid or binary-cross-entropy outputs, 0/1 per unit with
        ``probability > threshold`` (multi-label; shape (n,) for one unit)."""
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0 <= threshold <= 1:
            raise ValueError("threshold must be a number in [0, 1]; got %r" % (threshold,))
        out = self.predict(X, batch_size=batch_size)
        last = self._dense()[-1].activation.code
        bce = isinstance(self.loss, _losses.BinaryCrossentropy)
        if last == defs.ACT_SIGMOID or bce:
            if bce and self.loss.from_logits:
                out = 1.0 / (1.0 + np.exp(-out.astype(np.float64)))
            labels = (out > threshold).astype(np.int64)
            return labels[:, 0] if labels.shape[1] == 1 else labels
        if out.shape[1] == 1:
            raise ValueError("predict_labels: a single linear/other output unit is not a classifier output; "
                             "use predict()")
        return np.argmax(out, axis=1)

    def evaluate(self, X, y, batch_size=None, verbose=0, sample_weight=None, return_dict=False):
        """Loss (data loss + regularization penalty) and metrics on (X, y), as
        Keras returns them: the scalar loss when the model has no metrics,
        ``[loss, metric_1, ...]`` (compile order) when it has, and the dict
        ``{"loss": ..., name: ...}`` with ``return_dict=True``.  So
        ``loss, acc = model.evaluate(X, y)`` works as in Keras.  ``verbose`` as
        in ``predict``, with the values on the line."""
        self._require_compiled("evaluate")
        if batch_size is not None:
            batch_size = self._int_arg("batch_size", batch_size, 1)
        verbose = self._check_verbose(verbose)
        if not isinstance(return_dict, (bool, np.bool_)):
            raise TypeError("return_dict must be a bool; got %r" % (return_dict,))
        t0 = time.perf_counter()
        Xc = self._check_X(X)
        labels, Y = self._check_y(y, Xc.shape[0])
        sw = self._check_sample_weight(sample_weight, Xc.shape[0])
        if not self.built:
            self.build(Xc.shape[1])
        logs = self._evaluate_arrays(Xc, labels, Y, sw, batch_size, self._task(labels, Y))
        self._report(verbose, Xc.shape[0], batch_size, time.perf_counter() - t0, logs)
        return self._keras_logs(logs, return_dict)

    def _evaluate_arrays(self, X, labels, Y, sw, batch_size, task):
        be = self._backend
        n = X.shape[0]
        fused = self._head in (defs.HEAD_SOFTMAX_XENT, defs.HEAD_SIGMOID_BCE)
        layers = self._layer_table
        if fused:  # the heads take logits (a copy kept while layers is: the tuners key on it)
            cached = self.__dict__.get("_logit_layers")
            if cached is not None and cached[0] is layers:
                layers = cached[1]
            else:
                layers = layers.copy()
                layers[-1]["act"] = defs.ACT_LINEAR
                self._logit_layers = (self._layer_table, layers)
        Z = self._forward(X, layers, batch_size)
        # the loss kernels run with the thread count the forward pass chose
        nt = self._fwd_threads
        k = Z.shape[1]
        P = np.empty_like(Z)
        row_loss = np.empty(n, dtype=np.float64)
        delta = np.empty_like(Z)
        if self._head == defs.HEAD_SOFTMAX_XENT:
            be.softmax_xent(Z, Y, labels, sw, 1.0, P, row_loss, delta, nt)
        elif self._head == defs.HEAD_SIGMOID_BCE:
            be.sigmoid_bce(Z, Y, sw, 1.0, P, row_loss, delta, nt)
        else:
            fn = be.mse if self._head == defs.HEAD_MSE else be.mae
            fn(Z, Y, sw, 1.0, row_loss, delta, nt)
            P = Z
        w = sw.astype(np.float64) if sw.shape[0] else 1.0
        penalty = np.zeros(1)
        if any(self._layer_table[f].any() for f in defs.REGULARIZER_FIELDS):
            be.regularize(self._layer_table, self._params, np.zeros_like(self._params), penalty, nt)
        logs = {"loss": float((w * row_loss).sum() / n + penalty[0])}
        if self.metrics:
            logs.update(self._metric_values(labels, Y, P, task, sw if sw.shape[0] else None))
        return logs

    # --------------------------------------------------------------- gradients
    def gradients(self, X, y, sample_weight=None, training=False, dropout_key=0):
        """Backprop gradients of the mean loss (plus regularization) on (X, y),
        in the layout of ``get_weights()``.  ``training=True`` applies dropout
        with the fixed mask of ``dropout_key``; the default uses no dropout."""
        self._require_compiled("gradients")
        Xc = self._check_X(X)
        labels, Y = self._check_y(y, Xc.shape[0])
        sw = self._check_sample_weight(sample_weight, Xc.shape[0])
        if not self.built:
            self.build(Xc.shape[1])
        n = Xc.shape[0]
        layers = self._layer_table if training else self._layers_no_dropout()
        work = np.zeros(_api.workspace_size(layers, n), dtype=self.dtype)
        grads = np.zeros_like(self._params)
        state = np.zeros((defs.N_STATE, self._params.shape[0]), dtype=self.dtype)  # contract shape; unused
        loss = np.zeros(1)
        self._backend.train_batches(
            _api.Batches(Xc, Y, labels, sw, np.arange(n, dtype=np.int64), n, 0, 1),
            _api.Network(layers, self._head, self._params),
            _api.TrainState(defs.OPT_NONE, np.zeros(defs.NH), 0, np.uint64(dropout_key), state),
            _api.Buffers(grads, work, loss, np.empty((0, self.output_dim), dtype=self.dtype)),
            get_num_threads())
        self._last_gradient_loss = float(loss[0])
        return self._unflatten(grads)

    def _layers_no_dropout(self):
        f = self._layer_table.copy()
        f["dropout"] = 0.0
        return f

    # ----------------------------------------------------------------- weights
    def _unflatten(self, buf):
        return [view.copy() for _, view in self._weight_views(buf)]

    def _weight_views(self, buf):
        """(name, view) of every weight array in get_weights() order: per weight
        layer its kernel, bias, then the slopes of the PReLU folded into it."""
        out = []
        for l, layer in enumerate(self._dense()):
            W, b = self._views(buf, self._layer_table, l)
            out.append((layer.name + ".kernel", W))
            if b is not None:
                out.append((layer.name + ".bias", b))
            s = self._slopes(buf, self._layer_table, l)
            if s is not None:
                out.append((self._prelus[l].name + ".alpha", s))
        return out

    def get_weights(self):
        """Copies in Keras layout: [W0 (in, out), b0, W1, b1, ...] (no b for
        use_bias=False; a PReLU layer's alpha (units,) follows the Dense it acts
        on; a Maxout kernel is (in, units * pieces))."""
        self._require_built("get_weights")
        return self._unflatten(self._params)

    def set_weights(self, weights):
        """Set all weights from a list in the layout of ``get_weights()``.  Every
        array is checked (count, shape, a real number dtype, finite after the
        cast to the model's dtype) before any is written.

        Layout (Keras's): a kernel is (in, out) and the layer computes
        ``x @ kernel + bias``.  A PyTorch ``nn.Linear.weight`` is (out, in): it
        must be transposed, and for a square layer a forgotten transpose cannot
        be detected from the shape.  ``fastnet.interop.from_torch`` /
        ``from_sklearn`` convert whole models (scikit-learn's ``coefs_`` are
        already (in, out))."""
        self._require_built("set_weights")
        targets = self._weight_views(self._params)
        arrays = self._check_weight_list(targets, weights, "set_weights")
        self._assign_weights(targets, arrays, "set_weights:")

    @staticmethod
    def _check_weight_list(targets, weights, who):
        """The arrays of ``weights`` checked against ``targets`` ((name, view)
        pairs): a list of that many arrays of a real number dtype and the views'
        shapes (finiteness is checked by _assign_weights, after the cast)."""
        if not isinstance(weights, (list, tuple)):
            raise TypeError("%s expects a list of arrays; got %r" % (who, type(weights).__name__))
        if len(weights) != len(targets):
            raise ValueError("%s expects %d arrays (%s); got %d"
                             % (who, len(targets), ", ".join(t[0] for t in targets), len(weights)))
        arrays = []
        for (name, dst), src in zip(targets, weights):
            try:
                arr = np.asarray(src)
            except Exception as exc:  # noqa: BLE001 - ragged lists and the like
                raise TypeError("%s: %s must be an array; got %s (%s)"
                                % (who, name, type(src).__name__, exc)) from None
            problem = _weight_dtype_problem(arr.dtype)
            if problem:
                raise TypeError("%s: %s must be %s; got dtype %s" % (who, name, problem, arr.dtype))
            if arr.shape != dst.shape:
                raise ValueError("%s: %s must have shape %s; got %s" % (who, name, dst.shape, arr.shape))
            arrays.append(arr)
        return arrays

    def _assign_weights(self, targets, arrays, where):
        """Cast every array to the model's dtype, refuse any that is not finite
        afterwards (NaN / inf, or a finite value the dtype cannot hold), then
        write them all."""
        cast = []
        for (name, _), arr in zip(targets, arrays):
            with np.errstate(over="ignore", invalid="ignore"):
                out = arr.astype(self.dtype)
            if not np.isfinite(out).all():
                if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
                    raise ValueError("%s %s contains NaN or inf" % (where, name))
                big = np.abs(arr[~np.isfinite(out)]).max()
                raise ValueError("%s %s overflows %s: it holds %.4g (the largest %s is %.4g)"
                                 % (where, name, self.dtype, big, self.dtype, np.finfo(self.dtype).max))
            cast.append(out)
        for (_, dst), arr in zip(targets, cast):
            dst[...] = arr

    def save_weights(self, filepath):
        """Write the weights to an .npz file (keys ``"000:dense.kernel"``, ...:
        position and name).  The file is written atomically: a temporary file in
        the same folder, flushed and fsynced, then renamed over *filepath*, so a
        crash or an error never leaves a partial file and a failed save leaves
        the previous file as it was."""
        self._require_built("save_weights")
        path = _fspath(filepath, "save_weights")
        names = [name for name, _ in self._weight_views(self._params)]
        arrays = dict(zip(["%03d:%s" % (i, nm) for i, nm in enumerate(names)], self.get_weights()))
        with _io.atomic_write(path) as f:
            np.savez(f, **arrays)

    def load_weights(self, filepath):
        """Read weights written by ``save_weights`` into this (built) model.

        The file is matched by position: it must hold one array per weight of
        this model, in order, of the same kind (kernel / bias / alpha; layer
        names may differ) and shape, each of a real float or integer dtype whose
        values are finite in the model's dtype (a float64 file loads into a
        float32 model unless a value overflows float32).  Anything else - an
        empty, truncated or corrupt file, a .npy or text file, another
        architecture's weights, complex / bool / string / object arrays (never
        unpickled), NaN or inf - raises ValueError naming the file and the
        problem, before any weight is changed; a missing file raises
        FileNotFoundError."""
        self._require_built("load_weights")
        path = _fspath(filepath, "load_weights")
        targets = self._weight_views(self._params)
        order = []

        def check(headers):
            keys = list(headers)
            order[:] = sorted(keys, key=_weight_key_order)
            if any(_weight_key_order(k)[0] < 0 for k in keys):
                bad = [k for k in keys if _weight_key_order(k)[0] < 0][0]
                return ("is not a save_weights file: array %r is not named 'NNN:layer.kind'" % bad)
            if len(keys) != len(targets):
                return ("holds %d weight arrays (%s) but the model has %d (%s)"
                        % (len(keys), ", ".join(order), len(targets), ", ".join(t[0] for t in targets)))
            for i, (key, (name, dst)) in enumerate(zip(order, targets)):
                num, stored = _weight_key_order(key)
                if num != i:
                    return "is not a save_weights file: its arrays are numbered %s" % (
                        ", ".join(str(_weight_key_order(k)[0]) for k in order))
                if stored.rpartition(".")[2] != name.rpartition(".")[2]:
                    return ("does not fit this model: array %d is %r but the model's weight %d is %s"
                            % (i, stored, i, name))
                shape, dtype = headers[key]
                problem = _weight_dtype_problem(dtype)
                if problem:
                    return "holds %r of dtype %s; weights must be %s" % (stored, dtype, problem)
                if tuple(shape) != dst.shape:
                    return ("does not fit this model: its %r has shape %s but the model's %s has shape %s"
                            % (stored, tuple(shape), name, dst.shape))
            return None

        data = _io.read_npz(path, check=check, who="load_weights")
        self._assign_weights(targets, [data[k] for k in order], "load_weights: %r:" % path)

    # ----------------------------------------------------------------- summary
    def summary(self, print_fn=None):
        """Print the layers, their output shapes and parameter counts."""
        self._require_dense("summary")
        rows = [("Layer (type)", "Output Shape", "Param #")]
        n_in = self._input_dim if self.built else (self._dense()[0].input_dim if self._dense() else None)
        total = 0
        width = n_in
        for layer in self.layers:
            if isinstance(layer, (Dense, PReLU)):
                cnt = layer.count_params(width)
                if isinstance(layer, Dense):
                    width = layer.units
                total = None if (total is None or cnt is None) else total + cnt
                rows.append(("%s (%s)" % (layer.name, type(layer).__name__),
                             "(None, %s)" % ("?" if width is None else width),
                             "?" if cnt is None else "{:,}".format(cnt)))
            else:
                rows.append(("%s (%s)" % (layer.name, type(layer).__name__),
                             "(None, %s)" % ("?" if width is None else width), "0"))
        w = [max(len(r[i]) for r in rows) + 3 for i in range(3)]
        line = "=" * sum(w)
        out = ['Model: "%s"  backend: %s  dtype: %s' % (self.name, self.backend_name, self.dtype.name), line]
        for i, r in enumerate(rows):
            out.append("".join(c.ljust(w[j]) for j, c in enumerate(r)))
            if i == 0:
                out.append(line)
        out.append(line)
        out.append("Total params: %s" % ("? (not built: call build(input_dim))" if total is None
                                          else "{:,}".format(total)))
        out.append("Trainable params: %s" % ("?" if total is None else "{:,}".format(total)))
        out.append("Non-trainable params: 0")
        text = "\n".join(out)
        (print_fn or print)(text)
        return None

    def __repr__(self):
        return "<Sequential %r: %d layers, backend=%r, dtype=%s>" % (
            self.name, len(self.layers), self.backend_name, self.dtype.name)

    # ------------------------------------------------------- whole-model files
    def save(self, filepath):
        """Write the whole model to one file (``fastnet.load_model`` reads it
        back): architecture, compile configuration, weights, optimizer state and
        step count, epoch counter, seed and random-stream positions, so that
        training resumes bit for bit.  Written atomically; no pickle (format:
        ``fastnet/saving.py``, docs/FORMAT.md)."""
        from . import saving
        saving.save_model(self, filepath)

    def __reduce__(self):
        # pickle, copy.copy and copy.deepcopy go through the model file's bytes:
        # the copy is independent and continues training exactly like the original
        from . import saving
        return saving.reduce_model(self)
