"""Numba-specific properties of the numba backend (parity with the NumPy
reference is tests/test_kernels.py's job):

* results are bit-identical for 1 and 2 threads (every optimizer x head, with
  shapes large enough to take every kernel's parallel loop);
* compiled code is cached on disk and a fresh process loads it;
* the fastmath flags exclude nnan / ninf, and NaN propagates;
* the dropout hash is exact uint64 arithmetic;
* the adapter's scalar conversions keep one specialisation per dtype.
"""
import glob
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from fastnet._kernels import defs
from fastnet.backends import _api, available_backends, get_backend

from conftest import TRAIN_ARG, make_spec, make_targets, train

JIT_DISABLED = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")
pytestmark = [
    pytest.mark.skipif("numba" not in available_backends(), reason="numba backend not available"),
    pytest.mark.skipif(JIT_DISABLED, reason="NUMBA_DISABLE_JIT: nothing is compiled"),
]

if "numba" in available_backends():
    import numba
    import fastnet.backends.numba as nb
    from fastnet._kernels.numba import _jit
    from fastnet._kernels.numba import network as _nw

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------------------
# a network big enough to run every kernel's parallel loop
# ---------------------------------------------------------------------------
HEADS = {
    "softmax_sparse": (defs.HEAD_SOFTMAX_XENT, defs.ACT_LINEAR),
    "softmax_dense": (defs.HEAD_SOFTMAX_XENT, defs.ACT_SOFTMAX),
    "sigmoid_bce": (defs.HEAD_SIGMOID_BCE, defs.ACT_LINEAR),
    "mse": (defs.HEAD_MSE, defs.ACT_TANH),
    "mae": (defs.HEAD_MAE, defs.ACT_LINEAR),
}
OPTS = {
    "none": (defs.OPT_NONE, {}),
    "sgd": (defs.OPT_SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": 1.0, "weight_decay": 1e-3}),
    "adagrad": (defs.OPT_ADAGRAD, {"lr": 0.05, "lr_decay": 0.01, "eps": 1e-10}),
    "rmsprop": (defs.OPT_RMSPROP, {"lr": 0.01, "alpha": 0.99, "eps": 1e-8, "momentum": 0.5,
                                   "centered": 1.0}),
    "adam": (defs.OPT_ADAM, {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                             "amsgrad": 1.0}),
    "adamw": (defs.OPT_ADAMW, {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                               "weight_decay": 0.01}),
}


def _case(head_name, opt_name, dtype="float32", N=1024, bs=256, n_in=128, widths=(256, 160, 128),
          drop=0.25, l1=1e-4, l2=1e-3, seed=0):
    """Arguments of train_batches.  The defaults are big enough for every
    prange loop: bs x width >= ELEM_PAR_MIN (elementwise, head, dropout,
    gather, bias_grad), n_in x width >= ELEM_PAR_MIN (regularization), P
    (optimizer), bs x n_in x width >= MATMUL_PAR_MIN (matmuls)."""
    head, last_act = HEADS[head_name]
    code, hyp = OPTS[opt_name]
    rng = np.random.default_rng(seed)
    L = len(widths)
    acts = [defs.ACT_RELU, defs.ACT_SWISH][:L - 1] + [last_act]
    layers, P = make_spec(n_in, list(widths), acts, drop=[drop] * (L - 1) + [0.0],
                                l1=[l1] * L, l2=[l2] * L)
    k = widths[-1]
    X = rng.standard_normal((N, n_in)).astype(dtype)
    Y, labels, sw = make_targets(rng, head, last_act, N, k, dtype)
    hyper = np.zeros(defs.NH)
    for name, v in hyp.items():
        hyper[defs.HYPER[name]] = v
    params = (0.2 * rng.standard_normal(P)).astype(dtype)
    state = np.zeros((defs.N_STATE, P), dtype)
    perm = rng.permutation(N).astype(np.int64)
    n_b = _api.n_batches(N, bs)
    work = np.zeros(_api.workspace_size(layers, bs), dtype)
    return [X, Y, labels, sw, perm, bs, 0, n_b, layers, head, code, hyper, 0,
            0x0123456789ABCDEF, params, np.zeros(P, dtype), state, work, np.full(n_b, np.nan),
            np.full((N, k), np.nan, dtype), 1]


OUTS = {TRAIN_ARG[a]: a for a in ("params", "grads", "state", "batch_loss", "scores")}


@pytest.mark.parametrize("opt_name", list(OPTS))
@pytest.mark.parametrize("head_name", list(HEADS))
def test_train_batches_bit_identical_for_1_and_2_threads(head_name, opt_name):
    if nb.MAX_THREADS < 2:
        pytest.skip("numba's pool has a single thread (NUMBA_NUM_THREADS=1)")
    runs = {}
    for n_threads in (1, 2):
        args = _case(head_name, opt_name)
        args[-1] = n_threads
        for _ in range(2):     # two epochs: 16 steps, optimizer state carried over
            train(nb, *args)
            args[12] += args[7]
        runs[n_threads] = args
    for i, name in OUTS.items():
        a, b = runs[1][i], runs[2][i]
        assert np.isfinite(a).all(), name
        assert a.tobytes() == b.tobytes(), "%s differs between 1 and 2 threads" % name


def _new_layers_case(clip, dtype="float32", N=1100, bs=256, n_in=96, seed=0):
    """train_batches arguments (diag last) of a Maxout -> PReLU (meProp, dropout)
    -> ReLU (meProp) -> softmax network, big enough for the parallel loops of
    the layer kernels: bs x width >= ELEM_PAR_MIN, PReLU width > COL_TILE,
    bs x k x k_in >= MATMUL_PAR_MIN for the sparse products."""
    rng = np.random.default_rng(seed)
    # (units, act, kind, pieces, topk, drop, prelu)
    plan = [(64, defs.ACT_LINEAR, defs.LAYER_MAXOUT, 3, 0, 0.0, False),
              (140, defs.ACT_PRELU, defs.LAYER_DENSE, 1, 20, 0.25, True),
              (130, defs.ACT_RELU, defs.LAYER_DENSE, 1, 16, 0.0, False),
              (10, defs.ACT_LINEAR, defs.LAYER_DENSE, 1, 0, 0.0, False)]
    L = len(plan)
    layers = defs.new_layers(L)
    pos, prev = 0, n_in
    for l, (units, act, kind, q, k, drop, prelu) in enumerate(plan):
        layers[["n_in", "n_out", "act", "kind", "pieces", "topk"]][l] = (prev, units, act, kind, q, k)
        layers[l]["w_offset"] = pos
        pos += prev * units * q
        layers[l]["b_offset"] = pos
        pos += units * q
        layers[l]["slopes_offset"] = pos if prelu else -1
        pos += units if prelu else 0
        layers[l]["act_param"] = 0.1
        layers[l]["dropout"] = drop
        layers[l]["l2"] = 1e-4
        prev = units
    P = pos
    params = (0.2 * rng.standard_normal(P)).astype(dtype)
    ap = layers[1]["slopes_offset"]
    params[ap:ap + 80] = 0.25
    hyper = np.zeros(defs.NH)
    hyper[defs.H_LR] = 0.01
    hyper[defs.H_BETA1], hyper[defs.H_BETA2], hyper[defs.H_EPS] = 0.9, 0.999, 1e-8
    hyper[defs.HYPER[clip]] = 0.05
    X = rng.standard_normal((N, n_in)).astype(dtype)
    labels = rng.integers(0, 10, N).astype(np.int64)
    n_b = _api.n_batches(N, bs)
    diag = np.zeros(defs.diag_size(layers))
    diag[:3] = [-1, -1, 0]
    return [X, np.empty((0, 10), dtype), labels, rng.random(N).astype(dtype),
            rng.permutation(N).astype(np.int64), bs, 0, n_b, layers,
            defs.HEAD_SOFTMAX_XENT, defs.OPT_ADAM, hyper, 0, 0x0123456789ABCDEF, params,
            np.zeros(P, dtype), np.zeros((defs.N_STATE, P), dtype),
            np.zeros(_api.workspace_size(layers, bs), dtype), np.full(n_b, np.nan),
            np.full((N, 10), np.nan, dtype), 1, diag]


@pytest.mark.parametrize("clip", ["clipnorm", "global_clipnorm"])
def test_new_layers_bit_identical_for_1_and_2_threads(clip):
    """Maxout + PReLU + meProp + clipping + diagnostics: train_batches (and forward
    on the trained parameters) give the same bytes for 1 and 2 threads."""
    if nb.MAX_THREADS < 2:
        pytest.skip("numba's pool has a single thread (NUMBA_NUM_THREADS=1)")
    runs = {}
    for n_threads in (1, 2):
        args = _new_layers_case(clip)
        args[20] = n_threads
        for _ in range(2):
            train(nb, *args[:21], diag=args[21])
            args[12] += args[7]
        X, layers, params = args[0], args[8], args[14]
        out = np.full((X.shape[0], 10), np.nan, X.dtype)
        nb.forward(X, layers, params,
                   np.zeros(_api.forward_workspace_size(layers, X.shape[0]), X.dtype), out, n_threads)
        runs[n_threads] = args + [out]
    assert runs[1][21][defs.DG_BATCH] == -1 and runs[1][21][defs.DG_ROWS] == 2 * 1100
    for i, name in {**OUTS, 21: "diag", 22: "forward"}.items():
        a, b = runs[1][i], runs[2][i]
        assert np.isfinite(a).all(), name
        assert a.tobytes() == b.tobytes(), "%s differs between 1 and 2 threads" % name


# ---------------------------------------------------------------------------
# compile options and the on-disk cache
# ---------------------------------------------------------------------------
def _dispatchers():
    return list(nb._dispatchers())


def test_fastmath_excludes_nnan_and_ninf():
    assert not {"nnan", "ninf", "fast"} & set(_jit.FASTMATH)
    disps = _dispatchers()
    assert len(disps) > 20
    # the strict helpers (no fast-math at all: the Cython twin's bits)
    strict = {"_softmax_xent_row", "_xent_argmax", "_xent_finish", "_reg_penalty", "_abs_sq_sums",
              "_sum_in_order"}
    for d in disps:
        fm = d.targetoptions.get("fastmath")
        if d.py_func.__qualname__ in strict:
            assert fm is False, d.py_func.__qualname__
            continue
        assert set(fm) == set(_jit.FASTMATH), d.py_func.__qualname__
        assert d.targetoptions.get("error_model") == "numpy"


def test_helpers_compile_without_wrappers_and_python_calls_run_a_wrapped_copy():
    """A helper (called only from compiled code) holds no CPython / C wrapper; a
    call from Python runs a copy compiled with them, under its own cache file."""
    from fastnet._kernels.numba import fn_math
    helper = fn_math.fn_exp
    assert isinstance(helper, _jit._Helper)
    assert helper.targetoptions["no_cpython_wrapper"] and helper.targetoptions["no_cfunc_wrapper"]
    for x in (-3.5, 0.0, 1.0, 20.25):
        assert helper(x) == pytest.approx(math.exp(x), rel=1e-15)
    copy = _jit.PY_COPIES[id(helper)]
    assert copy.py_func.__qualname__ == "fn_exp" + _jit.PY_SUFFIX
    assert not isinstance(copy, _jit._Helper) and "no_cpython_wrapper" not in copy.targetoptions
    assert type(copy._cache).__name__ == "FunctionCache"
    assert copy._cache._cache_file._index_name != helper._cache._cache_file._index_name
    # the copies made for the training step (a twin, a specialised copy) of a helper
    # or of a kernel the step calls are helpers; the step itself is not
    step = _nw.train_variant((False,) * 7, serial=True)
    assert not isinstance(step, _jit._Helper)
    twin_callee = _jit.serial_twin(_nw._head, True)
    assert isinstance(twin_callee, _jit._Helper) and twin_callee.py_func.__qualname__ == "_head__serial"
    assert isinstance(_jit.serial_twin(nb._ew.bias_act_forward, True), _jit._Helper)


def test_every_kernel_is_cached_and_compiled_once_per_source():
    """cache=True everywhere, and no function is compiled under two sets of
    flags (numba keys cache files by name and line, not by flags)."""
    seen = {}
    for d in _dispatchers():
        assert type(d._cache).__name__ == "FunctionCache", d.py_func.__qualname__
        code = d.py_func.__code__
        # the feature variants of train_batches / forward share a file, keyed by their flags
        cells = tuple(c.cell_contents for c in d.py_func.__closure__ or ())
        assert all(type(c) is bool for c in cells), d.py_func.__qualname__
        key = (code.co_filename, code.co_firstlineno, d.py_func.__qualname__, cells)
        assert key not in seen, "%s compiled twice" % (key,)
        seen[key] = d
    # every contract kernel of the numba module is a module-level dispatcher
    from numba.core.registry import CPUDispatcher
    for name in _api.KERNELS:
        env = getattr(nb, name).__globals__         # the adapter's pre-bound callables
        # train_batches / forward: through the variant compiled for the model's features
        if name in ("train_batches", "forward"):
            assert env["_select"] is {"train_batches": nb._train_kernel, "forward": nb._forward_kernel}[name]
        else:
            assert isinstance(env["_kernel"], CPUDispatcher) and env["_kernel"].__name__ == name, name
    for mod in nb._KERNEL_MODULES:
        for name in _api.KERNELS:
            if hasattr(mod, name):
                assert isinstance(getattr(mod, name), CPUDispatcher), name


def test_cache_files_written_and_loaded_by_a_fresh_process():
    args = _case("softmax_sparse", "sgd", N=300)
    train(nb, *args)
    cache_dir = _nw.train_batches._cache.cache_path
    # (the variant of this call: its masks suffix the name, kernels/numba/_jit.specialise)
    name = nb._train_kernel(args[8], args[10], args[11], None, args[5], args[14], args[9],
                            args[2]).py_func.__qualname__.replace("<locals>", "locals")
    assert glob.glob(os.path.join(cache_dir, "network.%s-*.nbi" % name))
    assert glob.glob(os.path.join(cache_dir, "network.%s-*.nbc" % name))
    code = ("import sys, json; sys.path.insert(0, %r); import test_numba_backend as t; "
            "print(json.dumps(t._fresh_process_report()))" % HERE)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=HERE)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["misses"] == 0 and report["hits"] >= 1, report


