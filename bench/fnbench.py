"""Shared benchmark code: workloads, peers, kernel cases, FLOP counts, machine facts.

Used by ``bench/conftest.py`` (the pytest-benchmark suites), ``bench/report.py``
(the side-by-side report) and ``tests/test_bench_smoke.py``.  Nothing here times
anything by itself except :func:`time_calls`; everything is parametrised over
an *impl* name:

* fastnet backends: ``"numpy"`` (the reference), ``"numba"``, ``"cython"``
  (whichever ``fastnet.available_backends()`` lists; the others skip);
* ``"blas"``: ``numpy.matmul`` (OpenBLAS) in the gemm kernel groups;
* peers, each optional (skipped when its package is missing):
  ``"numpy-loop"`` (a hand-written NumPy training loop), ``"torch"`` (PyTorch
  CPU, eager), ``"jax"`` (``jit`` + ``lax.scan`` over the whole epoch) and
  ``"sklearn"`` (``MLPClassifier.partial_fit``: one epoch per call).

Workloads (see :data:`SEED`, :data:`WIDE`, :data:`PREDICT`, :data:`GRAD_NETS`):

* **seed**: 784-30-10, sigmoid hidden layer, softmax + cross-entropy, SGD lr 0.5,
  batch 10, one epoch over 60,000 MNIST-shaped float32 samples;
* **wide**: 784-512-256-10, relu, softmax + cross-entropy, Adam lr 1e-3,
  batch 128, one epoch over 60,000;
* **predict**: 784-512-256-10 (softmax output) inference, batch-1 latency and
  batch-1024 throughput;
* **gradients**: naive numerical gradients (central differences, one pair of
  forward passes per parameter: O(N x P)) against backprop (O(N + P) per
  sample), float64, on networks of ~10^2 to ~10^5 parameters.
"""
import collections
import math
import os
import platform
import sys
import time

import numpy as np

# ---------------------------------------------------------------------------
# impl names
# ---------------------------------------------------------------------------
BACKENDS = ("numpy", "numba", "cython")
PEERS_TRAIN = ("numpy-loop", "torch", "jax", "sklearn")
PEERS_PREDICT = ("numpy-loop", "torch", "jax")
PEER_MODULES = {"torch": "torch", "jax": "jax", "sklearn": "sklearn", "numpy-loop": None}


def fastnet_status():
    """{backend: None or reason} for every fastnet backend."""
    import fastnet
    return fastnet.backend_status()


def available_backends():
    import fastnet
    return list(fastnet.available_backends())


def compiled_backends():
    return [b for b in available_backends() if b != "numpy"]


def peer_available(name):
    """True when the peer's package imports here (numpy-loop always)."""
    mod = PEER_MODULES.get(name)
    if mod is None:
        return True
    import importlib.util
    return importlib.util.find_spec(mod) is not None


# ---------------------------------------------------------------------------
# workloads
# ---------------------------------------------------------------------------
Spec = collections.namedtuple("Spec", "name sizes hidden_act optimizer lr batch n")

SEED = Spec("seed", (784, 30, 10), "sigmoid", "sgd", 0.5, 10, 60000)
WIDE = Spec("wide", (784, 512, 256, 10), "relu", "adam", 1e-3, 128, 60000)
#: predict: the wide network (softmax output); batch-1 latency, batch-1024 throughput
PREDICT = {"sizes": (784, 512, 256, 10), "latency_batch": 1, "throughput_batch": 1024}
#: gradients: networks from ~1e2 to ~1e5 parameters (784-120-10 is the largest)
GRAD_NETS = [(8, 8, 4), (16, 16, 4), (32, 24, 10), (64, 40, 10), (100, 90, 10), (256, 110, 10),
             (784, 120, 10)]
#: gradients: samples per gradient evaluation
GRAD_N = 100
#: gradients: numerical gradients are run for every parameter up to this P,
#: for a random subsample of GRAD_SUBSAMPLE parameters above it (the per-parameter
#: cost is then extrapolated to all P parameters: it does not depend on which
#: parameter is perturbed, every perturbation costs two full forward passes)
GRAD_FULL_MAX = 3500
GRAD_SUBSAMPLE = 400

QUICK_SEED = Spec("seed", (784, 30, 10), "sigmoid", "sgd", 0.5, 10, 200)
QUICK_WIDE = Spec("wide", (784, 64, 32, 10), "relu", "adam", 1e-3, 128, 256)
QUICK_PREDICT = {"sizes": (784, 64, 32, 10), "latency_batch": 1, "throughput_batch": 64}
QUICK_GRAD_NETS = [(8, 8, 4), (16, 16, 4), (32, 24, 10)]
QUICK_GRAD_N = 16


def workloads(quick=False):
    """The (seed, wide) training specs, the predict spec and the gradient nets."""
    if quick:
        return {"seed": QUICK_SEED, "wide": QUICK_WIDE, "predict": QUICK_PREDICT,
                "grad_nets": QUICK_GRAD_NETS, "grad_n": QUICK_GRAD_N, "gemm_big": 64}
    return {"seed": SEED, "wide": WIDE, "predict": PREDICT, "grad_nets": GRAD_NETS,
            "grad_n": GRAD_N, "gemm_big": 1024}


def layer_pairs(sizes):
    return list(zip(sizes[:-1], sizes[1:]))


def n_params(sizes):
    return sum(i * o + o for i, o in layer_pairs(sizes))


def forward_flops(sizes, n):
    """2 N sum(in * out): the multiply-adds of the forward matmuls."""
    return 2.0 * n * sum(i * o for i, o in layer_pairs(sizes))


