"""The Cython backend specifically: OpenMP build, thread-count determinism,
input validation, failure reporting and the build's own invariants.

Kernel-by-kernel parity with the NumPy reference is in test_kernels.py."""
import importlib
import sys

import numpy as np
import pytest

import fastnet
from fastnet._kernels import defs
from fastnet.backends import _api, get_backend, BackendUnavailable
import fastnet.backends as registry

from conftest import OPT_NAMES, TRAIN_ARG, head_cases, make_optimizer as _optimizer, make_spec, make_targets, train

pytestmark = pytest.mark.skipif(fastnet.backend_status()["cython"] is not None,
                                reason="cython backend unavailable: %s"
                                % fastnet.backend_status()["cython"])

DTYPES = ["float32", "float64"]
HEADS = head_cases(mse_act=defs.ACT_TANH)
OPTS = OPT_NAMES


@pytest.fixture(scope="module")
def cy():
    return get_backend("cython")


def _training_args(dtype, head_case, opt_name, N=300, bs=64, n_in=100, widths=(160, 90, 12),
                   drop=0.25, l2=1e-3, weighted=True):
    """Arguments of train_batches with shapes big enough that every parallel
    loop really runs on several threads (matmul tiles, elementwise rows,
    optimizer and regularization tiles)."""
    _, head, last_act = head_case
    rng = np.random.default_rng(7)
    L = len(widths)
    layers, P = make_spec(n_in, list(widths), [defs.ACT_RELU, defs.ACT_SWISH, last_act],
                                drop=[drop] * (L - 1) + [0.0], l1=[l2 / 3] * L, l2=[l2] * L)
    k = widths[-1]
    X = rng.standard_normal((N, n_in)).astype(dtype)
    Y, labels, sw = make_targets(rng, head, last_act, N, k, dtype, weighted, real="normal")
    opt = _optimizer(opt_name)
    code = defs.OPT_NONE if opt is None else opt.code
    hyper = np.zeros(defs.NH) if opt is None else opt.hyper()
    state = np.zeros((defs.N_STATE, P), dtype) if opt is None else opt._initial_state(P, dtype)
    params = (rng.standard_normal(P) / 10).astype(dtype)
    perm = rng.permutation(N).astype(np.int64)
    nb = _api.n_batches(N, bs)
    return [X, Y, labels, sw, perm, bs, 0, nb, layers, head, code, hyper, 0,
            0x0123456789ABCDEF, params, np.zeros(P, dtype), state,
            np.zeros(_api.workspace_size(layers, bs), dtype), np.full(nb, np.nan),
            np.full((N, k), np.nan, dtype), 1]


# ---------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------
def test_compiled_with_openmp():
    from fastnet._kernels.cython import _openmp_helpers as omp
    if not sys.platform.startswith("linux"):
        pytest.skip("OpenMP is enabled by setup.py on Linux only")
    assert omp.openmp_enabled(), "the Cython kernels were built without OpenMP"
    assert omp.max_threads() >= 1
    # a prange with num_threads=2 really runs on two threads (even on one core)
    assert omp.threads_used(1) == 1
    assert omp.threads_used(2) == 2


def test_info(cy):
    info = cy.info()
    assert info["backend"] == "cython"
    assert set(info) >= {"openmp", "max_threads", "native"}


def test_generated_module_matches_the_table(cy):
    from fastnet._kernels.cython import _generated_elementwise as ew
    for a in defs.ACTIVATIONS:
        assert getattr(ew, "ACT_" + a["name"].upper()) == a["code"]
    for o in defs.OPTIMIZERS:
        assert getattr(ew, "OPT_" + o["name"].upper()) == o["code"]
        assert ew.N_SLOTS[o["code"]] == len(o["slots"])


def test_workspace_layout_matches_the_contract():
    from fastnet._kernels.cython import network
    for drop in ([0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.1, 0.2, 0.0]):
        layers, _ = make_spec(13, [40, 7, 3], [3, 1, 0], drop=drop)
        for bs in (1, 8, 33):
            assert network.workspace_offsets(layers, bs) == _api.workspace_layout(layers, bs)


