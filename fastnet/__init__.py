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
__version__ = "0.1.0"

from . import activations, initializers, losses, optimizers, regularizers, metrics, callbacks, datasets
from ._threads import get_num_threads, set_num_threads
from .backends import available_backends, backend_status, BackendUnavailable
from .layers import Dense, Dropout, Layer
from .model import Sequential
from .losses import (BinaryCrossentropy, CategoricalCrossentropy, MeanAbsoluteError, MeanSquaredError,
                     SparseCategoricalCrossentropy)
from .optimizers import SGD, Adagrad, Adam, AdamW, RMSprop
from .callbacks import (Callback, CSVLogger, EarlyStopping, History, LearningRateScheduler, ModelCheckpoint,
                        ReduceLROnPlateau, TerminateOnNaN)
from .regularizers import L1, L2, L1L2
from .perceptron import Perceptron
from .multiclass import OneVsRest
from .gradcheck import gradcheck

__all__ = [
    "Sequential", "Dense", "Dropout", "Layer",
    "SGD", "Adagrad", "RMSprop", "Adam", "AdamW",
    "MeanSquaredError", "MeanAbsoluteError", "BinaryCrossentropy", "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "Callback", "History", "EarlyStopping", "ModelCheckpoint", "TerminateOnNaN", "LearningRateScheduler",
    "ReduceLROnPlateau", "CSVLogger", "L1", "L2", "L1L2", "Perceptron", "OneVsRest", "gradcheck",
    "available_backends", "backend_status", "BackendUnavailable", "set_num_threads", "get_num_threads",
    "activations", "initializers", "losses", "optimizers", "regularizers", "metrics", "callbacks", "datasets",
]