def epoch_flops(sizes, n):
    """Forward + backward FLOPs of an epoch over n samples (gemms only).

    backward = weight gradients (2 N sum in*out) + deltas (2 N sum in*out over
    every layer but the first, whose input delta is not needed), i.e. about
    2x the forward.  Elementwise work (bias, activations, loss, optimizer) is
    not counted: it is O(N sum out + P), small next to the gemms."""
    pairs = layer_pairs(sizes)
    s = sum(i * o for i, o in pairs)
    fwd = 2.0 * n * s
    bwd = 2.0 * n * s + 2.0 * n * (s - pairs[0][0] * pairs[0][1])
    return fwd + bwd


def step_gemms(sizes, bs):
    """The gemms of one training step: (form, n, k, m) with C (n, m) and the
    contraction over k (flops 2 n k m).

    forward ``matmul`` (bs, in, out) per layer; weight gradient ``matmul_tn``
    (in, bs, out) per layer (C = X^T delta); delta ``matmul_nt`` (bs, out, in)
    per layer but the first (C = delta W^T)."""
    pairs = layer_pairs(sizes)
    out = [("matmul", bs, i, o) for i, o in pairs]
    out += [("matmul_tn", i, bs, o) for i, o in pairs]
    out += [("matmul_nt", bs, o, i) for l, (i, o) in enumerate(pairs) if l > 0]
    return out


def spec_batches(spec):
    """[(rows, count)] of an epoch: full batches and the last partial one."""
    full, rem = divmod(spec.n, spec.batch)
    out = [(spec.batch, full)] if full else []
    if rem:
        out.append((rem, 1))
    return out


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
Data = collections.namedtuple("Data", "X y X_test y_test source")


def load_data(n, source="auto", n_test=10000, seed=0):
    """(X float32 (n, 784) in [0, 1], y int64 labels 0..9, test split, source).

    ``source``: "mnist" (real MNIST via fastnet.datasets.load_mnist; n <= 60000),
    "random" (uniform pixels, random labels: timing is the same) or "auto"
    (MNIST when it is installed locally, else random)."""
    if source not in ("auto", "mnist", "random"):
        raise ValueError("data source must be auto, mnist or random; got %r" % (source,))
    if source in ("auto", "mnist") and n <= 60000:
        try:
            from fastnet.datasets import load_mnist
            (X, y), (Xt, yt) = load_mnist(flatten=True)
            X = np.ascontiguousarray(X[:n], dtype=np.float32)
            X /= 255.0
            Xt = np.ascontiguousarray(Xt[:n_test], dtype=np.float32)
            Xt /= 255.0
            return Data(X, y[:n].astype(np.int64), Xt, yt[:n_test].astype(np.int64), "mnist")
        except Exception:  # noqa: BLE001 - not installed: fall back to random data
            if source == "mnist":
                raise
    rng = np.random.default_rng(seed)
    X = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.int64)
    n_t = min(n_test, max(n // 6, 10))
    Xt = rng.random((n_t, 784), dtype=np.float32)
    yt = rng.integers(0, 10, n_t).astype(np.int64)
    return Data(X, y, Xt, yt, "random")


def glorot(rng, n_in, n_out, dtype=np.float32):
    lim = math.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-lim, lim, size=(n_in, n_out)).astype(dtype)


# ---------------------------------------------------------------------------
# threads
# ---------------------------------------------------------------------------
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
              "NUMEXPR_NUM_THREADS")
#: reported, never set: they change how idle OpenMP threads wait (spin or sleep)
WAIT_ENV = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "NUMBA_THREADING_LAYER", "NUMBA_NUM_THREADS")


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover
        return os.cpu_count() or 1


def set_thread_env(n):
    """Set the BLAS / OpenMP thread variables (effective only before numpy,
    torch, ... are imported; :func:`pin_threads` covers the rest)."""
    for var in THREAD_ENV:
        os.environ[var] = str(n)


_limits = []


def pin_threads(n):
    """Pin every library this process has loaded to ``n`` threads: BLAS /
    OpenMP pools via threadpoolctl (when installed), fastnet, numba, torch.
    Call it after the peers are imported (threadpoolctl only sees loaded
    libraries)."""
    import fastnet
    fastnet.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
        _limits.append(threadpool_limits(limits=n))
    except ImportError:
        pass
    if "numba" in sys.modules:
        import numba
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    if "torch" in sys.modules:
        import torch
        torch.set_num_threads(n)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set / parallel work already started
            pass


def numba_threading_layer():
    """numba's threading layer after a parallel call (starts the pool)."""
    try:
        import fastnet.backends.numba as nb  # the adapter knows how to start the pool
        return nb.threading_layer()
    except Exception:  # noqa: BLE001
        pass
    try:
        import numba

        @numba.njit(parallel=True, cache=False)
        def _touch(a):
            s = 0.0
            for i in numba.prange(a.shape[0]):
                s += a[i]
            return s
        _touch(np.ones(64))
        return numba.threading_layer()
    except Exception as exc:  # noqa: BLE001
        return "unknown (%s)" % exc