def test_dropout_hash_matches_the_table():
    from fastnet._kernels.cython import network
    key = 0xDEADBEEF12345678
    rng = np.random.default_rng(1)
    counters = [0, 1, 2 ** 63, 2 ** 64 - 1] + [int(c) for c in rng.integers(0, 2 ** 62, 200)]
    for c in counters:
        u = defs.mix64(key + (c + 1) * defs.GOLDEN)
        for rate in (0.0, 0.3, 0.9):
            assert network.dropout_keep(key, c, rate) == ((u >> 11) * 2.0 ** -53 >= rate)


# ---------------------------------------------------------------------------
# determinism: bit-identical for any thread count
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt_name", OPTS)
@pytest.mark.parametrize("head_case", HEADS, ids=[h[0] for h in HEADS])
def test_train_batches_bit_identical_for_1_and_2_threads(cy, dtype, head_case, opt_name):
    runs = []
    for n_threads in (1, 2, 3):
        # bs x 160 and P (~35k) past ELEM_PAR_MIN / OPT_PAR_MIN (1 << 15): parallel loops
        args = _training_args(dtype, head_case, opt_name, N=600, bs=256, n_in=120)
        args[-1] = n_threads
        for first in range(0, args[7], 2):   # the epoch in chunks (t0 follows the batch)
            part = list(args)
            part[6], part[7], part[12] = first, min(2, args[7] - first), first
            part[18] = args[18][first:first + part[7]]
            train(cy, *part)
        runs.append(args)
    ref = runs[0]
    assert np.isfinite(ref[18]).all() and np.isfinite(ref[14]).all()
    for other in runs[1:]:
        for i in [TRAIN_ARG[a] for a in ("params", "grads", "state", "batch_loss", "scores")]: 
            np.testing.assert_array_equal(other[i], ref[i], err_msg="argument %d" % i)


def _technique_args(dtype, n_threads, clip):
    """train_batches with Maxout (+ dropout), PReLU, meProp on two layers, clipping
    and diagnostics, shapes big enough that the new kernels' loops run in parallel."""
    rng = np.random.default_rng(11)
    N, bs, n_in = 600, 256, 70      # bs x width >= ELEM_PAR_MIN (2**15) on every hidden layer
    # (units, kind, pieces, act, topk, drop)
    plan = [(90, defs.LAYER_MAXOUT, 3, defs.ACT_LINEAR, 0, 0.2),
              (150, defs.LAYER_DENSE, 1, defs.ACT_PRELU, 40, 0.0),
              (130, defs.LAYER_DENSE, 1, defs.ACT_TANH, 30, 0.1),
              (10, defs.LAYER_DENSE, 1, defs.ACT_LINEAR, 3, 0.0)]
    L = len(plan)
    layers = defs.new_layers(L)
    pos, prev = 0, n_in
    for l, (units, kind, q, act, topk, drop) in enumerate(plan):
        layers[["n_in", "n_out", "act", "kind", "topk", "pieces"]][l] = (prev, units, act, kind, topk, q)
        layers[l]["w_offset"] = pos
        pos += prev * units * q
        layers[l]["b_offset"] = pos
        pos += units * q
        layers[l]["slopes_offset"] = -1
        if act == defs.ACT_PRELU:
            layers[l]["slopes_offset"] = pos
            pos += units
        layers[l]["dropout"] = drop
        layers[l]["l2"] = 1e-3
        prev = units
    P = pos
    X = rng.standard_normal((N, n_in)).astype(dtype)
    labels = rng.integers(0, 10, N).astype(np.int64)
    opt = fastnet.Adam(0.01, **clip)
    params = (rng.standard_normal(P) / 8).astype(dtype)
    nb = _api.n_batches(N, bs)
    diag = np.zeros(defs.diag_size(layers))
    diag[:3] = [-1, -1, 0]
    return [X, np.empty((0, 10), dtype), labels, np.empty(0, dtype), rng.permutation(N),
            bs, 0, nb, layers, defs.HEAD_SOFTMAX_XENT, opt.code, opt.hyper(), 0, 12345,
            params, np.zeros(P, dtype), opt._initial_state(P, dtype),
            np.zeros(_api.workspace_size(layers, bs), dtype), np.full(nb, np.nan),
            np.full((N, 10), np.nan, dtype), n_threads, diag]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("clip", [{"clipnorm": 0.05}, {"global_clipnorm": 0.2}],
                         ids=["clipnorm", "global_clipnorm"])