def _fresh_process_report():
    """Run in a subprocess: the same call as above, from the on-disk cache."""
    args = _case("softmax_sparse", "sgd", N=300)
    train(nb, *args)
    st = nb._train_kernel(args[8], args[10], args[11], None, args[5], args[14], args[9],
                          args[2]).stats
    return {"hits": sum(st.cache_hits.values()), "misses": sum(st.cache_misses.values())}


def test_config_digest_is_the_same_in_every_process():
    code = "from fastnet._kernels.numba import _jit; print(_jit.config_digest())"
    digests = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, env=env, cwd=HERE)
        digests.add(out.stdout.strip())
    assert digests == {_jit.config_digest()}


def test_refresh_cache_flushes_when_the_constants_change(tmp_path):
    """In a process with its own cache folder: the marker is written on first
    use, kept while the constants are unchanged, replaced (and the cache
    flushed) when they change."""
    code = """if 1:
        import os, json
        from fastnet.backends import get_backend
        nb = get_backend("numba")          # runs check(), which writes the marker
        from fastnet._kernels.numba import _jit
        marker = os.path.join(nb._mm.matmul._cache.cache_path, nb._MARKER)
        first = open(marker).read().strip()
        again = nb.refresh_cache()
        _jit.config_digest = lambda: "0000000000000000"
        changed = nb.refresh_cache()
        print(json.dumps([first, again, changed, open(marker).read().strip()]))
    """
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env, cwd=HERE)
    first, again, changed, marker = json.loads(out.stdout.strip().splitlines()[-1])
    assert first == _jit.config_digest()
    assert again is False and changed is True and marker == "0000000000000000"


