#!/usr/bin/env python
"""Run fastnet's benchmark comparison in one process and write bench/REPORT.md.

    python bench/report.py              # full sizes (tens of minutes on 2 cores)
    python bench/report.py --quick      # tiny sizes, 1 round (the smoke test runs this)

Every workload runs side by side in this process: the fastnet backends that
``fastnet.available_backends()`` lists and the installed peers (a hand-written
NumPy loop, PyTorch, JAX, scikit-learn), interleaved round by round (round r
of every impl before round r+1 of any), so load on a shared machine hits them
alike; kernels run one impl's rounds back to back (a case takes about a
second).  Between impls the runner sleeps 0.15 s so that the previous impl's
spinning BLAS / OpenMP threads go idle first.  Reported times are medians over the rounds; each table says how many
rounds each impl got (slow impls get fewer: see --budget).  Cold start and
peak memory run in fresh subprocesses.  Thread settings are pinned before any
library is imported (--threads, default: all available cores) and reported.

Options: --threads N, --rounds R (default 5), --budget S (seconds per impl per
workload; an impl stops adding rounds past it, after at least one), --data
auto|mnist|random, --backends LIST, --peers LIST|all|none, --skip SECTIONS
(kernels,epochs,predict,gradients,cold), --out PATH, --json PATH.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _early_threads(argv):
    """Thread variables must be set before numpy / torch / jax are imported."""
    n = None
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            n = argv[i + 1]
        elif a.startswith("--threads="):
            n = a.split("=", 1)[1]
    if n is None:
        try:
            n = str(len(os.sched_getaffinity(0)))
        except (AttributeError, OSError):
            n = str(os.cpu_count() or 1)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                "NUMEXPR_NUM_THREADS"):
        os.environ[var] = n
    if n == "1":
        # XLA's CPU runtime ignores its thread flags (the Thread settings table measures
        # the cores it keeps busy), so one thread means one CPU for the whole process
        try:
            cpus = sorted(os.sched_getaffinity(0))
            os.sched_setaffinity(0, {cpus[0]})
            os.environ["FASTNET_REPORT_PINNED_CPU"] = str(cpus[0])
        except (AttributeError, OSError):
            pass
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_cpu_multi_thread_eigen=false").strip()


#: --isa: the instruction set of fastnet's engines AND of the peers, as on a CPU that
#: has no more: the Cython matmul's cap (FASTNET_MM_ISA), its elementwise loops'
#: (FASTNET_EW_ISA), numba's target CPU (NUMBA_CPU_NAME with NUMBA_CPU_FEATURES="":
#: without it numba adds the host's features to the name and an AVX-512 host still
#: gets AVX-512 code; numba keys its cache by CPU), OpenBLAS's kernels
#: (OPENBLAS_CORETYPE), MKL's and oneDNN's dispatch (PyTorch), PyTorch's own
#: kernels (ATEN_CPU_CAPABILITY) and XLA's code generation (JAX)
ISAS = {
    "native": {},
    "avx2": {"FASTNET_MM_ISA": "avx2", "FASTNET_EW_ISA": "avx2", "NUMBA_CPU_NAME": "haswell",
             "NUMBA_CPU_FEATURES": "", "OPENBLAS_CORETYPE": "Haswell", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
             "XLA_FLAGS": "--xla_cpu_max_isa=AVX2"},
    "baseline": {"FASTNET_MM_ISA": "baseline", "FASTNET_EW_ISA": "baseline", "NUMBA_CPU_NAME": "x86-64",
                 "NUMBA_CPU_FEATURES": "", "OPENBLAS_CORETYPE": "Core2", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
                 "ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default",
                 "XLA_FLAGS": "--xla_cpu_max_isa=SSE4_2"},
}


def _isa_arg(argv):
    isa = "native"
    for i, a in enumerate(argv):
        if a == "--isa" and i + 1 < len(argv):
            isa = argv[i + 1]
        elif a.startswith("--isa="):
            isa = a.split("=", 1)[1]
    return isa


def _early_isa(argv):
    """--isa must reach both engines and the peers before any of them is imported
    (as a script, report.py has already restarted itself with CPUID capped too)."""
    isa = _isa_arg(argv)
    for var, val in ISAS.get(isa, {}).items():
        if var == "XLA_FLAGS":
            val = (os.environ.get(var, "") + " " + val).strip()
        os.environ[var] = val


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    import fnbench_isa  # noqa: E402
    fnbench_isa.reexec_capped(_isa_arg(sys.argv[1:]), sys.argv[1:])
    _early_threads(sys.argv[1:])
    _early_isa(sys.argv[1:])

import argparse  # noqa: E402
import collections  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import timeit  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

import numpy as np  # noqa: E402

if HERE not in sys.path:
    sys.path.insert(0, HERE)
import fnbench  # noqa: E402
import fnbench_isa  # noqa: E402

SECTIONS = ("kernels", "epochs", "predict", "gradients", "cold")


def log(*a):
    print("[report %s]" % time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# measurement
# ---------------------------------------------------------------------------
def measure_kernels(ctx):
    """results[group][impl] = median seconds per call (+ the KernelCase)."""
    out = collections.OrderedDict()
    rounds, min_round = ctx.rounds, (0.002 if ctx.quick else 0.05)
    for group, factory in fnbench.kernel_cases(ctx.quick):
        case = fnbench.get_case(group, factory)
        impls = list(ctx.backends) + (["blas"] if case.blas else [])
        fns, res = {}, {"_case": case}
        for impl in impls:
            try:
                fn = case.build(impl, ctx.threads)
                fn()
                fns[impl] = fn
            except Exception as exc:  # noqa: BLE001
                res[impl] = {"error": "%s: %s" % (type(exc).__name__, exc)}
        times = {}
        for impl, fn in fns.items():  # one impl's rounds back to back (a case takes ~1 s)
            settle(ctx)
            fn()
            times[impl] = fnbench.time_calls(fn, rounds=rounds, min_round_s=min_round)
        for impl, ts in times.items():
            res[impl] = {"median": fnbench.median(ts), "rounds": len(ts)}
        out[group] = res
        log("kernel %-34s %s" % (group, "  ".join(
            "%s %.3g us" % (i, r["median"] * 1e6) for i, r in res.items() if i != "_case" and "median" in r)))
    return out


def settle(ctx):
    """Let the previous impl's idle threads go to sleep before the next impl
    runs: OpenBLAS's workers busy-wait ~2^28 cycles (~0.1 s) after a call and
    OpenMP's spin for a while after a parallel region; on a 2-core machine a
    spinning thread of the previous impl would take a core from the next one."""
    if not ctx.quick:
        time.sleep(0.15)


def _rounds_for(impl, ctx):
    return min(ctx.rounds, 3) if impl == "sklearn" else ctx.rounds


def measure_epochs(ctx, spec):
    """results[impl] = {times, median, rounds, info, accuracy} for one training spec."""
    impls = list(ctx.backends) + [p for p in fnbench.PEERS_TRAIN if p in ctx.peers]
    X, y = ctx.data.X[:spec.n], ctx.data.y[:spec.n]
    res, trainers = collections.OrderedDict(), collections.OrderedDict()
    for impl in impls:
        if not fnbench.peer_available(impl):
            res[impl] = {"skipped": "not installed"}
            continue
        try:
            t0 = time.perf_counter()
            tr = fnbench.make_trainer(impl, spec, X, y, ctx.threads)
            t_setup = time.perf_counter() - t0
            t0 = time.perf_counter()
            tr.warmup()
            t_warm = time.perf_counter() - t0
            trainers[impl] = tr
            res[impl] = {"times": [], "setup s": t_setup, "warmup s": t_warm, "info": dict(tr.info)}
        except Exception as exc:  # noqa: BLE001
            res[impl] = {"error": "%s: %s" % (type(exc).__name__, exc)}
            log("epoch %s %s failed: %s" % (spec.name, impl, res[impl]["error"]))
            traceback.print_exc()
    spent = {impl: 0.0 for impl in trainers}
    for r in range(ctx.rounds):
        for impl, tr in trainers.items():
            times = res[impl]["times"]
            if len(times) >= _rounds_for(impl, ctx) or res[impl].get("error"):
                continue
            if times and spent[impl] + fnbench.median(times) > ctx.budget:
                continue
            try:
                settle(ctx)
                t0 = time.perf_counter()
                tr.epoch()
                dt = time.perf_counter() - t0
            except Exception as exc:  # noqa: BLE001
                res[impl]["error"] = "%s: %s" % (type(exc).__name__, exc)
                traceback.print_exc()
                continue
            times.append(dt)
            spent[impl] += dt
            log("epoch %s %-10s round %d: %.3f s" % (spec.name, impl, r + 1, dt))
    for impl, tr in trainers.items():
        times = res[impl]["times"]
        res[impl]["median"] = fnbench.median(times)
        res[impl]["rounds"] = len(times)
        res[impl]["info"].update(tr.info)
        if ctx.data.source == "mnist":
            try:
                res[impl]["accuracy"] = tr.accuracy(ctx.data.X_test, ctx.data.y_test)
                res[impl]["epochs trained"] = len(times)
            except Exception as exc:  # noqa: BLE001
                res[impl]["accuracy error"] = str(exc)
    trainers.clear()
    gc.collect()
    return res


def measure_predict(ctx):
    p = ctx.workloads["predict"]
    impls = list(ctx.backends) + [b + ":kernel" for b in ctx.backends] + \
        [q for q in fnbench.PEERS_PREDICT if q in ctx.peers]
    rng = np.random.default_rng(0)
    x1 = rng.random((p["latency_batch"], p["sizes"][0]), dtype=np.float32)
    xn = rng.random((p["throughput_batch"], p["sizes"][0]), dtype=np.float32)
    fns, res = collections.OrderedDict(), collections.OrderedDict()
    for impl in impls:
        base = impl.split(":")[0]
        if base not in fnbench.BACKENDS and not fnbench.peer_available(base):
            res[impl] = {"skipped": "not installed"}
            continue
        try:
            fn = fnbench.make_predictor(impl, p["sizes"], ctx.threads)
            fn(x1)
            fn(xn)
            fns[impl] = fn
        except Exception as exc:  # noqa: BLE001
            res[impl] = {"error": "%s: %s" % (type(exc).__name__, exc)}
    calls = {}
    for impl, fn in fns.items():  # about 0.3 s of batch-1 calls per impl and round, 20 to 300 calls
        t0 = time.perf_counter()
        fn(x1)
        one = time.perf_counter() - t0
        calls[impl] = 20 if ctx.quick else int(min(300, max(20, 0.3 / max(one, 1e-7))))
    lat = {impl: [] for impl in fns}
    thr = {impl: [] for impl in fns}
    for _ in range(ctx.rounds):
        for impl, fn in fns.items():
            settle(ctx)
            fn(x1)
            ts = lat[impl]
            for _ in range(calls[impl]):
                t0 = time.perf_counter()
                fn(x1)
                ts.append(time.perf_counter() - t0)
            thr[impl] += fnbench.time_calls(lambda: fn(xn), rounds=1, min_round_s=0.002 if ctx.quick else 0.2)
    # the limit for batch 1: every weight read once (a vectorised max over the flat weight buffer)
    if fns:
        sz = p["sizes"]
        buf = np.random.default_rng(0).random(sum(a * b + b for a, b in zip(sz[:-1], sz[1:])), dtype=np.float32)
        ts = []
        for _ in range(ctx.rounds):
            settle(ctx)
            ts += fnbench.time_calls(buf.max, rounds=1, min_round_s=0.002 if ctx.quick else 0.1)
        res["stream weights"] = {"latency": fnbench.median(ts), "bytes": int(buf.nbytes), "rounds": ctx.rounds}
        log("predict stream weights (%d bytes) %.1f us" % (buf.nbytes, res["stream weights"]["latency"] * 1e6))
    # the Python overhead per call (input checks, dispatch): model.predict against its forward
    # kernel alone, on a net whose pass takes about a microsecond; the fastest of many means of
    # back-to-back calls for each (interference only ever adds time)
    sz = p.get("overhead_sizes")
    for be in [b for b in ctx.backends if b in fnbench.BACKENDS and sz]:
        try:
            pair = [fnbench.make_predictor(be + q, sz, ctx.threads) for q in ("", ":kernel")]
            xo = rng.random((1, sz[0]), dtype=np.float32)
            best = []
            for fn in pair:
                for _ in range(50):
                    fn(xo)
                n = 20 if ctx.quick else 300
                best.append(min(timeit.repeat(lambda: fn(xo), number=n, repeat=3 if ctx.quick else 5 * ctx.rounds)) / n)
            res["overhead " + be] = {"predict": best[0], "kernel": best[1], "sizes": list(sz)}
            log("predict overhead %s: predict %.2f us, kernel %.2f us" % (be, best[0] * 1e6, best[1] * 1e6))
        except Exception as exc:  # noqa: BLE001
            res["overhead " + be] = {"error": "%s: %s" % (type(exc).__name__, exc)}
    for impl in fns:
        res[impl] = {"latency": fnbench.median(lat[impl]), "latency p90": float(np.percentile(lat[impl], 90)),
                     "latency calls": len(lat[impl]), "throughput time": fnbench.median(thr[impl]),
                     "rounds": ctx.rounds}
        res[impl]["throughput"] = p["throughput_batch"] / res[impl]["throughput time"]
        log("predict %-14s batch1 %.1f us   batch%d %.3f ms" % (
            impl, res[impl]["latency"] * 1e6, p["throughput_batch"], res[impl]["throughput time"] * 1e3))
    return res


def measure_gradients(ctx):
    """res[backend] = list of rows per network."""
    res = collections.OrderedDict()
    n = ctx.workloads["grad_n"]
    for be in ctx.backends:
        rows = []
        for sizes in ctx.workloads["grad_nets"]:
            try:
                case = fnbench.GradCase(be, sizes, n, ctx.threads)
                case.backprop()
                bp = fnbench.median(fnbench.time_calls(case.backprop, rounds=ctx.rounds,
                                                       min_round_s=0.002 if ctx.quick else 0.05))
                k = case.P if case.P <= fnbench.GRAD_FULL_MAX else fnbench.GRAD_SUBSAMPLE
                idx = case.sample(k)
                case.numerical(idx[:4])
                ts, num = [], None
                for r in range(1 if ctx.quick else 3):
                    t0 = time.perf_counter()
                    num = case.numerical(idx)
                    ts.append(time.perf_counter() - t0)
                    if ts[0] > 5.0:  # slow: one round is enough
                        break
                per_param = fnbench.median(ts) / len(idx)
                g = case.backprop_flat()[idx]
                err = float(np.max(np.abs(g - num) / np.maximum(np.abs(g) + np.abs(num), 1e-6)))
                row = {"sizes": sizes, "P": case.P, "N": n, "backprop": bp, "timed params": len(idx),
                       "numerical per param": per_param, "numerical": per_param * case.P,
                       "extrapolated": len(idx) < case.P, "max rel err": err}
                row["ratio"] = row["numerical"] / bp
                rows.append(row)
                log("gradients %s %s P=%d backprop %.3g ms numerical %.3g s ratio %.3g" % (
                    be, "x".join(map(str, sizes)), case.P, bp * 1e3, row["numerical"], row["ratio"]))
            except Exception as exc:  # noqa: BLE001
                rows.append({"sizes": sizes, "error": "%s: %s" % (type(exc).__name__, exc)})
                log("gradients %s %s failed: %s" % (be, sizes, rows[-1]["error"]))
        ok = [r for r in rows if "ratio" in r]
        slope_all = fnbench.loglog_slope([r["P"] for r in ok], [r["ratio"] for r in ok])
        big = [r for r in ok if r["P"] >= 1000]
        slope_big = fnbench.loglog_slope([r["P"] for r in big], [r["ratio"] for r in big])
        res[be] = {"rows": rows, "slope": slope_all, "slope P>=1e3": slope_big}
    return res


COLD_SCRIPT = r'''
import json, os, resource, sys, time
t0 = time.perf_counter()
import numpy as np
t1 = time.perf_counter()
import fastnet
t2 = time.perf_counter()
rss_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
X = np.load(sys.argv[1])
y = np.load(sys.argv[2])
t3 = time.perf_counter()
rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
backend, threads, batch, lr = sys.argv[3], sys.argv[4], int(sys.argv[5]), float(sys.argv[6])
if threads != "default":   # (default: every core, the thread count a user's first fit gets)
    fastnet.set_num_threads(int(threads))
model = fastnet.Sequential([fastnet.Dense(30, activation="sigmoid"), fastnet.Dense(10)], backend=backend, seed=0)
model.compile(optimizer=fastnet.SGD(lr=lr), loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
t4 = time.perf_counter()
hist = model.fit(X, y, epochs=1, batch_size=batch, verbose=0)
t5 = time.perf_counter()
ru = resource.getrusage(resource.RUSAGE_SELF)
status = dict(l.split(":", 1) for l in open("/proc/self/status") if l.startswith(("VmHWM", "VmRSS")))
json.dump({"VmHWM KB": int(status["VmHWM"].split()[0]), "VmRSS KB": int(status["VmRSS"].split()[0]),"import numpy": t1 - t0, "import fastnet": t2 - t1, "load data": t3 - t2, "build": t4 - t3,
           "first epoch": t5 - t4, "cold start": (t2 - t0) + (t5 - t3),
           "rss after import KB": rss_import, "rss after data KB": rss_data, "peak rss KB": ru.ru_maxrss,
           "loss": hist.history["loss"][-1]}, sys.stdout)
'''


def _cold_run(ctx, xpath, ypath, backend, env_extra=None):
    spec = ctx.workloads["seed"]
    env = dict(os.environ)
    env.update(env_extra or {})
    # Launched through /bin/sh, which forks the python child: on Linux ru_maxrss
    # survives execve, so a child exec'd straight from this (big) process would
    # report this process's RSS as its own peak; a child forked from a small
    # shell starts its high-water mark from the shell's few MB.
    # with every core, fit's own default: its thread tuner times one thread and the
    # default on the first batches, so a first fit runs (and compiles) both choices
    threads = "default" if ctx.threads == fnbench.available_cores() else str(ctx.threads)
    cmd = ["/bin/sh", "-c", '"$0" "$@"; exit $?', sys.executable, "-c", COLD_SCRIPT, xpath, ypath, backend,
           threads, str(spec.batch), str(spec.lr)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True,
                          timeout=1800)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError("cold-start subprocess failed (%s): %s" % (backend, proc.stderr.strip()[-2000:]))
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process wall"] = wall
    return out


def measure_cold(ctx):
    """Fresh subprocesses: import fastnet + first seed epoch; peak RSS."""
    spec = ctx.workloads["seed"]
    res = collections.OrderedDict()
    tmp = tempfile.mkdtemp(prefix="fastnet-bench-")
    xpath, ypath = os.path.join(tmp, "X.npy"), os.path.join(tmp, "y.npy")
    X, y = ctx.data.X[:spec.n], ctx.data.y[:spec.n]
    np.save(xpath, X)
    np.save(ypath, y)
    res["dataset bytes"] = int(X.nbytes + y.nbytes)
    runs = 1 if ctx.quick else 3

    def repeat(label, backend, env=None, n=runs):
        try:
            outs = [_cold_run(ctx, xpath, ypath, backend, env) for _ in range(n)]
            med = {k: fnbench.median([o[k] for o in outs]) for k in outs[0] if isinstance(outs[0][k], (int, float))}
            med["runs"] = n
            med["all cold start"] = [o["cold start"] for o in outs]
            res[label] = med
            log("cold %-22s cold start %.3f s (import %.3f, first epoch %.3f), peak RSS %.0f MB" % (
                label, med["cold start"], med["import numpy"] + med["import fastnet"], med["first epoch"],
                med["peak rss KB"] / 1024))
        except Exception as exc:  # noqa: BLE001
            res[label] = {"error": "%s: %s" % (type(exc).__name__, exc)}
            log("cold %s failed: %s" % (label, res[label]["error"]))

    for be in ctx.backends:
        if be == "numba":
            cache = os.path.join(tmp, "numba-cache")
            if ctx.uncached_numba:
                repeat("numba (empty cache)", "numba", {"NUMBA_CACHE_DIR": cache}, n=1)
            else:
                _cold_run(ctx, xpath, ypath, "numba", {"NUMBA_CACHE_DIR": cache})  # fill the cache
            repeat("numba (warm cache)", "numba", {"NUMBA_CACHE_DIR": cache})
        else:
            repeat(be, be)
    try:
        for f in (xpath, ypath):
            os.remove(f)
    except OSError:
        pass
    return res


# ---------------------------------------------------------------------------
# analysis
# ---------------------------------------------------------------------------
def gemm_limit(ctx, kern, spec):
    """GEMM-bound time of one epoch of spec: (a) the sum over the step's gemms
    of OpenBLAS's time at those shapes (measured in this run), x batches (the
    last partial batch pro rata); (b) the epoch FLOPs at OpenBLAS's big^3 rate."""
    shapes_t = 0.0
    missing = []
    for form, n, k, m in fnbench.step_gemms(spec.sizes, spec.batch):
        g = "%s:%dx%dx%d" % (form, n, k, m)
        r = kern.get(g, {}).get("blas", {})
        if "median" in r:
            shapes_t += r["median"]
        else:
            missing.append(g)
    nb = spec.n / spec.batch  # pro rata for the partial batch
    big = ctx.workloads["gemm_big"]
    rbig = kern.get("matmul:%dx%dx%d" % (big, big, big), {}).get("blas", {})
    rate = (2.0 * big ** 3 / rbig["median"]) if "median" in rbig else float("nan")
    flops = fnbench.epoch_flops(spec.sizes, spec.n)
    return {"at shapes": shapes_t * nb if not missing else float("nan"), "missing": missing,
            "at peak": flops / rate, "peak rate": rate, "flops": flops,
            "shape rate": flops / (shapes_t * nb) if shapes_t and not missing else float("nan")}