def thread_report(n, backends=None):
    """Dict of the thread settings in force (for the report / pytest header).
    ``backends``: the fastnet backends in use (default: all available); numba's
    threading layer is only asked for (which starts its pool) when numba is."""
    import fastnet
    backends = available_backends() if backends is None else list(backends)
    out = collections.OrderedDict()
    out["requested threads"] = n
    out["available cores"] = available_cores()
    out["env"] = ", ".join("%s=%s" % (v, os.environ.get(v, "(unset)")) for v in THREAD_ENV + WAIT_ENV)
    out["fastnet.get_num_threads()"] = fastnet.get_num_threads()
    try:
        from threadpoolctl import threadpool_info
        out["threadpoolctl"] = "; ".join(
            "%s %s (%s, %s%s): %d threads" % (d.get("internal_api"), d.get("version"),
                                              os.path.basename(d.get("filepath", "")),
                                              d.get("threading_layer", "-"),
                                              ", kernels for %s" % d["architecture"] if d.get("architecture") else "",
                                              d.get("num_threads"))
            for d in threadpool_info())
    except ImportError:
        out["threadpoolctl"] = "not installed (BLAS pinned by environment variables only)"
    if "numba" in backends:
        try:
            import numba
            out["numba"] = "threading layer %s, pool NUMBA_NUM_THREADS=%d, get_num_threads()=%d" % (
                numba_threading_layer(), numba.config.NUMBA_NUM_THREADS, numba.get_num_threads())
        except ImportError:
            out["numba"] = "not installed"
    else:
        out["numba"] = "numba backend not used in this run"
    for be in [b for b in ("numba", "cython") if b in backends]:
        try:
            mod = fastnet.backends.get_backend(be)
            info = getattr(mod, "info", None)
            if info is not None:
                out["fastnet %s backend info()" % be] = repr(info())
        except Exception:  # noqa: BLE001
            pass
    if "torch" in sys.modules:
        import torch
        out["torch"] = "get_num_threads()=%d, get_num_interop_threads()=%d, %s" % (
            torch.get_num_threads(), torch.get_num_interop_threads(),
            torch.__config__.parallel_info().splitlines()[-1].strip()
            if hasattr(torch, "__config__") else "")
    if "jax" in sys.modules:
        out["jax"] = ("XLA CPU intra-op pool (default: all cores); XLA_FLAGS=%r; measured CPU/wall of a "
                      "jitted 4096x784x512 matmul loop: %s (cores JAX actually keeps busy: XLA's CPU runtime "
                      "may ignore the thread flags)" % (os.environ.get("XLA_FLAGS", ""), _jax_cpu_per_wall()))
    return out


def _jax_cpu_per_wall():
    """Process CPU time / wall time over a short jitted matmul loop (about the
    number of cores JAX uses), as text; '?' when it cannot be measured."""
    try:
        import jax
        import jax.numpy as jnp
        x = jnp.ones((4096, 784), jnp.float32)
        w = jnp.ones((784, 512), jnp.float32)
        f = jax.jit(lambda a, b: (a @ b).sum())
        f(x, w).block_until_ready()
        c0, w0 = time.process_time(), time.perf_counter()
        while time.perf_counter() - w0 < 0.3:
            f(x, w).block_until_ready()
        return "%.2f" % ((time.process_time() - c0) / (time.perf_counter() - w0))
    except Exception:  # noqa: BLE001
        return "?"


# ---------------------------------------------------------------------------
# machine and versions
# ---------------------------------------------------------------------------
def machine_info():
    info = collections.OrderedDict()
    model, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("unknown", "", "x86_64"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    info["cpu"] = model
    info["logical cpus"] = os.cpu_count()
    info["cores available to this process"] = available_cores()
    simd = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16",
                        "avx512_vnni", "amx_tile") if f in flags]
    info["SIMD flags"] = " ".join(simd) if simd else "(unknown)"
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // 1024
        info["memory"] = "%d MiB" % mem
    except (OSError, ValueError, IndexError):
        pass
    info["os"] = platform.platform()
    info["python"] = sys.version.split()[0]
    info["load average"] = loadavg()
    return info


def loadavg():
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "n/a"


