"""Smoke test of the benchmark code in bench/ (so it cannot rot): every
benchmark function runs once on tiny inputs; nothing is timed or compared.

* the report runner (``bench/report.py --quick``) end to end, in a subprocess;
* the pytest-benchmark suites (``pytest bench --bench-quick``, benchmarks
  disabled: each runs once), in a subprocess;
* each installed peer (PyTorch, JAX, scikit-learn): one tiny epoch and a
  predict call through the same bench functions (skipped when none is installed).

The numba backend is left out of these runs: its kernels compile on first use
(minutes on a cold cache) and the bench code is the same for every backend
(parametrised by name), so numpy and cython exercise it.  Peers are never
required.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastnet

BENCH = Path(__file__).resolve().parents[1] / "bench"
pytestmark = pytest.mark.skipif(not (BENCH / "fnbench.py").exists(), reason="bench/ is not in this checkout")

BACKENDS = ",".join(b for b in fastnet.available_backends() if b != "numba")


@pytest.fixture(scope="module")
def fnbench():
    sys.path.insert(0, str(BENCH))
    try:
        import fnbench as mod
        yield mod
    finally:
        sys.path.remove(str(BENCH))


class _Proc:
    """A subprocess started now and checked later: the three runs below start
    together (module fixture) so their imports and tiny workloads overlap."""

    def __init__(self, cmd, cwd):
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.out = None

    def wait(self, timeout=300):
        if self.out is None:
            try:
                self.out = self.proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.out = self.proc.communicate()
        stdout, stderr = self.out
        assert self.proc.returncode == 0, "command %s failed (rc %s):\n%s\n%s" % (
            self.cmd, self.proc.returncode, stdout[-4000:], stderr[-4000:])
        return stdout


PEERS_SCRIPT = """
import sys
import numpy as np
sys.path.insert(0, %r)
import fnbench
peers = %r
for m in peers:
    __import__(m)
fnbench.pin_threads(1)
data = fnbench.load_data(25, "random")
# seed: 2 full batches; wide: 3 full batches and a partial one
for spec in (fnbench.Spec("seed", (784, 6, 10), "sigmoid", "sgd", 0.5, 10, 20),
             fnbench.Spec("wide", (784, 8, 6, 10), "relu", "adam", 1e-3, 8, 25)):
    for p in peers:
        tr = fnbench.make_trainer(p, spec, data.X[:spec.n], data.y[:spec.n], 1)
        tr.warmup()
        tr.epoch()
        assert tr.predict(data.X[:3]).shape == (3, 10), p
for p in [q for q in peers if q in fnbench.PEERS_PREDICT]:
    f = fnbench.make_predictor(p, (784, 8, 6, 10), 1)
    assert f(data.X[:1]).shape == (1, 10), p
print(sorted(fnbench.thread_report(1, ["numpy"])))
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench-smoke")
    procs = {"report": _Proc([sys.executable, str(BENCH / "report.py"), "--quick", "--backends", BACKENDS,
                              "--peers", "numpy-loop", "--out", str(tmp / "REPORT.md"),
                              "--json", str(tmp / "report.json")], cwd=tmp),
             "pytest": _Proc([sys.executable, "-m", "pytest", str(BENCH), "--bench-quick", "--benchmark-disable",
                              "--bench-backends", BACKENDS, "--bench-peers", "numpy-loop", "-q",
                              "-p", "no:cacheprovider"], cwd=tmp),
             "meprop": _Proc([sys.executable, str(BENCH / "meprop.py"), "--quick", "--backends", BACKENDS,
                              "--train-backend", "numpy"], cwd=tmp),
             "diagnostics": _Proc([sys.executable, str(BENCH / "diagnostics_cost.py"), "--quick"], cwd=tmp)}
    if "cython" in BACKENDS.split(","):
        procs["threads"] = _Proc([sys.executable, str(BENCH / "threads_under_load.py"), "--quick",
                                  "--backend", "cython", "--out", str(tmp / "threads.md")], cwd=tmp)
    sys.path.insert(0, str(BENCH))
    try:
        import fnbench as mod
    finally:
        sys.path.remove(str(BENCH))
    peers = [p for p in ("torch", "jax", "sklearn") if mod.peer_available(p)]
    if peers:
        procs["peers"] = _Proc([sys.executable, "-c", PEERS_SCRIPT % (str(BENCH), peers)], cwd=tmp)
    yield tmp, procs
    for p in procs.values():
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.communicate()