def best_of(res, impls, key="median", lower=True):
    cands = [(res[i][key], i) for i in impls if i in res and key in res[i] and np.isfinite(res[i][key])]
    if not cands:
        return None, None
    return (min(cands) if lower else max(cands))[::-1]


class Targets:
    def __init__(self):
        self.rows = []

    def add(self, what, goal, measured, met, issue):
        self.rows.append((what, goal, measured, met, issue))


def fmt_s(t):
    if t is None or not np.isfinite(t):
        return "n/a"
    if t >= 1:
        return "%.2f s" % t
    if t >= 1e-3:
        return "%.1f ms" % (t * 1e3)
    return "%.1f µs" % (t * 1e6)


def fmt_x(r):
    return "n/a" if r is None or not np.isfinite(r) else ("%.3g×" % r)


def status(met):
    return {True: "**met**", False: "**not met**", None: "n/a"}[met]


def evaluate(ctx, R):
    """The targets' rows: (what, goal, measured, met, issue)."""
    T = Targets()
    compiled = [b for b in ctx.backends if b != "numpy"]
    ep = R.get("epochs", {})
    kern = R.get("kernels", {})

    def epoch_ratio(wl, peer, goal, label, issue):
        res = ep.get(wl, {})
        be, t = best_of(res, compiled)
        pr = res.get(peer, {})
        what, g = "%s epoch vs %s" % (wl, label), "≤ %.2g×" % goal
        if be is None:
            T.add(what, g, "no compiled backend measured", None, issue)
            return
        if "median" not in pr or not np.isfinite(pr.get("median", np.nan)):
            T.add(what, g, "%s not measured (%s)" % (peer, pr.get("skipped") or pr.get("error") or "not selected"),
                  None, issue)
            return
        r = t / pr["median"]
        T.add(what, g, "%s (%s %s vs %s)" % (fmt_x(r), be, fmt_s(t), fmt_s(pr["median"])), r <= goal, issue)

    epoch_ratio("seed", "numpy", 0.25, "NumPy reference backend", 5)
    epoch_ratio("seed", "torch", 0.05, "PyTorch", 17)
    epoch_ratio("seed", "jax", 0.25, "JAX", 17)
    epoch_ratio("wide", "jax", 0.9, "JAX", 17)
    epoch_ratio("wide", "torch", 0.35, "PyTorch", 5)
    if "wide" in ep and kern:
        lim = gemm_limit(ctx, kern, ctx.workloads["wide"])
        be, t = best_of(ep["wide"], compiled)
        if be is None or not np.isfinite(lim["at shapes"]):
            T.add("wide epoch vs GEMM-bound time", "≤ 1.0×", "n/a", None, 17)
        else:
            r = t / lim["at shapes"]
            T.add("wide epoch vs GEMM-bound time", "≤ 1.0×", "%s (%s %s vs %s = the step's gemms at "
                  "OpenBLAS speed)" % (fmt_x(r), be, fmt_s(t), fmt_s(lim["at shapes"])), r <= 1.0, 17)
    pr = R.get("predict", {})
    if pr:
        tp = pr.get("torch", {})
        be, t = best_of(pr, compiled, "latency")
        stream = pr.get("stream weights", {}).get("latency")
        if be is None or not stream:
            T.add("predict batch-1 latency vs streaming the weights once", "≤ 1.3×", "n/a", None, 17)
        else:
            r = t / stream
            T.add("predict batch-1 latency vs streaming the weights once", "≤ 1.3×", "%s (%s %s vs %s)" % (
                fmt_x(r), be, fmt_s(t), fmt_s(stream)), r <= 1.3, 17)
        for b in compiled:
            ov = pr.get("overhead " + b, {})
            if "predict" in ov:
                over = ov["predict"] - ov["kernel"]
                T.add("predict batch-1 Python overhead (%s)" % b, "≤ 3 µs", "%s (%s: predict %s vs the kernel's %s)" % (
                    fmt_s(over), "-".join(map(str, ov["sizes"])), fmt_s(ov["predict"]), fmt_s(ov["kernel"])),
                    over <= 3e-6, 17)
            else:
                T.add("predict batch-1 Python overhead (%s)" % b, "≤ 3 µs", "n/a", None, 17)
        be, thr = best_of(pr, compiled, "throughput", lower=False)
        what = "predict batch-%d throughput vs PyTorch" % ctx.workloads["predict"]["throughput_batch"]
        if be is None or "throughput" not in tp:
            T.add(what, "≥ 1.2×", "n/a", None, 17)
        else:
            r = thr / tp["throughput"]
            T.add(what, "≥ 1.2×", "%s (%s %.0f vs %.0f samples/s)" % (fmt_x(r), be, thr, tp["throughput"]),
                  r >= 1.2, 17)
    if kern:
        big = ctx.workloads["gemm_big"]
        bigs = ["%s:%dx%dx%d" % (f, big, big, big) for f in ("matmul", "matmul_tn", "matmul_nt")]
        steps = [g for g in kern if g.split(":")[0] in ("matmul", "matmul_tn", "matmul_nt") and g not in bigs]
        for be, goal_step, goal_big in (("cython", 1.0, 0.9), ("numba", 0.8, 0.6)):
            if be not in compiled:
                continue
            ratios = []
            for s in steps:
                rb, ro = kern[s].get("blas", {}), kern[s].get(be, {})
                if "median" in rb and "median" in ro:
                    ratios.append((rb["median"] / ro["median"], s))
            if ratios:
                worst = min(ratios)
                T.add("gemm, every product of the seed and wide steps: %s vs OpenBLAS" % be,
                      "≥ %.1f× (each)" % goal_step, "worst %s at %s; below the goal: %s" % (
                          fmt_x(worst[0]), worst[1], ", ".join("%s %s" % (s, fmt_x(r)) for r, s in sorted(ratios)
                                                               if r < goal_step) or "none"),
                      worst[0] >= goal_step, 17)
            for g in bigs:
                rb, ro = kern.get(g, {}).get("blas", {}), kern.get(g, {}).get(be, {})
                if "median" in rb and "median" in ro:
                    frac = rb["median"] / ro["median"]
                    T.add("gemm %s: %s vs OpenBLAS" % (g, be), "≥ %.1f×" % goal_big,
                          "%s (%.1f vs %.1f GFLOP/s)" % (fmt_x(frac), 2.0 * big ** 3 / ro["median"] / 1e9,
                                                        2.0 * big ** 3 / rb["median"] / 1e9), frac >= goal_big, 17)
    # issue 18: the numba twin within 1.5x of the Cython twin on every workload
    if {"numba", "cython"} <= set(compiled):
        pairs = [("%s epoch" % wl, ep.get(wl, {}), "median") for wl in ("seed", "wide")]
        pairs += [("predict batch-1 latency", pr, "latency"), ("predict batch-%d" % ctx.workloads[
            "predict"]["throughput_batch"], pr, "throughput time")]
        pairs += [(g, kern[g], "median") for g in kern if g.startswith("optimizer_update")]
        for what, res, key in pairs:
            a, b = res.get("numba", {}).get(key), res.get("cython", {}).get(key)
            if a and b:
                T.add("%s: numba vs cython" % what, "≤ 1.5×", "%s (%s vs %s)" % (fmt_x(a / b), fmt_s(a), fmt_s(b)),
                      a / b <= 1.5, 18)
    cold = R.get("cold", {})
    if cold:
        for label, goal in (("cython", 1.5), ("numba (warm cache)", 2.0)):
            c = cold.get(label)
            if c is None or "cold start" not in c:
                be = label.split()[0]
                why = (c or {}).get("error") or ("not measured in this run" if be in fnbench.available_backends()
                                                 else "backend not available")
                T.add("cold start %s (import + first seed epoch)" % label, "≤ %.1f s" % goal, "n/a (%s)" % why,
                      None, 5)
            else:
                T.add("cold start %s (import + first seed epoch)" % label, "≤ %.1f s" % goal,
                      "%.2f s (median of %d fresh processes)" % (c["cold start"], c["runs"]),
                      c["cold start"] <= goal, 5)
        ds = cold.get("dataset bytes", 0)
        lim = ds / 2 ** 20 + 50
        for label, c in cold.items():
            # the training memory of the compiled backends (the empty-cache numba
            # run also holds the compiler: shown in the table, not a target)
            if not isinstance(c, dict) or "peak rss KB" not in c or label == "numpy" or "empty" in label:
                continue
            peak = c["peak rss KB"] / 1024
            T.add("peak RSS training seed (%s)" % label, "≤ data + 50 MB = %.0f MB" % lim,
                  "%.0f MB (%.0f MB after imports)" % (peak, c["rss after import KB"] / 1024), peak <= lim, 5)
    return T


