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
import re
import subprocess
import sys

import numpy as np
import pytest

import fastnet
from fastnet._kernels import defs
from fastnet.backends import available_backends

from conftest import train

JIT_DISABLED = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")
pytestmark = [
    pytest.mark.usefixtures("exact_variants"),
    pytest.mark.skipif("numba" not in available_backends(), reason="numba backend not available"),
    pytest.mark.skipif(JIT_DISABLED, reason="NUMBA_DISABLE_JIT: nothing is compiled"),
]


#: the training step's kernels that hold one signature per dtype, whatever the inputs' flavours
#: matmul's drivers, inlined into their callers at numba's IR level (kernels/numba/_jit.py:
#: ``inlined``): never compiled as functions of their own when a kernel calls them
INLINED = ("_rows", "_panel", "matmul__serial", "matmul_tn__serial", "nt_ws__serial")
ONE_SIGNATURE = ("_product__serial",
                 "gather_rows__serial", "bias_act_forward__serial", "act_backward__serial", "_head__serial",
                 "_head_one", "_update_range__serial", "bias_grad__serial", "_opt_tile",
                 "_make_train_batches.<locals>.train_batches__serial")


def _base(qualname):
    """A kernel's qualified name without the masks of kernels/numba/_jit.specialise's
    copies (``_opt_tile__opt_mask2`` -> ``_opt_tile``; a model's training step is a
    copy for its optimizer, activations and loss head)."""
    return re.sub(r"__[a-z]+_mask\d+(?:_[a-z]+_mask\d+)*", "", qualname)


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
    # the training step used (these small shapes: the serial twin) and the kernels
    # it calls hold one signature per dtype: matmul's chain once for every form and
    # layout of its A operand (batch rows, layer 0's halves of p, matmul_tn's A.T)
    import fastnet.backends.numba as nb
    layers = ms._layer_table
    variant = nb._train_kernel(layers, ms.optimizer.code, ms.optimizer.hyper(), None, 16, ms._params,
                               defs.HEAD_SOFTMAX_XENT, y.astype(np.int64))
    assert _base(variant.py_func.__qualname__) == "_make_train_batches.<locals>.train_batches__serial"
    assert variant.py_func.__qualname__ != "_make_train_batches.<locals>.train_batches__serial"
    # (a float32 signature may hold float64 arrays too: hyper, the float64 records)
    per_dtype = {d.py_func.__qualname__: len([s for s in d.signatures
                                              if ("Array(float32" in str(s)) == (dtype == "float32")])
                 for d in nb._dispatchers()}
    assert per_dtype[variant.py_func.__qualname__] == 1
    # (a callee loaded with its caller from the cache holds none; the unspecialised
    # _opt_tile of the public optimizer_update is also reached by the contract kernels
    # that other tests of this process call with other inputs (tests/test_kernel_table.py):
    # the fresh-process test below counts it exactly; each variant's copies (the sparse
    # and the one-hot model's heads, the optimizer's masked _opt_tile) count apart)
    for name, n in per_dtype.items():
        if _base(name) in ONE_SIGNATURE and name != "_opt_tile":
            assert n <= 1, (name, n)
        if _base(name) in INLINED:
            assert n == 0, (name, n)


def test_serial_twin_gives_the_parallel_steps_bits(monkeypatch):
    """The serial twin of train_batches runs every kernel's serial loop; on shapes
    where the parallel variant runs its prange loops (tiles fixed by the shape)
    both give the same bits, at 1 and 2 threads."""
    import fastnet.backends.numba as nb
    from test_numba_backend import _case
    args = _case("softmax_sparse", "adam", drop=0.0, l1=0.0, l2=0.0)
    assert not nb.serial_step(args[8], args[5], args[14])
    got = {}
    for forced in (False, True):
        if forced:   # the adapter picks the twin whatever the shapes
            monkeypatch.setattr(nb, "serial_step", lambda layers, batch_size, params: True)
        for n_threads in (1, 2):
            a = [x.copy() if isinstance(x, np.ndarray) else x for x in args]
            a[-1] = n_threads
            train(nb, *a)
            got[forced, n_threads] = (a[14], a[18])    # params, batch_loss
    twin = nb._train_kernel(args[8], args[10], args[11], None, args[5], args[14], args[9], args[2])
    assert twin.py_func.__qualname__.endswith("__serial") and len(twin.signatures) >= 1
    want = got[False, 1]
    assert not np.array_equal(want[0], args[14])
    for key, (params, loss) in got.items():
        np.testing.assert_array_equal(params, want[0], err_msg=str(key))
        np.testing.assert_array_equal(loss, want[1], err_msg=str(key))