def versions():
    import importlib.metadata as md
    out = collections.OrderedDict()
    for dist in ("fastnet", "numpy", "numba", "llvmlite", "Cython", "torch", "jax", "jaxlib",
                 "scikit-learn", "threadpoolctl", "pytest-benchmark"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "not installed"
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        out["numpy BLAS"] = "%s %s" % (blas.get("name"), blas.get("version"))
    except Exception:  # noqa: BLE001
        pass
    return out


# ---------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------
def time_calls(fn, rounds=5, min_round_s=0.05, max_number=100000):
    """Per-call times (seconds), one per round; each round runs ``fn`` enough
    times to take at least ``min_round_s`` (calibrated on one call)."""
    t0 = time.perf_counter()
    fn()
    one = time.perf_counter() - t0
    number = 1 if one >= min_round_s else min(max_number, max(1, int(min_round_s / max(one, 1e-7))))
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        out.append((time.perf_counter() - t0) / number)
    return out


def median(xs):
    return float(np.median(xs)) if len(xs) else float("nan")


# ---------------------------------------------------------------------------
# kernel cases (contract kernels at the workloads' shapes)
# ---------------------------------------------------------------------------
class KernelCase:
    """One contract kernel at one shape.  ``group`` is "op:shape";
    ``build(impl, threads)`` returns a zero-argument callable running it once.
    ``impls`` lists the extra non-backend impls of the group ("blas" for gemms)."""

    def __init__(self, group, kernel, make, flops=None, blas=False, desc=""):
        self.group, self.kernel, self._make = group, kernel, make
        self.flops, self.blas, self.desc = flops, blas, desc

    def build(self, impl, threads):
        return self._make(impl, threads)

    def __repr__(self):
        return "KernelCase(%s)" % self.group


def _backend(name):
    import fastnet.backends
    return fastnet.backends.get_backend(name)


def gemm_case(form, n, k, m, dtype=np.float32):
    rng = np.random.default_rng(n * 1000003 + k * 1009 + m)
    if form == "matmul":
        A, B = rng.standard_normal((n, k)), rng.standard_normal((k, m))
    elif form == "matmul_tn":
        A, B = rng.standard_normal((k, n)), rng.standard_normal((k, m))
    elif form == "matmul_nt":
        A, B = rng.standard_normal((n, k)), rng.standard_normal((m, k))
    else:
        raise ValueError(form)
    A, B = A.astype(dtype), B.astype(dtype)
    C = np.empty((n, m), dtype=dtype)

    def make(impl, threads):
        if impl == "blas":
            if form == "matmul":
                return lambda: np.matmul(A, B, out=C)
            if form == "matmul_tn":
                At = A.T
                return lambda: np.matmul(At, B, out=C)
            Bt = B.T
            return lambda: np.matmul(A, Bt, out=C)
        fn = getattr(_backend(impl), form)
        return lambda: fn(A, B, C, threads)
    what = {"matmul": "C = A @ B", "matmul_tn": "C = A.T @ B", "matmul_nt": "C = A @ B.T"}[form]
    return KernelCase("%s:%dx%dx%d" % (form, n, k, m), form, make, flops=2.0 * n * k * m, blas=True,
                      desc="%s, C %dx%d, inner %d" % (what, n, m, k))


def _act_code(name):
    from fastnet._kernels import defs
    return defs.ACT[name]


def bias_act_case(act, n, m, dtype=np.float32):
    rng = np.random.default_rng(n * 31 + m)
    b = (rng.standard_normal(m) * 1e-6).astype(dtype)
    Z = rng.standard_normal((n, m)).astype(dtype)
    A = np.empty_like(Z)
    code = _act_code(act)

    def make(impl, threads):
        fn = _backend(impl).bias_act_forward
        return lambda: fn(b, code, 0.0, Z, A, threads)
    return KernelCase("bias_act_forward:%s:%dx%d" % (act, n, m), "bias_act_forward", make)


def act_backward_case(act, n, m, dtype=np.float32):
    rng = np.random.default_rng(n * 37 + m)
    Z = rng.standard_normal((n, m)).astype(dtype)
    A = np.maximum(Z, 0) if act == "relu" else (1 / (1 + np.exp(-Z))).astype(dtype)
    dA = rng.standard_normal((n, m)).astype(dtype)
    dZ = np.empty_like(Z)
    code = _act_code(act)

    def make(impl, threads):
        fn = _backend(impl).act_backward
        return lambda: fn(Z, A, dA, code, 0.0, dZ, threads)
    return KernelCase("act_backward:%s:%dx%d" % (act, n, m), "act_backward", make)


def softmax_xent_case(n, k, dtype=np.float32):
    rng = np.random.default_rng(n * 41 + k)
    Z = rng.standard_normal((n, k)).astype(dtype)
    labels = rng.integers(0, k, n).astype(np.int64)
    Y = np.empty((0, k), dtype=dtype)
    sw = np.empty(0, dtype=dtype)
    P, dZ = np.empty_like(Z), np.empty_like(Z)
    loss = np.empty(n, dtype=np.float64)

    def make(impl, threads):
        fn = _backend(impl).softmax_xent
        return lambda: fn(Z, Y, labels, sw, 1.0 / n, P, loss, dZ, threads)
    return KernelCase("softmax_xent:%dx%d" % (n, k), "softmax_xent", make)


def bias_grad_case(n, m, dtype=np.float32):
    dZ = np.random.default_rng(n * 43 + m).standard_normal((n, m)).astype(dtype)
    db = np.empty(m, dtype=dtype)

    def make(impl, threads):
        fn = _backend(impl).bias_grad
        return lambda: fn(dZ, db, threads)
    return KernelCase("bias_grad:%dx%d" % (n, m), "bias_grad", make)


def gather_case(N, n, m, dtype=np.float32):
    rng = np.random.default_rng(N + n + m)
    X = rng.random((N, m), dtype=np.float32).astype(dtype, copy=False)
    idx = rng.permutation(N)[:n].astype(np.int64)
    out = np.empty((n, m), dtype=dtype)

    def make(impl, threads):
        fn = _backend(impl).gather_rows
        return lambda: fn(X, idx, out, threads)
    return KernelCase("gather_rows:%dof%dx%d" % (n, N, m), "gather_rows", make)


def optimizer_case(opt, P, lr, dtype=np.float32):
    import fastnet
    from fastnet._kernels import defs
    o = fastnet.SGD(lr=lr) if opt == "sgd" else fastnet.Adam(lr=lr)
    code, hyper = o.code, o.hyper()
    rng = np.random.default_rng(P)
    params = rng.standard_normal(P).astype(dtype)
    grads = (rng.standard_normal(P) * 1e-3).astype(dtype)
    state = np.zeros((defs.N_STATE, P), dtype=dtype)

    def make(impl, threads):
        fn = _backend(impl).optimizer_update
        return lambda: fn(code, hyper, 10, grads, params, state, threads)
    return KernelCase("optimizer_update:%s:P=%d" % (opt, P), "optimizer_update", make)


def step_calls(spec, bs=None):
    """The contract-kernel calls of one training step of ``spec`` at batch
    ``bs`` (default spec.batch), in order, as KernelCase *keys* (group names)
    with a constructor: [(group, factory)]."""
    bs = spec.batch if bs is None else bs
    sizes, pairs = spec.sizes, layer_pairs(spec.sizes)
    L = len(pairs)
    calls = [("gather_rows:%dof%dx%d" % (bs, spec.n, sizes[0]),
              lambda: gather_case(spec.n, bs, sizes[0]))]
    for l, (i, o) in enumerate(pairs):
        calls.append(("matmul:%dx%dx%d" % (bs, i, o), lambda i=i, o=o: gemm_case("matmul", bs, i, o)))
        act = "linear" if l == L - 1 else spec.hidden_act
        calls.append(("bias_act_forward:%s:%dx%d" % (act, bs, o), lambda act=act, o=o: bias_act_case(act, bs, o)))
    calls.append(("softmax_xent:%dx%d" % (bs, sizes[-1]), lambda: softmax_xent_case(bs, sizes[-1])))
    for l in range(L - 1, -1, -1):
        i, o = pairs[l]
        calls.append(("matmul_tn:%dx%dx%d" % (i, bs, o), lambda i=i, o=o: gemm_case("matmul_tn", i, bs, o)))
        calls.append(("bias_grad:%dx%d" % (bs, o), lambda o=o: bias_grad_case(bs, o)))
        if l > 0:
            calls.append(("matmul_nt:%dx%dx%d" % (bs, o, i), lambda i=i, o=o: gemm_case("matmul_nt", bs, o, i)))
            calls.append(("act_backward:%s:%dx%d" % (spec.hidden_act, bs, i),
                          lambda i=i: act_backward_case(spec.hidden_act, bs, i)))
    P = n_params(sizes)
    calls.append(("optimizer_update:%s:P=%d" % (spec.optimizer, P),
                  lambda: optimizer_case(spec.optimizer, P, spec.lr)))
    return calls


def kernel_cases(quick=False):
    """Every kernel case of the suite, in a stable order, without duplicates:
    the kernels of one seed step and one wide step, plus the three gemm forms
    at big x big x big (1024^3; 64^3 in quick mode)."""
    w = workloads(quick)
    seen, out = set(), []
    big = w["gemm_big"]
    extra = [("%s:%dx%dx%d" % (f, big, big, big), lambda f=f: gemm_case(f, big, big, big))
             for f in ("matmul", "matmul_tn", "matmul_nt")]
    for group, factory in step_calls(w["seed"]) + step_calls(w["wide"]) + extra:
        if group not in seen:
            seen.add(group)
            out.append((group, factory))
    return out


_case_cache = {}


def get_case(group, factory):
    """Build (once per process) the arrays of a case."""
    if group not in _case_cache:
        _case_cache[group] = factory()
    return _case_cache[group]


# ---------------------------------------------------------------------------
# trainers: one epoch of a workload per impl
# ---------------------------------------------------------------------------
class Trainer:
    """``epoch()`` trains one epoch over (X, y); ``warmup()`` runs whatever
    one-time work the impl needs (JIT compile, allocation) on a small slice;
    ``predict(X)`` returns class scores; ``info`` holds extra facts
    (e.g. JAX's compile time)."""

    name = "?"

    def __init__(self, spec, X, y, threads, seed=0):
        self.spec, self.X, self.y, self.threads, self.seed = spec, X, y, threads, seed
        self.info = {}

    def warmup(self):
        pass

    def epoch(self):
        raise NotImplementedError

    def predict(self, X):
        raise NotImplementedError

    def accuracy(self, X, y):
        return float((np.argmax(self.predict(X), axis=1) == y).mean())


def _fastnet_model(sizes, hidden_act, backend, seed, out_act=None, dtype="float32"):
    import fastnet
    layers = [fastnet.Dense(o, activation=hidden_act) for o in sizes[1:-1]]
    layers.append(fastnet.Dense(sizes[-1], activation=out_act))
    return fastnet.Sequential(layers, backend=backend, seed=seed, dtype=dtype)


class FastnetTrainer(Trainer):
    def __init__(self, backend, spec, X, y, threads, seed=0):
        super().__init__(spec, X, y, threads, seed)
        import fastnet
        self.name = backend
        self.backend = backend
        fastnet.set_num_threads(threads)
        self.model = _fastnet_model(spec.sizes, spec.hidden_act, backend, seed)
        opt = fastnet.SGD(lr=spec.lr) if spec.optimizer == "sgd" else fastnet.Adam(lr=spec.lr)
        self.model.compile(optimizer=opt, loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))

    def warmup(self):
        k = min(self.X.shape[0], 4 * self.spec.batch + 3)  # full batches and a partial one
        t0 = time.perf_counter()
        self.model.fit(self.X[:k], self.y[:k], epochs=1, batch_size=self.spec.batch, verbose=0)
        self.info["first call s"] = time.perf_counter() - t0

    def epoch(self):
        self.model.fit(self.X, self.y, epochs=1, batch_size=self.spec.batch, verbose=0)

    def predict(self, X):
        return self.model.predict(X)


