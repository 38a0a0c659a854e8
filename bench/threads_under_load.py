#!/usr/bin/env python
"""fastnet's default thread count against 1 thread, on an idle machine and with
another process keeping one core busy (issue 17, "threads that never lose").

For every workload x backend, a fit (or a run of predict calls) is timed with
``set_num_threads(1)`` and with the default (``set_num_threads(None)``: the
count is then chosen per workload at run time, fastnet/_threads.py), in
alternating order, ``--rounds`` times; the ratio is default / 1 thread of the
medians.  Each default run starts with the thread tuners forgotten, so it pays
its own probing, as a process's first fit does.  "busy" starts a CPU hog
(``while True: pass`` in another process) pinned to the first CPU this process
may use, for the whole measurement.

Workloads: digits 64-100-10 (adam, 50 epochs, batch 32 and 200), a batch-1
MNIST-shaped fit (784-100-10, one sample per step), the report's seed
(784-30-10, sgd, batch 10) and wide (784-512-256-10, adam, batch 128) epochs,
and predict on the wide net at batch 1024 and batch 1.  Targets: default <=
1.10x of 1 thread idle, <= 1.20x busy.

Usage::

    python bench/threads_under_load.py               # full sizes (minutes), writes bench/results/
    python bench/threads_under_load.py --quick       # tiny sizes, 1 round (the suite runs this)
    python bench/threads_under_load.py --backend cython --load busy --out /tmp/t.md
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
IDLE_TARGET, BUSY_TARGET = 1.10, 1.20


def _data(quick):
    import fastnet
    Xd, yd = fastnet.datasets.load_digits()
    Xd = np.asarray(Xd, dtype=np.float32) / 16.0
    try:
        (Xm, ym), _ = fastnet.datasets.load_mnist(flatten=True)
        Xm = np.ascontiguousarray(Xm, dtype=np.float32) / 255.0
        src = "real MNIST"
    except Exception:  # noqa: BLE001 - the files are optional: MNIST-shaped noise times the same
        rng = np.random.default_rng(0)
        Xm = rng.random((60000, 784), dtype=np.float32)
        ym = rng.integers(0, 10, 60000)
        src = "random MNIST-shaped data"
    n_big = 2000 if quick else 60000
    return {"digits": (np.ascontiguousarray(Xd), yd), "mnist": (Xm[:n_big], ym[:n_big]), "mnist_src": src}


def workloads(quick):
    """name -> (kind, sizes, hidden activation, optimizer, batch, epochs, data, rows)."""
    wide = (784, 64, 32, 10) if quick else (784, 512, 256, 10)
    return [
        ("digits 64-100-10 b32", "fit", (64, 100, 10), "relu", "adam", 32, 5 if quick else 50, "digits", None),
        ("digits 64-100-10 b200", "fit", (64, 100, 10), "relu", "adam", 200, 5 if quick else 50, "digits", None),
        ("MNIST 784-100-10 batch-1", "fit", (784, 100, 10), "relu", "sgd", 1, 1, "mnist", 200 if quick else 3000),
        ("seed 784-30-10 b10", "fit", (784, 30, 10), "sigmoid", "sgd", 10, 1, "mnist", None),
        ("wide 784-512-256-10 b128", "fit", wide, "relu", "adam", 128, 1, "mnist", 2000 if quick else 20000),
        ("predict wide b1024", "predict", wide, "relu", None, 64 if quick else 1024, None, "mnist", None),
        ("predict wide b1", "predict", wide, "relu", None, 1, None, "mnist", None),
    ]


def _model(backend, sizes, act, opt, seed=0):
    import fastnet
    layers = [fastnet.Dense(o, activation=act) for o in sizes[1:-1]] + [fastnet.Dense(sizes[-1])]
    m = fastnet.Sequential(layers, backend=backend, seed=seed)
    if opt is not None:
        o = fastnet.SGD(lr=0.1) if opt == "sgd" else fastnet.Adam(lr=1e-3)
        m.compile(optimizer=o, loss=fastnet.SparseCategoricalCrossentropy(from_logits=True))
    m.build(sizes[0])
    return m


def _set_threads(setting):
    import fastnet
    from fastnet import _threads
    if setting == "1":
        fastnet.set_num_threads(1)
    else:
        fastnet.set_num_threads(None)
        _threads._tuners.clear()  # this run pays its own probing


def _run(w, backend, data, quick):
    """Seconds of one measurement of workload w on backend (after set_threads)."""
    name, kind, sizes, act, opt, batch, epochs, src, rows = w
    X, y = data[src]
    if rows is not None:
        X, y = X[:rows], y[:rows]
    m = _model(backend, sizes, act, opt)
    if kind == "fit":
        t0 = time.perf_counter()
        m.fit(X, y, epochs=epochs, batch_size=batch, verbose=0)
        return time.perf_counter() - t0
    x = np.ascontiguousarray(X[:batch])
    budget = 0.05 if quick else 0.4
    calls, t0 = 0, time.perf_counter()
    while True:  # the mean over the calls, probing included
        m.predict(x)
        calls += 1
        el = time.perf_counter() - t0
        if el >= budget and calls >= 20:
            return el / calls


class Hog:
    """A busy-looping process pinned to the first CPU this process may use."""

    def __init__(self):
        self.cpu = min(os.sched_getaffinity(0))
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        os.sched_setaffinity(self.proc.pid, {self.cpu})
        time.sleep(0.3)
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def measure(backends, loads, rounds, quick, only=None, log=print):
    import contextlib
    import fastnet
    data = _data(quick)
    ws = [w for w in workloads(quick) if only is None or any(o in w[0] for o in only)]
    res = {"meta": {"python": platform.python_version(), "cpu": _cpu_name(), "cores": len(os.sched_getaffinity(0)),
                    "numpy": np.__version__, "fastnet": fastnet.__version__, "quick": quick,
                    "rounds": rounds, "data": data["mnist_src"]}, "rows": []}
    if "numba" in backends:  # asked after a parallel call: numba names its layer only once the pool runs
        sys.path.insert(0, HERE)
        from fnbench_env import numba_threading_layer
        import numba
        res["meta"]["numba threading layer"] = "%s (pool of %d)" % (numba_threading_layer(),
                                                                   numba.config.NUMBA_NUM_THREADS)
    for be in backends:
        for w in ws:  # warm up: compile (numba) and first-touch outside the timings
            fastnet.set_num_threads(None)
            _run(w, be, data, True) if w[1] == "predict" else _run(w[:6] + (1,) + w[7:], be, data, True)
        for load in loads:
            ctx = Hog() if load == "busy" else contextlib.nullcontext()
            with ctx:
                for w in ws:
                    t = {"1": [], "default": []}
                    chosen = []
                    for r in range(rounds):
                        order = ("1", "default") if r % 2 == 0 else ("default", "1")
                        for s in order:
                            _set_threads(s)
                            t[s].append(_run(w, be, data, quick))
                            if s == "default":
                                from fastnet import _threads
                                chosen.append(sorted({tn.choice for tn in _threads._tuners.values()
                                                      if tn.choice is not None}))
                    one, dflt = statistics.median(t["1"]), statistics.median(t["default"])
                    target = IDLE_TARGET if load == "idle" else BUSY_TARGET
                    row = {"workload": w[0], "backend": be, "load": load, "1 thread s": one, "default s": dflt,
                           "ratio": dflt / one, "target": target, "ok": dflt / one <= target,
                           "default threads chosen": chosen[-1] if chosen else [],
                           "times 1": t["1"], "times default": t["default"]}
                    res["rows"].append(row)
                    log("%-28s %-7s %-5s 1 thread %9.2f ms  default %9.2f ms  ratio %.2f%s" % (
                        w[0], be, load, one * 1e3, dflt * 1e3, dflt / one, "" if row["ok"] else "  OVER"))
    fastnet.set_num_threads(None)
    return res


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    flags = open("/proc/cpuinfo").read()
                    return name + (" (AVX-512)" if " avx512f" in flags else " (AVX2)" if " avx2" in flags else "")
    except OSError:
        pass
    return platform.processor() or "?"


def markdown(res):
    m = res["meta"]
    out = ["## Threads: the default against 1 thread, idle and beside a busy core", "",
           "`python bench/threads_under_load.py%s`: %s, %d cores, Python %s, NumPy %s, fastnet %s, numba "
           "threading layer %s; %s; medians of %d alternating round(s); each default run starts with the "
           "thread tuners forgotten (it pays its own probing). \"busy\": a `while True: pass` process pinned "
           "to the first CPU. Targets: default / 1 thread <= %.2f idle, <= %.2f busy." % (
               " --quick" if m["quick"] else "", m["cpu"], m["cores"], m["python"], m["numpy"], m["fastnet"],
               m.get("numba threading layer"), m["data"], m["rounds"], IDLE_TARGET, BUSY_TARGET), "",
           "| workload | backend | load | 1 thread | default | default ÷ 1 thread | threads chosen | target |",
           "|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        out.append("| %s | %s | %s | %s | %s | %.2f× | %s | %s |" % (
            r["workload"], r["backend"], r["load"], _fmt(r["1 thread s"]), _fmt(r["default s"]), r["ratio"],
            ",".join(map(str, r["default threads chosen"])) or "1 (tiny)",
            ("≤ %.2f× met" if r["ok"] else "≤ %.2f× **not met**") % r["target"]))
    met = sum(r["ok"] for r in res["rows"])
    out += ["", "%d of %d rows meet their target." % (met, len(res["rows"])), ""]
    return "\n".join(out)


def _fmt(s):
    return "%.1f µs" % (s * 1e6) if s < 1e-3 else "%.2f ms" % (s * 1e3) if s < 1 else "%.2f s" % s


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, 1 round")
    ap.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 5, quick 1)")
    ap.add_argument("--backend", action="append", choices=("cython", "numba"),
                    help="backend(s) to measure (default both)")
    ap.add_argument("--load", action="append", choices=("idle", "busy"), help="idle and/or busy (default both)")
    ap.add_argument("--only", action="append", help="workloads whose name contains this text")
    ap.add_argument("--out", help="markdown file (default bench/results/threads_under_load.md; JSON beside it)")
    a = ap.parse_args(argv)
    rounds = a.rounds or (1 if a.quick else 5)
    res = measure(a.backend or ["cython", "numba"], a.load or ["idle", "busy"], rounds, a.quick, a.only)
    out = a.out or os.path.join(HERE, "results", "threads_under_load.md")
    from fastnet import _io
    with _io.atomic_write(out, "w", encoding="utf-8") as f:
        f.write(markdown(res))
    with _io.atomic_write(os.path.splitext(out)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump(res, f, indent=1)
    print("wrote", out)
    return res


if __name__ == "__main__":
    main()
