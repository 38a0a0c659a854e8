"""Training callbacks for ``fastnet`` (Keras 3 style).

A callback is an object whose hooks ``fit`` calls at fixed points of training:

* ``on_train_begin(logs)``
* per epoch: ``on_epoch_begin(epoch, logs)``, the batch hooks, and
  ``on_epoch_end(epoch, logs)`` with the epoch's ``loss``/metrics and
  ``val_*`` values;
* ``on_train_end(logs)`` (not when an exception such as ``KeyboardInterrupt``
  leaves ``fit``, as in Keras).

Batch hooks: when any callback implements them (overrides
``on_train_batch_begin``, ``on_train_batch_end``, ``on_batch_begin`` or
``on_batch_end``; see ``Callback._implements_train_batch_hooks``), ``fit`` runs
one batch per compiled call and calls ``on_train_batch_begin(batch, {})`` and
``on_train_batch_end(batch, logs)`` for every batch, ``batch`` 0-based within
the epoch, ``logs = {"batches_done", "batches_total", "loss"}`` (``loss`` the
mean over the epoch's samples so far).  Otherwise ``fit`` runs chunks of
batches (about 0.1 s each) and calls only ``on_train_batch_end`` once per
chunk (``batch`` its last batch): the built-in progress bar and TerminateOnNaN
need no more.  ``model.stop_training`` is checked after every batch hook call,
so setting it there stops after that batch (or chunk); ``on_epoch_end`` still
runs for the partial epoch.

Epochs are 0-based in the calls (as in Keras); messages and file names show
them 1-based.

The only model interface the callbacks here rely on is ``model.stop_training``,
``model.get_weights()``, ``model.set_weights(weights)``,
``model.save_weights(path)`` (``model.save(path)`` when it exists and a full
save was asked for) and ``model.optimizer.learning_rate`` (readable and
settable float).
"""

import collections.abc
import csv
import io
import math
import numbers
import os
import sys
import time
import warnings

import numpy as np

from . import _io

__all__ = [
    "Callback",
    "CallbackList",
    "History",
    "ProgbarLogger",
    "EarlyStopping",
    "ModelCheckpoint",
    "TerminateOnNaN",
    "LearningRateScheduler",
    "ReduceLROnPlateau",
    "CSVLogger",
    "configure_callbacks",
]


def _print_msg(message):
    """Print a callback message to the *current* ``sys.stdout``."""
    stream = sys.stdout
    stream.write(message + "\n")
    try:
        stream.flush()
    except (AttributeError, ValueError):  # pragma: no cover - exotic streams
        pass


# Substrings that make ``mode="auto"`` pick "max" (higher is better).
_MAX_MODE_KEYWORDS = ("acc", "auc", "precision", "recall", "f1", "specificity", "r2")


def _resolve_mode(mode, monitor, owner):
    """Return "min" or "max" for ``mode`` in {"auto", "min", "max"}.

    Unknown modes fall back to "auto" with a warning (as Keras).  In "auto"
    mode the direction is "max" when the monitored name contains one of
    ``_MAX_MODE_KEYWORDS`` and "min" otherwise.
    """
    if mode not in ("auto", "min", "max"):
        warnings.warn(
            f"{owner} mode {mode!r} is unknown, fallback to auto mode.",
            stacklevel=3,
        )
        mode = "auto"
    if mode == "auto":
        name = str(monitor).lower()
        mode = "max" if any(k in name for k in _MAX_MODE_KEYWORDS) else "min"
    return mode


_BATCH_HOOKS = ("on_batch_begin", "on_batch_end", "on_train_batch_begin", "on_train_batch_end")


def _overrides_batch_hooks(callback, base):
    """Whether ``type(callback)`` overrides a training batch hook of ``base``."""
    cls = type(callback)
    return any(getattr(cls, name, None) is not getattr(base, name) for name in _BATCH_HOOKS)


def _less(a, b):
    return a < b


def _greater(a, b):
    return a > b


# ---------------------------------------------------------------------------
# Base class and container
# ---------------------------------------------------------------------------