def test_threading_layer_info():
    info = nb.info()
    assert info["threading_layer"] in ("omp", "tbb", "workqueue")
    assert info["max_threads"] == numba.config.NUMBA_NUM_THREADS
    assert info["numba"] == numba.__version__


def test_thread_count_is_clamped_and_validated():
    A = np.ones((3, 2))
    C = np.empty((3, 3))
    nb.matmul(A, np.ones((2, 3)), C, 10 ** 6)       # more than the pool: clamped
    assert numba.get_num_threads() == nb.MAX_THREADS
    nb.matmul(A, np.ones((2, 3)), C, 1)
    assert numba.get_num_threads() == 1
    with pytest.raises(ValueError):
        nb.matmul(A, np.ones((2, 3)), C, 0)
    nb.matmul(A, np.ones((2, 3)), C, nb.MAX_THREADS)
    assert numba.get_num_threads() == nb.MAX_THREADS
    # the adapter sets the pool through the C setter after reading it: a change made
    # behind its back (numba's public API) is still overridden by the next call
    numba.set_num_threads(1)
    nb.matmul(A, np.ones((2, 3)), C, nb.MAX_THREADS)
    assert numba.get_num_threads() == nb.MAX_THREADS


def test_scalar_arguments_do_not_multiply_specialisations():
    from fastnet._kernels.numba import _generated_elementwise as ew
    Z = np.ones((2, 3), np.float32)
    b = np.zeros(3, np.float32)
    nb.bias_act_forward(b, defs.ACT_TANH, 0.1, Z, Z.copy(), 1)
    n_sigs = len(ew.bias_act_forward.signatures)
    for act, act_param in [(np.int32(defs.ACT_TANH), np.float32(0.1)),
                       (np.int64(defs.ACT_TANH), 1), (np.uint8(defs.ACT_TANH), np.float64(0))]:
        nb.bias_act_forward(b, act, act_param, Z, Z.copy(), np.int32(1))
    assert len(ew.bias_act_forward.signatures) == n_sigs


