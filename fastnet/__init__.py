"""fastnet: fast multi-layer perceptrons on the CPU.

A Keras-style API (Sequential, Dense, Dropout; compile / fit / evaluate /
predict) over kernels compiled twice -- Numba and Cython -- and checked against
a pure-NumPy reference backend.  Optimizers follow PyTorch's torch.optim rules.

    import fastnet
    model = fastnet.Sequential([fastnet.Dense(25, "relu"), fastnet.Dense(15, "relu"),
                                fastnet.Dense(10)], seed=0)
    model.compile(optimizer=fastnet.Adam(learning_rate=1e-3),
                  loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(X, y, epochs=10)
"""
__version__ = "0.2.0"


def _source_checkout_shim():
    """Running from a source checkout (e.g. ``python -m fastnet`` in the repo
    root, where the current directory comes first on sys.path) finds this
    ``fastnet/`` folder, whose compiled kernels live elsewhere: ``kernels/`` is
    installed as ``fastnet._kernels``.  An editable install maps it for us; else,
    when fastnet is installed, load that installed copy in place of this one."""
    import importlib.util
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    if os.path.isdir(os.path.join(here, "_kernels")) or importlib.util.find_spec(__name__ + "._kernels"):
        return False
    for entry in sys.path:
        init = os.path.join(entry or os.getcwd(), "fastnet", "__init__.py")
        pkg = os.path.dirname(os.path.abspath(init))
        if pkg != here and os.path.isdir(os.path.join(pkg, "_kernels")) and os.path.exists(init):
            __path__[:] = [pkg]
            globals()["__file__"] = init
            with open(init) as f:
                code = compile(f.read(), init, "exec")
            exec(code, globals())
            return True
    raise ImportError("fastnet is imported from a source checkout (%s) whose kernels are not installed: "
                      "run `pip install .` (or `pip install -e .`) and import it from elsewhere" % here)


if not _source_checkout_shim():

    from . import activations, initializers, losses, optimizers, regularizers, metrics, callbacks, datasets
    from . import diagnostics, schedules
    from . import plot  # matplotlib is imported only when a plot is drawn
    from ._threads import get_num_threads, set_num_threads
    from .backends import available_backends, backend_status, BackendUnavailable
    from .layers import Dense, Dropout, Input, InputLayer, Layer, Maxout, PReLU
    from . import interop, models, utils
    from .model import Sequential
    from .saving import load_model
    from .losses import (BinaryCrossentropy, CategoricalCrossentropy, MeanAbsoluteError, MeanSquaredError,
                         SparseCategoricalCrossentropy)
    from .optimizers import SGD, Adagrad, Adam, AdamW, RMSprop
    from .callbacks import (BackupAndRestore, Callback, CSVLogger, EarlyStopping, History, LearningRateScheduler, ModelCheckpoint,
                            ReduceLROnPlateau, TerminateOnNaN)
    from .regularizers import L1, L2, L1L2
    from .perceptron import Perceptron
    from .multiclass import OneVsRest
    from .gradcheck import gradcheck
    from .diagnostics import NonFiniteError

    __all__ = [
        "Sequential", "load_model", "Input", "InputLayer", "Dense", "Dropout", "Layer", "Maxout", "PReLU",
        "NonFiniteError", "interop", "models", "utils",
        "SGD", "Adagrad", "RMSprop", "Adam", "AdamW",
        "MeanSquaredError", "MeanAbsoluteError", "BinaryCrossentropy", "CategoricalCrossentropy",
        "SparseCategoricalCrossentropy",
        "BackupAndRestore", "Callback", "History", "EarlyStopping", "ModelCheckpoint", "TerminateOnNaN", "LearningRateScheduler",
        "ReduceLROnPlateau", "CSVLogger", "L1", "L2", "L1L2", "Perceptron", "OneVsRest", "gradcheck",
        "available_backends", "backend_status", "BackendUnavailable", "set_num_threads", "get_num_threads",
        "activations", "initializers", "losses", "optimizers", "schedules", "regularizers", "metrics", "callbacks",
        "datasets",
        "diagnostics",
    ]