def test_train_batches_techniques_bit_identical_for_any_thread_count(cy, dtype, clip):
    """Maxout + PReLU + meProp + clipping + diagnostics: 1, 2 and 3 threads agree
    bit for bit (the new kernels and the clipped update reduce in a fixed order)."""
    runs = []
    for n_threads in (1, 2, 3):
        args = _technique_args(dtype, n_threads, clip)
        train(cy, *args[:-1], diag=args[-1])
        runs.append(args)
    ref = runs[0]
    assert np.isfinite(ref[18]).all() and ref[21][defs.DG_BATCH] == -1
    assert ref[21][defs.DG_ROWS] == 600
    for other in runs[1:]:
        for i in [TRAIN_ARG[a] for a in ("params", "grads", "state", "batch_loss", "scores", "diag")]: 
            np.testing.assert_array_equal(other[i], ref[i], err_msg="argument %d" % i)
    # and it is the reference's training
    want = _technique_args(dtype, 1, clip)
    train(get_backend("numpy"), *want[:-1], diag=want[-1])
    tol = 1e-4 if dtype == "float32" else 1e-9
    np.testing.assert_allclose(ref[14], want[14], rtol=tol, atol=tol)
    np.testing.assert_allclose(ref[18], want[18], rtol=tol)


def test_direct_calls_check_the_layer_records(cy):
    """The Cython kernels called directly (no contract validator) reject a table
    that is not a 1-D, C-contiguous, non-empty array of defs.LAYER_DTYPE before
    reading it, and accept a read-only one."""
    from fastnet._kernels.cython import network, reduce
    layers, P = make_spec(5, [4, 3], [defs.ACT_RELU, defs.ACT_LINEAR])
    X, params = np.ones((2, 5)), np.full(P, 0.1)
    work, out = np.zeros(_api.forward_workspace_size(layers, 2)), np.empty((2, 3))
    bad = [(np.zeros((2, 15), np.int64), TypeError, "expected defs.LAYER_DTYPE"),
           (layers.tolist(), TypeError, "must be a numpy array"),
           (layers[:0], ValueError, "shape"),
           (np.repeat(layers, 2)[::2], ValueError, "C-contiguous"),
           (layers.reshape(1, 2), ValueError, "shape")]
    for table, exc, words in bad:
        with pytest.raises(exc, match=words):
            network.forward(X, table, params, work, out, 1)
        with pytest.raises(exc, match=words):
            reduce.regularize(table, params, np.zeros(P), np.zeros(1), 1)
        with pytest.raises(exc, match=words):
            network.step_plan(table, P, np.zeros(defs.NH), 2, 1)
    frozen = layers.copy()
    frozen.flags.writeable = False
    network.forward(X, frozen, params, work, out, 1)
    ref = np.empty_like(out)
    get_backend("numpy").forward(X, layers, params, work.copy(), ref, 1)
    np.testing.assert_allclose(out, ref, rtol=1e-12)


# ---------------------------------------------------------------------------
# failure reporting: a broken build is reported, import fastnet still works
# ---------------------------------------------------------------------------
@pytest.fixture
def fresh_registry(monkeypatch):
    """Forget the registry's cache and the adapter module; restore both after."""
    monkeypatch.setattr(registry, "_cache", {})
    saved = sys.modules.pop("fastnet.backends.cython", None)
    yield
    sys.modules.pop("fastnet.backends.cython", None)
    if saved is not None:
        sys.modules["fastnet.backends.cython"] = saved