# ---------------------------------------------------------------------------
# NaN / inf behaviour and exact integer arithmetic
# ---------------------------------------------------------------------------
def test_nan_propagates_through_softmax_activation_and_training():
    Z = np.array([[0.0, np.nan, 1.0], [0.0, 1.0, 2.0]])
    A = np.empty_like(Z)
    nb.bias_act_forward(np.empty(0), defs.ACT_SOFTMAX, 0.0, Z.copy(), A, 1)
    assert np.isnan(A[0]).all() and np.isfinite(A[1]).all()
    args = _case("softmax_sparse", "sgd", dtype="float64", N=300)
    layers = args[8]
    args[14][layers[-1]["w_offset"] + 3] = np.nan     # one weight of the logits layer
    train(nb, *args)
    assert np.isnan(args[18]).all()       # every batch loss reports the divergence


def test_dropout_hash_is_exact_uint64_arithmetic():
    """network.dropout_keep against defs.mix64 on Python ints, including
    counters and keys where any float64 rounding would show."""
    rng = np.random.default_rng(5)
    mask = (1 << 64) - 1
    keys = [0, 1, mask, 0xDEADBEEF12345678] + [int(x) for x in rng.integers(0, 2 ** 63, 4)]
    counters = [0, 1, 2 ** 53 + 1, 2 ** 63 + 12345, mask - 1] + \
        [int(x) for x in rng.integers(0, 2 ** 62, 6)]
    for key in keys:
        for c in counters:
            u = defs.mix64((key + (c + 1) * defs.GOLDEN) & mask)
            uniform = (u >> 11) * 2.0 ** -53
            for rate in (0.1, 0.5, uniform, np.nextafter(uniform, 1.0)):
                want = uniform >= rate
                got = _nw.dropout_keep(np.uint64(key), np.uint64(c), float(rate))
                assert bool(got) == want, (key, c, rate)


