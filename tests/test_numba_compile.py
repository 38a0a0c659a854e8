"""What the numba backend compiles, and when.

* array flavours (read-only, non-contiguous, Fortran-order, memmap, int32 /
  int64 labels, one-hot targets, read-only one-hot targets) reach the kernels
  already compiled for plain arrays: no dispatcher gains a signature;
* a model compiles only the features it uses (no meProp, Maxout, PReLU,
  dropout or diagnostics kernels for a plain Dense model), ``fit(verbose=1)``
  says in one line when numba compiles, and a second fit in the same process
  compiles nothing (a fresh process with an empty cache folder).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnet
from fastnet.backends import available_backends

JIT_DISABLED = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")
pytestmark = [
    pytest.mark.skipif("numba" not in available_backends(), reason="numba backend not available"),
    pytest.mark.skipif(JIT_DISABLED, reason="NUMBA_DISABLE_JIT: nothing is compiled"),
]


def _signature_counts():
    import fastnet.backends.numba as nb
    return {(d.py_func.__qualname__, id(d)): len(d.signatures) for d in nb._dispatchers()}


def _flavours(X, tmp_path):
    """X as the flavours a user passes: read-only, a strided slice, Fortran
    order, a read-only and a writable memmap."""
    ro = X.copy()
    ro.flags.writeable = False
    wide = np.zeros((X.shape[0], 2 * X.shape[1]), X.dtype)
    wide[:, ::2] = X
    path = str(tmp_path / "x.npy")
    np.save(path, X)
    return {"read-only": ro, "non-contiguous": wide[:, ::2], "fortran": np.asfortranarray(X),
            "memmap r": np.load(path, mmap_mode="r"), "memmap r+": np.load(path, mmap_mode="r+"),
            "float64": X.astype(np.float64)}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_array_flavours_reach_the_same_specialisations(dtype, tmp_path):
    rng = np.random.default_rng(0)
    n, d, k = 64, 12, 4
    X = rng.standard_normal((n, d)).astype(dtype)
    y = rng.integers(0, k, n)
    onehot = np.eye(k, dtype=dtype)[y]

    def sparse_model():
        m = fastnet.Sequential([fastnet.Dense(8, "relu"), fastnet.Dense(k, "softmax")],
                               backend="numba", seed=0, dtype=dtype)
        m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return m

    def dense_model():
        m = fastnet.Sequential([fastnet.Dense(8, "relu"), fastnet.Dense(k, "softmax")],
                               backend="numba", seed=0, dtype=dtype)
        m.compile("adam", "categorical_crossentropy")
        return m

    # the plain inputs compile (or load) what these models need
    ms, md = sparse_model(), dense_model()
    ms.fit(X, y.astype(np.int64), epochs=1, batch_size=16, verbose=0)
    ms.predict(X, verbose=0)
    md.fit(X, onehot, epochs=1, batch_size=16, verbose=0)
    md.predict(X, verbose=0)
    ms.evaluate(X, y, verbose=0)
    md.evaluate(X, onehot, verbose=0)
    before = _signature_counts()
    want = ms.get_weights()

    ro_onehot = onehot.copy()
    ro_onehot.flags.writeable = False
    ro_labels = y.astype(np.int64)
    ro_labels.flags.writeable = False
    for name, Xf in _flavours(X, tmp_path).items():
        for labels in (y.astype(np.int32), y.astype(np.int64), ro_labels):
            m = sparse_model()
            m.fit(Xf, labels, epochs=1, batch_size=16, verbose=0)
            m.predict(Xf, verbose=0)
            m.evaluate(Xf, labels, verbose=0)
            if name != "float64":  # the same data: the same weights
                for a, b in zip(m.get_weights(), want):
                    np.testing.assert_array_equal(a, b, err_msg=name)
        for Y in (onehot, ro_onehot, np.asfortranarray(onehot)):
            m = dense_model()
            m.fit(Xf, Y, epochs=1, batch_size=16, verbose=0)
            m.evaluate(Xf, Y, verbose=0)
    after = _signature_counts()
    grown = {key[0]: (before.get(key, 0), c) for key, c in after.items() if c != before.get(key, 0)}
    assert not grown, "dispatchers compiled again for an array flavour: %s" % grown
    # and each of the two variants used holds one signature per dtype it met
    import fastnet.backends.numba as nb
    ispec, fspec = ms._ispec, ms._fspec
    variant = nb._variant(nb._nw.train_variant,
                          nb.train_flags(ispec, fspec, ms.optimizer.code, ms.optimizer.hyper(), None))
    assert len([s for s in variant.signatures if str(s[0].dtype) == dtype]) == 1


_CHILD = r"""
import json, sys, io, contextlib
import numpy as np
from numba.core import event
import fastnet

compiled = []
class L(event.Listener):
    def on_start(self, e):
        d = e.data.get("dispatcher")
        if d is not None:
            compiled.append(d.py_func.__qualname__)
    def on_end(self, e):
        pass
event.register("numba:compile", L())

rng = np.random.default_rng(0)
X = rng.standard_normal((40, 6)).astype(np.float32)
y = rng.integers(0, 3, 40)
def fit(verbose):
    m = fastnet.Sequential([fastnet.Dense(5, "relu"), fastnet.Dense(3, "softmax")],
                           backend="numba", seed=0)
    m.compile("sgd", "sparse_categorical_crossentropy")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        m.fit(X, y, epochs=2, batch_size=8, verbose=verbose)
    return out.getvalue()
first = fit(1)
n_first = len(compiled)
second = fit(1)
print(json.dumps({"compiled": compiled, "n_first": n_first, "first": first, "second": second}))
"""


def test_a_plain_model_compiles_only_what_it_uses_and_says_so_once(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, env=env,
                         check=True, timeout=900)
    rep = json.loads(out.stdout.strip().splitlines()[-1])
    compiled = set(rep["compiled"])
    assert "_make_train_batches.<locals>.train_batches" in compiled
    unused = {"topk_rows", "tn_sparse_ws", "nt_sparse_ws", "maxout_forward", "maxout_backward",
              "prelu_forward", "prelu_backward", "_dropout", "regularize", "_diag_counts", "_finite",
              "_update"}
    assert not compiled & unused, compiled & unused
    # a second fit in the same process compiles nothing
    assert rep["n_first"] == len(rep["compiled"])
    notices = [ln for ln in rep["first"].splitlines() if "numba is compiling" in ln]
    assert len(notices) == 1, rep["first"]
    line = notices[0]
    assert "the training step (float32)" in line and "once" in line and str(tmp_path) in line, line
    assert "numba is compiling" not in rep["second"]
