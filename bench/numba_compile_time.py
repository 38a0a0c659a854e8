"""Compile cost of the numba backend: cold (empty cache) vs cached first call.

Each measurement runs in a fresh subprocess:

* **cold**: ``NUMBA_CACHE_DIR`` points at a new empty temporary folder, so every
  kernel the call needs is compiled;
* **cached**: a second (and third) process with the same cache folder, so the
  machine code is loaded from disk.

A process times ``import fastnet`` (plus loading the numba backend) and the
first ``train_batches`` call of a small float32 model, 784-30-10, sigmoid
hidden layer, softmax cross-entropy head, plain SGD, 10 batches of 10 rows
(the call compiles everything one training step needs: gather, matmul family,
bias/activation, loss head, bias_grad, optimizer); then a second, warm call of
the same 10 batches for scale.  Prints a markdown table (wall and CPU time).

Usage::

    python bench/numba_compile_time.py [--threads N] [--repeat R]
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time


def child(n_threads):
    """Runs in the subprocess; prints one JSON line."""
    t0 = time.perf_counter()
    c0 = time.process_time()
    import numpy as np
    import fastnet
    from fastnet._kernels import defs
    from fastnet.backends import _api, get_backend
    be = get_backend("numba")
    t1 = time.perf_counter()
    c1 = time.process_time()

    n_in, widths = 784, [30, 10]
    L = len(widths)
    ispec = np.zeros((L, defs.NI), np.int64)
    fspec = np.zeros((L, defs.NF), np.float64)
    pos, prev = 0, n_in
    for l, (w, act) in enumerate(zip(widths, [defs.ACT_SIGMOID, defs.ACT_SOFTMAX])):
        ispec[l, defs.I_IN], ispec[l, defs.I_OUT], ispec[l, defs.I_ACT] = prev, w, act
        ispec[l, defs.I_W] = pos
        pos += prev * w
        ispec[l, defs.I_B] = pos
        pos += w
        prev = w
    P = pos
    dtype = np.float32
    rng = np.random.default_rng(0)
    N, bs, nb = 100, 10, 10
    X = rng.random((N, n_in), dtype=dtype)
    labels = rng.integers(0, 10, N).astype(np.int64)
    perm = rng.permutation(N).astype(np.int64)
    params = (0.1 * rng.standard_normal(P)).astype(dtype)
    grads = np.zeros(P, dtype)
    state = np.zeros((defs.N_STATE, P), dtype)
    hyper = np.zeros(defs.NH)
    hyper[defs.H_LR] = 0.1
    work = np.zeros(_api.workspace_size(ispec, fspec, bs), dtype)
    loss = np.zeros(nb)

    def call():
        be.train_batches(X, np.empty((0, 10), dtype), labels, np.empty(0, dtype), perm, bs, 0,
                         nb, ispec, fspec, defs.HEAD_SOFTMAX_XENT, defs.OPT_SGD, hyper, 0, 1,
                         params, grads, state, work, loss, np.empty((0, 10), dtype), n_threads)

    t2 = time.perf_counter()
    c2 = time.process_time()
    call()
    t3 = time.perf_counter()
    c3 = time.process_time()
    call()
    t4 = time.perf_counter()
    info = be.info()
    print(json.dumps({"import": t1 - t0, "first": t3 - t2, "warm": t4 - t3,
                      "import_cpu": c1 - c0, "first_cpu": c3 - c2,
                      "numba": info["numba"], "layer": info["threading_layer"],
                      "max_threads": info["max_threads"], "fastnet": fastnet.__version__}))


def run_child(cache_dir, n_threads):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child",
                          "--threads", str(n_threads)],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help="n_threads of the call (default 1)")
    ap.add_argument("--repeat", type=int, default=2, help="cached runs (default 2)")
    args = ap.parse_args()
    if args.child:
        child(args.threads)
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="fastnet-numba-cache-") as cache:
        rows.append(("cold (empty cache)", run_child(cache, args.threads)))
        for i in range(args.repeat):
            rows.append(("cached #%d" % (i + 1), run_child(cache, args.threads)))
    r0 = rows[0][1]
    print("numba %s, threading layer %s, NUMBA_NUM_THREADS %d, n_threads %d, Python %s, "
          "%s, %d CPUs" % (r0["numba"], r0["layer"], r0["max_threads"], args.threads,
                           platform.python_version(), platform.machine(), os.cpu_count()))
    print()
    print("| run | import fastnet (s) | first train_batches (s) | import + first call (s) "
          "| same, CPU time (s) | warm call, 10 batches (ms) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in rows:
        print("| %s | %.2f | %.2f | %.2f | %.2f | %.2f |" % (
            name, r["import"], r["first"], r["import"] + r["first"],
            r["import_cpu"] + r["first_cpu"], 1e3 * r["warm"]))
    print()
    print("(wall times; the CPU-time column is the process's own CPU time, which a busy "
          "machine does not inflate)")


if __name__ == "__main__":
    main()