def test_one_variant_mode_shares_one_step_with_the_same_bits(monkeypatch):
    """FASTNET_NUMBA_VARIANTS=one: a plain Adam model and an SGD model with
    dropout and L2 reach the same training step (the one holding every feature
    and code), which gives the bits of the plain model's own variant."""
    import fastnet.backends.numba as nb
    from test_numba_backend import _case
    plain = _case("softmax_sparse", "adam", drop=0.0, l1=0.0, l2=0.0)
    rich = _case("softmax_sparse", "sgd", drop=0.2, l1=0.0, l2=1e-3)

    def kernel(args):
        return nb._train_kernel(args[8], args[10], args[11], None, args[5], args[14], args[9], args[2])

    def run(args):
        a = [x.copy() if isinstance(x, np.ndarray) else x for x in args]
        train(nb, *a)
        return a[14], a[18]
    exact = kernel(plain)
    want = run(plain)
    assert kernel(rich) is not exact
    monkeypatch.setattr(nb, "VARIANTS", "one")
    one = kernel(plain)
    assert one is kernel(rich) and one is not exact
    assert not one.py_func.__qualname__.endswith("__serial")
    got = run(plain)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_variants_setting_is_checked_at_import():
    env = dict(os.environ, FASTNET_NUMBA_VARIANTS="some")
    out = subprocess.run([sys.executable, "-c", "import fastnet.backends.numba"], capture_output=True,
                         text=True, env=env, timeout=300)
    assert out.returncode != 0
    assert "FASTNET_NUMBA_VARIANTS must be 'exact' or 'one', got 'some'" in out.stderr


def test_serial_step_follows_the_parallel_thresholds():
    """The serial twin is picked only where no kernel reaches a parallel threshold."""
    import fastnet.backends.numba as nb
    from fastnet._kernels.numba import _jit
    layers = defs.new_layers(2)
    layers["n_in"] = (784, 30)
    layers["n_out"] = (30, 10)
    params = np.zeros(784 * 30 + 30 + 310, np.float32)
    assert nb.serial_step(layers, 10, params)                       # the seed step: 235k multiply-adds
    assert not nb.serial_step(layers, 50, params)                   # 50 x 784 = 39200 elements to gather
    assert not nb.serial_step(layers, 10, np.zeros(_jit.ELEM_PAR_MIN, np.float32))   # the optimizer's tiles
    wide = layers.copy()
    wide[0]["n_out"] = wide[1]["n_in"] = 200
    assert not nb.serial_step(wide, 10, params)                    # 10 x 784 x 200 >= MATMUL_PAR_MIN
    maxout = layers.copy()
    maxout[0]["kind"], maxout[0]["pieces"] = defs.LAYER_MAXOUT, 200
    assert not nb.serial_step(maxout, 10, params)                  # z is 6000 wide