class Callback:
    """Base class for callbacks.

    Subclass and override the hooks you need.  ``self.model`` is the model
    being trained and ``self.params`` the training parameters
    (``{"epochs", "steps", "verbose", "samples"}``), both set by ``fit``
    through :func:`configure_callbacks` before ``on_train_begin``.
    """

    def __init__(self):
        self.params = None
        self.model = None

    def set_params(self, params):
        self.params = params

    def set_model(self, model):
        self.model = model

    def _implements_train_batch_hooks(self):
        """Whether ``fit`` must call the batch hooks for every batch (as Keras:
        true when the class overrides one of them).  A built-in callback that
        is content with one call per chunk of batches returns False."""
        return _overrides_batch_hooks(self, Callback)

    # Backwards-compatibility aliases (as Keras): the default train-batch
    # hooks forward to these.
    def on_batch_begin(self, batch, logs=None):
        """Alias of ``on_train_batch_begin`` kept for compatibility."""

    def on_batch_end(self, batch, logs=None):
        """Alias of ``on_train_batch_end`` kept for compatibility."""

    def on_epoch_begin(self, epoch, logs=None):
        """Called at the start of epoch ``epoch`` (0-based)."""

    def on_epoch_end(self, epoch, logs=None):
        """Called at the end of epoch ``epoch`` with the epoch's logs."""

    def on_train_batch_begin(self, batch, logs=None):
        """Called before each training batch when a callback implements the
        batch hooks (module docstring)."""
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        """Called with progress logs after each batch, or after each chunk of
        batches when no callback implements the batch hooks."""
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        """Called before an evaluation batch."""

    def on_test_batch_end(self, batch, logs=None):
        """Called after an evaluation batch."""

    def on_predict_batch_begin(self, batch, logs=None):
        """Called before a prediction batch."""

    def on_predict_batch_end(self, batch, logs=None):
        """Called after a prediction batch."""

    def on_train_begin(self, logs=None):
        """Called once at the start of training."""

    def on_train_end(self, logs=None):
        """Called once at the end of training (epoch limit or stop_training;
        not when an exception leaves ``fit``)."""

    def on_test_begin(self, logs=None):
        """Called at the start of evaluation."""

    def on_test_end(self, logs=None):
        """Called at the end of evaluation."""

    def on_predict_begin(self, logs=None):
        """Called at the start of prediction."""

    def on_predict_end(self, logs=None):
        """Called at the end of prediction."""


class History(Callback):
    """Records the epoch-end logs of a training run.

    ``history.history`` maps each log key to the list of its per-epoch values
    and ``history.epoch`` lists the (0-based) epochs seen.  ``fit`` returns
    this object.  With ``fit(..., diagnostics=True)``, ``history.diagnostics``
    maps each weight layer's name to its per-epoch diagnostics (see
    ``fastnet.diagnostics``); otherwise it is empty.
    """

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []
        self.diagnostics = {}

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)