def test_flop_and_shape_bookkeeping(fnbench):
    seed = fnbench.SEED
    s = 784 * 30 + 30 * 10
    assert fnbench.n_params(seed.sizes) == 784 * 30 + 30 + 30 * 10 + 10
    assert fnbench.forward_flops(seed.sizes, 60000) == 2 * 60000 * s
    # backward: weight grads (2Ns) + deltas of every layer but the first
    assert fnbench.epoch_flops(seed.sizes, 60000) == 2 * 60000 * s * 2 + 2 * 60000 * (30 * 10)
    gemms = fnbench.step_gemms(seed.sizes, 10)
    assert ("matmul", 10, 784, 30) in gemms and ("matmul_tn", 784, 10, 30) in gemms
    assert ("matmul_nt", 10, 10, 30) in gemms and len(gemms) == 5
    assert fnbench.spec_batches(fnbench.WIDE) == [(128, 468), (96, 1)]
    assert abs(fnbench.loglog_slope([1e2, 1e3, 1e4], [3.0, 30.0, 300.0]) - 1.0) < 1e-9
    groups = [g for g, _ in fnbench.kernel_cases(quick=True)]
    assert len(groups) == len(set(groups))
    assert "matmul:10x784x30" in groups and "matmul:64x64x64" in groups
    full = [g for g, _ in fnbench.kernel_cases(quick=False)]
    assert {"matmul:10x784x30", "matmul_tn:784x10x30", "matmul:128x784x512", "matmul:1024x1024x1024",
            "optimizer_update:adam:P=535818"} <= set(full)


def test_meprop_quick(runs):
    """bench/meprop.py: backward time, step time and accuracy for every k."""
    _, procs = runs
    out = procs["meprop"].wait()
    for k in (25, 50, 125, 500):
        assert "accuracy k=%d:" % k in out
    assert "backward numpy" in out and "step numpy" in out


def test_diagnostics_cost_quick(runs):
    _, procs = runs
    out = procs["diagnostics"].wait()
    assert "| backend | off (median s) | on (median s) | on / off |" in out


def test_report_quick(runs):
    tmp, procs = runs
    procs["report"].wait()
    text = (tmp / "REPORT.md").read_text()
    assert "Instruction set: `--isa native`" in text
    assert "CPUID: not capped (native)." in text
    assert "| FMA peak probe | " in text and "not measured" not in text.split("| FMA peak probe | ")[1].split("\n")[0]
    for heading in ("## Targets", "## Machine", "## Thread settings", "## GEMM", "## seed epoch", "## wide epoch",
                    "## predict", "## gradients", "## Cold start and memory", "## Where fastnet"):
        assert heading in text, heading
    data = json.loads((tmp / "report.json").read_text())
    assert data["targets"] and all({"target", "goal", "measured", "met", "issue"} <= set(t) for t in data["targets"])
    for wl in ("seed", "wide"):
        for impl in BACKENDS.split(",") + ["numpy-loop"]:
            assert data["epochs"][wl][impl]["rounds"] == 1, (wl, impl, data["epochs"][wl][impl])
    assert all("error" not in r for rows in data["gradients"].values() for r in rows["rows"])


