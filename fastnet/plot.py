"""Learning curves with matplotlib (optional: ``pip install 'fastnet[plot]'``).

    import fastnet.plot
    history = model.fit(X, y, epochs=30, validation_data=(X_test, y_test), metrics=...)
    fastnet.plot.history(history, path="learning_curve.png")

matplotlib is imported only when a function here is called, so ``import
fastnet.plot`` works without it.  Figures are built with the object-oriented
API (``matplotlib.figure.Figure`` rendered by the Agg canvas), so saving a PNG
needs no display and does not touch pyplot's global state or backend; only
``show=True`` goes through ``matplotlib.pyplot``.
"""
import numbers
import os

from . import _io

_MISSING = "fastnet.plot needs matplotlib: pip install 'fastnet[plot]'"

# Nicer axis titles for the usual History keys.
_TITLES = {"loss": "loss", "accuracy": "accuracy", "acc": "accuracy", "mse": "mean squared error",
           "mae": "mean absolute error", "auc": "ROC AUC", "f1": "F1 score"}


def _import_matplotlib():
    """(matplotlib, Figure), or ImportError with the install hint."""
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(_MISSING) from exc
    return matplotlib, Figure


def _as_dict(history):
    """The ``{key: [per-epoch values]}`` dict and the epoch numbers (1-based)."""
    epochs = None
    if isinstance(history, dict):
        hist = history
    elif isinstance(getattr(history, "history", None), dict):
        hist = history.history
        ep = getattr(history, "epoch", None)
        if isinstance(ep, (list, tuple)) and ep and all(
                isinstance(e, numbers.Integral) and not isinstance(e, bool) for e in ep):
            epochs = [int(e) + 1 for e in ep]
    else:
        raise TypeError("history must be a fastnet History (what model.fit returns) or its .history "
                        "dict {name: [value per epoch]}; got %s" % type(history).__name__)
    if not hist:
        raise ValueError("history is empty: it records no metric (was the model trained for 0 epochs?)")
    import numpy as np

    series = {}
    for key, values in hist.items():
        if not isinstance(key, str):
            raise TypeError("history keys must be metric names (str); got %r" % (key,))
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
            raise TypeError("history[%r] must be a sequence of numbers (one per epoch); got %s"
                            % (key, type(values).__name__))
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError("history[%r] must be a sequence of numbers (one per epoch); got %r"
                            % (key, values)) from None
        if arr.ndim != 1:
            raise ValueError("history[%r] must be 1-D (one value per epoch); got shape %s" % (key, arr.shape))
        series[key] = arr
    n = max(len(a) for a in series.values())
    if n == 0:
        raise ValueError("history is empty: every metric has 0 epochs")
    if epochs is None or len(epochs) != n:
        epochs = list(range(1, n + 1))
    return series, epochs


def _metric_names(series, metrics):
    """Base metric names to draw, one panel each, loss first."""
    if metrics is None:
        names = []
        for key in series:
            base = key[4:] if key.startswith("val_") and key[4:] in series else key
            if base not in names:
                names.append(base)
        names.sort(key=lambda name: 0 if name in ("loss", "val_loss") else 1)  # stable: loss first
        return names
    if isinstance(metrics, str):
        metrics = [metrics]
    if not isinstance(metrics, (list, tuple)) or not metrics:
        raise TypeError("metrics must be a metric name or a non-empty list of names (e.g. ['loss', "
                        "'accuracy']); got %r" % (metrics,))
    names = []
    for name in metrics:
        if not isinstance(name, str):
            raise TypeError("metrics must hold metric names (str); got %r" % (name,))
        if name not in series and "val_" + name not in series:
            raise ValueError("metrics: %r is not in the history; it records %s"
                             % (name, ", ".join(repr(k) for k in series)))
        if name not in names:
            names.append(name)
    return names


def history(history, path=None, metrics=None, title=None, show=False):
    """Draw learning curves: one panel per metric, training and validation per epoch.

    Parameters
    ----------
    history : fastnet.History or dict
        What ``model.fit`` returns, or its ``.history`` dict ``{name: [value per epoch]}``.
        Keys ``"x"`` and ``"val_x"`` share one panel (training and validation curves).
    path : str or os.PathLike, optional
        Save the figure there (PNG unless the file name asks for another format
        matplotlib knows, e.g. ``.svg`` / ``.pdf``).  Needs no display.
    metrics : str or list of str, optional
        The panels to draw, e.g. ``["loss", "accuracy"]``; default: every metric
        in the history, loss first.
    title : str, optional
        The figure's title.
    show : bool
        Also open the figure in a window with ``matplotlib.pyplot.show()``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError("path must be a file name (str or os.PathLike) or None; got %r" % (path,))
    if title is not None and not isinstance(title, str):
        raise TypeError("title must be a str or None; got %r" % (title,))
    if not isinstance(show, bool):
        raise TypeError("show must be a bool; got %r" % (show,))
    series, epochs = _as_dict(history)
    names = _metric_names(series, metrics)
    _, Figure = _import_matplotlib()

    n = len(names)
    ncols = min(n, 2)
    nrows = (n + ncols - 1) // ncols
    if show:
        import matplotlib.pyplot as plt
        fig = plt.figure(figsize=(5.2 * ncols, 3.8 * nrows))
    else:
        fig = Figure(figsize=(5.2 * ncols, 3.8 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax, name in zip(axes, names):
        pairs = [(name, "validation" if name.startswith("val_") else "training", "C0")]
        if not name.startswith("val_"):
            pairs.append(("val_" + name, "validation", "C1"))
        for key, label, color in pairs:
            if key not in series:
                continue
            y = series[key]
            x = epochs[:len(y)]
            last = y[-1] if len(y) else float("nan")
            ax.plot(x, y, color=color, marker="o" if len(y) <= 40 else None, markersize=3,
                    label="%s (last %.4g)" % (label, last))
        base = name[4:] if name.startswith("val_") else name
        ax.set_title(_TITLES.get(base, base))
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize="small")
        if len(epochs) <= 12:
            ax.set_xticks(epochs)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        # the format from the name's extension (a file object has none to go by)
        fmt = os.path.splitext(os.fspath(path))[1][1:].lower() or "png"
        with _io.atomic_write(path) as f:
            fig.savefig(f, format=fmt, dpi=110)
    if show:
        import matplotlib.pyplot as plt
        plt.show()
    return fig