def test_backend_status_reports_a_failed_extension_import(monkeypatch, fresh_registry):
    # None in sys.modules makes `import fastnet._kernels.cython.matmul` raise ImportError
    # (and the package attribute must go, or `from ... import matmul` finds it there)
    import fastnet._kernels.cython as package
    monkeypatch.setitem(sys.modules, "fastnet._kernels.cython.matmul", None)
    monkeypatch.delattr(package, "matmul")
    status = fastnet.backend_status()
    assert isinstance(status["cython"], str) and "Cython kernels" in status["cython"]
    assert status["numpy"] is None
    assert "cython" not in fastnet.available_backends()
    with pytest.raises(BackendUnavailable, match="cython"):
        get_backend("cython")
    assert registry.resolve_name("auto") != "cython"
    importlib.reload(fastnet)   # importing fastnet never needs the extensions


def test_backend_status_reports_a_stale_table(monkeypatch, fresh_registry):
    from fastnet._kernels.cython import _generated_elementwise as ew
    monkeypatch.setattr(ew, "TABLE_DIGEST", "0" * 16)
    reason = fastnet.backend_status()["cython"]
    assert isinstance(reason, str) and "another kernels/defs.py" in reason


# ---------------------------------------------------------------------------
# annotation (optional: needs Cython and the source tree)
# ---------------------------------------------------------------------------
@pytest.mark.slow
def test_hot_loops_are_pure_c(tmp_path):
    """`cython -a`: no line of a nogil function touches the Python C-API.

    The only lines allowed a non-zero score in nogil functions are the
    ``prange`` headers (Cython's guard that releases the GIL around a parallel
    region if the caller holds it)."""
    import os
    import re
    pytest.importorskip("Cython")
    from Cython.Compiler import Main
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    inc = os.path.join(root, "build", "cython_include")
    if not (os.path.exists(os.path.join(root, "kernels", "cython", "network.pyx"))
            and os.path.isdir(inc)):
        pytest.skip("needs a built source tree")
    for name in ("matmul", "losses", "reduce", "network", "layers", "_generated_elementwise"):
        opts = Main.CompilationOptions(Main.default_options, annotate=True, include_path=[inc],
                                       output_file=str(tmp_path / (name + ".c")),
                                       language_level=3)
        Main.compile_single(os.path.join(root, "kernels", "cython", name + ".pyx"), opts,
                            full_module_name="fastnet._kernels.cython." + name)
        html = (tmp_path / (name + ".html")).read_text()
        func, header, nogil, bad, checked = None, None, False, [], 0
        for score, body in re.findall(r'<pre class="cython line score-(\d+)"[^>]*>(.*?)</pre>',
                                      html, re.S):
            code = re.sub(r"<[^>]+>", "", body)
            code = re.sub(r"^\+?\d+: ?", "", code).replace("&#x27;", "'").replace("&quot;", '"')
            start = re.match(r"(cdef|def|cpdef) [^=]*?(\w+)\(", code)
            if start:
                func, header = start.group(2), ""
            if header is not None:            # inside a (multi-line) signature
                header += code
                if code.rstrip().endswith(":"):
                    nogil, header = "nogil" in header, None
                continue
            if func and nogil:
                checked += 1
                if int(score) > 0 and "prange(" not in code and "use_threads_if" not in code:
                    bad.append((name, func, code.strip()))
        assert checked > 0
        assert not bad, bad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt_name", ["sgd", "adagrad", "rmsprop", "adam", "adamw"])
def test_optimizer_loops_same_bits_for_every_instruction_set(cy, dtype, opt_name):
    """The optimizer element loops are compiled for the baseline, AVX2 and AVX-512
    (picked at import); contraction is off, so every variant the CPU can run gives
    the bits of the baseline (which the other tests compare with the reference)."""
    from fastnet._kernels.cython import _generated_elementwise as ew
    code = defs.OPT[opt_name]
    P = 3 * 4096 + 17
    was = ew.isa()
    try:
        for flags in [dict(), dict(maximize=1.0, weight_decay=0.01, clipvalue=0.3, amsgrad=1.0,
                                   centered=1.0, momentum=0.9, nesterov=1.0)]:
            hyper = np.zeros(defs.NH)
            for k, v in dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, alpha=0.99, **flags).items():
                hyper[defs.HYPER[k]] = v
            runs = {}
            for isa in ("baseline", "avx2", "avx512"):
                got = ew.select_isa(isa)
                r = np.random.default_rng(3)
                g = r.standard_normal(P).astype(dtype)
                p = r.standard_normal(P).astype(dtype)
                s = np.abs(r.standard_normal((defs.N_STATE, P))).astype(dtype)
                for t in (1, 2, 3):
                    ew.optimizer_update(code, hyper, 1.0, t, g, p, s, 2)
                runs[got] = (p, s)
            ref = runs["baseline"]
            for isa, (p, s) in runs.items():
                assert p.tobytes() == ref[0].tobytes(), isa
                assert s.tobytes() == ref[1].tobytes(), isa
    finally:
        ew.select_isa("auto" if was == "avx512" else was)


