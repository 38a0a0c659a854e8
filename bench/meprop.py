"""meProp (minimal-effort backprop, Sun et al. 2017) measured: backward time and
MNIST test accuracy of a 784-500-500-10 ReLU network against k.

    python bench/meprop.py                 # full run -> bench/results/meprop.md / .json
    python bench/meprop.py --quick         # tiny smoke run (tests/test_bench_smoke.py)

Setup (ours; stated so the numbers can be reproduced and compared):

* network 784-500-500-10, ReLU hidden layers, softmax + cross-entropy on logits,
  Glorot-uniform init, Adam lr 1e-3, batch 32 (``--batch``), ``--epochs`` epochs
  over the 60,000 training images (pixels / 255), test accuracy on the 10,000
  test images, mean and spread over ``--seeds`` seeds;
* meProp on both hidden layers (``Dense(500, "relu", meprop_k=k)``), the output
  layer's 10-wide gradient kept dense, as in the paper's MLP experiments;
  k = 5%, 10%, 25% and 100% of the width (k = 500 is ordinary backprop, exactly);
* backward time: the backward pass of one batch alone, through the backend's
  contract kernels in the order ``train_batches`` runs them (dense: matmul_tn,
  bias_grad, matmul_nt, act_backward; meProp: topk_rows, matmul_tn_sparse,
  bias_grad, matmul_nt_sparse), median of repeated rounds, 1 thread (``--threads``);
  plus the whole training step (forward + backward + Adam update) per batch.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, one seed (smoke run)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--backends", default="numba,cython", help="comma list of backends to time")
    p.add_argument("--train-backend", default="auto", help="backend for the accuracy runs")
    p.add_argument("--fractions", default="0.05,0.10,0.25,1.0")
    p.add_argument("--parts", default="timing,accuracy",
                   help="what to run: timing, accuracy or both; results are merged into an existing --out json")
    p.add_argument("--out", default=os.path.join(HERE, "results", "meprop"))
    return p.parse_args(argv)


ARGS = _args()
import fnbench  # noqa: E402

fnbench.set_thread_env(ARGS.threads)

import numpy as np  # noqa: E402

import fastnet  # noqa: E402
from fastnet._kernels import defs  # noqa: E402
from fastnet.backends import _api, get_backend  # noqa: E402

WIDTHS = [500, 500, 10]


def backward_calls(backend, ks, bs, n_in=784, widths=WIDTHS, dtype=np.float32, seed=0):
    """A zero-argument callable running one batch's backward pass of the net
    through ``backend``'s contract kernels; ks[l] = meProp k of hidden layer l
    (0 = dense)."""
    be = get_backend(backend)
    rng = np.random.default_rng(seed)
    sizes = [n_in] + list(widths)
    W = [fnbench.glorot(rng, a, b, dtype) for a, b in zip(sizes[:-1], sizes[1:])]
    gW = [np.zeros_like(w) for w in W]
    gb = [np.zeros(w.shape[1], dtype) for w in W]
    A = [rng.random((bs, n_in), dtype=np.float32).astype(dtype)]
    Z = []
    for w in W:
        z = (A[-1] @ w).astype(dtype)
        Z.append(z)
        A.append(np.maximum(z, 0).astype(dtype))
    D_out = (rng.standard_normal((bs, widths[-1])) / bs).astype(dtype)
    D = [np.zeros((bs, w), dtype) for w in widths]
    idx = [np.zeros((bs, max(k, 1)), np.int64) for k in list(ks) + [0]]
    L = len(widths)
    relu = defs.ACT_RELU

    def run():
        cur = D_out
        for l in range(L - 1, -1, -1):
            k = ks[l] if l < L - 1 else 0
            if k:
                be.topk_rows(cur, k, idx[l], 1)
                be.matmul_tn_sparse(A[l], cur, idx[l], gW[l], 1)
            else:
                be.matmul_tn(A[l], cur, gW[l], 1)
            be.bias_grad(cur, gb[l], 1)
            if l > 0:
                nxt = D[l - 1]
                if k:
                    be.matmul_nt_sparse(cur, idx[l], W[l], nxt, 1)
                else:
                    be.matmul_nt(cur, W[l], nxt, 1)
                be.act_backward(Z[l - 1], A[l], nxt, relu, 0.0, nxt, 1)
                cur = nxt
    return run


def model(k, backend, seed):
    kk = None if k >= 500 else k
    m = fastnet.Sequential([fastnet.Dense(500, "relu", meprop_k=kk), fastnet.Dense(500, "relu", meprop_k=kk),
                            fastnet.Dense(10)], backend=backend, seed=seed)
    m.compile(fastnet.Adam(1e-3), loss=fastnet.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
    return m


def main():
    quick = ARGS.quick
    fnbench.pin_threads(ARGS.threads)
    fractions = [float(f) for f in ARGS.fractions.split(",")]
    ks = sorted({max(1, int(round(f * 500))) for f in fractions})
    backends = [b for b in ARGS.backends.split(",") if b in fastnet.available_backends()]
    if quick:   # numba's first compile takes minutes: the smoke run leaves it out
        backends = [b for b in backends if b != "numba"] or ["numpy"]
    bs = ARGS.batch
    out = {"machine": fnbench.machine_info(), "versions": fnbench.versions(), "threads": ARGS.threads,
           "batch": bs, "ks": ks, "backward": {}, "step": {}, "accuracy": {}}
    rounds = 1 if quick else 7
    parts = set(ARGS.parts.split(","))
    if not quick and os.path.exists(ARGS.out + ".json"):
        with open(ARGS.out + ".json") as f:
            old = json.load(f)
        for key in ("backward", "step", "accuracy", "data", "epochs", "seeds", "train_threads"):
            if key in old:
                out[key] = old[key]
        if "timing" not in parts:
            out["threads"], out["machine"] = old.get("threads", out["threads"]), old.get("machine", out["machine"])

    # ---- backward time per batch
    for be in (backends if "timing" in parts else []):
        for k in ks:
            kk = 0 if k >= 500 else k
            fn = backward_calls(be, [kk, kk], bs)
            out["backward"]["%s:%d" % (be, k)] = fnbench.median(
                fnbench.time_calls(fn, rounds=rounds, min_round_s=0.01 if quick else 0.2))
        print("backward", be, {k: "%.3f ms" % (1e3 * out["backward"]["%s:%d" % (be, k)]) for k in ks}, flush=True)

    # ---- whole training step per batch (forward + backward + update), on 6,400 samples
    n_step = 320 if quick else 6400
    data = fnbench.load_data(60000 if not quick else 2000, "auto")
    for be in (backends if "timing" in parts else []):
        for k in ks:
            m = model(k, be, 0)
            m.fit(data.X[:bs], data.y[:bs], epochs=1, batch_size=bs, verbose=0)   # warm up / compile
            times = []
            for _ in range(1 if quick else 3):
                t0 = time.perf_counter()
                m.fit(data.X[:n_step], data.y[:n_step], epochs=1, batch_size=bs, verbose=0)
                times.append((time.perf_counter() - t0) / (n_step / bs))
            out["step"]["%s:%d" % (be, k)] = fnbench.median(times)
        print("step", be, {k: "%.3f ms" % (1e3 * out["step"]["%s:%d" % (be, k)]) for k in ks}, flush=True)

    # ---- accuracy against k
    epochs = 1 if quick else ARGS.epochs
    seeds = 1 if quick else ARGS.seeds
    n_train = 2000 if quick else 60000
    if "accuracy" in parts:
        out["data"] = data.source
        out["epochs"], out["seeds"] = epochs, seeds
        out["train_threads"] = ARGS.threads
        out["accuracy"] = {}
    for k in (ks if "accuracy" in parts else []):
        accs, curves, wall = [], [], []
        for seed in range(seeds):
            m = model(k, ARGS.train_backend, seed)
            t0 = time.perf_counter()
            h = m.fit(data.X[:n_train], data.y[:n_train], epochs=epochs, batch_size=bs, verbose=0,
                      validation_data=(data.X_test, data.y_test))
            wall.append(time.perf_counter() - t0)
            accs.append(h.history["val_accuracy"][-1])
            curves.append(h.history["val_accuracy"])
        out["accuracy"][str(k)] = {"final": accs, "curves": curves, "wall_s": wall,
                                   "backend": m.backend_name}
        print("accuracy k=%d: %s (%.1f s per run)" % (k, " ".join("%.4f" % a for a in accs), np.mean(wall)),
              flush=True)

    if not quick:
        os.makedirs(os.path.dirname(ARGS.out), exist_ok=True)
        with open(ARGS.out + ".json", "w") as f:
            json.dump(out, f, indent=1)
        with open(ARGS.out + ".md", "w") as f:
            f.write(report(out))
        print("wrote", ARGS.out + ".md")
    return out


def report(out):
    ks = out["ks"]
    lines = ["# meProp: backward time and MNIST accuracy against k", "",
             "`python bench/meprop.py` (%s; %d thread(s); numba threading layer: see fnbench)."
             % (out["machine"].get("cpu", "?"), out["threads"]), "",
             "784-500-500-10 ReLU, Adam lr 1e-3, batch %d, meProp on both hidden layers (k of 500), "
             "%d epochs on the 60,000 MNIST training images (%s data), test accuracy on the 10,000 "
             "test images, %d seeds." % (out["batch"], out["epochs"], out["data"], out["seeds"]), "",
             "## Backward pass of one batch (median) and whole training step", "",
             "| backend | k | k / width | backward (ms) | vs k=500 | train step (ms) | vs k=500 |",
             "|---|---|---|---|---|---|---|"]
    bes = sorted({key.split(":")[0] for key in out["backward"]})
    for be in bes:
        full_b = out["backward"]["%s:%d" % (be, max(ks))]
        full_s = out["step"]["%s:%d" % (be, max(ks))]
        for k in ks:
            b = out["backward"]["%s:%d" % (be, k)]
            s = out["step"]["%s:%d" % (be, k)]
            lines.append("| %s | %d | %.0f%% | %.3f | %.2fx | %.3f | %.2fx |"
                         % (be, k, 100.0 * k / 500, 1e3 * b, b / full_b, 1e3 * s, s / full_s))
    lines += ["", "## Test accuracy after %d epochs" % out["epochs"], "",
              "| k | k / width | mean | min | max | per-seed | best epoch (mean) | wall per run (s) |",
              "|---|---|---|---|---|---|---|---|"]
    for k in ks:
        r = out["accuracy"][str(k)]
        acc = np.array(r["final"])
        best = np.mean([max(c) for c in r["curves"]])
        lines.append("| %d | %.0f%% | %.2f%% | %.2f%% | %.2f%% | %s | %.2f%% | %.1f |"
                     % (k, 100.0 * k / 500, 100 * acc.mean(), 100 * acc.min(), 100 * acc.max(),
                        " ".join("%.2f" % (100 * a) for a in acc), 100 * best, np.mean(r["wall_s"])))
    lines += ["", "## Findings", ""]
    full = np.mean(out["accuracy"][str(max(ks))]["final"])
    for k in ks[:-1]:
        acc = np.mean(out["accuracy"][str(k)]["final"])
        speed = ", ".join("%s backward %.2fx, step %.2fx" % (be, out["backward"]["%s:%d" % (be, k)]
                                                              / out["backward"]["%s:%d" % (be, max(ks))],
                                                              out["step"]["%s:%d" % (be, k)]
                                                              / out["step"]["%s:%d" % (be, max(ks))])
                          for be in bes)
        lines.append("- k = %d (%.0f%%): test accuracy %+.2f points against ordinary backprop; time against "
                     "k = %d: %s." % (k, 100.0 * k / 500, 100 * (acc - full), max(ks), speed or "not measured"))
    lines += ["",
              "The paper (Sun et al. 2017) reports that top-k backprop with k of a few percent keeps or "
              "improves MNIST accuracy at a fraction of the backward cost. What we measure is above: "
              "the accuracy column answers the first claim for this setup; the time columns the second. "
              "The backward pass is only part of a step: the forward pass and the optimizer update (Adam "
              "over all 648,010 parameters, which meProp does not make sparse) are unchanged, so the step "
              "time can fall by at most the backward share.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
