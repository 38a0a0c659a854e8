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

``--features`` adds a second table: per dtype and per optional feature, a
process with an empty cache folder times ``import fastnet`` + the first epoch
of ``Sequential.fit`` (784-30-10, 100 rows, batch 10, plus the feature) and its
peak RSS; the "extra" column is the cold cost over the plain model of the same
dtype, what a model that uses the feature pays for it (a model that does not
pay nothing: the numba backend compiles only the features a model uses).

Usage::

    python bench/numba_compile_time.py [--threads N] [--repeat R] [--features]
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
    layers = defs.new_layers(L)
    pos, prev = 0, n_in
    for l, (w, act) in enumerate(zip(widths, [defs.ACT_SIGMOID, defs.ACT_SOFTMAX])):
        layers[l]["n_in"], layers[l]["n_out"], layers[l]["act"] = prev, w, act
        layers[l]["w_offset"] = pos
        pos += prev * w
        layers[l]["b_offset"] = pos
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
    work = np.zeros(_api.workspace_size(layers, bs), dtype)
    loss = np.zeros(nb)

    def call():
        be.train_batches(_api.Batches(X, np.empty((0, 10), dtype), labels, np.empty(0, dtype), perm, bs, 0, nb),
                         _api.Network(layers, defs.HEAD_SOFTMAX_XENT, params),
                         _api.TrainState(defs.OPT_SGD, hyper, 0, 1, state),
                         _api.Buffers(grads, work, loss, np.empty((0, 10), dtype)), n_threads)

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


#: feature name -> (layers, compile kwargs, fit kwargs) changes to the plain model
FEATURES = ["plain", "adam", "dropout", "l2", "clipnorm", "prelu", "maxout", "meprop",
            "diagnostics", "mse"]


def model_child(dtype, feature, n_threads):
    """Runs in the subprocess: import + the first epoch of a fit; one JSON line."""
    import resource
    t0 = time.perf_counter()
    c0 = time.process_time()
    import numpy as np
    import fastnet
    t1 = time.perf_counter()
    rng = np.random.default_rng(0)
    X = rng.random((100, 784), dtype=np.float64).astype(dtype)
    y = rng.integers(0, 10, 100)
    layers = {"prelu": [fastnet.Dense(30), fastnet.PReLU()], "maxout": [fastnet.Maxout(30, pieces=2)],
              "meprop": [fastnet.Dense(30, "sigmoid", meprop_k=8)],
              "l2": [fastnet.Dense(30, "sigmoid", kernel_regularizer=fastnet.regularizers.l2(1e-4))],
              "dropout": [fastnet.Dense(30, "sigmoid"), fastnet.Dropout(0.2)],
              }.get(feature, [fastnet.Dense(30, "sigmoid")])
    layers.append(fastnet.Dense(10, "linear" if feature == "mse" else "softmax"))
    m = fastnet.Sequential(layers, backend="numba", seed=0, dtype=dtype)
    opt = {"adam": fastnet.Adam(1e-3), "clipnorm": fastnet.SGD(0.1, clipnorm=1.0)}.get(feature, fastnet.SGD(0.1))
    m.compile(opt, "mse" if feature == "mse" else "sparse_categorical_crossentropy")
    fastnet.set_num_threads(n_threads)
    target = np.eye(10, dtype=dtype)[y] if feature == "mse" else y
    m.fit(X, target, epochs=1, batch_size=10, verbose=0, diagnostics=feature == "diagnostics")
    t2 = time.perf_counter()
    print(json.dumps({"import": t1 - t0, "total": t2 - t0, "cpu": time.process_time() - c0,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))


def run_model_child(cache_dir, dtype, feature, n_threads):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--model-child", dtype, feature,
                          "--threads", str(n_threads)], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def feature_table(n_threads):
    """Per dtype and feature: cold (fresh cache folder each) and, for the plain
    model, cached."""
    print()
    print("| dtype | model | import + first epoch, cold (s) | CPU (s) | extra over plain, CPU (s) "
          "| peak RSS (MB) |")
    print("|---|---|---:|---:|---:|---:|")
    for dtype in ("float32", "float64"):
        base = None
        for feature in FEATURES:
            with tempfile.TemporaryDirectory(prefix="fastnet-numba-cache-") as cache:
                r = run_model_child(cache, dtype, feature, n_threads)
                if feature == "plain":
                    base = r["cpu"]
                    warm = run_model_child(cache, dtype, feature, n_threads)
            extra = "" if feature == "plain" else "%+.1f" % (r["cpu"] - base)
            print("| %s | %s | %.1f | %.1f | %s | %.0f |" % (dtype, feature, r["total"], r["cpu"], extra,
                                                             r["rss_mb"]))
            if feature == "plain":
                print("| %s | plain, cached | %.2f | %.2f | | %.0f |" % (dtype, warm["total"], warm["cpu"],
                                                                       warm["rss_mb"]))


def run_child(cache_dir, n_threads):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child",
                          "--threads", str(n_threads)],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model-child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--features", action="store_true",
                    help="also time each dtype and optional feature cold, through Sequential.fit")
    ap.add_argument("--threads", type=int, default=1, help="n_threads of the call (default 1)")
    ap.add_argument("--repeat", type=int, default=2, help="cached runs (default 2)")
    args = ap.parse_args()
    if args.child:
        child(args.threads)
        return
    if args.model_child:
        model_child(args.model_child[0], args.model_child[1], args.threads)
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
    if args.features:
        feature_table(args.threads)


if __name__ == "__main__":
    main()
