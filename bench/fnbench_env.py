"""The benchmarks' environment (part of ``fnbench``, which re-exports it): the
impl names and which of them this machine has, thread pinning and the thread
report, machine facts and library versions, the timing loop, and the pytest
skip helper."""
import collections
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
    if os.environ.get("FASTNET_REPORT_PINNED_CPU"):
        out["process pinned to"] = "CPU %s (one thread for every library, JAX included)" % (
            os.environ["FASTNET_REPORT_PINNED_CPU"])
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
# pytest helpers
# ---------------------------------------------------------------------------
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