# ---------------------------------------------------------------------------
# markdown
# ---------------------------------------------------------------------------
def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _engine_isa(backend):
    """What the engine actually runs: the Cython matmul's ISA, numba's target CPU."""
    try:
        if backend == "cython":
            import fastnet.backends.cython as c
            i = c.info()
            return "%s, elementwise loops %s" % (i["matmul_isa"], i["optimizer_isa"])
        import numba
        from fastnet._kernels.numba import simd
        name = numba.config.CPU_NAME or "host (%s)" % __import__("llvmlite.binding", fromlist=["x"]).get_host_cpu_name()
        feats = numba.config.CPU_FEATURES
        how = ("its own features" if feats == "" else "the host's features" if feats is None
               else "features %s" % feats)
        return "%s with %s, %d-byte vectors" % (name, how, simd.VECTOR_BYTES)
    except Exception as exc:  # noqa: BLE001
        return "unavailable (%s)" % type(exc).__name__


def _md_header(ctx, R, T):
    """Title, how the report was made, and a warning when the machine was oversubscribed."""
    L = ["# fastnet benchmark report", ""]
    L.append("Generated %s by `%s` in %.0f s (%s sizes, %d thread(s), %s data, up to %d round(s) per measurement)." % (
        R["meta"]["started"], R["meta"]["command"], R["meta"]["elapsed"],
        "**quick (tiny, smoke-test)**" if ctx.quick else "full", ctx.threads,
        "real MNIST" if ctx.data.source == "mnist" else "random MNIST-shaped", ctx.rounds))
    L.append("Instruction set: `--isa %s` (the Cython engine's matmul: %s; numba's target CPU: %s)%s." % (
        R["meta"].get("isa", "native"), R["meta"].get("cython isa", "?"), R["meta"].get("numba cpu", "?"),
        "" if not ISAS.get(R["meta"].get("isa", "native")) else "; every library capped with %s" % ", ".join(
            "`%s=%s`" % (k, v if v else "''") for k, v in ISAS[R["meta"]["isa"]].items())))
    L.append("CPUID: %s." % R["meta"].get("cpuid cap", "not recorded"))
    L.append("Backends measured: %s.  Backend status: %s." % (
        ", ".join(ctx.backends) or "none",
        "; ".join("%s: %s" % (k, "ok" if v is None else v) for k, v in fnbench.fastnet_status().items())))
    L.append("Ratios are fastnet ÷ peer (lower is better) unless a row says otherwise; \"best\" is the fastest "
             "compiled fastnet backend (numba or cython).  Load average at start / end: %s / %s (a shared machine: "
             "all impls run interleaved, round by round, so load hits them alike)." % (
                 R["meta"]["load start"], R["meta"]["load end"]))
    L.append("")
    probe = " ".join(str(v) for k, v in R["machine"].items() if "probe" in k)
    if "oversubscribed" in probe:
        L += ["", "> **Warning: this machine was oversubscribed during the run** (OpenBLAS's %d-thread sgemm was "
              "not faster than its 1-thread sgemm; see the probe rows under Machine).  Every multi-threaded time "
              "below then includes waiting for a time slice at each synchronisation (a parallel region, "
              "a BLAS call, an OpenMP barrier) and is pessimistic and noisy; compare impls within one table "
              "(they ran interleaved) rather than with other runs, or rerun on an idle machine or with "
              "`--threads 1`." % ctx.threads, ""]
    return L