# ---------------------------------------------------------------------------
# the matmul family's SIMD micro-kernel (kernels/numba/matmul.py, simd.py)
# ---------------------------------------------------------------------------
def test_matmul_forms_accept_strided_arrays():
    """Outside the contract (C-contiguous arrays) the drivers go through
    contiguous copies: same values as numpy, nothing written outside C."""
    rng = np.random.default_rng(5)
    A = rng.standard_normal((12, 40))
    Bw = rng.standard_normal((20, 66))
    B = Bw[:, ::2]                          # (20, 33), column stride 2
    for form, a, b, R in [("matmul", A[:, :20], B, A[:, :20] @ B),
                          ("matmul_tn", A[:, :12].T.copy(), B[:12], A[:, :12] @ B[:12]),
                          ("matmul_nt", A[:, :33], B, A[:, :33] @ B.T)]:
        Cw = np.full((R.shape[0], 2 * R.shape[1]), 7.0)
        nb_form = getattr(nb, form)
        nb_form(a, b, Cw[:, ::2], 2)
        np.testing.assert_allclose(Cw[:, ::2], R, rtol=1e-12, atol=1e-12)
        assert (Cw[:, 1::2] == 7.0).all()


def test_simd_vector_width_follows_the_cpu():
    from fastnet._kernels.numba import simd
    import llvmlite.binding as llvm
    if numba.config.CPU_NAME not in (None, "host"):
        pytest.skip("numba compiles for NUMBA_CPU_NAME=%s (the next test)" % numba.config.CPU_NAME)
    feats = numba.config.CPU_FEATURES or llvm.get_host_cpu_features().flatten()
    have = {f[1:] for f in feats.split(",") if f.startswith("+")}
    want = 64 if "avx512f" in have else 32 if "avx" in have else 16
    assert simd.VECTOR_BYTES == want
    assert simd.lanes_of(numba.float32) == want // 4 and simd.lanes_of(numba.float64) == want // 8


def test_simd_vector_width_follows_numba_cpu_name():
    """NUMBA_CPU_NAME=haswell with NUMBA_CPU_FEATURES="" compiles AVX2 code on any
    x86-64 host: the vectors (and the matmul's row blocks) must be AVX2's; without
    NUMBA_CPU_FEATURES numba adds the host's features to the name, and the width
    follows the host."""
    import llvmlite.binding as llvm
    host = {f[1:] for f in llvm.get_host_cpu_features().flatten().split(",") if f.startswith("+")}
    host_want = "64 8" if "avx512f" in host else "32 5" if "avx" in host else "16 5"
    code = ("from fastnet._kernels.numba import simd, matmul; "
            "print(simd.VECTOR_BYTES, matmul.ROW_BLOCK)")
    for name, feats, want in (("haswell", "", "32 5"), ("skylake-avx512", "", "64 8"),
                              ("x86-64", "", "16 5"), ("haswell", None, host_want)):
        env = dict(os.environ, NUMBA_CPU_NAME=name)
        env.pop("NUMBA_CPU_FEATURES", None)
        if feats is not None:
            env["NUMBA_CPU_FEATURES"] = feats
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True).stdout.split()
        assert " ".join(out) == want, (name, feats, out)


_ISA_SHAPES = [(13, 37, 32), (64, 300, 40), (130, 64, 48), (200, 300, 64), (7, 20, 16),
               (11, 9, 37), (9, 5, 13)]
_ISA_CODE = r"""
import sys, numpy as np
import fastnet.backends.numba as nb
from fastnet._kernels.numba import simd, matmul
out = {}
for n, k, m in %r:
    rng = np.random.default_rng(n * 7919 + k * 31 + m)
    A = rng.standard_normal((n, k)).astype(np.float32)
    B = rng.standard_normal((k, m)).astype(np.float32)
    for th in (1, 2):
        C = np.full((n, m), np.nan, np.float32)
        nb.matmul(A, B, C, th)
        out["%%d %%d %%d %%d" %% (n, k, m, th)] = C
np.savez(sys.argv[1], vector_bytes=simd.VECTOR_BYTES, full_rows=matmul.FULL_ROWS, **out)
""" % (_ISA_SHAPES,)


_SIMD_CODE = r"""
import json, numpy as np
from numba import njit
from fastnet._kernels.numba.simd import VECTOR_BYTES, vlanes, vload_n, vstore_n

@njit
def copy_n(src, dst, j, n):
    vstore_n(dst, j, vload_n(src, j, n), n)

out = {"vector_bytes": VECTOR_BYTES, "bad": []}
for dt in (np.float32, np.float64):
    lanes = VECTOR_BYTES // np.dtype(dt).itemsize
    for n in range(lanes + 2):
        for j in (0, 3):
            src = np.arange(1, 40, dtype=dt)
            dst = np.full(39, -7.0, dt)
            copy_n(src, dst, j, n)
            want = np.full(39, -7.0, dt)
            want[j:j + min(n, lanes)] = src[j:j + min(n, lanes)]
            if not np.array_equal(dst, want):
                out["bad"].append([np.dtype(dt).name, n, j])
print(json.dumps(out))
"""


