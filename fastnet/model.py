"""Sequential: the Keras-style model.  It plans; the backend computes.

The model validates input, owns one flat parameter buffer (the layers' kernels
and biases are views into it), one flat gradient buffer, the optimizer state and
a workspace, and calls the backend's kernels (``fastnet/backends/_api.py``).
Python runs between chunks of batches (for progress and callbacks), never
between layers.
"""
import numbers
import time

import numpy as np

from . import callbacks as _callbacks
from . import diagnostics as _diagnostics
from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from ._kernels import defs
from ._threads import get_num_threads
from .backends import _api, get_backend, resolve_name
from .layers import Dense, Dropout, Layer, Maxout, PReLU

_DTYPES = {"float32": np.float32, "float64": np.float64}
# Rows per forward call in predict/evaluate when no batch_size is given.
_PREDICT_CHUNK = 4096
# Progress updates: aim for one backend call per this many seconds.
_CHUNK_SECONDS = 0.2

# Independent random streams derived from the model's seed.
_STREAM_INIT, _STREAM_SHUFFLE, _STREAM_SPLIT, _STREAM_DROPOUT = range(4)


def _rng(seed, stream):
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))


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
            seed = int(np.random.SeedSequence().entropy % (2 ** 63))
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
        self._split_rng = _rng(self.seed, _STREAM_SPLIT)
        self._dropout_rng = _rng(self.seed, _STREAM_DROPOUT)
        if layers is not None:
            if isinstance(layers, Layer):
                layers = [layers]
            if not isinstance(layers, (list, tuple)):
                raise TypeError("layers must be a list of fastnet layers; got %r" % (layers,))
            for layer in layers:
                self.add(layer)

    # ------------------------------------------------------------------ layers
    def add(self, layer):
        """Append a layer (before the model is built)."""
        if not isinstance(layer, Layer):
            raise TypeError("Sequential.add expects a fastnet layer (Dense, Dropout); got %r" % (layer,))
        if self.built:
            raise ValueError("cannot add layers to a built model")
        if any(layer is existing for existing in self.layers):
            raise ValueError("layer %r is already in this model" % (layer.name,))
        if layer.name is None:
            n = sum(type(l) is type(layer) for l in self.layers)
            layer.name = layer._prefix if n == 0 else "%s_%d" % (layer._prefix, n)
        elif any(l.name == layer.name for l in self.layers):
            raise ValueError("duplicate layer name %r" % layer.name)
        self.layers.append(layer)
        if isinstance(layer, Dense) and layer.input_dim is not None and len(self._dense()) == 1:
            pass  # built lazily; input_dim is honoured by build()

    def _dense(self):
        return [l for l in self.layers if isinstance(l, Dense)]

    def _plan_layers(self):
        """The weight layers (Dense, Maxout), the dropout rate applied to each
        one's output and the PReLU layer folded into each (or None)."""
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
        ispec = np.zeros((L, defs.NI), dtype=np.int64)
        fspec = np.zeros((L, defs.NF), dtype=np.float64)
        pos, n_in = 0, int(input_dim)
        for l, layer in enumerate(dense):
            zw = layer.units * layer.pieces
            ispec[l, defs.I_IN] = n_in
            ispec[l, defs.I_OUT] = layer.units
            ispec[l, defs.I_ACT] = defs.ACT_PRELU if prelus[l] is not None else layer.activation.code
            ispec[l, defs.I_KIND] = defs.KIND_MAXOUT if isinstance(layer, Maxout) else defs.KIND_DENSE
            ispec[l, defs.I_PIECES] = layer.pieces
            ispec[l, defs.I_TOPK] = layer.meprop_k or 0
            ispec[l, defs.I_W] = pos
            pos += n_in * zw
            if layer.use_bias:
                ispec[l, defs.I_B] = pos
                pos += zw
            else:
                ispec[l, defs.I_B] = -1
            if prelus[l] is not None:
                ispec[l, defs.I_APAR] = pos
                pos += layer.units
            else:
                ispec[l, defs.I_APAR] = -1
            fspec[l, defs.F_ALPHA] = layer.activation.alpha
            fspec[l, defs.F_DROP] = drops[l]
            reg = layer.kernel_regularizer
            if reg is not None:
                fspec[l, defs.F_L1] = reg.l1
                fspec[l, defs.F_L2] = reg.l2
            n_in = layer.units
        params = np.zeros(pos, dtype=self.dtype)
        rng = _rng(self.seed, _STREAM_INIT)
        for l, layer in enumerate(dense):
            W, b = self._views(params, ispec, l)
            W[...] = layer.kernel_initializer((W.shape[0], W.shape[1]), rng, self.dtype)
            if b is not None:
                b[...] = layer.bias_initializer((b.shape[0],), rng, self.dtype)
            if prelus[l] is not None:
                self._slopes(params, ispec, l)[...] = prelus[l].init
        self._ispec, self._fspec = ispec, fspec
        self._params = params
        self._grads = np.zeros_like(params)
        self._input_dim = int(input_dim)
        self._work = None
        self._work_key = None
        for l, layer in enumerate(dense):
            layer.kernel, layer.bias = self._views(params, ispec, l)
            if prelus[l] is not None:
                prelus[l].units = layer.units
                prelus[l].alpha = self._slopes(params, ispec, l)
        self._prelus = prelus
        self.built = True
        if self.optimizer is not None:
            self.optimizer._bind(self, params.shape[0], self.dtype)

    @staticmethod
    def _views(buf, ispec, l):
        n_in, zw = int(ispec[l, defs.I_IN]), _api.z_width(ispec, l)
        w = int(ispec[l, defs.I_W])
        W = buf[w:w + n_in * zw].reshape(n_in, zw)
        bo = int(ispec[l, defs.I_B])
        return W, (buf[bo:bo + zw] if bo >= 0 else None)

    @staticmethod
    def _slopes(buf, ispec, l):
        """The PReLU slopes of weight layer l (None without PReLU)."""
        if int(ispec[l, defs.I_ACT]) != defs.ACT_PRELU:
            return None
        ap = int(ispec[l, defs.I_APAR])
        return buf[ap:ap + int(ispec[l, defs.I_OUT])]

    def count_params(self):
        self._require_built("count_params")
        return int(self._params.shape[0])

    # ----------------------------------------------------------------- compile
    def compile(self, optimizer="adam", loss=None, metrics=None):
        """Set the optimizer (name or object), the loss (name or object) and metrics."""
        opt = _optimizers.get(optimizer)
        if loss is None:
            raise ValueError("compile: loss is required; one of %s or a fastnet.losses.Loss"
                             % ", ".join(_losses.NAMES))
        loss_obj = _losses.get(loss)
        dense = self._plan_layers()[0]
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
        # ndarray of the model's dtype with the right width whose elements the
        # backend's all_finite kernel finds finite (one pass at memory speed: 60,000
        # MNIST rows in 6.4 ms on 1 thread, 4.1 on 2; X.sum() took 10.5) is returned
        # as is; anything else takes the full checks below (which give the precise
        # error)
        if (type(X) is np.ndarray and X.dtype == self.dtype and X.ndim == 2 and self.built
                and X.shape[0] > 0 and X.shape[1] == self._input_dim and X.flags.c_contiguous):
            flag = np.zeros(1, dtype=np.int64)
            self._backend.all_finite(X, flag, get_num_threads())
            if flag[0]:
                return X
        if hasattr(X, "toarray") and not isinstance(X, np.ndarray):
            raise TypeError("%s: sparse matrices are not supported; pass a dense array" % name)
        try:
            arr = np.asarray(X)
        except Exception as exc:  # noqa: BLE001
            raise TypeError("%s must be array-like; got %s (%s)" % (name, type(X).__name__, exc)) from None
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise TypeError("%s must be a numeric array; got dtype %s" % (name, arr.dtype))
        if np.issubdtype(arr.dtype, np.complexfloating):
            raise TypeError("%s must be real-valued; got dtype %s" % (name, arr.dtype))
        if arr.ndim != 2:
            raise ValueError("%s must be 2-D (samples, features); got shape %s%s"
                             % (name, arr.shape, " (use X.reshape(-1, 1) for one feature or "
                                "X.reshape(len(X), -1) for images)" if arr.ndim in (1, 3) else ""))
        if arr.shape[0] == 0:
            raise ValueError("%s is empty: it has 0 samples" % name)
        if arr.shape[1] == 0:
            raise ValueError("%s has 0 features" % name)
        dense = self._dense()
        want = self._input_dim if self.built else dense[0].input_dim
        if want is not None and arr.shape[1] != want:
            raise ValueError("%s has %d features but layer %r (the first layer) expects %d inputs"
                             % (name, arr.shape[1], dense[0].name, want))
        out = np.ascontiguousarray(arr, dtype=self.dtype)
        if np.issubdtype(arr.dtype, np.floating) or arr.dtype.itemsize > 4:
            # in chunks of rows: no full-size temporary next to the caller's data
            step = max(1, (1 << 20) // max(1, out.shape[1]))
            for start in range(0, out.shape[0], step):
                block = out[start:start + step]
                if not np.isfinite(block).all():
                    bad = np.argwhere(~np.isfinite(block))[0]
                    what = "contains NaN or inf" if np.issubdtype(arr.dtype, np.floating) else \
                        "overflows %s" % self.dtype
                    raise ValueError("%s %s (first at row %d, column %d)" % (name, what, start + bad[0], bad[1]))
        return out

    def _check_y(self, y, n, name="y"):
        """Targets in the form the loss head needs: (labels int64, Y float)."""
        try:
            arr = np.asarray(y)
        except Exception as exc:  # noqa: BLE001
            raise TypeError("%s must be array-like; got %s (%s)" % (name, type(y).__name__, exc)) from None
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise TypeError("%s must be a numeric array; got dtype %s" % (name, arr.dtype))
        if arr.shape[:1] != (n,):
            raise ValueError("%s has %s samples but X has %d"
                             % (name, arr.shape[0] if arr.ndim else "no", n))
        k = self.output_dim
        out_name = self._dense()[-1].name
        if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
            raise ValueError("%s contains NaN or inf" % name)
        empty_f = np.empty((0, k), dtype=self.dtype)
        empty_i = np.empty(0, dtype=np.int64)
        if self.loss.sparse:
            if arr.ndim == 2 and arr.shape[1] == 1:
                arr = arr[:, 0]
            if arr.ndim != 1:
                raise ValueError("%s: %s expects integer class labels of shape (n,); got shape %s "
                                 "(use CategoricalCrossentropy for one-hot targets)"
                                 % (name, type(self.loss).__name__, arr.shape))
            if not np.issubdtype(arr.dtype, np.integer):
                if np.any(arr != np.round(arr)):
                    raise ValueError("%s: class labels must be integers; got non-integer values" % name)
            lab = arr.astype(np.int64)
            lo, hi = int(lab.min()), int(lab.max())
            if lo < 0 or hi >= k:
                raise ValueError("%s: labels must be in [0, %d) for the output layer %r with %d units; "
                                 "found %d" % (name, k, out_name, k, lo if lo < 0 else hi))
            return np.ascontiguousarray(lab), empty_f
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] != k:
            raise ValueError("%s has shape %s but the output layer %r has %d units (expected (%d, %d)%s)"
                             % (name, arr.shape, out_name, k, n, k,
                                "; for integer labels use SparseCategoricalCrossentropy"
                                if isinstance(self.loss, _losses.CategoricalCrossentropy) else ""))
        Y = np.ascontiguousarray(arr, dtype=self.dtype)
        if isinstance(self.loss, (_losses.BinaryCrossentropy, _losses.CategoricalCrossentropy)):
            if Y.min() < 0 or Y.max() > 1:
                raise ValueError("%s: %s targets must lie in [0, 1]" % (name, type(self.loss).__name__))
        return empty_i, Y

    def _check_sample_weight(self, sample_weight, n, name="sample_weight"):
        if sample_weight is None:
            return np.empty(0, dtype=self.dtype)
        sw = np.asarray(sample_weight)
        if sw.dtype == object or not np.issubdtype(sw.dtype, np.number):
            raise TypeError("%s must be a numeric array; got dtype %s" % (name, sw.dtype))
        if sw.ndim == 2 and sw.shape[1] == 1:
            sw = sw[:, 0]
        if sw.shape != (n,):
            raise ValueError("%s must have shape (%d,); got %s" % (name, n, sw.shape))
        if not np.isfinite(sw).all() or (sw < 0).any():
            raise ValueError("%s must be finite and >= 0" % name)
        return np.ascontiguousarray(sw, dtype=self.dtype)

    def _class_weights(self, class_weight, labels, Y, n):
        if not isinstance(class_weight, dict):
            raise TypeError("class_weight must be a dict {class: weight}; got %r" % (class_weight,))
        k = self.output_dim
        table = np.ones(max(k, 2), dtype=np.float64)
        for cls, w in class_weight.items():
            if isinstance(cls, bool) or not isinstance(cls, numbers.Integral) or not 0 <= cls < table.shape[0]:
                raise ValueError("class_weight: class %r is not an integer class index in [0, %d)"
                                 % (cls, table.shape[0]))
            if isinstance(w, bool) or not isinstance(w, numbers.Real) or not np.isfinite(w) or w < 0:
                raise ValueError("class_weight: weight of class %r must be a finite number >= 0; got %r"
                                 % (cls, w))
            table[cls] = float(w)
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
        then those of that moment).  Off, it costs nothing."""
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
        Xc = self._check_X(X)
        n = Xc.shape[0]
        labels, Y = self._check_y(y, n)
        sw = self._check_sample_weight(sample_weight, n)
        if class_weight is not None:
            cw = self._class_weights(class_weight, labels, Y, n)
            sw = np.ascontiguousarray(cw * (sw if sw.shape[0] else 1.0), dtype=self.dtype)
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
        task = self._task(labels, Y)
        for m in self.metrics:
            m_check = getattr(m, "check_task", None)
            if m_check is not None:
                m_check(task)

        # ---- all checks passed: from here on the model may change
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
        self.stop_training = False
        self.history = cbs.history
        batch_level = verbose == 1 or any(
            type(c).on_train_batch_end is not _callbacks.Callback.on_train_batch_end
            or type(c).on_batch_end is not _callbacks.Callback.on_batch_end
            for c in cbs.callbacks if not isinstance(c, _callbacks.ProgbarLogger))
        diag = np.zeros(defs.diag_size(self._ispec)) if diagnostics else None
        layer_names = [layer.name for layer in self._dense()]
        warned = set()
        cbs.on_train_begin({})
        chunk = 1 if batch_level else nb
        for epoch in range(initial_epoch, epochs):
            cbs.on_epoch_begin(epoch, {})
            if diag is not None:
                _diagnostics.reset(diag)
            perm = (self._shuffle_rng.permutation(n) if shuffle else np.arange(n)).astype(np.int64)
            key = np.uint64(self._dropout_rng.integers(0, 2 ** 64, dtype=np.uint64))
            first = 0
            while first < nb:
                cnt = min(chunk, nb - first)
                t_start = time.perf_counter()
                be.train_batches(Xc, Y, labels, sw, perm, batch_size, first, cnt, self._ispec, self._fspec,
                                 self._head, self.optimizer.code, self.optimizer.hyper(),
                                 self.optimizer.iterations, key, self._params, self._grads,
                                 self.optimizer.state, work, batch_loss[first:first + cnt], scores,
                                 get_num_threads(), diag=diag)
                if diag is not None:
                    if diag[defs.DG_STAGE] != defs.STAGE_NONE:
                        self.optimizer.iterations += int(diag[defs.DG_BATCH]) - first + 1
                    _diagnostics.check(diag, epoch, layer_names)
                self.optimizer.iterations += cnt
                first += cnt
                if batch_level:
                    elapsed = time.perf_counter() - t_start
                    per_batch = max(elapsed / cnt, 1e-7)
                    chunk = max(1, min(nb, int(_CHUNK_SECONDS / per_batch)))
                    done = float(sizes[:first].sum())
                    cbs.on_train_batch_end(first - 1, {
                        "batches_done": first, "batches_total": nb,
                        "loss": float((batch_loss[:first] * sizes[:first]).sum() / done)})
            logs = {"loss": float((batch_loss * sizes).sum() / n)}
            if want_scores:
                lab_e = labels[perm] if labels.shape[0] else labels
                Y_e = Y[perm] if Y.shape[0] else Y
                sw_e = sw[perm] if sw.shape[0] else None
                logs.update(self._metric_values(lab_e, Y_e, scores, task, sw_e))
            if val is not None:
                vlogs = self._evaluate_arrays(*val, batch_size=None, task=task)
                logs.update({"val_" + key_: v for key_, v in vlogs.items()})
            if diag is not None:
                _diagnostics.record(cbs.history, _diagnostics.epoch_record(
                    diag, self._ispec, self._params, layer_names,
                    self._head in (defs.HEAD_SOFTMAX_XENT, defs.HEAD_SIGMOID_BCE)), warned, epoch)
            cbs.on_epoch_end(epoch, logs)
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
        """Shuffled validation split drawn from the seed, stratified for class labels."""
        n_val = int(np.ceil(n * fraction))
        if n_val < 1 or n_val >= n:
            raise ValueError("validation_split=%r leaves %d training and %d validation samples of %d"
                             % (fraction, n - n_val, n_val, n))
        rng = self._split_rng
        task_labels = None
        if labels.shape[0]:
            task_labels = labels
        elif isinstance(self.loss, _losses.CategoricalCrossentropy) or (
                isinstance(self.loss, _losses.BinaryCrossentropy) and Y.shape[1] == 1):
            task_labels = np.argmax(Y, axis=1) if Y.shape[1] > 1 else (Y[:, 0] > 0.5).astype(np.int64)
        if task_labels is None:
            perm = rng.permutation(n)
            return np.sort(perm[n_val:]), np.sort(perm[:n_val])
        # stratified: each class contributes round(fraction * count), fixed up to n_val
        classes, inv = np.unique(task_labels, return_inverse=True)
        val_parts = []
        quotas = np.floor(np.bincount(inv) * fraction).astype(int)
        short = n_val - quotas.sum()
        order = rng.permutation(len(classes))
        for c in order[:max(short, 0)]:
            quotas[c] += 1
        for c in range(len(classes)):
            idx = np.flatnonzero(inv == c)
            val_parts.append(rng.permutation(idx)[:quotas[c]])
        val_idx = np.sort(np.concatenate(val_parts))
        mask = np.ones(n, dtype=bool)
        mask[val_idx] = False
        return np.flatnonzero(mask), val_idx

    def _workspace(self, batch_size):
        key = ("train", batch_size)
        if self._work_key != key:
            self._work = np.zeros(_api.workspace_size(self._ispec, self._fspec, batch_size), dtype=self.dtype)
            self._work_key = key
        return self._work

    def _metric_values(self, labels, Y, scores, task, sw):
        y_true = labels if labels.shape[0] else (Y[:, 0] if task == "binary" else Y)
        y_score = scores[:, 0] if task == "binary" else scores
        return {m.name: float(m(y_true, y_score, task, sample_weight=sw)) for m in self.metrics}

    # ------------------------------------------------------- predict/evaluate
    def _forward(self, X, ispec, batch_size):
        n = X.shape[0]
        k = int(ispec[-1, defs.I_OUT])
        out = np.empty((n, k), dtype=self.dtype)
        chunk = batch_size or _PREDICT_CHUNK
        rows = min(chunk, n)
        # the workspace size (a Python loop over the layers) is cached for the
        # last (ispec, rows): repeated small predicts skip it; the buffer itself
        # is fresh each call (a shared one would race between threads)
        cached = getattr(self, "_fwd_ws_cache", None)
        if cached is not None and cached[0] is ispec and cached[1] == rows:
            size = cached[2]
        else:
            size = _api.forward_workspace_size(ispec, rows)
            self._fwd_ws_cache = (ispec, rows, size)
        work = np.empty(size, dtype=self.dtype)
        fspec = self._fspec
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            self._backend.forward(X[start:stop], ispec, fspec, self._params, work, out[start:stop],
                                  get_num_threads())
        return out

    def predict(self, X, batch_size=None, verbose=0):
        """The last layer's activations (logits when the last layer is linear).
        Works before ``compile``; builds the model on first use."""
        if batch_size is not None:
            batch_size = self._int_arg("batch_size", batch_size, 1)
        Xc = self._check_X(X)
        if not self.built:
            self.build(Xc.shape[1])
        return self._forward(Xc, self._ispec, batch_size)

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

    def evaluate(self, X, y, batch_size=None, verbose=0, sample_weight=None, return_dict=True):
        """Loss (data loss + regularization penalty) and metrics on (X, y), as a dict."""
        self._require_compiled("evaluate")
        if batch_size is not None:
            batch_size = self._int_arg("batch_size", batch_size, 1)
        Xc = self._check_X(X)
        labels, Y = self._check_y(y, Xc.shape[0])
        sw = self._check_sample_weight(sample_weight, Xc.shape[0])
        if not self.built:
            self.build(Xc.shape[1])
        logs = self._evaluate_arrays(Xc, labels, Y, sw, batch_size, self._task(labels, Y))
        return logs if return_dict else [logs[k] for k in logs]

    def _evaluate_arrays(self, X, labels, Y, sw, batch_size, task):
        be, nt = self._backend, get_num_threads()
        n = X.shape[0]
        fused = self._head in (defs.HEAD_SOFTMAX_XENT, defs.HEAD_SIGMOID_BCE)
        ispec = self._ispec
        if fused:  # the heads take logits
            ispec = ispec.copy()
            ispec[-1, defs.I_ACT] = defs.ACT_LINEAR
        Z = self._forward(X, ispec, batch_size)
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
        if self._fspec[:, [defs.F_L1, defs.F_L2]].any():
            be.regularize(self._ispec, self._fspec, self._params, np.zeros_like(self._params), penalty, nt)
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
        fspec = self._fspec if training else self._fspec_no_dropout()
        work = np.zeros(_api.workspace_size(self._ispec, fspec, n), dtype=self.dtype)
        grads = np.zeros_like(self._params)
        state = np.zeros((defs.N_STATE, self._params.shape[0]), dtype=self.dtype)  # contract shape; unused
        loss = np.zeros(1)
        self._backend.train_batches(Xc, Y, labels, sw, np.arange(n, dtype=np.int64), n, 0, 1, self._ispec,
                                    fspec, self._head, defs.OPT_NONE, np.zeros(defs.NH), 0,
                                    np.uint64(dropout_key), self._params, grads, state, work, loss,
                                    np.empty((0, self.output_dim), dtype=self.dtype), get_num_threads())
        self._last_gradient_loss = float(loss[0])
        return self._unflatten(grads)

    def _fspec_no_dropout(self):
        f = self._fspec.copy()
        f[:, defs.F_DROP] = 0.0
        return f

    # ----------------------------------------------------------------- weights
    def _unflatten(self, buf):
        return [view.copy() for _, view in self._weight_views(buf)]

    def _weight_views(self, buf):
        """(name, view) of every weight array in get_weights() order: per weight
        layer its kernel, bias, then the slopes of the PReLU folded into it."""
        out = []
        for l, layer in enumerate(self._dense()):
            W, b = self._views(buf, self._ispec, l)
            out.append((layer.name + ".kernel", W))
            if b is not None:
                out.append((layer.name + ".bias", b))
            s = self._slopes(buf, self._ispec, l)
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
        array is checked before any is written."""
        self._require_built("set_weights")
        if not isinstance(weights, (list, tuple)):
            raise TypeError("set_weights expects a list of arrays; got %r" % (type(weights).__name__,))
        targets = self._weight_views(self._params)
        if len(weights) != len(targets):
            raise ValueError("set_weights expects %d arrays (%s); got %d"
                             % (len(targets), ", ".join(t[0] for t in targets), len(weights)))
        checked = []
        for (name, dst), src in zip(targets, weights):
            arr = np.asarray(src)
            if arr.shape != dst.shape:
                raise ValueError("set_weights: %s must have shape %s; got %s" % (name, dst.shape, arr.shape))
            if not np.issubdtype(arr.dtype, np.number):
                raise TypeError("set_weights: %s must be numeric; got dtype %s" % (name, arr.dtype))
            if not np.isfinite(arr).all():
                raise ValueError("set_weights: %s contains NaN or inf" % name)
            checked.append(arr)
        for (_, dst), arr in zip(targets, checked):
            dst[...] = arr

    def save_weights(self, filepath):
        """Write the weights to an .npz file (layer names as keys)."""
        self._require_built("save_weights")
        names = [name for name, _ in self._weight_views(self._params)]
        arrays = dict(zip(["%03d:%s" % (i, nm) for i, nm in enumerate(names)], self.get_weights()))
        with open(filepath, "wb") as f:
            np.savez(f, **arrays)

    def load_weights(self, filepath):
        """Read weights written by ``save_weights``."""
        self._require_built("load_weights")
        with np.load(filepath) as data:
            keys = sorted(data.files)
            self.set_weights([data[k] for k in keys])

    # ----------------------------------------------------------------- summary
    def summary(self, print_fn=None):
        """Print the layers, their output shapes and parameter counts."""
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