def _md_setup(ctx, R, T):
    """The targets' status, then the machine, library versions and thread settings."""
    return [
        "## Targets", "",
        "Issue 5: the first round's targets still in force; issue 17: the engine on every ISA and its threads; "
        "issue 18: the numba twin.", "",
        md_table(["target", "issue", "goal", "measured", "status"],
                 [(a, e, b, c, status(d)) for a, b, c, d, e in T.rows]), "",
        "## Machine", "",
        md_table(["", ""], list(R["machine"].items())), "",
        "## Library versions", "",
        md_table(["library", "version"], list(R["versions"].items())), "",
        "## Thread settings", "",
        "Set before numpy / torch / jax were imported (environment variables), then pinned with "
        "threadpoolctl, `fastnet.set_num_threads`, `numba.set_num_threads`, `torch.set_num_threads` "
        "(inter-op 1).", "",
        md_table(["setting", "value"], [(k, str(v).replace("|", "/")) for k, v in R["threads"].items()]), "",
    ]


def _md_gemm(ctx, R, T):
    """GFLOP/s of fastnet's matrix products against OpenBLAS at the same shapes."""
    kern = R.get("kernels")
    if not kern:
        return []
    L = ["## GEMM: fastnet's kernels vs OpenBLAS (numpy.matmul, float32)", "",
         "GFLOP/s = 2·n·k·m / median time; shapes n×k×m mean C (n×m) with inner dimension k "
         "(`matmul_tn`: C = Aᵀ·B, `matmul_nt`: C = A·Bᵀ).  % = our rate ÷ OpenBLAS's.  "]
    arch = blas_arch()
    if arch:
        L.append("OpenBLAS runs its **%s** kernels here (threadpoolctl); the CPU has %s.%s  " % (
            arch, R["machine"].get("SIMD flags", "?"),
            "  These are AVX2 kernels on an AVX-512 CPU, so OpenBLAS's rate (and every \"limit\" derived "
            "from it below) is about half of what AVX-512 code can reach: an impl may beat the limit."
            if arch.lower() in ("haswell", "zen") and "avx512f" in R["machine"].get("SIMD flags", "") else ""))
    L.append("BLAS use inside the engine: numpy backend = numpy.matmul (OpenBLAS); %s." % "; ".join(
        "%s = %s" % (b, R["blas use"].get(b, "?")) for b in ctx.backends if b != "numpy"))
    L.append("")
    gemm_groups = [g for g in kern if kern[g]["_case"].blas]
    hdr = ["shape", "blas GFLOP/s"] + ["%s GFLOP/s (%% of blas)" % b for b in ctx.backends]
    rows = []
    for g in gemm_groups:
        case, rb = kern[g]["_case"], kern[g].get("blas", {})
        row = [g, "%.1f" % (case.flops / rb["median"] / 1e9) if "median" in rb else "err"]
        for b in ctx.backends:
            r = kern[g].get(b, {})
            if "median" in r and "median" in rb:
                row.append("%.1f (%.0f%%)" % (case.flops / r["median"] / 1e9, 100 * rb["median"] / r["median"]))
            else:
                row.append(r.get("error", "n/a")[:60])
        rows.append(row)
    return L + [md_table(hdr, rows), ""]