def test_simd_partial_vectors_without_mask_registers():
    """vload_n / vstore_n with 0 .. lanes + 1 elements on AVX2 (NUMBA_CPU_NAME=haswell),
    where a whole vector is a plain load / store and a partial store is split into
    plain stores of 4 / 2 / 1 lanes (no vmaskmovps): exactly n elements move, the
    rest of the row is untouched, in both dtypes and at an unaligned offset."""
    import llvmlite.binding as llvm
    host = {f[1:] for f in llvm.get_host_cpu_features().flatten().split(",") if f.startswith("+")}
    if not {"avx2", "fma"} <= host:
        pytest.skip("the host cannot run AVX2 code")
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")}
    env.update(NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES="")
    out = json.loads(subprocess.run([sys.executable, "-c", _SIMD_CODE], env=env, check=True,
                                    capture_output=True, text=True).stdout.splitlines()[-1])
    assert out["vector_bytes"] == 32
    assert out["bad"] == []


def test_matmul_avx2_blocks_give_the_host_bits(tmp_path):
    """The AVX2 build (NUMBA_CPU_NAME=haswell: 5-row masked blocks, 6-row plain
    blocks on whole panels) and the host's (on AVX-512: 8 and 8) sum every element
    as the same chain of fused multiply-adds over p, so the products are the same
    bits whatever the vector width, row block or thread count: whole and ragged
    panels, a second p block (k > P_BLOCK), row remainders and the parallel row
    chunks.  (float32 and the direct form only: float64 and the other forms run
    the same blocks, and each is one more cold compile of them in CI.)"""
    import llvmlite.binding as llvm
    host = {f[1:] for f in llvm.get_host_cpu_features().flatten().split(",") if f.startswith("+")}
    if not {"avx2", "fma"} <= host:
        pytest.skip("the host cannot run AVX2 code")
    res = {}
    for label in ("avx2", "host"):
        env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")}
        if label == "avx2":
            env.update(NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES="")
        f = str(tmp_path / ("%s.npz" % label))
        subprocess.run([sys.executable, "-c", _ISA_CODE, f], env=env, check=True, cwd=str(tmp_path))
        res[label] = np.load(f)
    avx2, host = res["avx2"], res["host"]
    assert int(avx2["vector_bytes"]) == 32 and int(avx2["full_rows"]) == 6
    keys = [k for k in avx2.files if " " in k]
    assert len(keys) == len(_ISA_SHAPES) * 2
    for key in keys:
        n, k, m, th = map(int, key.split())
        rng = np.random.default_rng(n * 7919 + k * 31 + m)
        A = rng.standard_normal((n, k)).astype(np.float32).astype(np.float64)
        B = rng.standard_normal((k, m)).astype(np.float32).astype(np.float64)
        np.testing.assert_allclose(avx2[key], A @ B, rtol=1e-4, atol=1e-4 * np.sqrt(k), err_msg=key)
        assert avx2[key].tobytes() == host[key].tobytes(), key


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,m", [(257, 47), (784, 512), (3, 100), (8, 33), (5, 1000)])
def test_matmul_one_row_bits_equal_the_blocked_rows(dtype, k, m):
    """A one-row product (batch-1 inference) takes the axpy row path, more rows the
    register blocks: both sum p in order with one fma per step from 0, so a row
    gives the same bits alone as inside a block, in every form."""
    rng = np.random.default_rng(k * 31 + m)
    A = rng.standard_normal((3, k)).astype(dtype)
    B = rng.standard_normal((k, m)).astype(dtype)
    for form, a1, a3, b in [("matmul", A[:1], A, B),
                            ("matmul_tn", np.ascontiguousarray(A[:1].T), np.ascontiguousarray(A.T), B),
                            ("matmul_nt", A[:1], A, np.ascontiguousarray(B.T))]:
        C1, C3 = np.full((1, m), np.nan, dtype), np.full((3, m), np.nan, dtype)
        getattr(nb, form)(a1, b, C1, 2)
        getattr(nb, form)(a3, b, C3, 2)
        assert C1.tobytes() == C3[:1].tobytes(), form


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,k,m", [(200, 100, 10), (33, 7, 16), (17, 300, 1), (16, 5, 8), (41, 64, 9)])
def test_matmul_one_vector_panels_bits_equal_each_row_alone(dtype, n, k, m):
    """A product at most one vector wide takes the one-vector blocks (_vblk8 /
    _vblk5): every row gives the bits it gives alone (the one-row path), in every
    form, and the Cython twin's where it is built."""
    rng = np.random.default_rng(n * 7 + k + m)
    A = rng.standard_normal((n, k)).astype(dtype)
    B = rng.standard_normal((k, m)).astype(dtype)
    cy = get_backend("cython") if "cython" in available_backends() else None
    for form, a, b in [("matmul", A, B), ("matmul_tn", np.ascontiguousarray(A.T), B),
                       ("matmul_nt", A, np.ascontiguousarray(B.T))]:
        C = np.full((n, m), np.nan, dtype)
        getattr(nb, form)(a, b, C, 2)
        for i in (0, n // 2, n - 1):
            row = np.full((1, m), np.nan, dtype)
            ai = np.ascontiguousarray(a[:, i:i + 1]) if form == "matmul_tn" else a[i:i + 1]
            getattr(nb, form)(ai, b, row, 1)
            assert row.tobytes() == C[i:i + 1].tobytes(), (form, i)
        if cy is not None:
            C2 = np.full((n, m), np.nan, dtype)
            getattr(cy, form)(a, b, C2, 2)
            assert C2.tobytes() == C.tobytes(), form


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,k,m", [(100, 200, 10), (256, 128, 10), (64, 200, 10), (100, 200, 1),
                                   (129, 700, 17), (1024, 50, 3)])