def _np_act(name):
    if name == "sigmoid":
        def f(z):
            with np.errstate(over="ignore"):
                np.negative(z, out=z)
                np.exp(z, out=z)
                z += 1
                np.reciprocal(z, out=z)
            return z

        def g(a, d):  # d *= a (1 - a)
            d *= a
            d *= 1 - a
            return d
    elif name == "relu":
        def f(z):
            np.maximum(z, 0, out=z)
            return z

        def g(a, d):
            d *= a > 0
            return d
    else:
        raise ValueError(name)
    return f, g


class NumpyLoopTrainer(Trainer):
    """What a user would write by hand in NumPy: per batch, forward, softmax +
    cross-entropy, backward and the update (SGD, or Adam with torch's rules),
    in-place where it is easy."""
    name = "numpy-loop"

    def __init__(self, spec, X, y, threads, seed=0):
        super().__init__(spec, X, y, threads, seed)
        rng = np.random.default_rng(seed)
        self.W = [glorot(rng, i, o) for i, o in layer_pairs(spec.sizes)]
        self.b = [np.zeros(o, np.float32) for _, o in layer_pairs(spec.sizes)]
        self.params = self.W + self.b
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0
        self.act, self.dact = _np_act(spec.hidden_act)
        self.rng = np.random.default_rng(seed + 1)

    def _forward(self, x):
        acts = [x]
        a = x
        L = len(self.W)
        for l in range(L):
            z = a @ self.W[l]
            z += self.b[l]
            a = self.act(z) if l < L - 1 else z
            acts.append(a)
        return acts

    def _step(self, x, yb):
        n = x.shape[0]
        acts = self._forward(x)
        z = acts[-1]
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        z[np.arange(n), yb] -= 1
        z *= 1.0 / n
        d = z
        L = len(self.W)
        gW, gb = [None] * L, [None] * L
        for l in range(L - 1, -1, -1):
            gW[l] = acts[l].T @ d
            gb[l] = d.sum(axis=0)
            if l > 0:
                d = self.dact(acts[l], d @ self.W[l].T)
        grads = gW + gb
        if self.spec.optimizer == "sgd":
            lr = np.float32(self.spec.lr)
            for p, g in zip(self.params, grads):
                g *= lr
                p -= g
        else:
            self.t += 1
            lr, b1, b2, eps = self.spec.lr, 0.9, 0.999, 1e-8
            step = np.float32(lr / (1 - b1 ** self.t))
            bc2 = np.float32(math.sqrt(1 - b2 ** self.t))
            for p, g, m, v in zip(self.params, grads, self.m, self.v):
                m *= b1
                m += (1 - b1) * g
                v *= b2
                g *= g
                g *= 1 - b2
                v += g
                denom = np.sqrt(v)
                denom /= bc2
                denom += eps
                np.divide(m, denom, out=denom)
                denom *= step
                p -= denom

    def _epoch(self, X, y):
        bs = self.spec.batch
        perm = self.rng.permutation(X.shape[0])
        for s in range(0, X.shape[0], bs):
            idx = perm[s:s + bs]
            self._step(X[idx], y[idx])

    def warmup(self):
        k = min(self.X.shape[0], 4 * self.spec.batch + 3)
        self._epoch(self.X[:k], self.y[:k])

    def epoch(self):
        self._epoch(self.X, self.y)

    def predict(self, X):
        return self._forward(np.ascontiguousarray(X, dtype=np.float32))[-1]