def _md_epoch(ctx, R, wl):
    """One training workload's epoch: every impl against the peers and the GEMM-bound limit."""
    w, kern, ep = ctx.workloads, R.get("kernels"), R.get("epochs", {})
    if wl not in ep:
        return []
    spec, res = w[wl], ep[wl]
    lim = gemm_limit(ctx, kern, spec) if kern else None
    L = ["## %s epoch" % wl, ""]
    L.append("%s, %s hidden, softmax + cross-entropy, %s lr %g, batch %d, one epoch over %d samples "
             "(%d parameters).  Epoch FLOPs (gemms: forward 2·N·Σ in·out + backward ≈ 2× forward, the "
             "first layer's input delta skipped): %.3g." % (
                 "-".join(map(str, spec.sizes)), spec.hidden_act, spec.optimizer.upper() if spec.optimizer == "sgd"
                 else "Adam", spec.lr, spec.batch, spec.n, fnbench.n_params(spec.sizes),
                 fnbench.epoch_flops(spec.sizes, spec.n)))
    if lim:
        L.append("GEMM-bound time (the limit): %s = the step's gemms at OpenBLAS's measured speed at these "
                 "shapes (%.1f GFLOP/s effective) × %g batches; %s at OpenBLAS's %d³ rate (%.1f GFLOP/s)." % (
                     fmt_s(lim["at shapes"]), lim["shape rate"] / 1e9, spec.n / spec.batch, fmt_s(lim["at peak"]),
                     w["gemm_big"], lim["peak rate"] / 1e9))
        fp = R["meta"].get("fma peak", float("nan"))
        if np.isfinite(fp):
            L[-1] += "  At the FMA peak (%.1f GFLOP/s, under Machine): %s — no impl can go below it." % (
                fp / 1e9, fmt_s(lim["flops"] / fp))
    L.append("")
    peers = [p for p in ("numpy", "numpy-loop", "torch", "jax", "sklearn") if "median" in res.get(p, {})]
    hdr = ["impl", "median", "rounds", "min", "GFLOP/s"] + ["÷ %s" % p for p in peers] + \
        (["÷ limit (shapes)", "÷ limit (peak)"] if lim else []) + ["notes"]
    rows = []
    for impl, r in res.items():
        if "median" not in r or not np.isfinite(r["median"]):
            rows.append([impl, "—", 0, "", ""] + [""] * len(peers) + (["", ""] if lim else []) +
                        [r.get("skipped") or r.get("error", "")[:200]])
            continue
        t = r["median"]
        notes = []
        if "compile s" in r.get("info", {}):
            notes.append("compile %s (excluded)" % fmt_s(r["info"]["compile s"]))
        if "first call s" in r.get("info", {}):
            notes.append("first call (warm-up slice) %s" % fmt_s(r["info"]["first call s"]))
        if "accuracy" in r:
            notes.append("test acc %.3f after %d+ epochs" % (r["accuracy"], r["epochs trained"]))
        row = [impl, fmt_s(t), r["rounds"], fmt_s(min(r["times"])),
               "%.1f" % (fnbench.epoch_flops(spec.sizes, spec.n) / t / 1e9)]
        row += [fmt_x(t / res[p]["median"]) for p in peers]
        if lim:
            row += [fmt_x(t / lim["at shapes"]), fmt_x(t / lim["at peak"])]
        row.append("; ".join(notes))
        rows.append(row)
    L += [md_table(hdr, rows), ""]
    if kern:
        L += [step_breakdown(ctx, kern, spec, res), ""]
    return L