def test_matmul_tn_as_transposed_product_gives_the_direct_bits(dtype, n, k, m):
    """matmul_tn with C's columns a fraction of a vector runs as C^T = B^T A (A's
    rows contiguous): the bits of the direct form, which a strided A (its rows
    not adjacent) still takes, and of the Cython twin with its own swap off."""
    rng = np.random.default_rng(n + 3 * k + m)
    A = rng.standard_normal((k, n)).astype(dtype)
    B = rng.standard_normal((k, m)).astype(dtype)
    C = np.full((n, m), np.nan, dtype)
    nb.matmul_tn(A, B, C, 2)
    R = A.T.astype(np.float64) @ B.astype(np.float64)
    assert np.abs(C - R).max() <= (1e-4 if dtype == np.float32 else 1e-10) * max(np.abs(R).max(), 1.0)
    wide = np.zeros((k, n + 3), dtype)
    wide[:, :n] = A
    Cs = np.full((n, m), np.nan, dtype)
    nb.matmul_tn(wide[:, :n], B, Cs, 1)
    assert Cs.tobytes() == C.tobytes()
    if "cython" in available_backends():
        cmm = pytest.importorskip("fastnet._kernels.cython.matmul")
        before = cmm._set_swap_max_cols(0)
        try:
            C2 = np.full((n, m), np.nan, dtype)
            cmm.matmul_tn(A, B, C2, 1)
        finally:
            cmm._set_swap_max_cols(before)
        assert C2.tobytes() == C.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,k,m", [(128, 256, 512), (130, 257, 100), (300, 512, 65), (200, 33, 1000),
                                   (64, 300, 97)])
def test_matmul_nt_column_blocks_give_the_row_split_bits(dtype, n, k, m):
    """matmul_nt at two threads from the parallel threshold splits C's columns
    (each thread transposes its rows of B, then multiplies into its columns):
    the bits of one thread, of B^T given to matmul (rows split), of the Cython twin,
    ragged edges and a last block of fewer than 32 columns included."""
    from fastnet._kernels.numba import matmul as nmm
    assert n * k * m >= nmm.MATMUL_PAR_MIN and m >= 64        # the column path's shapes
    rng = np.random.default_rng(n + 5 * k + m)
    A = rng.standard_normal((n, k)).astype(dtype)
    B = rng.standard_normal((m, k)).astype(dtype)
    out = {}
    for t in (1, 2, 3):
        out[t] = np.full((n, m), np.nan, dtype)
        nb.matmul_nt(A, B, out[t], t)
    rows = np.full((n, m), np.nan, dtype)
    nb.matmul(A, np.ascontiguousarray(B.T), rows, 2)
    R = A.astype(np.float64) @ B.T.astype(np.float64)
    assert np.abs(out[2] - R).max() <= (1e-4 if dtype == np.float32 else 1e-10) * max(np.abs(R).max(), 1.0)
    for C in (out[1], out[3], rows):
        assert C.tobytes() == out[2].tobytes()
    if "cython" in available_backends():
        C2 = np.full((n, m), np.nan, dtype)
        get_backend("cython").matmul_nt(A, B, C2, 2)
        assert C2.tobytes() == out[2].tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,k,m", [(128, 784, 512), (256, 300, 64), (64, 130, 128), (64, 1000, 256)])
def test_matmul_aliasing_rows_run_on_a_padded_copy_with_the_same_bits(dtype, n, k, m):
    """Operands whose rows lie a multiple of ALIAS_BYTES apart (B of every form,
    matmul_tn's A, matmul_nt's B^T scratch) are multiplied from a copy with
    rows PAD_BYTES further apart: the bits of the same operands held in wider
    buffers (rows that do not alias, so no copy), at 1, 2 and 3 threads, and of
    the Cython twin."""
    from fastnet._kernels.numba import matmul as nmm
    item = np.dtype(dtype).itemsize
    assert n >= nmm.PAD_MIN_ROWS and n * k * m >= nmm.MATMUL_PAR_MIN
    assert (m * item) % nmm.ALIAS_BYTES == 0 and (n * item) % nmm.ALIAS_BYTES == 0
    rng = np.random.default_rng(n + 7 * k + m)

    def wide(X):                      # X's values, rows 3 elements further apart
        W = np.full((X.shape[0], X.shape[1] + 3), np.nan, dtype)
        W[:, :X.shape[1]] = X
        return W[:, :X.shape[1]]

    A = rng.standard_normal((n, k)).astype(dtype)
    B = rng.standard_normal((k, m)).astype(dtype)
    At = np.ascontiguousarray(A.T)
    Bt = np.ascontiguousarray(B.T)
    R = A.astype(np.float64) @ B.astype(np.float64)
    cy = get_backend("cython") if "cython" in available_backends() else None
    for form, a, b in [("matmul", A, B), ("matmul_tn", At, B), ("matmul_nt", A, Bt)]:
        got = {}
        for t in (1, 2, 3):
            got[t] = np.full((n, m), np.nan, dtype)
            getattr(nb, form)(a, b, got[t], t)
        assert np.abs(got[1] - R).max() <= (1e-4 if dtype == np.float32 else 1e-10) * np.abs(R).max()
        plain = np.full((n, m), np.nan, dtype)
        getattr(nb, form)(wide(a), wide(b), plain, 2)
        for t in (1, 2, 3):
            assert got[t].tobytes() == plain.tobytes(), (form, t)
        if cy is not None:
            C2 = np.full((n, m), np.nan, dtype)
            getattr(cy, form)(a, b, C2, 2)
            assert C2.tobytes() == plain.tobytes(), form