class TorchTrainer(Trainer):
    """PyTorch eager, CPU: nn.Sequential, F.cross_entropy, torch.optim SGD/Adam
    (default implementation), one randperm per epoch, rows gathered by index."""
    name = "torch"

    def __init__(self, spec, X, y, threads, seed=0):
        super().__init__(spec, X, y, threads, seed)
        import torch
        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.torch = torch
        self.model = torch_mlp(spec.sizes, spec.hidden_act)
        params = self.model.parameters()
        self.opt = torch.optim.SGD(params, lr=spec.lr) if spec.optimizer == "sgd" \
            else torch.optim.Adam(params, lr=spec.lr)
        self.Xt = torch.from_numpy(X)
        self.yt = torch.from_numpy(y)
        self.gen = torch.Generator().manual_seed(seed)

    def _epoch(self, n):
        torch = self.torch
        F = torch.nn.functional
        bs = self.spec.batch
        perm = torch.randperm(n, generator=self.gen)
        model, opt, Xt, yt = self.model, self.opt, self.Xt, self.yt
        for s in range(0, n, bs):
            idx = perm[s:s + bs]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()

    def warmup(self):
        self._epoch(min(self.X.shape[0], 4 * self.spec.batch + 3))

    def epoch(self):
        self._epoch(self.X.shape[0])

    def predict(self, X):
        with self.torch.inference_mode():
            return self.model(self.torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))).numpy()


def torch_mlp(sizes, hidden_act, softmax=False):
    import torch
    nn = torch.nn
    layers = []
    pairs = layer_pairs(sizes)
    for l, (i, o) in enumerate(pairs):
        layers.append(nn.Linear(i, o))
        if l < len(pairs) - 1:
            layers.append(nn.Sigmoid() if hidden_act == "sigmoid" else nn.ReLU())
    if softmax:
        layers.append(nn.Softmax(dim=1))
    return nn.Sequential(*layers)


def _jax_forward(jnp, jax, hidden_act):
    act = jax.nn.sigmoid if hidden_act == "sigmoid" else jax.nn.relu

    def forward(params, x):
        a = x
        for W, b in params[:-1]:
            a = act(a @ W + b)
        W, b = params[-1]
        return a @ W + b
    return forward