def _md_epochs(ctx, R, T):
    return _md_epoch(ctx, R, "seed") + _md_epoch(ctx, R, "wide")


def _md_predict(ctx, R, T):
    """Batch-1 latency and batch throughput of predict, and of the forward kernel alone."""
    pr = R.get("predict")
    if not pr:
        return []
    p = ctx.workloads["predict"]
    L = ["## predict", ""]
    L.append("%s, relu, softmax output; float32 inputs.  Latency: median of %s single calls at batch %d "
             "(pooled over rounds); throughput: batch %d, median over rounds.  `<backend>` = `model.predict` "
             "(input checks + one forward call); `<backend>:kernel` = the backend's `forward` kernel alone "
             "on preallocated buffers (the contract's function without its argument validator, as predict "
             "calls it); torch = `model(torch.from_numpy(x)).numpy()` under inference_mode; "
             "jax = a jitted forward + `np.asarray`." % (
                 "-".join(map(str, p["sizes"])),
                 next((r["latency calls"] for r in pr.values() if "latency calls" in r), 0),
                 p["latency_batch"], p["throughput_batch"]))
    L.append("")
    base = [q for q in ("numpy", "torch", "jax") if "latency" in pr.get(q, {})]
    hdr = ["impl", "batch-1 latency", "p90"] + ["lat ÷ %s" % q for q in base] + \
        ["batch-%d time" % p["throughput_batch"], "samples/s"] + ["thr ÷ %s (higher better)" % q for q in base]
    rows = []
    for impl, r in pr.items():
        if impl == "stream weights" or impl.startswith("overhead "):
            continue
        if "latency" not in r:
            rows.append([impl] + [""] * (len(hdr) - 2) + [r.get("skipped") or r.get("error", "")[:200]])
            continue
        rows.append([impl, fmt_s(r["latency"]), fmt_s(r["latency p90"])] +
                    [fmt_x(r["latency"] / pr[q]["latency"]) for q in base] +
                    [fmt_s(r["throughput time"]), "%.0f" % r["throughput"]] +
                    [fmt_x(r["throughput"] / pr[q]["throughput"]) for q in base])
    L += [md_table(hdr, rows), ""]
    ovs = [(b[len("overhead "):], r) for b, r in pr.items() if b.startswith("overhead ") and "predict" in r]
    if ovs:
        L += ["The Python overhead per batch-1 call (input checks, dispatch), on the %s net (its forward "
              "pass takes about a microsecond, so the difference is not lost in noise): the fastest of many "
              "means of back-to-back calls, %s." % ("-".join(map(str, ovs[0][1]["sizes"])), "; ".join(
                  "%s predict %s vs its kernel %s = %s" % (b, fmt_s(r["predict"]), fmt_s(r["kernel"]),
                                                           fmt_s(r["predict"] - r["kernel"])) for b, r in ovs)), ""]
    sw = pr.get("stream weights")
    if sw:
        L += ["The batch-1 limit: reading the %s bytes of float32 weights once (a vectorised `max` over them, "
              "one thread) takes %s on this machine." % ("{:,}".format(sw["bytes"]), fmt_s(sw["latency"])), ""]
    return L


def _md_gradients(ctx, R, T):
    """Central differences against backprop: the cost ratio's growth with the parameter count."""
    gr = R.get("gradients")
    if not gr:
        return []
    L = ["## gradients: naive numerical vs backprop", ""]
    L.append("Float64, N = %d samples, sigmoid hidden layer, softmax + cross-entropy.  Backprop = "
             "`model.gradients(X, y)` (one forward + backward: O(N·P)).  Numerical = central differences, "
             "two forward passes (the backend's `forward` kernel + `softmax_xent`) per parameter: O(N·P²).  "
             "Up to P = %d every parameter is perturbed; above, a random subsample of %d parameters is timed and "
             "the per-parameter cost × P is reported (*extrapolated*: every perturbation costs the same two "
             "forward passes whichever parameter it is).  The ratio numerical ÷ backprop should grow ∝ P: "
             "the slope of the log-log fit is expected ≈ 1 (below 1 for the smallest nets, where per-call "
             "overhead, not arithmetic, dominates).  max rel err = |g − n| / max(|g| + |n|, 1e-6) over the "
             "timed parameters (eps 1e-6)." % (ctx.workloads["grad_n"], fnbench.GRAD_FULL_MAX,
                                               fnbench.GRAD_SUBSAMPLE))
    L.append("")
    for be, g in gr.items():
        L.append("**%s** — fitted slope of log(numerical/backprop) vs log(P): **%.2f** over all nets, "
                 "**%.2f** over P ≥ 1000." % (be, g["slope"], g["slope P>=1e3"]))
        L.append("")
        rows = []
        for r in g["rows"]:
            if "error" in r:
                rows.append(["-".join(map(str, r["sizes"])), "", "", "", "", "", r["error"][:200]])
                continue
            rows.append(["-".join(map(str, r["sizes"])), r["P"], fmt_s(r["backprop"]),
                         fmt_s(r["numerical"]) + (" *(extrapolated from %d)*" % r["timed params"]
                                                  if r["extrapolated"] else ""),
                         fmt_s(r["numerical per param"]), "%.3g" % r["ratio"], "%.1e" % r["max rel err"]])
        L += [md_table(["net", "P", "backprop", "numerical (all P)", "per parameter", "ratio", "max rel err"],
                       rows), ""]
    return L


