"""Shared fixtures: every model test runs on every available backend."""
import numpy as np
import pytest

import fastnet
from fastnet._kernels import defs

BACKENDS = fastnet.available_backends()
COMPILED = [b for b in BACKENDS if b != "numpy"]


def pytest_report_header(config):
    status = fastnet.backend_status()
    lines = ["fastnet %s from %s" % (fastnet.__version__, fastnet.__file__)]
    for name, reason in status.items():
        lines.append("  backend %-6s: %s" % (name, "ok" if reason is None else reason))
    return lines


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    return request.param


def make_spec(n_in, widths, acts, use_bias=None, drop=None, l1=None, l2=None, alpha=None):
    """ispec, fspec and the parameter count of a stack of Dense layers."""
    L = len(widths)
    use_bias = use_bias or [True] * L
    ispec = np.zeros((L, defs.NI), dtype=np.int64)
    fspec = np.zeros((L, defs.NF), dtype=np.float64)
    pos, prev = 0, n_in
    for l in range(L):
        ispec[l, defs.I_IN], ispec[l, defs.I_OUT] = prev, widths[l]
        ispec[l, defs.I_ACT] = acts[l]
        ispec[l, defs.I_W] = pos
        pos += prev * widths[l]
        if use_bias[l]:
            ispec[l, defs.I_B] = pos
            pos += widths[l]
        else:
            ispec[l, defs.I_B] = -1
        fspec[l, defs.F_ALPHA] = (alpha or [0.1] * L)[l]
        fspec[l, defs.F_DROP] = (drop or [0.0] * L)[l]
        fspec[l, defs.F_L1] = (l1 or [0.0] * L)[l]
        fspec[l, defs.F_L2] = (l2 or [0.0] * L)[l]
        prev = widths[l]
    return ispec, fspec, pos


@pytest.fixture(scope="session")
def digits():
    X, y = fastnet.datasets.load_digits(as_float=True)
    return X, y