@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_loops_same_bits_for_every_instruction_set_and_accurate(cy, dtype):
    """The element-wise activations' row loops are C rendered from kernels/defs.py
    for the baseline, AVX2 and AVX-512 (exp -> the inline fn_exp of fn_math.h, so
    they vectorise): every variant gives the baseline's bits (contraction off), and
    the exp-based ones stay within a few ulp of the reference (libm / NumPy) over
    the whole range, the edges (+-745, +-710, +-inf, NaN, tiny z) included."""
    from fastnet._kernels.cython import _generated_elementwise as ew
    rng = np.random.default_rng(5)
    edges = [0.0, -0.0, 1e-300, -1e-300, 1e-8, -1e-8, 0.5, -0.5, 20.0, -20.0, 88.0, -88.0, 103.0,
             -104.0, 709.0, -708.0, 709.9, -745.0, -746.0, 710.5, 1e4, -1e4, np.inf, -np.inf, np.nan]
    Z0 = np.concatenate([np.array(edges), rng.uniform(-40, 40, 2000), rng.standard_normal(1000)])
    Z0 = Z0.astype(dtype).reshape(-1, 37 if Z0.size % 37 == 0 else 1)
    b = rng.standard_normal(Z0.shape[1]).astype(dtype)
    dA = rng.standard_normal(Z0.shape).astype(dtype)
    ref = get_backend("numpy")
    was = ew.isa()
    try:
        for a in defs.ACTIVATIONS:
            if a.get("rowwise"):
                continue
            outs = {}
            for isa in ("baseline", "avx2", "avx512"):
                got = ew.select_isa(isa)
                Z, A = Z0.copy(), np.empty_like(Z0)
                ew.bias_act_forward(b, a["code"], 0.2, Z, A, 1)
                dZ = np.empty_like(Z0)
                ew.act_backward(Z, A, dA, a["code"], 0.2, dZ, 1)
                outs[got] = (Z, A, dZ)
            for isa, arrays in outs.items():
                for x, y in zip(arrays, outs["baseline"]):
                    assert x.tobytes() == y.tobytes(), (a["name"], isa)
            Z, A, dZ = outs["baseline"]
            Zr, Ar, dZr = Z0.copy(), np.empty_like(Z0), np.empty_like(Z0)
            with np.errstate(all="ignore"):
                ref.bias_act_forward(b, a["code"], 0.2, Zr, Ar, 1)
                ref.act_backward(Zr, Ar, dA, a["code"], 0.2, dZr, 1)
            ulp = np.finfo(dtype).eps
            np.testing.assert_array_equal(Z, Zr)
            # (64 ulp: the reference's own sigmoid, exp(-logaddexp(0, -z)), is a few
            # ulp off for negative z; fn_exp itself is within 1 ulp of libm)
            if a["name"] in ("gelu", "gelu_tanh"):
                # their left tails are erfc(x) (condition number ~2x^2) and e^-w with
                # w ~ 0.07 |z|^3: one ulp in the argument, rounded differently by each
                # side, is ~z^2 (~0.1 |z|^3) ulps in the value
                with np.errstate(all="ignore"):
                    z64 = np.abs(Z.astype(np.float64))
                    bound = 64 * ulp * np.abs(Ar) * (1.0 + z64 ** 2 + 0.1 * z64 ** 3) \
                        + 64 * float(np.finfo(dtype).tiny)      # subnormal results
                    ok = (A == Ar) | (np.abs(A.astype(np.float64) - Ar) <= bound) | (np.isnan(A) & np.isnan(Ar))
                assert ok.all(), (a["name"], Z[~ok][:5], A[~ok][:5], Ar[~ok][:5])
            else:
                np.testing.assert_allclose(A, Ar, rtol=64 * ulp, atol=np.finfo(dtype).tiny, err_msg=a["name"])
            np.testing.assert_allclose(dZ, dZr, rtol=64 * ulp, atol=64 * ulp, err_msg=a["name"])
    finally:
        ew.select_isa("auto" if was == "avx512" else was)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_few_rows_each_row_as_alone_on_every_isa(dtype):
    """Products with fewer rows than a tile (a predict of a few samples) run the
    rows in axpy groups of up to 4 (B streamed once per group) or, with B^T given,
    as one zero-padded packed tile: on every instruction set the CPU has, each row
    has the bits it has alone (one row: FN_ROW) and matches float64."""
    mm = pytest.importorskip("fastnet._kernels.cython.matmul")
    before = mm.isa()["isa"]
    rng = np.random.default_rng(3)
    try:
        for isa in ("baseline", "avx2", "avx512"):
            if mm.select_isa(isa) != isa:
                continue
            for n, k, m in [(2, 784, 512), (3, 33, 70), (4, 257, 129), (5, 6, 300), (7, 100, 47),
                            (6, 3, 1000), (9, 50, 65)]:
                A = rng.standard_normal((n, k)).astype(dtype)
                B = rng.standard_normal((k, m)).astype(dtype)
                R = A.astype(np.float64) @ B.astype(np.float64)
                tol = (2e-5 if dtype == np.float32 else 1e-12) * k ** 0.5 * max(np.abs(R).max(), 1.0)
                for form, a, b, row in [
                        ("matmul", A, B, lambda i: (A[i:i + 1], B)),
                        ("matmul_tn", np.ascontiguousarray(A.T), B,
                         lambda i: (np.ascontiguousarray(A[i:i + 1].T), B)),
                        ("matmul_nt", A, np.ascontiguousarray(B.T),
                         lambda i: (A[i:i + 1], np.ascontiguousarray(B.T)))]:
                    C = np.full((n, m), np.nan, dtype)
                    getattr(mm, form)(a, b, C, 2)
                    assert np.abs(C - R).max() <= tol, (isa, form, n, k, m)
                    for i in range(n):
                        c1 = np.full((1, m), np.nan, dtype)
                        getattr(mm, form)(*row(i), c1, 1)
                        assert c1.tobytes() == C[i:i + 1].tobytes(), (isa, form, n, k, m, i)
    finally:
        mm.select_isa("auto" if before == "avx512" else before)