def test_isa_caps_every_library(monkeypatch):
    """--isa avx2 / baseline reaches fastnet's engines and every peer's dispatch (set
    before any of them is imported), and native leaves the environment alone."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("fastnet_bench_report", BENCH / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    names = set().union(*report.ISAS.values())
    assert {"FASTNET_MM_ISA", "FASTNET_EW_ISA", "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "OPENBLAS_CORETYPE",
            "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "XLA_FLAGS"} <= names
    saved = dict(os.environ)
    try:
        for var in names:
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("XLA_FLAGS", "--xla_keep=1")
        report._early_isa(["--isa", "native"])
        assert all(os.environ.get(v) is None for v in names - {"XLA_FLAGS"})
        report._early_isa(["--quick", "--isa", "avx2"])
        assert os.environ["FASTNET_MM_ISA"] == os.environ["FASTNET_EW_ISA"] == "avx2"
        assert os.environ["NUMBA_CPU_NAME"] == "haswell" and os.environ["NUMBA_CPU_FEATURES"] == ""
        assert os.environ["OPENBLAS_CORETYPE"] == "Haswell" and os.environ["ATEN_CPU_CAPABILITY"] == "avx2"
        assert os.environ["XLA_FLAGS"] == "--xla_keep=1 --xla_cpu_max_isa=AVX2"
    finally:
        # _early_isa writes os.environ itself (as report.py must before any import): restore it
        # whole, or every later test's subprocess would inherit the AVX2 caps (other bits, other caches)
        os.environ.clear()
        os.environ.update(saved)


CPUID_PROBE = """
import ctypes, sys
import numpy as np
lib = ctypes.CDLL(None)
f = np._core._multiarray_umath.__cpu_features__
active = lib.cpuid_cap_active() if hasattr(lib, "cpuid_cap_active") else -1
print(active, int(f["AVX512F"]), int(f["AVX2"]), int(f["AVX"]), int(f["SSE42"]))
"""


def test_cpuid_cap_hides_wider_vectors_from_every_library(fnbench):
    """bench/cpuid_cap.c (report.py --isa avx2 / baseline preloads it): numpy, which
    dispatches on CPUID at run time, sees no AVX-512 (avx2) or no AVX (baseline);
    without FASTNET_CPUID_CAP the preloaded library changes nothing."""
    import fnbench_isa
    path, why = fnbench_isa.helper_library()
    if path is None and why.startswith("no C compiler"):
        pytest.skip(why)
    assert path is not None, why
    flags = fnbench_isa.cpu_flags()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", fnbench_isa.ENV_CAP)}
    env["LD_PRELOAD"] = path

    def probe(cap):
        e = dict(env, **({fnbench_isa.ENV_CAP: cap} if cap else {}))
        out = subprocess.run([sys.executable, "-c", CPUID_PROBE], env=e, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        return tuple(int(x) for x in out.stdout.split())

    active, avx512, avx2, avx, sse42 = probe(None)
    assert active == 0 and avx512 == ("avx512f" in flags) and avx2 == ("avx2" in flags)
    if "cpuid_fault" not in flags:
        pytest.skip("this kernel offers no CPUID faulting: report.py says so and does not cap")
    assert probe("avx2") == (1, 0, int("avx2" in flags), int("avx" in flags), sse42)
    assert probe("baseline") == (1, 0, 0, 0, sse42)


def test_fma_peak_probe(fnbench):
    """The FMA limit the reports print: positive, and wider vectors are not slower."""
    import fnbench_isa
    if fnbench_isa.helper_library()[0] is None:
        pytest.skip(fnbench_isa.helper_library()[1])
    rates = {}
    for isa in ("baseline", "avx2", "native"):
        if isa == "avx2" and not {"avx2", "fma"} <= fnbench_isa.cpu_flags():
            continue
        rate, width = fnbench_isa.fma_peak(isa, 1, rounds=5, iters=2_000_000)
        assert width == fnbench_isa.WIDTH.get(isa, fnbench_isa.native_width())
        assert rate > 0.5, (isa, rate)
        rates[width] = rate
    widths = sorted(rates)
    # wider vectors do more per instruction (2x on every core we know); the medians
    # of 5 short rounds, and slack for the suite's other worker on the same cores
    assert all(rates[b] > 0.6 * rates[a] for a, b in zip(widths, widths[1:])), rates


def test_threads_under_load_quick(runs):
    """bench/threads_under_load.py: every workload, idle and beside a pinned CPU hog."""
    tmp, procs = runs
    if "threads" not in procs:
        pytest.skip("needs the Cython backend")
    procs["threads"].wait()
    text = (tmp / "threads.md").read_text()
    assert "| workload | backend | load | 1 thread | default | default ÷ 1 thread |" in text
    data = json.loads((tmp / "threads.json").read_text())
    got = {(r["workload"], r["load"]) for r in data["rows"]}
    assert len(got) == 14 and {load for _, load in got} == {"idle", "busy"}
    assert all(r["1 thread s"] > 0 and r["default s"] > 0 for r in data["rows"])


def test_pytest_bench_quick(runs):
    out = runs[1]["pytest"].wait()
    assert " passed" in out


def test_peers_quick(runs):
    procs = runs[1]
    if "peers" not in procs:
        pytest.skip("no peer (torch, jax, scikit-learn) is installed")
    procs["peers"].wait()