def test_matmul_runs_as_python_under_numba_disable_jit():
    """NUMBA_DISABLE_JIT (debugging) runs the kernels as Python: the SIMD
    intrinsics have numpy stand-ins there (kernels/numba/simd.py)."""
    code = ("import numpy as np\n"
            "from fastnet.backends import get_backend\n"
            "nb = get_backend('numba')\n"
            "rng = np.random.default_rng(0)\n"
            "for dt in (np.float32, np.float64):\n"
            "    A = rng.standard_normal((9, 20)).astype(dt); B = rng.standard_normal((20, 37)).astype(dt)\n"
            "    R = A.astype(np.float64) @ B\n"
            "    for f, a, b in [('matmul', A, B), ('matmul_tn', np.ascontiguousarray(A.T), B),\n"
            "                    ('matmul_nt', A, np.ascontiguousarray(B.T))]:\n"
            "        C = np.full((9, 37), np.nan, dt); getattr(nb, f)(a, b, C, 2)\n"
            "        assert np.abs(C - R).max() < (1e-5 if dt == np.float32 else 1e-12), f\n"
            "    C = np.full((1, 37), np.nan, dt); nb.matmul(A[:1], B, C, 1)\n"
            "    assert np.abs(C - R[:1]).max() < (1e-5 if dt == np.float32 else 1e-12)\n"
            "    X = rng.standard_normal((30, 100)).astype(dt); Y = rng.standard_normal((30, 10)).astype(dt)\n"
            "    C = np.full((100, 10), np.nan, dt); nb.matmul_tn(X, Y, C, 1)\n"
            "    assert np.abs(C - X.T.astype(np.float64) @ Y).max() < (1e-5 if dt == np.float32 else 1e-12)\n"
            "print('ok')\n")
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


# numpy calls that numba's parfor pass turns into parallel regions of their own
# inside a parallel=True function (array creation with values, reductions)
_IMPLICIT_PARFOR_CALLS = ("np.zeros", "np.ones", "np.full", "np.arange", "np.zeros_like", "np.ones_like",
                          "np.full_like", "np.sum", "np.min", "np.max", "np.prod", "np.mean")
_IMPLICIT_PARFOR_METHODS = (".sum", ".min", ".max", ".prod", ".mean", ".argmin", ".argmax", ".fill")


def test_parallel_kernels_open_no_region_but_their_prange():
    """A parallel kernel's only parallel regions are its prange loops, taken from
    a size on: a numpy call that numba makes a parfor (np.ones, x.min(), ...)
    would open a region on every call, even below the threshold, and its
    barrier waits for a time slice beside a busy core (all_finite's did:
    bench/threads_under_load.py, busy rows).  Scans every parallel=True
    function and what it inlines."""
    import ast
    kdir = os.path.dirname(_jit.__file__)
    found = []
    for path in sorted(glob.glob(os.path.join(kdir, "*.py"))):
        tree = ast.parse(open(path).read())
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef):
                continue
            decs = [ast.unparse(d) for d in node.decorator_list]
            if not any(d in ("kernel", "kernel_helper", "inlined") or "parallel=True" in d for d in decs):
                continue
            for sub in ast.walk(node):
                if isinstance(sub, ast.Call):
                    name = ast.unparse(sub.func)
                    if name in _IMPLICIT_PARFOR_CALLS or name.endswith(_IMPLICIT_PARFOR_METHODS):
                        found.append("%s:%d %s: %s" % (os.path.basename(path), sub.lineno, node.name, name))
    assert not found, found


def test_all_finite_has_its_prange_as_its_only_parfor():
    """The compiled form of the scan above for all_finite (which had np.ones and
    ok.min()): numba's own count of the parallel loops it made."""
    from fastnet._kernels.numba import reduce as _rd
    f = numba.njit(parallel=True)(_rd.all_finite.py_func)    # a fresh, uncached compile
    flag = np.zeros(1, np.int64)
    f(np.ones((100, 10), np.float32), flag, 2)
    assert flag[0] == 1
    cres = next(iter(f.overloads.values()))
    assert cres.metadata["parfor_diagnostics"].count_parfors() == 1