def _md_cold(ctx, R, T):
    """Cold start and peak memory of fresh processes."""
    cold = R.get("cold")
    if not cold:
        return []
    ds = cold.get("dataset bytes", 0)
    L = ["## Cold start and memory (fresh subprocesses)", ""]
    L.append("Each run is a new `python` process: `import numpy`, `import fastnet`, load the seed data (%d×784 "
             "float32 + int64 labels = %.1f MB, `np.load`, not counted), build + compile the seed model, one "
             "epoch (%s).  Cold start = imports + build + first epoch.  numba: `NUMBA_CACHE_DIR` set to a fresh "
             "directory; \"empty cache\" is the first process (everything compiled), \"warm cache\" the later "
             "ones.  Peak RSS = `resource.getrusage(RUSAGE_SELF).ru_maxrss` at the end (the target: dataset + "
             "50 MB = %.0f MB)." % (ctx.workloads["seed"].n, ds / 2 ** 20,
                                    "fit's default threads: its thread tuner tries 1 thread and the default on "
                                    "the first batches" if ctx.threads == fnbench.available_cores()
                                    else "`fastnet.set_num_threads(%d)`" % ctx.threads, ds / 2 ** 20 + 50))
    L.append("")
    rows = []
    for label, c in cold.items():
        if not isinstance(c, dict):
            continue
        if "error" in c:
            rows.append([label] + [""] * 8 + [c["error"][:300]])
            continue
        rows.append([label, c["runs"], fmt_s(c["cold start"]), fmt_s(c["import numpy"]),
                     fmt_s(c["import fastnet"]), fmt_s(c["build"]), fmt_s(c["first epoch"]),
                     fmt_s(c["process wall"]),
                     "%.0f / %.0f / %.0f / %.0f MB" % (
                         c["rss after import KB"] / 1024, c["rss after data KB"] / 1024,
                         c["peak rss KB"] / 1024, c.get("VmHWM KB", float("nan")) / 1024), ""])
    return L + [md_table(["backend", "runs", "cold start", "import numpy", "import fastnet", "build", "first epoch",
                          "process wall", "RSS after import / after data / peak (ru_maxrss) / VmHWM", "error"],
                         rows), ""]


def _md_kernels(ctx, R, T):
    """Where the compiled kernels are slow, then every kernel's median call time."""
    kern = R.get("kernels")
    if not kern:
        return []
    L = [slow_kernels(ctx, kern), "", "## All kernels (median time per call, µs)", "",
         "Each call goes through the backend adapter from Python, so small shapes include the call overhead "
         "(inside `train_batches` the kernels are called from compiled code without it).", ""]
    hdr = ["kernel:shape"] + list(ctx.backends) + ["blas"]
    rows = []
    for g, res in kern.items():
        row = [g]
        for b in list(ctx.backends) + ["blas"]:
            r = res.get(b)
            row.append("" if r is None else ("%.3g" % (r["median"] * 1e6) if "median" in r else
                                             "err: " + r.get("error", "")[:80]))
        rows.append(row)
    return L + [md_table(hdr, rows), ""]


def _md_reproduce(ctx, R, T):
    return ["## How to reproduce", "", "```",
            "pip install -r bench/requirements.txt      # the optional peers (see the comment on torch)",
            "python bench/report.py                      # this report (add --quick for a 1-round smoke run)",
            "cd /tmp && python -m pytest /path/to/fastnet/bench --benchmark-enable   # pytest-benchmark tables",
            "```", ""]


# The report's sections in order: each writer takes (ctx, R, T) and returns its
# lines ([] when its measurements were skipped).
MD_SECTIONS = (_md_header, _md_setup, _md_gemm, _md_epochs, _md_predict, _md_gradients, _md_cold,
               _md_kernels, _md_reproduce)


def write_markdown(ctx, R, T, path):
    lines = [line for section in MD_SECTIONS for line in section(ctx, R, T)]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines))


def step_breakdown(ctx, kern, spec, ep_res):
    """Per kernel of one training step: median call time per backend (from
    the kernel measurements), summed x batches, against the measured epoch."""
    calls = fnbench.step_calls(spec)
    nb = spec.n / spec.batch
    backs = list(ctx.backends)
    rows, sums = [], {b: 0.0 for b in backs}
    for group, _ in calls:
        res = kern.get(group, {})
        row = [group]
        for b in backs:
            r = res.get(b, {})
            if "median" in r:
                sums[b] += r["median"]
                row.append("%.3g" % (r["median"] * 1e6))
            else:
                row.append("n/a")
        rb = res.get("blas", {})
        row.append("%.3g" % (rb["median"] * 1e6) if "median" in rb else "")
        rows.append(row)
    rows.append(["**sum per step (µs)**"] + ["**%.4g**" % (sums[b] * 1e6) for b in backs] + [""])
    rows.append(["sum × %g batches" % nb] + [fmt_s(sums[b] * nb) for b in backs] + [""])
    rows.append(["measured epoch (train_batches)"] + [fmt_s(ep_res.get(b, {}).get("median")) for b in backs] + [""])
    rows.append(["measured ÷ kernel sum"] + [fmt_x(ep_res.get(b, {}).get("median", np.nan) / (sums[b] * nb))
                                            if sums[b] else "n/a" for b in backs] + [""])
    head = ("Step breakdown (%s): each kernel call of one step at batch %d, median µs per call when called "
            "alone from Python (blas = numpy.matmul).  \"measured ÷ kernel sum\" well below 1 means the fused "
            "train_batches saves the per-call overhead; above 1 means time goes somewhere the kernels alone do "
            "not account for (Python between chunks, input checks, workspace, synchronisation)." % (
                spec.name, spec.batch))
    return head + "\n\n" + md_table(["kernel call"] + backs + ["blas"], rows)


def slow_kernels(ctx, kern):
    """Where the compiled kernels lose: vs the NumPy reference backend (all
    kernels) and vs OpenBLAS (gemms), worst first."""
    compiled = [b for b in ctx.backends if b != "numpy"]
    items = []
    for g, res in kern.items():
        ref = res.get("numpy", {}).get("median")
        blas = res.get("blas", {}).get("median")
        for b in compiled:
            t = res.get(b, {}).get("median")
            if t is None:
                continue
            if ref and t > ref:
                items.append((t / ref, g, b, "numpy backend", t, ref))
            if blas and t > blas:
                items.append((t / blas, g, b, "OpenBLAS", t, blas))
    items.sort(reverse=True)
    lines = ["## Where fastnet's compiled kernels are slow", ""]
    if not compiled:
        lines.append("No compiled backend was available in this run.")
        return "\n".join(lines)
    if not items:
        lines.append("Every compiled kernel is at least as fast as the NumPy reference backend and OpenBLAS "
                     "at every measured shape.")
        return "\n".join(lines)
    lines.append("Each kernel × shape where a compiled backend is slower than the NumPy reference backend or "
                 "than OpenBLAS (gemms), worst first (from the kernel measurements above; µs per call).")
    lines.append("")
    lines.append(md_table(["kernel:shape", "backend", "slower than", "ours", "theirs", "×"],
                          [(g, b, who, "%.3g" % (t * 1e6), "%.3g" % (r * 1e6), "%.2f" % x)
                           for x, g, b, who, t, r in items[:40]]))
    return "\n".join(lines)