class JaxTrainer(Trainer):
    """JAX on CPU: the whole epoch is one jitted ``lax.scan`` over the batches
    (rows gathered by index inside the scan); the last partial batch, if any,
    is one more jitted step.  SGD and Adam (torch's rules) written out.  The
    compile time (lower + compile of both functions) is in ``info``."""
    name = "jax"

    def __init__(self, spec, X, y, threads, seed=0):
        super().__init__(spec, X, y, threads, seed)
        import jax
        import jax.numpy as jnp
        self.jax, self.jnp = jax, jnp
        rng = np.random.default_rng(seed)
        self.params = [(jnp.asarray(glorot(rng, i, o)), jnp.zeros(o, jnp.float32))
                       for i, o in layer_pairs(spec.sizes)]
        zeros = jax.tree_util.tree_map(jnp.zeros_like, self.params)
        self.opt_state = (zeros, zeros, jnp.zeros((), jnp.int32))
        self.Xd = jax.device_put(X)
        self.yd = jax.device_put(y.astype(np.int32))
        self.rng = np.random.default_rng(seed + 1)
        forward = _jax_forward(jnp, jax, spec.hidden_act)
        self.forward_jit = jax.jit(forward)
        lr, sgd = spec.lr, spec.optimizer == "sgd"
        b1, b2, eps = 0.9, 0.999, 1e-8

        def loss_fn(params, xb, yb):
            z = forward(params, xb)
            logp = jax.nn.log_softmax(z)
            return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

        grad_fn = jax.grad(loss_fn)

        def step(params, opt_state, xb, yb):
            g = grad_fn(params, xb, yb)
            if sgd:
                return jax.tree_util.tree_map(lambda p, gg: p - lr * gg, params, g), opt_state
            m, v, t = opt_state
            t = t + 1
            tf = t.astype(jnp.float32)
            m = jax.tree_util.tree_map(lambda mm, gg: b1 * mm + (1 - b1) * gg, m, g)
            v = jax.tree_util.tree_map(lambda vv, gg: b2 * vv + (1 - b2) * gg * gg, v, g)
            step_size = lr / (1 - b1 ** tf)
            bc2 = jnp.sqrt(1 - b2 ** tf)
            params = jax.tree_util.tree_map(
                lambda p, mm, vv: p - step_size * mm / (jnp.sqrt(vv) / bc2 + eps), params, m, v)
            return params, (m, v, t)

        def epoch_fn(params, opt_state, X, y, idx):
            def body(carry, ib):
                p, o = carry
                return step(p, o, X[ib], y[ib]), None
            (params, opt_state), _ = jax.lax.scan(body, (params, opt_state), idx)
            return params, opt_state

        def rem_fn(params, opt_state, X, y, ib):
            return step(params, opt_state, X[ib], y[ib])

        self._epoch_fn, self._rem_fn = jax.jit(epoch_fn), jax.jit(rem_fn)
        self._compiled = {}
        self._compile(X.shape[0])

    def _compile(self, n):
        """lower + compile for an epoch of n rows (timed once per n)."""
        if n in self._compiled:
            return self._compiled[n]
        jax, jnp = self.jax, self.jnp
        bs = self.spec.batch
        full, rem = divmod(n, bs)
        t0 = time.perf_counter()
        ep = self._epoch_fn.lower(self.params, self.opt_state, self.Xd, self.yd,
                                  jax.ShapeDtypeStruct((full, bs), jnp.int32)).compile() if full else None
        rf = self._rem_fn.lower(self.params, self.opt_state, self.Xd, self.yd,
                                jax.ShapeDtypeStruct((rem,), jnp.int32)).compile() if rem else None
        dt = time.perf_counter() - t0
        if n == self.X.shape[0]:
            self.info["compile s"] = dt
        self._compiled[n] = (ep, rf)
        return ep, rf

    def _epoch(self, n):
        bs = self.spec.batch
        full, rem = divmod(n, bs)
        ep, rf = self._compile(n)
        perm = self.rng.permutation(n).astype(np.int32)
        params, st = self.params, self.opt_state
        if full:
            params, st = ep(params, st, self.Xd, self.yd, perm[:full * bs].reshape(full, bs))
        if rem:
            params, st = rf(params, st, self.Xd, self.yd, perm[full * bs:])
        self.jax.block_until_ready(params)
        self.params, self.opt_state = params, st

    def warmup(self):
        # the full-epoch executable is compiled in __init__ (timed); run a
        # small epoch so the first timed round does not pay first-run costs
        self._epoch(min(self.X.shape[0], 4 * self.spec.batch + 3))

    def epoch(self):
        self._epoch(self.X.shape[0])

    def predict(self, X):
        return np.asarray(self.forward_jit(self.params, self.jnp.asarray(X, dtype=self.jnp.float32)))


class SklearnTrainer(Trainer):
    """scikit-learn MLPClassifier: one ``partial_fit`` = one epoch over the data
    with the workload's batch size, solver (sgd without momentum / adam),
    learning rate, activation; no L2 penalty (alpha=0)."""
    name = "sklearn"

    def __init__(self, spec, X, y, threads, seed=0):
        super().__init__(spec, X, y, threads, seed)
        from sklearn.neural_network import MLPClassifier
        kw = dict(hidden_layer_sizes=tuple(spec.sizes[1:-1]),
                  activation="logistic" if spec.hidden_act == "sigmoid" else "relu",
                  solver=spec.optimizer, learning_rate_init=spec.lr, batch_size=spec.batch,
                  alpha=0.0, shuffle=True, random_state=seed)
        if spec.optimizer == "sgd":
            kw.update(momentum=0.0, nesterovs_momentum=False, learning_rate="constant")
        else:
            kw.update(beta_1=0.9, beta_2=0.999, epsilon=1e-8)
        self.clf = MLPClassifier(**kw)
        self.classes = np.arange(spec.sizes[-1])

    def warmup(self):
        k = min(self.X.shape[0], 4 * self.spec.batch + 3)
        self.clf.partial_fit(self.X[:k], self.y[:k], classes=self.classes)

    def epoch(self):
        self.clf.partial_fit(self.X, self.y, classes=self.classes)

    def predict(self, X):
        return self.clf.predict_proba(X)


def make_trainer(impl, spec, X, y, threads, seed=0):
    if impl in BACKENDS:
        return FastnetTrainer(impl, spec, X, y, threads, seed)
    cls = {"numpy-loop": NumpyLoopTrainer, "torch": TorchTrainer, "jax": JaxTrainer,
           "sklearn": SklearnTrainer}[impl]
    return cls(spec, X, y, threads, seed)