class CallbackList(Callback):
    """Container that forwards every hook to a list of callbacks in order.

    Args:
        callbacks: iterable of :class:`Callback` instances (or ``None``).
        model: the model, passed to every callback's ``set_model``.
        params: dict passed to every callback's ``set_params``.
        add_history: append a :class:`History` unless one is already present.
        add_progbar: append a :class:`ProgbarLogger` unless one is present.

    As in Keras 3, the default :class:`History` is appended after the user's
    callbacks (so it records keys such as ``"learning_rate"`` that they add to
    the epoch logs) and the default :class:`ProgbarLogger` comes last (so it
    displays them).  The same ``logs`` dict is handed to every callback, so
    additions made by one callback are seen by the following ones.
    """

    def __init__(
        self,
        callbacks=None,
        model=None,
        params=None,
        add_history=False,
        add_progbar=False,
    ):
        super().__init__()
        self.callbacks = list(callbacks) if callbacks else []
        self.history = None
        self.progbar = None
        for cb in self.callbacks:
            if isinstance(cb, ProgbarLogger) and self.progbar is None:
                self.progbar = cb
            elif isinstance(cb, History) and self.history is None:
                self.history = cb
        if self.history is None and add_history:
            self.history = History()
            self.callbacks.append(self.history)
        if self.progbar is None and add_progbar:
            self.progbar = ProgbarLogger()
            self.callbacks.append(self.progbar)
        if model is not None:
            self.set_model(model)
        if params is not None:
            self.set_params(params)

    def append(self, callback):
        self.callbacks.append(callback)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self):
        return len(self.callbacks)

    def set_model(self, model):
        self.model = model
        for cb in self.callbacks:
            cb.set_model(model)

    def set_params(self, params):
        self.params = params
        for cb in self.callbacks:
            cb.set_params(params)

    def _implements_train_batch_hooks(self):
        return any(cb._implements_train_batch_hooks() for cb in self.callbacks)

    # set by ``fit`` to its fastnet._interrupts.SigintGuard: the built-in
    # callbacks here run with SIGINT deferred (no half-written CSV row or
    # History entry), the user's with SIGINT delivered at once
    _guard = None

    def _dispatch(self, name, *args, logs=None):
        if logs is None:
            logs = {}
        guard = self._guard
        for cb in self.callbacks:
            if guard is not None and type(cb).__module__ != __name__:
                guard.call(getattr(cb, name), *args, logs)
            else:
                getattr(cb, name)(*args, logs)

    def on_batch_begin(self, batch, logs=None):
        self._dispatch("on_batch_begin", batch, logs=logs)

    def on_batch_end(self, batch, logs=None):
        self._dispatch("on_batch_end", batch, logs=logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._dispatch("on_epoch_begin", epoch, logs=logs)

    def on_epoch_end(self, epoch, logs=None):
        self._dispatch("on_epoch_end", epoch, logs=logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._dispatch("on_train_batch_begin", batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self._dispatch("on_train_batch_end", batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._dispatch("on_test_batch_begin", batch, logs=logs)

    def on_test_batch_end(self, batch, logs=None):
        self._dispatch("on_test_batch_end", batch, logs=logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._dispatch("on_predict_batch_begin", batch, logs=logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._dispatch("on_predict_batch_end", batch, logs=logs)

    def on_train_begin(self, logs=None):
        self._dispatch("on_train_begin", logs=logs)

    def on_train_end(self, logs=None):
        self._dispatch("on_train_end", logs=logs)

    def on_test_begin(self, logs=None):
        self._dispatch("on_test_begin", logs=logs)

    def on_test_end(self, logs=None):
        self._dispatch("on_test_end", logs=logs)

    def on_predict_begin(self, logs=None):
        self._dispatch("on_predict_begin", logs=logs)

    def on_predict_end(self, logs=None):
        self._dispatch("on_predict_end", logs=logs)


def check_callbacks(callbacks):
    """The list of callbacks in ``callbacks`` (``None``, a single
    :class:`Callback`, or an iterable of them: a generator is read once),
    raising ``TypeError`` naming the offending item if one is not a
    :class:`Callback` instance.  Touches none of them: ``fit`` calls it among
    its argument checks, before the model changes."""
    if callbacks is None:
        items = []
    elif isinstance(callbacks, CallbackList):
        items = list(callbacks.callbacks)
    elif isinstance(callbacks, Callback):
        items = [callbacks]
    elif isinstance(callbacks, (str, bytes)) or not isinstance(
        callbacks, collections.abc.Iterable
    ):
        raise TypeError(
            "`callbacks` must be a list of fastnet.callbacks.Callback "
            f"instances, got {callbacks!r} (type {type(callbacks).__name__})."
        )
    else:
        items = list(callbacks)
    for i, cb in enumerate(items):
        if not isinstance(cb, Callback):
            raise TypeError(
                "Every item of `callbacks` must be a "
                f"fastnet.callbacks.Callback instance; callbacks[{i}] is "
                f"{cb!r} (type {type(cb).__name__})."
            )
    return items


def configure_callbacks(callbacks, model, verbose, epochs, steps, samples):
    """Build the :class:`CallbackList` that ``fit`` drives.

    Validates ``callbacks`` with :func:`check_callbacks`; appends a
    :class:`History` (unless the user passed one) and, when ``verbose`` is not
    0, a :class:`ProgbarLogger` (unless the user passed one); sets the model
    and ``params = {"epochs", "steps", "verbose", "samples"}`` on all of them.
    The returned list exposes ``.history``.
    """
    items = check_callbacks(callbacks)
    if verbose == "auto":
        verbose = 1
    params = {
        "epochs": epochs,
        "steps": steps,
        "verbose": verbose,
        "samples": samples,
    }
    return CallbackList(
        items,
        model=model,
        params=params,
        add_history=True,
        add_progbar=bool(verbose),
    )


# ---------------------------------------------------------------------------
# Progress display
# ---------------------------------------------------------------------------


def _format_value(value):
    if isinstance(value, (numbers.Real, np.floating, np.integer)) and not isinstance(
        value, bool
    ):
        value = float(value)
        if abs(value) > 1e-3 or not math.isfinite(value):
            return f"{value:.4f}"
        return f"{value:.4e}"
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return _format_value(value.item())
    return str(value)


def _format_logs(logs, skip=()):
    """`` - key: value`` pairs, training keys first then ``val_*`` keys."""
    if not logs:
        return ""
    keys = [k for k in logs if k not in skip]
    ordered = [k for k in keys if not str(k).startswith("val_")] + [
        k for k in keys if str(k).startswith("val_")
    ]
    return "".join(f" - {k}: {_format_value(logs[k])}" for k in ordered)


def _format_duration(seconds):
    """Elapsed time: ``1.2s``, ``2:05`` (m:ss) or ``1:02:05`` (h:mm:ss)."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    seconds = int(round(seconds))
    if seconds < 3600:
        return "%d:%02d" % (seconds // 60, seconds % 60)
    return "%d:%02d:%02d" % (seconds // 3600, (seconds % 3600) // 60, seconds % 60)


def _format_eta(seconds):
    if seconds > 3600:
        return "%d:%02d:%02d" % (seconds // 3600, (seconds % 3600) // 60, seconds % 60)
    if seconds > 60:
        return "%d:%02d" % (seconds // 60, seconds % 60)
    return "%ds" % seconds


def _format_per_step(seconds):
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


class ProgbarLogger(Callback):
    """Progress display used by ``fit(verbose=...)``.

    * ``verbose=0``: silent.
    * ``verbose=1``: ``"Epoch 3/10"`` then a live bar
      ``"  120/469 [=====>......] - ETA: 2s - loss: 0.3412 - accuracy: 0.9012"``
      redrawn with carriage returns from ``on_train_batch_end`` at most once
      per ``interval`` seconds (the final state is always drawn), finished at
      epoch end with ``" - 2.1s 4ms/step"`` and the epoch logs (``val_*``
      included).  When the stream is not a TTY no live updates are written,
      only the header and the final line of each epoch.
    * ``verbose=2``: one line per epoch,
      ``"Epoch 3/10 - 1.2s - loss: 0.3412 - accuracy: 0.9012 - val_loss: ..."``.

    Args:
        verbose: 0, 1 or 2; ``None`` takes ``params["verbose"]`` from ``fit``.
        stream: text stream to write to; ``None`` means the current
            ``sys.stdout`` at write time.
        interval: minimum seconds between two live redraws (default 0.2).
        width: bar width in characters (default 30).
    """

    def __init__(self, verbose=None, stream=None, interval=0.2, width=30):
        super().__init__()
        if verbose == "auto":
            verbose = 1
        self._verbose_arg = verbose
        self.verbose = 1 if verbose is None else verbose
        self.stream = stream
        self.interval = interval
        self.width = width
        self.epochs = None
        self.target = None
        self._clock = time.monotonic
        self._reset_epoch_state()

    def _reset_epoch_state(self):
        self._epoch_start = None
        self._last_draw = None
        self._seen = 0
        self._epoch_target = self.target
        self._prev_width = 0
        self._live = False

    def _implements_train_batch_hooks(self):
        # the bar is drawn at most every `interval` seconds: per-chunk updates do
        return _overrides_batch_hooks(self, ProgbarLogger)

    def set_params(self, params):
        super().set_params(params)
        params = params or {}
        if self._verbose_arg is None:
            verbose = params.get("verbose", 1)
            self.verbose = 1 if verbose == "auto" else verbose
        self.epochs = params.get("epochs")
        self.target = params.get("steps")

    # -- output helpers --------------------------------------------------
    def _out(self):
        return self.stream if self.stream is not None else sys.stdout

    def _is_tty(self):
        isatty = getattr(self._out(), "isatty", None)
        try:
            return bool(isatty()) if isatty is not None else False
        except (ValueError, OSError):
            return False

    def _write(self, text):
        out = self._out()
        out.write(text)
        flush = getattr(out, "flush", None)
        if flush is not None:
            flush()

    def _epoch_label(self, epoch):
        if self.epochs:
            return f"Epoch {epoch + 1}/{self.epochs}"
        return f"Epoch {epoch + 1}"

    def _bar(self, current, target):
        if not target:
            return f"  {current}/Unknown"
        numdigits = len(str(target))
        text = f"  {current:>{numdigits}d}/{target} ["
        prog_width = int(self.width * min(current / target, 1.0))
        if prog_width > 0:
            text += "=" * (prog_width - 1)
            text += ">" if current < target else "="
        text += "." * (self.width - prog_width) + "]"
        return text

    def _draw_live(self, line):
        pad = max(self._prev_width - len(line), 0)
        self._write("\r" + line + " " * pad)
        self._prev_width = len(line)
        self._live = True

    # -- hooks -----------------------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        self._reset_epoch_state()
        self._epoch_start = self._clock()
        if self.verbose == 1:
            self._write(self._epoch_label(epoch) + "\n")

    def on_train_batch_end(self, batch, logs=None):
        if self.verbose != 1:
            return
        logs = logs or {}
        done = int(logs.get("batches_done", batch + 1))
        total = logs.get("batches_total", self._epoch_target)
        self._seen = done
        if total:
            self._epoch_target = int(total)
        if not self._is_tty():
            return
        now = self._clock()
        if self._epoch_start is None:
            self._epoch_start = now
        is_final = bool(self._epoch_target) and done >= self._epoch_target
        if (
            not is_final
            and self._last_draw is not None
            and now - self._last_draw < self.interval
        ):
            return
        self._last_draw = now
        line = self._bar(done, self._epoch_target)
        if self._epoch_target and done > 0:
            elapsed = now - self._epoch_start
            if done < self._epoch_target:
                eta = elapsed / done * (self._epoch_target - done)
                line += f" - ETA: {_format_eta(eta)}"
            else:
                line += f" - {_format_duration(elapsed)}"
        line += _format_logs(logs, skip=("batches_done", "batches_total"))
        self._draw_live(line)

    def on_epoch_end(self, epoch, logs=None):
        if not self.verbose:
            return
        logs = logs or {}
        now = self._clock()
        start = self._epoch_start if self._epoch_start is not None else now
        elapsed = max(now - start, 0.0)
        if self.verbose == 2:
            self._write(
                f"{self._epoch_label(epoch)} - {_format_duration(elapsed)}"
                f"{_format_logs(logs)}\n"
            )
            return
        target = self._epoch_target or self._seen
        steps = target or self._seen
        line = self._bar(target, target) if target else " "
        line += f" - {_format_duration(elapsed)}"
        if steps:
            line += f" {_format_per_step(elapsed / steps)}"
        line += _format_logs(logs)
        if self._live:
            pad = max(self._prev_width - len(line), 0)
            self._write("\r" + line + " " * pad + "\n")
        else:
            self._write(line + "\n")
        self._live = False
        self._prev_width = 0


# ---------------------------------------------------------------------------
# Monitoring callbacks
# ---------------------------------------------------------------------------


class EarlyStopping(Callback):
    """Stop training when a monitored quantity has stopped improving.

    Keras 3 logic: at each epoch end (from ``start_from_epoch`` on) the
    ``wait`` counter is incremented; an improvement (``current - min_delta``
    better than ``best``, ``min_delta`` sign-adjusted to the mode) updates
    ``best``/``best_epoch`` (and ``best_weights`` when restoring) and resets
    ``wait`` only if ``current`` also beats ``baseline`` (when given).  A
    non-improving epoch with ``wait >= patience`` (and ``epoch > 0``) sets
    ``model.stop_training`` and ``stopped_epoch``.

    Difference from Keras: with ``restore_best_weights=True`` the best
    epoch's weights are restored in ``on_train_end`` however training ended
    (early stop *or* epoch limit), unless the best epoch is the last epoch
    run (then the model already holds them).
    """

    def __init__(
        self,
        monitor="val_loss",
        min_delta=0,
        patience=0,
        verbose=0,
        mode="auto",
        baseline=None,
        restore_best_weights=False,
        start_from_epoch=0,
    ):
        super().__init__()
        self.monitor = monitor
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.min_delta = abs(min_delta)
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.mode = _resolve_mode(mode, monitor, "EarlyStopping")
        if self.mode == "min":
            self.monitor_op = _less
            self.min_delta *= -1
        else:
            self.monitor_op = _greater
        self.wait = 0
        self.stopped_epoch = 0
        self.best = self._initial_best()
        self.best_epoch = 0
        self.best_weights = None
        self._last_epoch = None

    def _initial_best(self):
        return math.inf if self.monitor_op is _less else -math.inf

    def on_train_begin(self, logs=None):
        # Allow instances to be re-used.
        self.wait = 0
        self.stopped_epoch = 0
        self.best = self._initial_best()
        self.best_weights = None
        self.best_epoch = 0
        self._last_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        self._last_epoch = epoch
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            # No monitored value, or still in the warm-up stage.
            return
        if self.restore_best_weights and self.best_weights is None:
            # If best weights were never set, the current weights are the best.
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch

        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            # Only restart wait if we beat both the baseline and our
            # previous best.
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return

        if self.wait >= self.patience and epoch > 0:
            # Patience has been exceeded: stop training.
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            _print_msg(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if (
            self.restore_best_weights
            and self.best_weights is not None
            and self.best_epoch != self._last_epoch
        ):
            if self.verbose > 0:
                _print_msg(
                    "Restoring model weights from the end of the best epoch: "
                    f"{self.best_epoch + 1}."
                )
            self.model.set_weights(self.best_weights)

    def get_monitor_value(self, logs):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(
                f"Early stopping conditioned on metric `{self.monitor}` "
                "which is not available. "
                f"Available metrics are: {','.join(map(str, logs.keys()))}",
                stacklevel=2,
            )
        return value

    def _is_improvement(self, monitor_value, reference_value):
        if reference_value is None:
            return True
        return self.monitor_op(monitor_value - self.min_delta, reference_value)


class ModelCheckpoint(Callback):
    """Save the model's weights (or the model) during training.

    ``filepath`` may contain ``str.format`` fields filled with ``epoch``
    (1-based), ``batch`` (1-based, batch-frequency saves only) and the keys
    of the logs, e.g. ``"ckpt/w-{epoch:02d}-{val_loss:.4f}.npz"``.  Parent
    directories are created as needed.  Weights are written with
    ``model.save_weights(path)``, atomically (another process loading the
    file while training runs, or a crash, never sees a partial file); with ``save_weights_only=False`` the model
    is saved whole with ``model.save(path)`` (``fastnet.load_model`` reads it:
    architecture, optimizer state and random streams too), as Keras does.
    ``save_weights_only=None`` (the default) follows the file name: an ``.npz``
    name gets the weights (the format ``save_weights`` writes), any other name
    (``"best.keras"``, ``"ckpt.fastnet"``) the whole model.

    With ``save_best_only=True`` a file is written only when the monitored
    value improves on ``best`` (initially ``initial_value_threshold`` or
    +/-inf); a missing monitored value warns and skips the save.
    ``save_freq`` is ``"epoch"`` or a number of batches, counted from the
    ``batches_done`` progress updates (so a save happens at the first update
    at which at least ``save_freq`` batches were done since the previous save;
    ``{batch}`` is then ``batches_done``).  A number makes ``fit`` call the
    batch hooks after every batch, so the saves come every ``save_freq``
    batches exactly (counting on across epochs), as in Keras.
    """

    def __init__(
        self,
        filepath,
        monitor="val_loss",
        verbose=0,
        save_best_only=False,
        save_weights_only=None,
        mode="auto",
        save_freq="epoch",
        initial_value_threshold=None,
    ):
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = save_best_only
        if save_weights_only is None:
            save_weights_only = self.filepath.lower().endswith(".npz")
        elif not isinstance(save_weights_only, bool):
            raise TypeError(f"save_weights_only must be a bool or None; got {save_weights_only!r}")
        self.save_weights_only = save_weights_only
        if save_freq != "epoch" and (
            isinstance(save_freq, bool)
            or not isinstance(save_freq, numbers.Integral)
            or save_freq < 1
        ):
            raise ValueError(
                f"Unrecognized save_freq: {save_freq!r}. "
                "Expected save_freq are 'epoch' or a positive integer."
            )
        self.save_freq = save_freq
        self.mode = _resolve_mode(mode, monitor, "ModelCheckpoint")
        self.monitor_op = _less if self.mode == "min" else _greater
        if initial_value_threshold is not None:
            self.best = initial_value_threshold
        else:
            self.best = math.inf if self.mode == "min" else -math.inf
        self._current_epoch = 0
        self._batches_seen_since_last_saving = 0
        self._last_batches_done = 0

    def _implements_train_batch_hooks(self):
        # saves every save_freq batches exactly (Keras): per-batch calls
        return self.save_freq != "epoch" or _overrides_batch_hooks(self, ModelCheckpoint)

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch
        self._last_batches_done = 0

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        logs = logs or {}
        done = int(logs.get("batches_done", batch + 1))
        if self._should_save_on_batch(done):
            self._save_model(self._current_epoch, done - 1, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save_model(epoch, None, logs)

    def _should_save_on_batch(self, batches_done):
        """Count batches across (possibly chunked) progress updates."""
        if batches_done <= self._last_batches_done:  # A new epoch began.
            add_batches = batches_done
        else:
            add_batches = batches_done - self._last_batches_done
        self._batches_seen_since_last_saving += add_batches
        self._last_batches_done = batches_done
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            return True
        return False

    def _get_file_path(self, epoch, batch, logs):
        fields = dict(logs)
        fields["epoch"] = epoch + 1
        if batch is not None and "batch" not in logs:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**fields)
        except KeyError as e:
            raise KeyError(
                f'Failed to format this callback filepath: "{self.filepath}". '
                f"Reason: {e}"
            ) from e

    def _save_model(self, epoch, batch, logs):
        logs = logs or {}
        filepath = None
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(
                    f"Can save best model only with {self.monitor} available, "
                    "skipping.",
                    stacklevel=3,
                )
                return
            filepath = self._get_file_path(epoch, batch, logs)
            if not self.monitor_op(current, self.best):
                if self.verbose > 0:
                    _print_msg(
                        f"\nEpoch {epoch + 1}: {self.monitor} did not improve "
                        f"from {self.best:.5f}"
                    )
                return
            if self.verbose > 0:
                _print_msg(
                    f"\nEpoch {epoch + 1}: {self.monitor} improved from "
                    f"{self.best:.5f} to {current:.5f}, saving model to {filepath}"
                )
            self.best = current
        else:
            filepath = self._get_file_path(epoch, batch, logs)
            if self.verbose > 0:
                _print_msg(f"\nEpoch {epoch + 1}: saving model to {filepath}")
        if os.path.isdir(filepath):
            raise IOError(
                "Please specify a non-directory filepath for ModelCheckpoint. "
                f"Filepath used is an existing directory: {filepath}"
            )
        dirname = os.path.dirname(filepath)
        if dirname:
            os.makedirs(dirname, exist_ok=True)
        if not self.save_weights_only and hasattr(self.model, "save"):
            self.model.save(filepath)
        else:
            self.model.save_weights(filepath)


class TerminateOnNaN(Callback):
    """Stop training when the loss becomes NaN or infinite.

    Checked on every progress update (``on_train_batch_end``) and at epoch
    end; sets ``model.stop_training`` (training stops after the current batch,
    or chunk of batches when no callback needs per-batch calls: the running
    loss stays non-finite once a batch's loss was, so the check is exact at
    either granularity) and prints a message.
    """

    def __init__(self):
        super().__init__()
        self._flagged_epoch = False

    def _implements_train_batch_hooks(self):
        return _overrides_batch_hooks(self, TerminateOnNaN)

    def on_epoch_begin(self, epoch, logs=None):
        self._flagged_epoch = False

    @staticmethod
    def _is_invalid(loss):
        try:
            return not math.isfinite(float(loss))
        except (TypeError, ValueError):
            return False

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        loss = logs.get("loss")
        if loss is not None and self._is_invalid(loss):
            if not self._flagged_epoch:
                _print_msg(f"\nBatch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True
            self._flagged_epoch = True

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        loss = logs.get("loss")
        if loss is not None and self._is_invalid(loss):
            if not self._flagged_epoch:
                _print_msg(
                    f"\nEpoch {epoch + 1}: Invalid loss, terminating training"
                )
            self.model.stop_training = True


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch.

    ``schedule(epoch, lr)`` (``epoch`` 0-based, ``lr`` the current rate)
    returns the new learning rate; a one-argument ``schedule(epoch)`` is also
    accepted (as Keras, via ``TypeError`` fallback).  The result must be a
    finite float (Python ``float`` or NumPy floating scalar), else
    ``ValueError``.  At epoch end ``logs["learning_rate"]`` is set.
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = getattr(self.model, "optimizer", None)
        if not hasattr(optimizer, "learning_rate"):
            raise ValueError('Optimizer must have a "learning_rate" attribute.')
        try:  # new API
            lr = float(optimizer.learning_rate)
            lr = self.schedule(epoch, lr)
        except TypeError:  # old API: schedule(epoch)
            lr = self.schedule(epoch)
        if isinstance(lr, np.ndarray) and lr.ndim == 0 and np.issubdtype(
            lr.dtype, np.floating
        ):
            lr = lr[()]
        if not isinstance(lr, (float, np.floating)) or not math.isfinite(lr):
            raise ValueError(
                "The output of the `schedule` function should be a finite "
                f"float. Got: {lr!r}"
            )
        lr = float(lr)
        optimizer.learning_rate = lr
        if self.verbose > 0:
            _print_msg(
                f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning "
                f"rate to {lr}."
            )

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class ReduceLROnPlateau(Callback):
    """Reduce the learning rate when a metric has stopped improving.

    Keras logic: an epoch improves when ``current < best - min_delta``
    ("min" mode) or ``current > best + min_delta`` ("max" mode).  During
    cooldown the counter is decremented and ``wait`` is kept at 0; outside
    cooldown each non-improving epoch increments ``wait`` and when it reaches
    ``patience`` the rate becomes ``max(lr * factor, min_lr)`` (only if
    ``lr > min_lr``), then cooldown starts.  ``logs["learning_rate"]``
    records the rate in effect during the epoch (before any reduction).
    """

    def __init__(
        self,
        monitor="val_loss",
        factor=0.1,
        patience=10,
        verbose=0,
        mode="auto",
        min_delta=1e-4,
        cooldown=0,
        min_lr=0.0,
    ):
        super().__init__()
        self.monitor = monitor
        if factor >= 1.0:
            raise ValueError(
                "ReduceLROnPlateau does not support a factor >= 1.0. "
                f"Received factor={factor}"
            )
        self.factor = factor
        self.min_lr = min_lr
        self.min_delta = min_delta
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.cooldown_counter = 0
        self.wait = 0
        self.best = 0
        self.mode = mode
        self.monitor_op = None
        self._reset()

    def _reset(self):
        self.mode = _resolve_mode(self.mode, self.monitor, "ReduceLROnPlateau")
        if self.mode == "min":
            self.monitor_op = lambda a, b: a < b - self.min_delta
            self.best = math.inf
        else:
            self.monitor_op = lambda a, b: a > b + self.min_delta
            self.best = -math.inf
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self._reset()

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            logs = {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(
                "Learning rate reduction is conditioned on metric "
                f"`{self.monitor}` which is not available. Available metrics "
                f"are: {','.join(map(str, logs.keys()))}.",
                stacklevel=2,
            )
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0

        if self.monitor_op(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = float(self.model.optimizer.learning_rate)
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    self.model.optimizer.learning_rate = new_lr
                    if self.verbose > 0:
                        _print_msg(
                            f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing "
                            f"learning rate to {new_lr}."
                        )
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


# ---------------------------------------------------------------------------
# CSV logging
# ---------------------------------------------------------------------------


class CSVLogger(Callback):
    """Stream epoch results to a CSV file.

    The header is ``epoch`` followed by the sorted keys of the first epoch's
    logs; each epoch adds one row (``epoch`` 0-based as Keras; keys missing
    later are written as ``NA``, keys appearing later are ignored).  With
    ``append=True`` rows are appended and the header is written only if the
    file is missing or empty; without it the file is emptied when training
    begins.

    The file is never left half-written: at each epoch's end the whole file
    (the earlier content, kept in memory, plus the new row) is written to a
    temporary file that is fsynced and renamed over it, so a crash or a
    reader at any moment sees the file as it was after some complete epoch.
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        self.keys = None
        self.append_header = True
        self._content = None  # the file's bytes as last written; None outside training

    def on_train_begin(self, logs=None):
        content = b""
        if self.append:
            try:
                with open(self.filename, "rb") as f:
                    content = f.read()
            except FileNotFoundError:
                pass
            if content and not content.endswith(b"\n"):
                content += b"\n"  # a file ended by another writer: rows start on a line of their own
        self.append_header = not content
        self.keys = None
        self._content = content
        if not self.append:
            self._write()  # an emptied log, as opening with mode "w" would leave

    def _write(self):
        with _io.atomic_write(self.filename) as f:
            f.write(self._content)

    @staticmethod
    def _handle_value(value):
        if isinstance(value, str):
            return value
        if isinstance(value, np.ndarray) and value.ndim == 0:
            return value.item()
        if isinstance(value, collections.abc.Iterable):
            return f'"[{", ".join(map(str, value))}]"'
        return value

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._content is None:
            # Used outside fit (no on_train_begin): start lazily.
            self.on_train_begin()
        if self.keys is None:
            self.keys = sorted(logs.keys())

        class _Dialect(csv.excel):
            delimiter = self.sep
            lineterminator = "\n"

        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=["epoch"] + self.keys, dialect=_Dialect)
        if self.append_header:
            writer.writeheader()
            self.append_header = False
        row = {"epoch": epoch}
        row.update((k, self._handle_value(logs.get(k, "NA"))) for k in self.keys)
        writer.writerow(row)
        self._content += text.getvalue().encode("utf-8")
        self._write()

    def on_train_end(self, logs=None):
        self._content = None


class BackupAndRestore(Callback):
    """Resume training where an interrupted ``fit`` stopped (Keras's callback).

    At the end of every epoch the whole model -- weights, optimizer state and
    step count, random streams, learning rate -- is written atomically to
    ``backup_dir/backup.fastnet`` with the epoch reached.  When ``fit`` is
    called again after a crash or a kill (same model architecture, same
    arguments), the backup is loaded into the model and training continues at
    the epoch after the last completed one, exactly as if it had not stopped
    (bit for bit: the batch order and dropout masks come from the restored
    streams).  When training ends normally the backup is deleted
    (``delete_checkpoint=False`` keeps it).

    Backups are made at epoch ends only (``save_freq="epoch"``); the history
    returned by a resumed ``fit`` holds the epochs it ran, as in Keras.
    """

    FILENAME = "backup.fastnet"

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
        super().__init__()
        if isinstance(backup_dir, bytes):
            backup_dir = os.fsdecode(backup_dir)
        if not isinstance(backup_dir, (str, os.PathLike)) or not os.fspath(backup_dir):
            raise TypeError(f"backup_dir must be a non-empty path; got {backup_dir!r}")
        if save_freq != "epoch":
            raise ValueError(f"BackupAndRestore: save_freq must be 'epoch' (backups are made at epoch ends); "
                             f"got {save_freq!r}")
        if not isinstance(delete_checkpoint, bool):
            raise TypeError(f"delete_checkpoint must be a bool; got {delete_checkpoint!r}")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.delete_checkpoint = delete_checkpoint
        if os.path.exists(self.backup_dir) and not os.path.isdir(self.backup_dir):
            raise ValueError(f"BackupAndRestore: backup_dir {self.backup_dir!r} exists and is not a folder")
        self._path = os.path.join(self.backup_dir, self.FILENAME)

    def on_train_begin(self, logs=None):
        from . import saving
        if not os.path.exists(self._path):
            return
        backup = saving.load_model(self._path, backend=self.model.backend_name)
        extra = getattr(backup, "_saved_extra", None) or {}
        epoch = extra.get("backup_epoch") if isinstance(extra, dict) else None
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"{self._path}: not a backup written by BackupAndRestore")
        try:
            saving.restore_into(self.model, backup)
        except ValueError as exc:
            raise ValueError(f"{self._path}: {exc} than the model being trained") from None
        self.model._resume_initial_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        from . import saving
        os.makedirs(self.backup_dir, exist_ok=True)
        saving.save_model(self.model, self._path, extra={"backup_epoch": epoch + 1})

    def on_train_end(self, logs=None):
        # (an exception or Ctrl-C leaving fit skips on_train_end: the backup stays)
        if not self.delete_checkpoint:
            return
        try:
            os.remove(self._path)
        except FileNotFoundError:
            pass
        try:
            os.rmdir(self.backup_dir)
        except OSError:
            pass  # not empty (the user's files) or already gone