_REUSE_SCRIPT = r"""
import resource, threading, numpy as np
from fastnet._kernels.cython import matmul as mm
rng = np.random.default_rng(0)
A = rng.random((256, 1024), dtype=np.float32)
B = rng.random((1024, 1024), dtype=np.float32)
C = np.empty((256, 1024), np.float32)
mm.matmul(A, B, C, 1)                       # the first call allocates the panels
first = C.copy()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    mm.matmul(A, B, C, 1)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
assert np.array_equal(C, first)
# each thread has its own panels, freed when it exits
out = []
def work():
    D = np.empty_like(C)
    mm.matmul(A, B, D, 1)
    out.append(np.array_equal(D, first))
for _ in range(20):
    t = threading.Thread(target=work)
    t.start()
    t.join()
print(faults, all(out), len(out))
"""


def test_packed_products_reuse_their_panel_buffers():
    """The packed path's 5 MB of panels are kept per thread: a fresh malloc of
    that size is a fresh mmap whose pages fault in again on every call (see the
    commit that added this test).  A fresh process, so that no earlier free has
    raised glibc's mmap threshold."""
    import subprocess
    out = subprocess.run([sys.executable, "-c", _REUSE_SCRIPT], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    faults, same, n = out.stdout.split()
    assert int(faults) < 100
    assert same == "True" and n == "20"
