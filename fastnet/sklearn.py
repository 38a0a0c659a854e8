"""scikit-learn estimators over fastnet: ``MLPClassifier`` and ``MLPRegressor``.

Drop-in replacements for ``sklearn.neural_network.MLPClassifier`` /
``MLPRegressor``: the same parameters, defaults, fitted attributes, warnings and
errors, so that changing the import is the whole migration::

    from fastnet.sklearn import MLPClassifier      # was: from sklearn.neural_network import ...
    clf = make_pipeline(StandardScaler(), MLPClassifier(random_state=0)).fit(X, y)

Training runs in fastnet's compiled kernels (one backend call per epoch); L-BFGS
is scipy's, on fastnet's compiled loss and gradient.  The definitions follow
scikit-learn's: the loss is the (sample-weighted) mean data loss plus
``alpha / 2 * sum(W**2) / n`` per batch, the log-loss sums over the outputs of a
multi-label problem, the squared error is halved, the initial weights are drawn
as scikit-learn draws them (Glorot uniform from ``random_state``).  Known
differences: the optimizers follow PyTorch's rules (Adam's epsilon sits outside
the bias correction; SGD's momentum buffer holds gradients, not steps, which
differs from scikit-learn only when the learning rate changes), and with sample
weights the per-batch normalisation uses the mean weight of the whole training
set (exact for full batches and L-BFGS).

Beyond scikit-learn's MLP, as keyword arguments whose defaults keep its
behaviour: ``dropout``, ``l1``, ``class_weight`` (classifier), ``loss``
(regressor: scikit-learn's ``"squared_error"`` and ``"poisson"``, plus
``"absolute_error"`` and ``"huber"``), early stopping on the validation score or
loss (``early_stopping_metric``) with a ``validation_loss_curve_``, ``backend``,
``n_threads`` and ``dtype``.  ``Perceptron`` and ``OneVsRest`` are fastnet's
classics as scikit-learn estimators.

scikit-learn (>= 1.6) and scipy are needed here only: ``import fastnet`` does not
import them.
"""
import contextlib
import numbers
import warnings

import numpy as np

try:
    import scipy.optimize
    from scipy.special import expit, log_expit, logsumexp, xlogy
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_random_state
    from sklearn.utils._param_validation import HasMethods, Interval, Options, StrOptions
    from sklearn.utils.class_weight import compute_class_weight
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import check_classification_targets, unique_labels
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data
except ImportError as exc:  # not installed, or a scikit-learn older than 1.6 (no validate_data)
    raise ModuleNotFoundError("fastnet.sklearn needs scikit-learn >= 1.6 and scipy (%s): "
                              "pip install 'fastnet-mlp[sklearn]'" % (exc,), name="sklearn") from exc

from . import _threads
from .callbacks import Callback
from .layers import Dense, Dropout
from .losses import BinaryCrossentropy, MeanAbsoluteError, MeanSquaredError, SparseCategoricalCrossentropy
from .model import Sequential
from .optimizers import SGD, Adam
from .regularizers import L1L2

__all__ = ["MLPClassifier", "MLPRegressor", "Perceptron", "OneVsRest"]

# scikit-learn's activation names -> fastnet's
_ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_BACKENDS = {"auto", "numpy", "numba", "cython"}


@contextlib.contextmanager
def _thread_limit(n_threads):
    """fastnet's thread count set to ``n_threads`` for the block (None: leave
    fastnet's default, read at call time, e.g. the limit a Dask worker sets)."""
    if n_threads is None:
        yield
        return
    previous = getattr(_threads, "_n_threads", None)
    _threads.set_num_threads(int(n_threads))
    try:
        yield
    finally:
        _threads.set_num_threads(previous)


class _EpochEnd(Callback):
    """Runs the estimator's end-of-epoch bookkeeping (loss curve, stopping rule,
    learning-rate schedule, early stopping) inside ``Sequential.fit``."""

    def __init__(self, estimator, run):
        super().__init__()
        self.estimator, self.run = estimator, run

    def on_epoch_end(self, epoch, logs=None):
        if self.estimator._end_epoch(self.run, float(logs["loss"])):
            self.model.stop_training = True


def _as_input(X, dtype):
    """C-contiguous, of the model's dtype and writeable: the numba kernels compile
    a second specialisation for read-only arrays (joblib's memmaps in workers)."""
    X = np.ascontiguousarray(X, dtype=dtype)
    return X if X.flags.writeable else X.copy()


def _dense(X):
    """Sparse input (accepted, as by scikit-learn's MLP) as a dense array: the
    kernels take dense rows; memory is n_samples x n_features."""
    return X.toarray() if hasattr(X, "toarray") else X


def _pack(arrays):
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])


def _unpack(x, like):
    out, pos = [], 0
    for a in like:
        out.append(x[pos:pos + a.size].reshape(a.shape))
        pos += a.size
    return out