def contention_probe(ctx):
    """OpenBLAS sgemm at big^3 on 1 thread and on ctx.threads: on a shared,
    oversubscribed machine the multi-threaded rate collapses (threads wait for
    a time slice at every synchronisation) and every multi-threaded number in
    the report is then pessimistic."""
    big = 256 if ctx.quick else 1024
    rng = np.random.default_rng(0)
    A = rng.standard_normal((big, big)).astype(np.float32)
    B = rng.standard_normal((big, big)).astype(np.float32)
    C = np.empty_like(A)
    fn = lambda: np.matmul(A, B, out=C)  # noqa: E731
    out = {}
    try:
        from threadpoolctl import threadpool_limits
        for n in sorted({1, ctx.threads}):
            with threadpool_limits(limits=n, user_api="blas"):
                t = fnbench.median(fnbench.time_calls(fn, rounds=3 if ctx.quick else 7, min_round_s=0.05))
            out[n] = 2.0 * big ** 3 / t / 1e9
    except ImportError:
        return "threadpoolctl not installed: not measured"
    s = ", ".join("%d thread%s %.1f GFLOP/s" % (n, "s" if n > 1 else "", r) for n, r in out.items())
    if ctx.threads > 1 and 1 in out:
        sp = out[ctx.threads] / out[1]
        s += " (speed-up %.2f×%s)" % (sp, "; **the machine looks oversubscribed: multi-threaded timings "
                                      "below are pessimistic and noisy**" if sp < 1.25 else "")
    return s


def blas_arch():
    """OpenBLAS's kernel architecture as threadpoolctl reports it (or '')."""
    try:
        from threadpoolctl import threadpool_info
        for d in threadpool_info():
            if d.get("internal_api") == "openblas" and "numpy" in d.get("filepath", ""):
                return d.get("architecture") or ""
    except ImportError:
        pass
    return ""


def blas_use():
    """What each compiled backend says about calling BLAS (info()['blas'] if
    the backend reports it), else 'own loops (not declared)'."""
    import fastnet.backends
    out = {}
    for b in ("numba", "cython"):
        try:
            info = getattr(fastnet.backends.get_backend(b), "info", None)
            d = info() if info else {}
            out[b] = str(d.get("blas", d.get("uses_blas", "own loops (the backend's info() declares no BLAS use)")))
        except Exception as exc:  # noqa: BLE001
            out[b] = "n/a (%s)" % type(exc).__name__
    return out


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------
class Ctx:
    pass


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items() if k != "_case"}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, float) and not np.isfinite(o):
        return None
    return o


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    _early_isa(argv)  # main() called from Python: before the engines are imported below
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, 1 round (smoke test)")
    ap.add_argument("--threads", type=int, default=None, help="threads for every library (default: all cores)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per measurement (default 5; quick 1)")
    ap.add_argument("--budget", type=float, default=120.0,
                    help="seconds per impl per training workload before it stops adding rounds (default 120)")
    ap.add_argument("--data", default="auto", choices=("auto", "mnist", "random"))
    ap.add_argument("--backends", default=None, help="comma list (default: every available backend)")
    ap.add_argument("--peers", default="all", help="comma list of numpy-loop,torch,jax,sklearn, or all / none")
    ap.add_argument("--skip", default="", help="comma list of sections to skip: " + ",".join(SECTIONS))
    ap.add_argument("--no-uncached-numba", action="store_true",
                    help="skip the empty-cache numba compile run (always skipped with --quick)")
    ap.add_argument("--isa", default="native", choices=tuple(ISAS),
                    help="instruction set of fastnet's engines and of the peers: native (the best the CPU "
                         "has), avx2 or baseline (SSE2); the environment it sets is listed in the report")
    ap.add_argument("--out", default=os.path.join(HERE, "REPORT.md"))
    ap.add_argument("--json", default=None, help="also write the raw results as JSON here")
    args = ap.parse_args(argv)

    ctx = Ctx()
    ctx.quick = args.quick
    ctx.threads = args.threads or fnbench.available_cores()
    ctx.rounds = args.rounds or (1 if args.quick else 5)
    ctx.budget = args.budget
    ctx.workloads = fnbench.workloads(args.quick)
    avail = fnbench.available_backends()
    if args.backends:
        want = [b.strip() for b in args.backends.split(",") if b.strip()]
        ctx.backends = [b for b in want if b in avail]
    else:
        ctx.backends = avail
    if args.peers == "all":
        ctx.peers = list(fnbench.PEERS_TRAIN)
    elif args.peers in ("none", ""):
        ctx.peers = []
    else:
        ctx.peers = [p.strip() for p in args.peers.split(",")]
    ctx.peers = [p for p in ctx.peers if fnbench.peer_available(p)]
    ctx.uncached_numba = not (args.quick or args.no_uncached_numba)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    t_start = time.perf_counter()
    R = collections.OrderedDict()
    R["meta"] = {"started": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
                 "command": "python bench/report.py" + ("" if not argv else " " + " ".join(map(shlex.quote, argv))),
                 "load start": fnbench.loadavg()}
    # import the peers before pinning, so threadpoolctl sees their thread pools
    for mod in ("torch", "jax", "sklearn"):
        if mod in ctx.peers:
            __import__(mod)
    import fastnet
    for b in ctx.backends:
        fastnet.backends.get_backend(b)
    fnbench.pin_threads(ctx.threads)
    R["meta"]["isa"] = args.isa
    R["meta"]["cython isa"] = _engine_isa("cython")
    R["meta"]["numba cpu"] = _engine_isa("numba")
    R["meta"]["cpuid cap"] = fnbench_isa.cap_status(args.isa)
    R["machine"] = fnbench.machine_info()
    peak, width = fnbench_isa.fma_peak(args.isa, ctx.threads, iters=10_000_000 if ctx.quick else 60_000_000)
    R["machine"]["FMA peak probe"] = (
        "%.1f GFLOP/s on %d thread(s) at %d-bit vectors (the widest --isa %s allows: %s chains, 12 in flight)" % (
            peak, ctx.threads, width, args.isa, "FMA" if width > 128 else "mul + add") if peak
        else "not measured (%s)" % width)
    R["meta"]["fma peak"] = peak * 1e9 if peak else float("nan")
    R["machine"]["OpenBLAS sgemm %d³ probe (start)" % (256 if ctx.quick else 1024)] = contention_probe(ctx)
    R["versions"] = fnbench.versions()
    R["threads"] = fnbench.thread_report(ctx.threads, ctx.backends)
    R["blas use"] = blas_use()
    log("backends %s, peers %s, threads %d, rounds %d" % (ctx.backends, ctx.peers, ctx.threads, ctx.rounds))
    n = max(ctx.workloads["seed"].n, ctx.workloads["wide"].n)
    ctx.data = fnbench.load_data(n, "random" if args.quick and args.data == "auto" else args.data)
    R["meta"]["data"] = ctx.data.source

    if "kernels" not in skip:
        R["kernels"] = measure_kernels(ctx)
    if "epochs" not in skip:
        R["epochs"] = collections.OrderedDict()
        for wl in ("seed", "wide"):
            R["epochs"][wl] = measure_epochs(ctx, ctx.workloads[wl])
    if "predict" not in skip:
        R["predict"] = measure_predict(ctx)
    if "gradients" not in skip:
        R["gradients"] = measure_gradients(ctx)
    if "cold" not in skip:
        R["cold"] = measure_cold(ctx)
    R["meta"]["load end"] = fnbench.loadavg()
    R["machine"]["OpenBLAS sgemm %d³ probe (end)" % (256 if ctx.quick else 1024)] = contention_probe(ctx)
    R["meta"]["elapsed"] = time.perf_counter() - t_start
    T = evaluate(ctx, R)
    R["targets"] = [{"target": a, "goal": b, "measured": c, "met": d, "issue": e} for a, b, c, d, e in T.rows]
    write_markdown(ctx, R, T, args.out)
    log("wrote %s" % args.out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(_jsonable(R), f, indent=1, default=str)
    return R


if __name__ == "__main__":
    main()
