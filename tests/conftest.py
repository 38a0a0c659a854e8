"""Shared fixtures: every model test runs on every available backend.

The suite runs the numba backend with ``FASTNET_NUMBA_VARIANTS=one`` unless the
environment says otherwise: every network then shares the training-step
variant that holds every feature and code, compiled once, instead of one
variant per feature set / optimizer / activations (hundreds of networks here,
each a compile of seconds).  The per-model variants users get by default are
tested where they are the subject (tests/test_numba_compile.py,
tests/test_twins.py: ``exact_variants``), and both give the same bits.
"""
import os

os.environ.setdefault("FASTNET_NUMBA_VARIANTS", "one")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import fastnet  # noqa: E402
from fastnet._kernels import defs  # noqa: E402

BACKENDS = fastnet.available_backends()
COMPILED = [b for b in BACKENDS if b != "numpy"]

# position of each train_batches field in a flat argument list (the order of
# _api.FLAT_ORDER: the records' fields, n_threads, diag), for train() below
from fastnet.backends import _api  # noqa: E402
TRAIN_ARG = {name: i for i, name in enumerate(_api.FLAT_ORDER["train_batches"])}


def train(be, *flat, **named):
    """``be.train_batches`` on its records' fields given flat (positions of
    TRAIN_ARG) and / or by name: the records are built from them (_api.pack)."""
    args = dict(zip(_api.FLAT_ORDER["train_batches"], flat))
    args.update(named)
    return be.train_batches(**_api.pack("train_batches", args))


def pytest_report_header(config):
    status = fastnet.backend_status()
    lines = ["fastnet %s from %s" % (fastnet.__version__, fastnet.__file__)]
    for name, reason in status.items():
        lines.append("  backend %-6s: %s" % (name, "ok" if reason is None else reason))
    return lines


@pytest.fixture
def exact_variants(monkeypatch):
    """The numba backend's default, a training-step variant per model
    (fastnet/backends/numba.py: VARIANTS), here and in subprocesses."""
    monkeypatch.setenv("FASTNET_NUMBA_VARIANTS", "exact")
    if "numba" in fastnet.available_backends():
        import fastnet.backends.numba as nb
        monkeypatch.setattr(nb, "VARIANTS", "exact")


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    return request.param


def make_spec(n_in, widths, acts, use_bias=None, drop=None, l1=None, l2=None, act_param=None):
    """The layer records (defs.LAYER_DTYPE) and the parameter count of a stack of Dense layers."""
    L = len(widths)
    use_bias = use_bias or [True] * L
    layers = defs.new_layers(L)
    pos, prev = 0, n_in
    for l in range(L):
        layers[l]["n_in"], layers[l]["n_out"] = prev, widths[l]
        layers[l]["act"] = acts[l]
        layers[l]["w_offset"] = pos
        pos += prev * widths[l]
        if use_bias[l]:
            layers[l]["b_offset"] = pos
            pos += widths[l]
        else:
            layers[l]["b_offset"] = -1
        layers[l]["act_param"] = (act_param or [0.1] * L)[l]
        layers[l]["dropout"] = (drop or [0.0] * L)[l]
        layers[l]["l1"] = (l1 or [0.0] * L)[l]
        layers[l]["l2"] = (l2 or [0.0] * L)[l]
        prev = widths[l]
    return layers, pos


#: the optimizers make_optimizer builds (each with its options that change the update)
OPT_NAMES = ["none", "sgd", "adagrad", "rmsprop", "adam", "adamw"]


def make_optimizer(name):
    """An optimizer of OPT_NAMES with non-default options (None for "none")."""
    return {"none": None,
            "sgd": fastnet.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
            "adagrad": fastnet.Adagrad(0.05, lr_decay=0.01),
            "rmsprop": fastnet.RMSprop(0.001, centered=True, momentum=0.5),
            "adam": fastnet.Adam(0.001, amsgrad=True, weight_decay=1e-3),
            "adamw": fastnet.AdamW(0.001)}[name]


def head_cases(mse_act):
    """(name, head, last layer's activation) of every loss head of the kernels:
    softmax cross-entropy on logits (integer labels) and after a softmax layer
    (one-hot targets), sigmoid BCE on logits, mse after ``mse_act``, mae."""
    mse = "mse_" + next(a["name"] for a in defs.ACTIVATIONS if a["code"] == mse_act)
    return [
        ("softmax_xent_sparse", defs.HEAD_SOFTMAX_XENT, defs.ACT_LINEAR),
        ("softmax_xent_dense", defs.HEAD_SOFTMAX_XENT, defs.ACT_SOFTMAX),
        ("sigmoid_bce", defs.HEAD_SIGMOID_BCE, defs.ACT_LINEAR),
        (mse, defs.HEAD_MSE, mse_act),
        ("mae_linear", defs.HEAD_MAE, defs.ACT_LINEAR),
    ]


def make_targets(rng, head, last_act, N, k, dtype, weighted=True, real="uniform"):
    """train_batches' Y, labels and sw for N rows of a k-wide head: integer labels
    for softmax cross-entropy on logits (``last_act`` linear), one-hot Y for it
    after a softmax layer, 0/1 Y for sigmoid BCE, real Y for mse / mae
    (``rng.random``, or ``rng.standard_normal`` with ``real="normal"``); the
    unused one of Y / labels is empty.  sw: ``rng.random(N)`` when ``weighted``,
    else empty.  Draws from ``rng`` in that order (targets, then sw)."""
    labels = np.empty(0, np.int64)
    Y = np.empty((0, k), dtype)
    if head == defs.HEAD_SOFTMAX_XENT and last_act == defs.ACT_LINEAR:
        labels = rng.integers(0, k, N).astype(np.int64)
    elif head == defs.HEAD_SOFTMAX_XENT:
        Y = np.eye(k, dtype=dtype)[rng.integers(0, k, N)]
    elif head == defs.HEAD_SIGMOID_BCE:
        Y = (rng.random((N, k)) > 0.5).astype(dtype)
    else:
        Y = (rng.standard_normal((N, k)) if real == "normal" else rng.random((N, k))).astype(dtype)
    sw = rng.random(N).astype(dtype) if weighted else np.empty(0, dtype)
    return Y, labels, sw


@pytest.fixture(scope="session")
def digits():
    X, y = fastnet.datasets.load_digits(as_float=True)
    return X, y
