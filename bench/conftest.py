"""pytest-benchmark suites of fastnet: fixtures, options and parametrisation.

Run (from outside the source tree, so the installed package is imported):

    cd /tmp && python -m pytest /path/to/fastnet/bench --benchmark-enable

(``pyproject.toml``'s addopts has ``--benchmark-disable``, which makes every
benchmark run once, untimed: that is the smoke mode; ``--benchmark-enable``
times them.)  Options:

    --bench-quick          tiny sizes (what tests/test_bench_smoke.py runs)
    --bench-threads N      threads for every library (default: all available cores)
    --bench-data SRC       auto (real MNIST when installed, else random) | mnist | random
    --bench-peers LIST     comma list of numpy-loop,torch,jax,sklearn, or all / none

Each group ("op:shape", e.g. "matmul:10x784x30", "epoch:seed") compares the
backends (numpy, numba, cython; unavailable ones skip with the reason), the
"blas" reference (numpy.matmul) in gemm groups, and the optional peers (skipped
when not installed).  ``python bench/report.py`` writes the side-by-side report.
"""
import os
import sys

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


def _early_threads():
    """Thread variables must be set before numpy / torch are imported."""
    n = None
    for i, a in enumerate(sys.argv):
        if a == "--bench-threads" and i + 1 < len(sys.argv):
            n = sys.argv[i + 1]
        elif a.startswith("--bench-threads="):
            n = a.split("=", 1)[1]
    if n is None:
        try:
            n = str(len(os.sched_getaffinity(0)))
        except (AttributeError, OSError):
            n = str(os.cpu_count() or 1)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
        os.environ.setdefault(var, n)


_early_threads()

import fnbench  # noqa: E402


def pytest_addoption(parser):
    g = parser.getgroup("fastnet bench")
    g.addoption("--bench-quick", action="store_true", default=False,
                help="tiny sizes (smoke run of every benchmark)")
    g.addoption("--bench-threads", type=int, default=None,
                help="threads for fastnet, BLAS, numba, torch (default: available cores)")
    g.addoption("--bench-data", default="auto", choices=("auto", "mnist", "random"),
                help="training data: real MNIST when installed (auto), or random")
    g.addoption("--bench-backends", default="all",
                help="comma list of fastnet backends to run (numpy,numba,cython) or 'all' (the available ones)")
    g.addoption("--bench-peers", default="all",
                help="comma list of peers to run (numpy-loop,torch,jax,sklearn), 'all' or 'none'")


def _peers(config):
    v = config.getoption("--bench-peers")
    if v == "all":
        return set(fnbench.PEER_MODULES)
    if v in ("none", ""):
        return set()
    return {p.strip() for p in v.split(",")}


def _backends(config):
    v = config.getoption("--bench-backends")
    if v == "all":
        return list(fnbench.BACKENDS)
    return [b.strip() for b in v.split(",") if b.strip() in fnbench.BACKENDS]


@pytest.fixture(scope="session")
def bench_threads(request):
    n = request.config.getoption("--bench-threads") or fnbench.available_cores()
    # import the installed peers first so threadpoolctl sees their BLAS / OpenMP
    for mod in ("torch", "jax", "sklearn"):
        if fnbench.PEER_MODULES.get(mod) and mod in _peers(request.config) and fnbench.peer_available(mod):
            try:
                __import__(mod)
            except Exception:  # noqa: BLE001 - a broken peer skips in its own tests
                pass
    fnbench.pin_threads(n)
    return n


@pytest.fixture(scope="session")
def bench_quick(request):
    return request.config.getoption("--bench-quick")


@pytest.fixture(scope="session")
def bench_workloads(bench_quick):
    return fnbench.workloads(bench_quick)


@pytest.fixture(scope="session")
def train_data(request, bench_workloads):
    """Data for the training workloads (seed and wide use the same n)."""
    n = max(bench_workloads["seed"].n, bench_workloads["wide"].n)
    return fnbench.load_data(n, request.config.getoption("--bench-data"))


@pytest.fixture(scope="session")
def bench_peers(request):
    return _peers(request.config)


def pytest_generate_tests(metafunc):
    quick = metafunc.config.getoption("--bench-quick")
    names = metafunc.fixturenames
    if "kernel_case" in names and "kernel_impl" in names:
        pairs, ids = [], []
        for group, factory in fnbench.kernel_cases(quick):
            gemm = group.split(":")[0].startswith("matmul")
            for impl in _backends(metafunc.config) + (["blas"] if gemm else []):
                pairs.append(((group, factory), impl))
                ids.append("%s-%s" % (group, impl))
        metafunc.parametrize(("kernel_case", "kernel_impl"), pairs, ids=ids)
    if "train_impl" in names:
        metafunc.parametrize("train_impl", _backends(metafunc.config) + list(fnbench.PEERS_TRAIN))
    if "predict_impl" in names:
        bes = _backends(metafunc.config)
        impls = bes + [b + ":kernel" for b in bes] + list(fnbench.PEERS_PREDICT)
        metafunc.parametrize("predict_impl", impls)
    if "grad_backend" in names:
        metafunc.parametrize("grad_backend", _backends(metafunc.config))
    if "grad_net" in names:
        nets = fnbench.workloads(quick)["grad_nets"]
        metafunc.parametrize("grad_net", nets, ids=["x".join(map(str, s)) for s in nets])


def pytest_report_header(config):
    n = config.getoption("--bench-threads") or fnbench.available_cores()
    lines = ["fastnet bench: %s sizes, %d threads, peers: %s" % (
        "quick" if config.getoption("--bench-quick") else "full", n, config.getoption("--bench-peers"))]
    for name, reason in fnbench.fastnet_status().items():
        lines.append("  backend %-6s: %s" % (name, "ok" if reason is None else reason))
    return lines


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record the machine and thread facts in pytest-benchmark's JSON."""
    n = config.getoption("--bench-threads") or fnbench.available_cores()
    machine_info["fastnet_machine"] = dict(fnbench.machine_info())
    machine_info["fastnet_versions"] = dict(fnbench.versions())
    bes = [b for b in _backends(config) if fnbench.fastnet_status()[b] is None]
    machine_info["fastnet_threads"] = {k: str(v) for k, v in fnbench.thread_report(n, bes).items()}