# ---------------------------------------------------------------------------
# predict: returns {"batch1": fn(x), "batchN": fn(x)} style callables
# ---------------------------------------------------------------------------
def make_predictor(impl, sizes, threads, seed=0):
    """A function x -> class probabilities for the predict network (relu hidden
    layers, softmax output).  fastnet backends: ``model.predict`` (the user
    API: input checks + one ``forward`` call); "<backend>:kernel": the
    backend's ``forward`` kernel alone on preallocated buffers."""
    kernel_only = impl.endswith(":kernel")
    name = impl[:-len(":kernel")] if kernel_only else impl
    if name in BACKENDS:
        import fastnet
        fastnet.set_num_threads(threads)
        model = _fastnet_model(sizes, "relu", name, seed, out_act="softmax")
        model.build(sizes[0])
        if not kernel_only:
            return model.predict
        from fastnet.backends import _api
        be = model._backend
        bufs = {}

        def run(x):
            n = x.shape[0]
            if n not in bufs:
                bufs[n] = (np.empty(_api.forward_workspace_size(model._ispec, n), dtype=np.float32),
                           np.empty((n, sizes[-1]), dtype=np.float32))
            work, out = bufs[n]
            be.forward(x, model._ispec, model._fspec, model._params, work, out, threads)
            return out
        return run
    if name == "numpy-loop":
        rng = np.random.default_rng(seed)
        W = [glorot(rng, i, o) for i, o in layer_pairs(sizes)]
        b = [np.zeros(o, np.float32) for _, o in layer_pairs(sizes)]

        def run(x):
            a = x
            for l in range(len(W)):
                a = a @ W[l]
                a += b[l]
                if l < len(W) - 1:
                    np.maximum(a, 0, out=a)
            a -= a.max(axis=1, keepdims=True)
            np.exp(a, out=a)
            a /= a.sum(axis=1, keepdims=True)
            return a
        return run
    if name == "torch":
        import torch
        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        model = torch_mlp(sizes, "relu", softmax=True).eval()

        def run(x):
            with torch.inference_mode():
                return model(torch.from_numpy(x)).numpy()
        return run
    if name == "jax":
        import jax
        import jax.numpy as jnp
        rng = np.random.default_rng(seed)
        params = [(jnp.asarray(glorot(rng, i, o)), jnp.zeros(o, jnp.float32)) for i, o in layer_pairs(sizes)]
        fwd = _jax_forward(jnp, jax, "relu")
        f = jax.jit(lambda p, x: jax.nn.softmax(fwd(p, x), axis=1))

        def run(x):
            return np.asarray(f(params, x))
        return run
    raise ValueError("unknown predict impl %r" % impl)


# ---------------------------------------------------------------------------
# gradients: numerical (central differences) vs backprop
# ---------------------------------------------------------------------------
class GradCase:
    """One network of the gradients workload on one fastnet backend (float64).

    ``backprop()``: ``model.gradients(X, y)`` (one compiled forward + backward).
    ``numerical(idx)``: central differences for the parameters ``idx`` of the
    flat buffer, two forward passes (``forward`` kernel + ``softmax_xent``)
    per parameter; returns the gradient entries."""

    def __init__(self, backend, sizes, n, threads, seed=0):
        import fastnet
        from fastnet._kernels import defs
        from fastnet.backends import _api
        fastnet.set_num_threads(threads)
        self.sizes, self.n, self.threads = sizes, n, threads
        self.model = _fastnet_model(sizes, "sigmoid", backend, seed, dtype="float64")
        self.model.compile(optimizer=fastnet.SGD(lr=0.1),
                           loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
        self.model.build(sizes[0])
        rng = np.random.default_rng(seed + len(sizes) * 7 + sizes[0])
        self.X = rng.standard_normal((n, sizes[0]))
        self.y = rng.integers(0, sizes[-1], n).astype(np.int64)
        self.P = self.model.count_params()
        be = self.model._backend
        ispec, fspec = self.model._ispec, self.model._fspec
        k = sizes[-1]
        work = np.empty(_api.forward_workspace_size(ispec, n))
        Z, Pm, dZ = np.empty((n, k)), np.empty((n, k)), np.empty((n, k))
        loss = np.empty(n)
        Y0, sw0 = np.empty((0, k)), np.empty(0)
        params, X, y = self.model._params, self.X, self.y
        assert ispec[-1, defs.I_ACT] == defs.ACT_LINEAR  # logits
        inv_n = 1.0 / n

        def loss_at():
            be.forward(X, ispec, fspec, params, work, Z, threads)
            be.softmax_xent(Z, Y0, y, sw0, inv_n, Pm, loss, dZ, threads)
            return loss.sum() * inv_n
        self._loss_at = loss_at
        self._params = params

    def backprop(self):
        return self.model.gradients(self.X, self.y)

    def backprop_flat(self):
        return np.concatenate([g.ravel() for g in self.backprop()])

    def numerical(self, idx, eps=1e-6):
        p, f = self._params, self._loss_at
        out = np.empty(len(idx))
        for j, i in enumerate(idx):
            old = p[i]
            p[i] = old + eps
            fp = f()
            p[i] = old - eps
            fm = f()
            p[i] = old
            out[j] = (fp - fm) / (2 * eps)
        return out

    def sample(self, k, seed=0):
        """k parameter indices (all of them when k >= P), sorted."""
        if k >= self.P:
            return np.arange(self.P)
        return np.sort(np.random.default_rng(seed).choice(self.P, size=k, replace=False))


def loglog_slope(P, ratio):
    """Least-squares slope of log(ratio) against log(P)."""
    P, ratio = np.asarray(P, float), np.asarray(ratio, float)
    ok = (P > 0) & (ratio > 0) & np.isfinite(ratio)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(P[ok]), np.log(ratio[ok]), 1)[0])


def skip_unless(impl, peers=None):
    """pytest.skip cleanly when a backend is not available here, or a peer is
    not selected (``peers``: the selected set) or not installed."""
    import pytest
    name = impl[:-len(":kernel")] if impl.endswith(":kernel") else impl
    if name in BACKENDS:
        reason = fastnet_status()[name]
        if reason is not None:
            pytest.skip("backend %s not available: %s" % (name, reason))
        return
    if name == "blas":
        return
    if peers is not None and name not in peers:
        pytest.skip("peer %s not selected (--bench-peers)" % name)
    mod = PEER_MODULES.get(name)
    if mod is not None:
        pytest.importorskip(mod)