class _BaseMLP(BaseEstimator):
    """Shared machinery; use MLPClassifier or MLPRegressor."""

    _parameter_constraints = {
        "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(_ACTIVATIONS))],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "power_t": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(numbers.Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left"), Options(numbers.Real, {np.inf})],
        "max_fun": [Interval(numbers.Integral, 1, None, closed="left")],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "l1": [Interval(numbers.Real, 0, None, closed="left")],
        "early_stopping_metric": [StrOptions({"score", "loss"})],
        "backend": [StrOptions(_BACKENDS)],
        "n_threads": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "dtype": [StrOptions({"float32", "float64"}), None],
    }

    def _store_params(self, params):
        """__init__ stores its arguments unchanged (scikit-learn's convention:
        they are validated by fit)."""
        for name, value in params.items():
            if name not in ("self", "__class__"):
                setattr(self, name, value)

    def _check_solver(self):
        if self.solver == "lbfgs":
            raise AttributeError("partial_fit is only available for stochastic optimizers. %s is not "
                                 "stochastic." % self.solver)
        return True

    # ------------------------------------------------------------ fitting
    def _check_hidden(self):
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        for s in sizes:
            if isinstance(s, (bool, np.bool_)) or not isinstance(s, numbers.Integral):
                raise ValueError("hidden_layer_sizes must be integers, got %s." % sizes)
        if any(s <= 0 for s in sizes):
            raise ValueError("hidden_layer_sizes must be > 0, got %s." % sizes)
        return [int(s) for s in sizes]

    def _fit(self, X, y, sample_weight=None, incremental=False, classes=None):
        self._validate_params()
        hidden = self._check_hidden()
        if self.solver == "lbfgs" and self.dropout > 0:
            raise ValueError("dropout=%r is not supported with solver='lbfgs': L-BFGS needs a deterministic "
                             "loss; use solver='adam' or 'sgd'" % (self.dropout,))
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        first = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        if not first:
            built = ([int(c.shape[1]) for c in self.coefs_[:-1]], self._fitted_activation)
            if built != (hidden, self.activation):
                raise ValueError("hidden_layer_sizes=%s, activation=%r differ from the fitted network's (%s, %r): "
                                 "warm_start and partial_fit continue training the same network; set "
                                 "warm_start=False (or clone the estimator) to fit a new one"
                                 % (hidden, self.activation, built[0], built[1]))
        X, target, fit_info = self._validate_input(X, y, incremental, first, classes)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        class_w = self._sample_class_weights(fit_info, incremental)
        weights = sample_weight if class_w is None else (
            class_w if sample_weight is None else sample_weight * class_w)
        if weights is not None and not weights.sum() > 0:
            raise ValueError("the sample weights (sample_weight x class_weight) sum to zero: nothing to fit")

        n_features = X.shape[1]
        n_outputs = fit_info["n_outputs"]
        rs = check_random_state(self.random_state)
        # drawn in scikit-learn's order: initial weights, validation split, (fastnet's seed)
        init = self._initial_weights(hidden, n_features, n_outputs, rs) if first else None
        val = None
        if self.early_stopping and self.solver != "lbfgs":
            X, target, weights, val = self._validation_split(X, target, weights, fit_info, rs)

        # ---- every check passed: from here on the estimator changes
        self._commit_input(fit_info)
        if first:
            dtype = self.dtype or ("float32" if X.dtype == np.float32 else "float64")
            self._initialize(n_outputs, hidden)
        else:
            self._sync_weights()
            dtype = self._model.dtype.name

        with _thread_limit(self.n_threads):
            if self.solver == "lbfgs":
                self._fit_lbfgs(X, target, weights, n_features, n_outputs, dtype, init, rs)
            else:
                self._fit_stochastic(X, target, weights, n_features, n_outputs, dtype, init, rs,
                                     incremental, val)
        if not all(np.isfinite(w).all() for w in self._model.get_weights()):
            raise ValueError("Solver produced non-finite parameter weights. The input data may contain large "
                             "values and need to be preprocessed.")
        return self

    def _initialize(self, n_outputs, hidden):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = n_outputs
        self.n_layers_ = len(hidden) + 2
        self.out_activation_ = self._out_activation()
        self._fitted_activation = self.activation
        self._best_weights = None
        if self.solver != "lbfgs":
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.validation_loss_curve_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
                self._best_validation_loss = np.inf
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.validation_loss_curve_ = None
                self.best_validation_score_ = None

    def _initial_weights(self, hidden, n_features, n_outputs, rs):
        """scikit-learn's initialisation: Glorot uniform for weights and biases
        (factor 2 for logistic units), drawn in its order from ``random_state``."""
        factor = 2.0 if self.activation == "logistic" else 6.0
        units = [n_features] + hidden + [n_outputs]
        out = []
        for fan_in, fan_out in zip(units[:-1], units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            out.append(rs.uniform(-bound, bound, (fan_in, fan_out)))
            out.append(rs.uniform(-bound, bound, fan_out))
        return out

    def _batch_size(self, n):
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
        return int(np.clip(self.batch_size, 1, n))

    def _fastnet_weights(self, weights, n):
        """Per-sample weights for fastnet (its batch loss is sum(w * loss) / n):
        scikit-learn's weighted mean, times the loss's scale; and the mean weight,
        which scales the penalty's normaliser as scikit-learn's sum of weights."""
        scale = self._loss_scale()
        if weights is None:
            return (None if scale == 1.0 else np.full(n, scale)), 1.0
        mean_w = float(weights.sum()) / n
        return weights * (scale / mean_w), mean_w

    def _regularizers(self, batch, mean_w):
        norm = batch * mean_w
        return float(self.l1) / norm, float(self.alpha) / (2.0 * norm)

    def _ensure_model(self, n_features, n_outputs, dtype, l1, l2, init, rs):
        """A fastnet model with these penalties: a new one from ``init`` on a
        first fit, else the current one, rebuilt (weights, optimizer state and
        random streams kept) when the penalties changed."""
        if init is not None:
            seed = int(rs.randint(np.iinfo(np.int32).max))
            self._batch_rng = None  # made from the model's seed when first needed (_batch_order)
            model = self._new_model(n_features, n_outputs, dtype, seed, l1, l2)
            model.set_weights(init)
            self._set_model(model, (l1, l2))
            return model
        if self._config != self._config_key(l1, l2):
            snap = self._snapshot()
            snap["penalties"] = (l1, l2)
            self._restore(snap)
        return self._model

    def _config_key(self, l1, l2):
        """What a built model fixes: penalties, dropout, the optimizer and its constants."""
        return (l1, l2, float(self.dropout), self.solver, float(self.momentum), bool(self.nesterovs_momentum),
                float(self.beta_1), float(self.beta_2), float(self.epsilon))

    def _new_model(self, n_features, n_outputs, dtype, seed, l1, l2):
        act = _ACTIVATIONS[self.activation]
        reg = L1L2(l1=l1, l2=l2) if (l1 or l2) else None
        layers = []
        for units in self._check_hidden():
            layers.append(Dense(units, act, kernel_regularizer=reg))
            if self.dropout > 0:
                layers.append(Dropout(float(self.dropout)))
        layers.append(Dense(n_outputs, None, kernel_regularizer=reg))
        model = Sequential(layers, backend=self.backend, seed=seed, dtype=dtype)
        if self.solver == "sgd":
            opt = SGD(lr=float(self.learning_rate_init), momentum=float(self.momentum),
                      nesterov=bool(self.nesterovs_momentum and self.momentum > 0))
        else:  # adam; L-BFGS uses only the model's loss and gradient
            opt = Adam(lr=float(self.learning_rate_init), betas=(float(self.beta_1), float(self.beta_2)),
                       eps=float(self.epsilon))
        model.compile(optimizer=opt, loss=self._fastnet_loss())
        model.build(n_features)
        return model

    def _set_model(self, model, penalties):
        self._model = model
        self._penalties = penalties
        self._config = self._config_key(*penalties)
        dense = [layer for layer in model.layers if isinstance(layer, Dense)]
        # views into the model's parameters: in-place edits of coefs_ reach predict
        self.coefs_ = [layer.kernel for layer in dense]
        self.intercepts_ = [layer.bias for layer in dense]

    def _weights_list(self):
        return [a for pair in zip(self.coefs_, self.intercepts_) for a in pair]

    def _sync_weights(self):
        """Copy coefs_ / intercepts_ into the model when they were replaced."""
        dense = [layer for layer in self._model.layers if isinstance(layer, Dense)]
        if all(c is d.kernel and b is d.bias for c, b, d in zip(self.coefs_, self.intercepts_, dense)) \
                and len(self.coefs_) == len(dense):
            return
        self._model.set_weights(self._weights_list())
        self._set_model(self._model, self._penalties)

    # -- state kept as plain arrays (pickling, rebuilding with new penalties)
    def _snapshot(self):
        m = self._model
        opt = m.optimizer
        return {
            "n_features": m.input_dim, "n_outputs": m.output_dim, "dtype": m.dtype.name, "seed": m.seed,
            "backend": m.backend_name, "penalties": self._penalties, "weights": m.get_weights(),
            "opt_state": None if opt.state is None else opt.state.copy(), "opt_iterations": opt.iterations,
            "lr": opt.learning_rate, "solver": "sgd" if isinstance(opt, SGD) else "adam",
            "rng": {name: getattr(m, name).bit_generator.state
                    for name in ("_shuffle_rng", "_split_rng", "_dropout_rng") if hasattr(m, name)},
        }

    def _restore(self, snap):
        l1, l2 = snap["penalties"]
        model = self._new_model(snap["n_features"], snap["n_outputs"], snap["dtype"], snap["seed"], l1, l2)
        model.set_weights(snap["weights"])
        opt = model.optimizer
        if snap["opt_state"] is not None and snap.get("solver", self.solver) == self.solver:
            opt.state[...] = snap["opt_state"]
            opt.iterations = snap["opt_iterations"]
            opt.learning_rate = snap["lr"]
        for name, state in snap["rng"].items():
            getattr(model, name).bit_generator.state = state
        self._set_model(model, (l1, l2))

    def __getstate__(self):
        state = super().__getstate__()
        if "_model" in state:
            self._sync_weights()
            state = dict(state)
            snap = self._snapshot()
            snap["backend"] = self.backend  # resolved again where it is unpickled
            for key in ("_model", "coefs_", "intercepts_"):
                state.pop(key)
            state["_model_snapshot"] = snap
        return state

    def __setstate__(self, state):
        state = dict(state)
        snap = state.pop("_model_snapshot", None)
        super().__setstate__(state)
        if snap is not None:
            self._restore(snap)

    # -- stochastic solvers
    def _validation_split(self, X, target, weights, info, rs):
        arrays = [X, target, info["y"]] + ([] if weights is None else [weights])
        parts = train_test_split(*arrays, random_state=rs, test_size=self.validation_fraction,
                                 stratify=info["stratify"])
        X, X_val, target, target_val, _, y_val = parts[:6]
        weights, w_val = parts[6:8] if weights is not None else (None, None)
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size "
                             "of your dataset.")
        return X, target, weights, {"X_val": X_val, "y_val": y_val, "w_val": w_val, "target_val": target_val}

    def _fit_stochastic(self, X, target, weights, n_features, n_outputs, dtype, init, rs, incremental, val):
        n = X.shape[0]
        batch = self._batch_size(n)
        fsw, mean_w = self._fastnet_weights(weights, n)
        l1, l2 = self._regularizers(batch, mean_w)
        model = self._ensure_model(n_features, n_outputs, dtype, l1, l2, init, rs)
        if not incremental and init is None:  # warm start: a fresh optimizer, as scikit-learn
            model.optimizer.reset()
            model.optimizer.learning_rate = float(self.learning_rate_init)
        elif init is not None:
            model.optimizer.learning_rate = float(self.learning_rate_init)
        run = {"n": n, "incremental": incremental, "stopped": False, "model": model}
        if val is not None:
            run.update(val, X_val=_as_input(val["X_val"], model.dtype))
        self.n_iter_ = 0
        Xc = _as_input(X, model.dtype)
        epochs = 1 if incremental else int(self.max_iter)
        try:
            if self._custom_loss():
                self._fit_batch_by_batch(model, Xc, target, fsw, batch, run, epochs)
            else:
                model.fit(Xc, target, epochs=epochs, batch_size=batch, shuffle=bool(self.shuffle), verbose=0,
                          callbacks=[_EpochEnd(self, run)], sample_weight=fsw)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        if not incremental and not run["stopped"] and self.n_iter_ == self.max_iter:
            warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the optimization hasn't "
                          "converged yet." % self.max_iter, ConvergenceWarning)
        if self.early_stopping and self._best_weights is not None:
            model.set_weights(self._best_weights)

    def _fit_batch_by_batch(self, model, Xc, target, fsw, batch, run, epochs):
        """Losses without a kernel head (huber, poisson): per batch, the outputs
        z, then one training step on the squared-error head with the target
        z - g * k / 2, whose gradient at z is g, the loss's own gradient."""
        n = Xc.shape[0]
        for _ in range(epochs):
            order = self._batch_order(n)
            total = 0.0
            for start in range(0, n, batch):
                idx = order[start:start + batch]
                Xb, Tb = Xc[idx], target[idx]
                wb = None if fsw is None else fsw[idx]
                Zb = model.predict(Xb)
                penalty = self._penalty()
                model.fit(Xb, self._pseudo_target(Zb, Tb, model.dtype), epochs=1, batch_size=len(idx),
                          shuffle=False, verbose=0, sample_weight=wb)
                per = self._per_sample_loss(Zb, Tb)
                total += float((per if wb is None else per * wb).sum()) + penalty * len(idx)
            if self._end_epoch(run, total / n):
                break

    def _batch_order(self, n):
        """The epoch's row order of the batch-by-batch losses, from a stream of
        the model's seed (seeding it costs as much as a small epoch: not made
        for the losses that train in the kernels)."""
        if not self.shuffle:
            return np.arange(n)
        if getattr(self, "_batch_rng", None) is None:
            self._batch_rng = np.random.RandomState(self._model.seed)
        return self._batch_rng.permutation(n)

    def _pseudo_target(self, Z, T, dtype):
        k = Z.shape[1]
        return (np.asarray(Z, dtype=np.float64) - self._loss_gradient(Z, T) * (k / 2.0)).astype(dtype)

    def _penalty(self):
        l1, l2 = self._penalties
        return float(sum(l1 * np.abs(W).sum(dtype=np.float64) + l2 * np.square(W, dtype=np.float64).sum()
                         for W in self.coefs_))

    def _data_loss(self, Z, target, w):
        return float(np.average(self._per_sample_loss(Z, target), weights=w))

    def _custom_loss(self):
        return False

    def _end_epoch(self, run, loss):
        """scikit-learn's end-of-epoch rules; True stops training."""
        model = run["model"]
        self.n_iter_ += 1
        self.loss_ = loss
        self.t_ += run["n"]
        self.loss_curve_.append(loss)
        if self.verbose:
            print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
        if "X_val" in run:
            Z = model.predict(run["X_val"])
            score = self._score_outputs(Z, run["y_val"], run["w_val"])
            val_loss = self._data_loss(Z, run["target_val"], run["w_val"])
            self.validation_scores_.append(score)
            self.validation_loss_curve_.append(val_loss)
            if self.verbose:
                print("Validation score: %f" % score)
            if self.early_stopping_metric == "score":
                worse, better = score < self.best_validation_score_ + self.tol, score > self.best_validation_score_
            else:
                worse = val_loss > self._best_validation_loss - self.tol
                better = val_loss < self._best_validation_loss
            self._no_improvement_count = self._no_improvement_count + 1 if worse else 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
            if better:
                self._best_validation_loss = min(val_loss, self._best_validation_loss)
                self._best_weights = model.get_weights()
        else:
            self._no_improvement_count = self._no_improvement_count + 1 if loss > self.best_loss_ - self.tol else 0
            self.best_loss_ = min(self.best_loss_, loss)
        opt = model.optimizer
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            opt.learning_rate = float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t
        if self._no_improvement_count > self.n_iter_no_change:
            what = "Validation %s" % self.early_stopping_metric if self.early_stopping else "Training loss"
            msg = "%s did not improve more than tol=%f for %d consecutive epochs." % (
                what, self.tol, self.n_iter_no_change)
            if self.solver == "sgd" and self.learning_rate == "adaptive" and opt.learning_rate > 1e-6:
                opt.learning_rate = opt.learning_rate / 5.0
                self._no_improvement_count = 0
                if self.verbose:
                    print(msg + " Setting learning rate to %f" % opt.learning_rate)
            else:
                if self.verbose:
                    print(msg + (" Learning rate too small. Stopping." if self.solver == "sgd"
                                 and self.learning_rate == "adaptive" else " Stopping."))
                run["stopped"] = True
                return True
        return False

    # -- L-BFGS
    def _fit_lbfgs(self, X, target, weights, n_features, n_outputs, dtype, init, rs):
        n = X.shape[0]
        fsw, mean_w = self._fastnet_weights(weights, n)
        l1, l2 = self._regularizers(n, mean_w)
        model = self._ensure_model(n_features, n_outputs, dtype, l1, l2, init, rs)
        Xc = _as_input(X, model.dtype)
        like = model.get_weights()

        def loss_grad(x):
            try:
                model.set_weights([a.astype(model.dtype) for a in _unpack(x, like)])
            except ValueError:  # the line search tried a non-finite point
                return np.inf, np.zeros_like(x)
            if self._custom_loss():
                Z = model.predict(Xc)
                grads = model.gradients(Xc, self._pseudo_target(Z, target, model.dtype), sample_weight=fsw)
                return self._data_loss(Z, target, fsw) + self._penalty(), _pack(grads)
            grads = model.gradients(Xc, target, sample_weight=fsw)
            loss = getattr(model, "_last_gradient_loss", None)
            if loss is None:
                loss = model.evaluate(Xc, target, sample_weight=fsw, return_dict=True)["loss"]
            return float(loss), _pack(grads)

        iteration = [0]

        def report(intermediate_result):
            iteration[0] += 1
            if self.verbose:
                print("Iteration %d, loss = %.8f" % (iteration[0], intermediate_result.fun))

        res = scipy.optimize.minimize(loss_grad, _pack(like), method="L-BFGS-B", jac=True,
                                      callback=report if self.verbose else None,
                                      options={"maxfun": int(self.max_fun), "maxiter": int(self.max_iter),
                                               "gtol": float(self.tol)})
        self.n_iter_ = min(int(res.nit), int(self.max_iter))
        if res.status != 0:
            warnings.warn("lbfgs failed to converge after %d iteration(s) (status=%d):\n%s\n\nIncrease the number "
                          "of iterations to improve the convergence (max_iter=%d).\nYou might also want to scale "
                          "the data as shown in:\n    https://scikit-learn.org/stable/modules/preprocessing.html"
                          % (self.n_iter_, res.status, res.message, self.max_iter), ConvergenceWarning)
        self.loss_ = float(res.fun)
        model.set_weights([a.astype(model.dtype) for a in _unpack(res.x, like)])

    # ---------------------------------------------------------- prediction
    def _outputs(self, X):
        """The output layer's pre-activations (logits) for validated X."""
        check_is_fitted(self)
        X = _dense(validate_data(self, X, accept_sparse=True, dtype=(np.float64, np.float32), reset=False))
        self._sync_weights()
        with _thread_limit(self.n_threads):
            return self._model.predict(_as_input(X, self._model.dtype))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.input_tags.sparse = True
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier trained by fastnet: the parameters,
    defaults and attributes of ``sklearn.neural_network.MLPClassifier``.

    Extra keyword arguments (defaults keep scikit-learn's behaviour):
    ``dropout`` (rate after every hidden layer, in [0, 1)), ``l1`` (L1 penalty,
    normalised like ``alpha``: ``l1 * sum|W| / n`` per batch), ``class_weight``
    (dict ``{label: weight}``, ``"balanced"`` or None), ``early_stopping_metric``
    (``"score"``: validation accuracy as scikit-learn, or ``"loss"``: the
    validation log-loss), ``backend`` (``"auto"``, ``"numba"``, ``"cython"``,
    ``"numpy"``), ``n_threads`` (None: fastnet's default when ``fit`` runs,
    which follows the limits a Dask or joblib worker sets), ``dtype``
    (None: float32 for float32 input, else float64, as scikit-learn).

    Extra attribute: ``validation_loss_curve_`` (per epoch with
    ``early_stopping=True``, else None).
    """

    _parameter_constraints = {**_BaseMLP._parameter_constraints,
                              "class_weight": [dict, StrOptions({"balanced"}), None]}

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dropout=0.0, l1=0.0, class_weight=None,
                 early_stopping_metric="score", backend="auto", n_threads=None, dtype=None):
        self._store_params(locals())

    def fit(self, X, y, sample_weight=None):
        """Fit the model to X and y (class labels; a label-indicator matrix for
        multi-label).  Returns self."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y).  ``classes`` (all the labels) is required on
        the first call and must not change afterwards."""
        if not hasattr(self, "classes_") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if classes is not None and hasattr(self, "classes_") and \
                not np.array_equal(self.classes_, unique_labels(classes)):
            raise ValueError("`classes=%r` is not the same as on last call to partial_fit, was: %r"
                             % (classes, self.classes_))
        return self._fit(X, y, sample_weight=sample_weight, incremental=True, classes=classes)

    # -- targets
    def _validate_input(self, X, y, incremental, first, classes):
        X, y = validate_data(self, X, y, accept_sparse=True, multi_output=True,
                             dtype=(np.float64, np.float32), reset=first)
        X = _dense(X)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if first:
            lb = LabelBinarizer()
            lb.fit(unique_labels(classes) if (incremental and classes is not None) else y)
        else:
            lb = self._label_binarizer
            new = unique_labels(y)
            if self.warm_start and not incremental:
                if set(new) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same classes as in the "
                                     "previous call to fit. Previously got %s, `y` has %s" % (self.classes_, new))
            elif len(np.setdiff1d(new, self.classes_, assume_unique=True)):
                raise ValueError("`y` has classes not in `self.classes_`. `self.classes_` has %s. 'y' has %s."
                                 % (self.classes_, new))
        if incremental and first and len(np.setdiff1d(unique_labels(y), lb.classes_)):
            raise ValueError("`y` has classes not in `classes`: %s" % np.setdiff1d(unique_labels(y), lb.classes_))
        if first and not incremental and lb.y_type_ == "multiclass":
            # the class indices without the (n, n_classes) indicator matrix: lb was fitted on y itself
            target = np.searchsorted(lb.classes_, y).astype(np.int64, copy=False)
            n_outputs, stratify = len(lb.classes_), None
        else:
            Yb = lb.transform(y)
            if lb.y_type_ == "multiclass":
                target = np.argmax(Yb, axis=1).astype(np.int64)
            else:
                target = np.array(Yb, dtype=X.dtype)
            n_outputs = Yb.shape[1]
            stratify = Yb if Yb.shape[1] == 1 else None  # as scikit-learn: binary problems only
        info = {"lb": lb, "y": y, "n_outputs": n_outputs, "stratify": stratify}
        return X, target, info

    def _commit_input(self, info):
        self._label_binarizer = info["lb"]
        self.classes_ = info["lb"].classes_

    def _sample_class_weights(self, info, incremental):
        if self.class_weight is None:
            return None
        if info["lb"].y_type_ == "multilabel-indicator":
            raise ValueError("class_weight is not supported for multi-label targets")
        if incremental and self.class_weight == "balanced":
            raise ValueError("class_weight 'balanced' is not supported for partial_fit: the class frequencies "
                             "of the whole data are unknown; pass a dict {label: weight} instead")
        classes = info["lb"].classes_
        table = compute_class_weight(self.class_weight, classes=classes, y=info["y"])
        return table[np.searchsorted(classes, info["y"])]

    def _out_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _fastnet_loss(self):
        if self._label_binarizer.y_type_ == "multiclass":
            return SparseCategoricalCrossentropy(from_logits=True)
        return BinaryCrossentropy(from_logits=True)

    def _loss_scale(self):
        # fastnet's binary cross-entropy is a mean over the outputs, scikit-learn's a sum
        return float(len(self.classes_)) if self._label_binarizer.y_type_ == "multilabel-indicator" else 1.0

    def _per_sample_loss(self, Z, target):
        Z = np.asarray(Z, dtype=np.float64)
        if self._label_binarizer.y_type_ == "multiclass":
            return logsumexp(Z, axis=1) - Z[np.arange(Z.shape[0]), target]
        T = np.asarray(target, dtype=np.float64)
        return -(T * log_expit(Z) + (1 - T) * log_expit(-Z)).sum(axis=1)

    def _proba(self, Z):
        Z = np.asarray(Z, dtype=np.float64)
        if self._label_binarizer.y_type_ == "multiclass":
            return np.exp(Z - logsumexp(Z, axis=1, keepdims=True))
        return expit(Z)

    def _labels(self, P):
        if self.n_outputs_ == 1:
            P = P.ravel()
        return self._label_binarizer.inverse_transform(P)

    def _score_outputs(self, Z, y, w):
        return accuracy_score(y, self._labels(self._proba(Z)), sample_weight=w)

    # -- prediction
    def predict(self, X):
        """Class labels (a label-indicator matrix for multi-label)."""
        return self._labels(self._proba(self._outputs(X)))

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes); for multi-label,
        the probability of each label."""
        Z = self._outputs(X)
        P = self._proba(Z)
        if self.n_outputs_ == 1:
            P = np.hstack([1.0 - P, P])
        return P.astype(Z.dtype, copy=False)

    def predict_log_proba(self, X):
        """Logarithm of ``predict_proba``, computed from the logits (finite where
        the probability underflows)."""
        Z = self._outputs(X)
        Zd = np.asarray(Z, dtype=np.float64)
        if self._label_binarizer.y_type_ == "multiclass":
            L = Zd - logsumexp(Zd, axis=1, keepdims=True)
        elif self.n_outputs_ == 1:
            L = np.hstack([log_expit(-Zd), log_expit(Zd)])
        else:
            L = log_expit(Zd)
        return L.astype(Z.dtype, copy=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor trained by fastnet: the parameters,
    defaults and attributes of ``sklearn.neural_network.MLPRegressor``.

    ``loss``: ``"squared_error"`` (scikit-learn's, halved mean squared error),
    ``"poisson"`` (scikit-learn's half Poisson deviance with a log link:
    ``predict`` is ``exp`` of the output layer), and beyond scikit-learn
    ``"absolute_error"`` (mean absolute error) and ``"huber"`` (quadratic within
    ``huber_delta`` of the target, linear outside; mean over the outputs).  The
    squared and absolute errors train in fastnet's fused kernels; huber and
    poisson have no kernel head yet and take one backend call per batch.  The
    other extra keyword arguments are those of :class:`MLPClassifier` (without
    ``class_weight``); ``early_stopping_metric="score"`` uses the validation R^2.
    """

    _parameter_constraints = {**_BaseMLP._parameter_constraints,
                              "loss": [StrOptions({"squared_error", "absolute_error", "huber", "poisson"})],
                              "huber_delta": [Interval(numbers.Real, 0, None, closed="neither")]}

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dropout=0.0, l1=0.0,
                 early_stopping_metric="score", backend="auto", n_threads=None, dtype=None, huber_delta=1.0):
        self._store_params(locals())

    def fit(self, X, y, sample_weight=None):
        """Fit the model to X and y (shape (n,) or (n, n_outputs)).  Returns self."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y)."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def _validate_input(self, X, y, incremental, first, classes):
        X, y = validate_data(self, X, y, accept_sparse=True, multi_output=True, y_numeric=True,
                             dtype=(np.float64, np.float32), reset=first)
        X = _dense(X)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        if self.loss == "poisson" and (y < 0).any():
            raise ValueError("Some value(s) of y are negative which is not allowed for Poisson regression.")
        if self._custom_loss() and self.dropout > 0:
            raise ValueError("dropout is not supported with loss=%r (its training step needs the outputs of "
                             "the same forward pass)" % (self.loss,))
        if not first and n_outputs != self.n_outputs_:
            raise ValueError("y has %d outputs but this MLPRegressor was fitted with %d"
                             % (n_outputs, self.n_outputs_))
        target = np.array(y, dtype=X.dtype)  # a writeable copy (see _as_input)
        return X, target, {"y": y, "n_outputs": n_outputs, "stratify": None}

    def _commit_input(self, info):
        pass

    def _sample_class_weights(self, info, incremental):
        return None

    def _out_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _custom_loss(self):
        return self.loss in ("huber", "poisson")

    def _fastnet_loss(self):
        # huber and poisson train through the squared-error head (see _fit_batch_by_batch)
        return MeanAbsoluteError() if self.loss == "absolute_error" else MeanSquaredError()

    def _loss_scale(self):
        return 0.5 if self.loss == "squared_error" else 1.0

    def _per_sample_loss(self, Z, target):
        Z = np.asarray(Z, dtype=np.float64)
        T = np.asarray(target, dtype=np.float64).reshape(Z.shape)
        if self.loss == "poisson":  # scikit-learn's half Poisson deviance, summed over the outputs
            mu = np.exp(Z)
            return (xlogy(T, T / mu) - T + mu).sum(axis=1)
        D = Z - T
        if self.loss == "squared_error":
            return 0.5 * (D ** 2).mean(axis=1)
        if self.loss == "absolute_error":
            return np.abs(D).mean(axis=1)
        d = float(self.huber_delta)
        A = np.abs(D)
        return np.where(A <= d, 0.5 * D ** 2, d * (A - 0.5 * d)).mean(axis=1)

    def _loss_gradient(self, Z, target):
        """d(per-sample loss)/dZ of the losses without a kernel head."""
        Z = np.asarray(Z, dtype=np.float64)
        T = np.asarray(target, dtype=np.float64).reshape(Z.shape)
        if self.loss == "poisson":
            return np.exp(Z) - T
        return np.clip(Z - T, -float(self.huber_delta), float(self.huber_delta)) / Z.shape[1]

    def _score_outputs(self, Z, y, w):
        Z = np.exp(np.asarray(Z, dtype=np.float64)) if self.loss == "poisson" else Z
        pred = Z.ravel() if Z.shape[1] == 1 else Z
        if not np.isfinite(pred).all():
            return np.nan
        return r2_score(y, pred, sample_weight=w)

    def predict(self, X):
        """Predicted values, shape (n,) for one output, else (n, n_outputs)
        (``exp`` of the outputs for ``loss="poisson"``)."""
        Z = self._outputs(X)
        if self.loss == "poisson":
            Z = np.exp(Z)
        return Z.ravel() if Z.shape[1] == 1 else Z


def _two_or_more_classes(est, X, y):
    X, y = validate_data(est, X, y, dtype=np.float64)
    check_classification_targets(y)
    classes = unique_labels(y)
    if len(classes) < 2:
        raise ValueError("%s needs samples of at least 2 classes in the data; got 1 class: %r"
                         % (type(est).__name__, classes[0]))
    return X, y, classes


class Perceptron(ClassifierMixin, BaseEstimator):
    """``fastnet.Perceptron`` (Rosenblatt's rule as in Raschka's *Python Machine
    Learning*) as a scikit-learn classifier: parameters validated by ``fit``,
    any labels, several classes one-vs-rest (one perceptron per class, each
    trained exactly as ``fastnet.Perceptron`` on that class = +1, the rest = -1).

    Attributes: ``classes_``, ``coef_`` (n_features,) for two classes, else
    (n_classes, n_features); ``intercept_`` (scalar / (n_classes,));
    ``errors_`` (misclassifications per epoch; per class for several classes);
    ``w_`` (bias first, as ``fastnet.Perceptron``; two classes only).
    """

    _parameter_constraints = {
        "eta": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "random_state": [Interval(numbers.Integral, 0, 2 ** 32 - 1, closed="both"), None],
        "shuffle": ["boolean"],
    }

    def __init__(self, eta=0.01, n_iter=50, random_state=1, shuffle=False):
        self.eta = eta
        self.n_iter = n_iter
        self.random_state = random_state
        self.shuffle = shuffle

    def _binary(self, X, targets):
        from .perceptron import Perceptron as _Rosenblatt
        return _Rosenblatt(eta=float(self.eta), n_iter=int(self.n_iter), random_state=self.random_state,
                           shuffle=bool(self.shuffle)).fit(X, targets)

    def fit(self, X, y):
        """Fit one perceptron (two classes) or one per class; returns self."""
        self._validate_params()
        X, y, classes = _two_or_more_classes(self, X, y)
        if len(classes) == 2:
            p = self._binary(X, np.where(y == classes[1], 1, -1))
            self.w_ = p.w_
            self.coef_, self.intercept_, self.errors_ = p.w_[1:], p.w_[0], p.errors_
        else:
            fits = [self._binary(X, np.where(y == c, 1, -1)) for c in classes]
            self.coef_ = np.array([p.w_[1:] for p in fits])
            self.intercept_ = np.array([p.w_[0] for p in fits])
            self.errors_ = [p.errors_ for p in fits]
        self.classes_ = classes
        return self

    def decision_function(self, X):
        """The net input ``X @ coef_.T + intercept_``: (n,) for two classes, else
        (n, n_classes)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return X @ self.coef_.T + self.intercept_

    def predict(self, X):
        """``classes_[1]`` where the net input is >= 0 (two classes, as
        ``fastnet.Perceptron``), else the class of the largest net input."""
        s = self.decision_function(X)
        if s.ndim == 1:
            return self.classes_[(s >= 0.0).astype(np.intp)]
        return self.classes_[np.argmax(s, axis=1)]


class OneVsRest(ClassifierMixin, BaseEstimator):
    """``fastnet.OneVsRest`` as a scikit-learn meta-estimator: one clone of
    ``estimator`` per class, fitted with labels +1 (that class) / -1 (the
    rest); ``predict`` takes the class whose estimator gives the largest
    ``decision_function`` (or ``net_input``) score, ties to the first class.
    One estimator per class is fitted even for two classes (as
    ``fastnet.OneVsRest``).

    ``estimator=None`` means ``fastnet.sklearn.Perceptron()``.
    """

    _parameter_constraints = {"estimator": [HasMethods(["fit"]), None]}

    def __init__(self, estimator=None):
        self.estimator = estimator

    def fit(self, X, y):
        """Fit one binary estimator per class; returns self."""
        self._validate_params()
        base = Perceptron() if self.estimator is None else self.estimator
        if not hasattr(base, "fit") or not (hasattr(base, "decision_function") or hasattr(base, "net_input")):
            raise TypeError("estimator must have fit(X, y) and decision_function(X) or net_input(X); got %r"
                            % (base,))
        X, y, classes = _two_or_more_classes(self, X, y)
        from sklearn.base import clone
        self.estimators_ = [clone(base).fit(X, np.where(y == c, 1, -1)) for c in classes]
        self.classes_ = classes
        return self

    def decision_function(self, X):
        """The per-class estimators' scores, shape (n_samples, n_classes); for two
        classes scikit-learn's convention, (n_samples,): the second class's score
        minus the first's (> 0 where ``predict`` gives ``classes_[1]``)."""
        scores = self._scores(X)
        return scores[:, 1] - scores[:, 0] if scores.shape[1] == 2 else scores

    def _scores(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        cols = []
        for est in self.estimators_:
            fn = getattr(est, "decision_function", None) or est.net_input
            cols.append(np.asarray(fn(X), dtype=np.float64).reshape(X.shape[0]))
        return np.column_stack(cols)

    def predict(self, X):
        """``classes_[argmax(scores)]`` over the per-class estimators' scores."""
        scores = self._scores(X)
        return self.classes_[np.argmax(scores, axis=1)]