_CHILD = r"""
import json, sys, io, contextlib
import numpy as np
from numba.core import event
import fastnet

compiled = []
parallel = []
class L(event.Listener):
    def on_start(self, e):
        d = e.data.get("dispatcher")
        if d is not None:
            compiled.append(d.py_func.__qualname__)
            if d.targetoptions.get("parallel"):
                parallel.append(d.py_func.__qualname__)
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
# the flavours: read-only, Fortran-order and strided X, int32 / read-only labels
ro = X.copy(); ro.flags.writeable = False
y32 = y.astype(np.int32); y32.flags.writeable = False
wide = np.zeros((40, 12), np.float32); wide[:, ::2] = X
for Xf in (ro, np.asfortranarray(X), wide[:, ::2]):
    for yf in (y, y32):
        m = fastnet.Sequential([fastnet.Dense(5, "relu"), fastnet.Dense(3, "softmax")], backend="numba", seed=0)
        m.compile("sgd", "sparse_categorical_crossentropy")
        m.fit(Xf, yf, epochs=1, batch_size=8, verbose=0)
n_fits = len(compiled)
n_parallel = len(parallel)
# predict, evaluate and a two-thread fit: no helper called from Python on the way
m.predict(X, verbose=0)
m.evaluate(X, y, verbose=0)
fastnet.set_num_threads(2)
m.fit(X, y, epochs=1, batch_size=8, verbose=0)
import fastnet.backends.numba as nb
from fastnet._kernels.numba import _jit
sigs = {d.py_func.__qualname__: len(d.signatures) for d in nb._dispatchers() if d.signatures}
wrapped = sorted(d.py_func.__qualname__ for d in nb._dispatchers() if d.signatures and not isinstance(d, _jit._Helper))
print(json.dumps({"compiled": compiled, "parallel": parallel, "n_first": n_first, "first": first,
                  "second": second, "signatures": sigs, "n_fits": n_fits, "n_parallel": n_parallel, "wrapped": wrapped,
                  "py_copies": [d.py_func.__qualname__ for d in _jit.PY_COPIES.values()]}))
"""


def test_a_plain_model_compiles_only_what_it_uses_and_says_so_once(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, env=env,
                         check=True, timeout=900)
    rep = json.loads(out.stdout.strip().splitlines()[-1])
    # small shapes (no kernel reaches a parallel threshold): the serial twin of the
    # lean training step, and no parallel kernel at all
    compiled = {_base(q) for q in rep["compiled"]}
    assert "_make_train_batches.<locals>.train_batches__serial" in compiled
    compiled = {q[:-len("__serial")] if q.endswith("__serial") else q for q in compiled}
    assert not rep["parallel"][:rep["n_parallel"]], rep["parallel"]
    unused = {"topk_rows", "tn_sparse_ws", "nt_sparse_ws", "maxout_forward", "maxout_backward",
              "prelu_forward", "prelu_backward", "_dropout", "regularize", "_diag_counts", "_finite",
              "_update"}
    assert not compiled & unused, compiled & unused
    # a second fit in the same process compiles nothing, nor do the flavoured inputs;
    # each kernel of the step holds one signature (every array flavour, both label
    # widths, every layout of matmul's A operand), the loss row two (logits, Y rows)
    assert rep["n_first"] == rep["n_fits"], rep["compiled"][rep["n_first"]:rep["n_fits"]]
    # only the functions Python calls hold the wrappers that let Python call them (the
    # training step, its shapes' plan, the forward pass, the contract kernels), and no
    # helper was called from Python: every other function is compiled once, without them
    assert not rep["py_copies"], rep["py_copies"]
    wrapped = {_base(q) for q in rep["wrapped"]} - {
        "_make_train_batches.<locals>.train_batches__serial", "_make_forward.<locals>.forward", "_ksplit"}
    assert wrapped and all(not q.startswith("_") and not q.endswith("__serial") for q in wrapped), wrapped
    sigs = rep["signatures"]
    for name in ONE_SIGNATURE:
        got = [n for q, n in sigs.items() if _base(q) == name]
        assert got == [1], (name, got)
    assert not [q for q in sigs if _base(q) in INLINED], sorted(sigs)
    # only the copies for this model's optimizer (sgd), activations (relu forward and
    # backward, the softmax head's linear forward) and loss row (labels) compiled
    masks = {"opt_mask%d" % (1 << defs.OPT_SGD), "fwd_mask%d" % (1 << defs.ACT_RELU | 1 << defs.ACT_LINEAR),
             "bwd_mask%d" % (1 << defs.ACT_RELU), "head_mask1"}
    assert {m for q in sigs for m in re.findall(r"[a-z]+_mask\d+", q)} == masks, sorted(sigs)
    assert max(sigs.values()) <= 2, sigs
    notices = [ln for ln in rep["first"].splitlines() if "numba is compiling" in ln]
    assert len(notices) == 1, rep["first"]
    line = notices[0]
    assert "the training step (float32)" in line and "once" in line and str(tmp_path) in line, line
    assert "numba is compiling" not in rep["second"]
