#!/usr/bin/env python
"""The classic MNIST experiments of Michael Nielsen's "Neural Networks and Deep
Learning" (chapters 1 and 3), run with fastnet (and, with --torch, PyTorch).

Network 784-H-10, sigmoid hidden layer, plain mini-batch SGD, batch 10, 30
epochs, pixels scaled to [0, 1], test accuracy on the 10,000 MNIST test images
after every epoch.

Costs (--cost) and how the course's learning rates map onto fastnet
-------------------------------------------------------------------
Nielsen's update is  w -= eta/m * sum_{x in batch} dC_x/dw  with a per-sample
cost C_x summed over the 10 outputs, i.e. a gradient averaged over the batch of
a cost *summed* over the output units.  fastnet's losses (like Keras' and
PyTorch's) are means over the batch *and*, for MSE and binary cross-entropy,
over the k = 10 output units, so their gradients are smaller by a constant:

quadratic   course (ch. 1, network.py): C_x = 1/2 ||y - a||^2, sigmoid outputs,
            one-hot targets, eta = 3.0; dC_x/da = (a - y).
            fastnet: sigmoid output + MeanSquaredError, one-hot targets;
            d/da mean_j (a_j - y_j)^2 = 2 (a - y) / k, so
            lr = eta * k / 2 = 3.0 * 10 / 2 = 15.
xent        course (ch. 3, network2.py CrossEntropyCost):
            C_x = -sum_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)] on sigmoid outputs,
            eta = 0.5; dC_x/dz = (a - y).
            fastnet: sigmoid output + BinaryCrossentropy (mean over the 10
            units), one-hot targets; dL/dz = (a - y) / k, so
            lr = eta * k = 0.5 * 10 = 5.  This is the course's model.
softmax     not a course run: softmax output + SparseCategoricalCrossentropy
            (log-likelihood, Nielsen ch. 3 "softmax"); dL/dz = (p - y) per sample
            with no mean over units, so the course's eta = 0.5 maps 1:1 (lr 0.5).
            The modern default, reported for comparison.

With these rates every configuration takes exactly Nielsen's step for the same
weights and batch (checked in the self-test ``--check-mapping``).

Initialization (--init)
-----------------------
course  N(0, 1) weights and biases: network.py, and network2.py's
        ``large_weight_initializer`` which Nielsen calls explicitly for the
        chapter-3 runs the course numbers come from (95.49% / 96.82%).
scaled  N(0, 1/sqrt(n_in)) weights, N(0, 1) biases: network2.py's
        ``default_weight_initializer`` (introduced later in chapter 3), i.e.
        fastnet ``RandomNormal(0, 1/sqrt(n_in))`` (an untruncated LeCun normal).

Differences from the course that remain: Nielsen trains on the first 50,000
training images (10,000 are his validation set); the brief for these runs uses
all 60,000 (``--train-size 50000`` gives his split).  His chapter-1 numbers are
the best epoch of one run; we report the final epoch (mean of the seeds) and the
best epoch separately.  float32 here, float64 in the course.

Usage
-----
    python bench/mnist_experiments.py                    # everything, 3 seeds, writes bench/results/
    python bench/mnist_experiments.py --quick            # CI-sized smoke run (seconds), temp dir
    python bench/mnist_experiments.py --cost xent --hidden 30 --seeds 0 1 2 --torch
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "results")

K = 10  # output units

COSTS = {
    "quadratic": dict(output="sigmoid", eta=3.0, lr=3.0 * K / 2, targets="onehot",
                      what="sigmoid out + MSE (one-hot)", course_name="quadratic cost, ch. 1"),
    "xent": dict(output="sigmoid", eta=0.5, lr=0.5 * K, targets="onehot",
                 what="sigmoid out + binary cross-entropy (one-hot)", course_name="cross-entropy, ch. 3"),
    "softmax": dict(output="softmax", eta=0.5, lr=0.5, targets="labels",
                    what="softmax out + sparse categorical cross-entropy", course_name="(not in the course)"),
}
# Nielsen's published test accuracies (%), keyed by (cost, hidden); init "course".
COURSE = {("quadratic", 30): 95.42, ("quadratic", 100): 96.59,
          ("xent", 30): 95.49, ("xent", 100): 96.82}
INITS = ("course", "scaled")


# ----------------------------------------------------------------------------- data
def load_data(train_size=60000, test_size=10000):
    from fastnet.datasets import load_mnist
    (X, y), (Xt, yt) = load_mnist(flatten=True)
    X = (X[:train_size].astype(np.float32) / 255.0)
    Xt = (Xt[:test_size].astype(np.float32) / 255.0)
    return X, y[:train_size].astype(np.int64), Xt, yt[:test_size].astype(np.int64)


def onehot(y):
    Y = np.zeros((y.shape[0], K), dtype=np.float32)
    Y[np.arange(y.shape[0]), y] = 1.0
    return Y


def accuracy(y_true, y_score):
    """Nielsen's evaluate(): argmax of the outputs against the label (one-hot or not)."""
    y_true = np.asarray(y_true)
    labels = np.argmax(y_true, axis=1) if y_true.ndim == 2 else y_true
    return float(np.mean(np.argmax(y_score, axis=1) == labels))


# -------------------------------------------------------------------------- fastnet
def build_fastnet(cost, init, hidden, seed, backend):
    import fastnet
    from fastnet.initializers import RandomNormal
    c = COSTS[cost]

    def kinit(n_in):
        return RandomNormal(0.0, 1.0 if init == "course" else 1.0 / np.sqrt(n_in))

    model = fastnet.Sequential([
        fastnet.Dense(hidden, activation="sigmoid", kernel_initializer=kinit(784),
                      bias_initializer=RandomNormal(0.0, 1.0)),
        fastnet.Dense(K, activation=c["output"], kernel_initializer=kinit(hidden),
                      bias_initializer=RandomNormal(0.0, 1.0)),
    ], backend=backend, seed=seed)
    loss = {"quadratic": fastnet.MeanSquaredError(),
            "xent": fastnet.BinaryCrossentropy(),
            "softmax": fastnet.SparseCategoricalCrossentropy()}[cost]
    model.compile(optimizer=fastnet.SGD(lr=c["lr"]), loss=loss, metrics=[accuracy])
    return model


def _EpochPrinter():
    import fastnet

    class EpochPrinter(fastnet.Callback):
        def on_epoch_end(self, epoch, logs=None):
            print("    epoch %2d  loss %.4f  test accuracy %.2f%%"
                  % (epoch + 1, logs["loss"], 100 * logs["val_accuracy"]), flush=True)
    return EpochPrinter()


def run_fastnet(data, cost, init, hidden, seed, backend, epochs, batch_size, verbose=False):
    X, y, Xt, yt = data
    c = COSTS[cost]
    ytr = onehot(y) if c["targets"] == "onehot" else y
    yte = onehot(yt) if c["targets"] == "onehot" else yt
    model = build_fastnet(cost, init, hidden, seed, backend)
    cbs = [_EpochPrinter()] if verbose else None
    t0 = time.perf_counter()
    hist = model.fit(X, ytr, epochs=epochs, batch_size=batch_size, validation_data=(Xt, yte),
                     verbose=0, callbacks=cbs)
    wall = time.perf_counter() - t0
    h = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    return dict(backend=model.backend_name, wall_s=wall, history=h,
                final_acc=h["val_accuracy"][-1], best_acc=max(h["val_accuracy"]),
                best_epoch=int(np.argmax(h["val_accuracy"])) + 1)


# -------------------------------------------------------------------------- PyTorch
def run_torch(data, cost, init, hidden, seed, epochs, batch_size, threads):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    X, y, Xt, yt = data
    c = COSTS[cost]
    Xtr, Xte = torch.from_numpy(X), torch.from_numpy(Xt)
    ytr = torch.from_numpy(onehot(y) if c["targets"] == "onehot" else y)
    l1, l2 = torch.nn.Linear(784, hidden), torch.nn.Linear(hidden, K)
    with torch.no_grad():
        for lin, n_in in ((l1, 784), (l2, hidden)):
            lin.weight.normal_(0.0, 1.0 if init == "course" else 1.0 / np.sqrt(n_in))
            lin.bias.normal_(0.0, 1.0)
    net = torch.nn.Sequential(l1, torch.nn.Sigmoid(), l2)  # logits; the loss applies the output unit
    if cost == "quadratic":
        def loss_fn(z, t):
            return torch.nn.functional.mse_loss(torch.sigmoid(z), t)
    elif cost == "xent":
        loss_fn = torch.nn.BCEWithLogitsLoss()
    else:
        loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(net.parameters(), lr=c["lr"])
    rng = np.random.default_rng(seed)
    n = Xtr.shape[0]
    labels_te = torch.from_numpy(yt)
    accs, losses = [], []
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.from_numpy(rng.permutation(n))
        tot = 0.0
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(Xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            tot += float(loss.detach()) * idx.shape[0]
        losses.append(tot / n)
        with torch.no_grad():
            accs.append(float((net(Xte).argmax(1) == labels_te).double().mean()))
    wall = time.perf_counter() - t0
    return dict(backend="torch %s" % torch.__version__, wall_s=wall,
                history={"loss": losses, "val_accuracy": accs},
                final_acc=accs[-1], best_acc=max(accs), best_epoch=int(np.argmax(accs)) + 1)


# -------------------------------------------------------------- mapping self-check
def check_mapping(hidden=30, n=10, seed=0):
    """One SGD step in fastnet equals one step of Nielsen's update rule (float64 NumPy)."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, 784))
    y = rng.integers(0, K, n)
    Y = np.eye(K)[y]
    worst = 0.0
    for cost in COSTS:
        m = build_fastnet(cost, "scaled", hidden, seed, "numpy")
        m.build(784)
        W1, b1, W2, b2 = [w.astype(np.float64) for w in m.get_weights()]
        # Nielsen's step, written out in float64
        z1 = X @ W1 + b1
        a1 = 1 / (1 + np.exp(-z1))
        z2 = a1 @ W2 + b2
        if cost == "softmax":
            e = np.exp(z2 - z2.max(1, keepdims=True))
            a2 = e / e.sum(1, keepdims=True)
            d2 = a2 - Y
        else:
            a2 = 1 / (1 + np.exp(-z2))
            d2 = (a2 - Y) * (a2 * (1 - a2)) if cost == "quadratic" else (a2 - Y)
        d1 = (d2 @ W2.T) * a1 * (1 - a1)
        eta = COSTS[cost]["eta"]
        want = [W1 - eta / n * X.T @ d1, b1 - eta / n * d1.sum(0), W2 - eta / n * a1.T @ d2,
                b2 - eta / n * d2.sum(0)]
        m.fit(X, Y if COSTS[cost]["targets"] == "onehot" else y, epochs=1, batch_size=n, shuffle=False,
              verbose=0)
        err = 0.0
        for g, w, w0 in zip(m.get_weights(), want, (W1, b1, W2, b2)):
            err = max(err, np.abs((g - w0) - (w - w0)).max() / max(np.abs(w - w0).max(), 1e-12))
        worst = max(worst, err)
        print("  %-9s lr %-5g (Nielsen eta %g): max |fastnet step - Nielsen step| / max |step| = %.1e"
              % (cost, COSTS[cost]["lr"], eta, err))
    return worst


# ------------------------------------------------------------------------ threads
_BLAS_LIMIT = []


def set_threads(n):
    """fastnet's threads, and NumPy's BLAS threads (threadpoolctl, when installed)."""
    import fastnet
    fastnet.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    while _BLAS_LIMIT:
        _BLAS_LIMIT.pop().restore_original_limits()
    _BLAS_LIMIT.append(threadpool_limits(limits=n, user_api="blas"))


def blas_threads():
    try:
        from threadpoolctl import threadpool_info
        return ", ".join("%s %d" % (i["internal_api"], i["num_threads"]) for i in threadpool_info()
                         if i["user_api"] == "blas") or "?"
    except ImportError:
        return "? (threadpoolctl not installed)"


# ------------------------------------------------------------------------- report
def cfg_key(cost, init, hidden):
    return "%s/%s/h%d" % (cost, init, hidden)


def write_report(path, results, meta):
    pct = lambda a: "%.2f%%" % a  # noqa: E731
    lines = ["# Nielsen's MNIST experiments with fastnet", "",
             "Generated by `bench/mnist_experiments.py`: %s." % "; then ".join(
                 "`%s`" % c for c in meta.get("commands", [])), "",
             "784-H-10, sigmoid hidden units, plain SGD, batch %d, %d epochs, %s training / %s test images, "
             "pixels in [0, 1], float32, test accuracy after every epoch. fastnet %s; accuracy runs on the "
             "`%s` backend with %d thread(s)."
             % (meta["batch_size"], meta["epochs"], "{:,}".format(meta["train_size"]),
                "{:,}".format(meta["test_size"]), meta.get("fastnet_version", "?"), meta["acc_backend"],
                meta["threads"]), "",
             "## Test accuracy", "",
             "\"final\" = after the last epoch, mean of the seeds; \"best\" = the best epoch (mean of the "
             "seeds), which is how the course reports chapter 1. The course numbers are single runs of "
             "Nielsen's code trained on 50,000 images.", ""]
    head = ["config", "fastnet loss (lr)", "course", "fastnet final", "min / max", "fastnet best",
            "PyTorch final", "PyTorch min / max"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cfg in meta["configs"]:
        cost, init, hidden = cfg
        key = cfg_key(*cfg)
        c = COSTS[cost]
        course = COURSE.get((cost, hidden)) if init == "course" else None
        row = ["%s, init %s, H=%d" % (cost, init, hidden), "%s (%g)" % (c["what"], c["lr"]),
               pct(course) if course else "—"]
        runs = list(results.get("accuracy", {}).get(key, {}).values())
        if runs:
            fin = np.array([r["final_acc"] for r in runs]) * 100
            best = np.array([r["best_acc"] for r in runs]) * 100
            row += ["**%s** (n=%d)" % (pct(fin.mean()), len(fin)), "%.2f / %.2f" % (fin.min(), fin.max()),
                    pct(best.mean())]
        else:
            row += ["—"] * 3
        truns = list(results.get("torch", {}).get(key, {}).values())
        if truns:
            tf = np.array([r["final_acc"] for r in truns]) * 100
            row += ["%s (n=%d)" % (pct(tf.mean()), len(tf)), "%.2f / %.2f" % (tf.min(), tf.max())]
        else:
            row += ["—", "—"]
        lines.append("| " + " | ".join(row) + " |")

    order = {"numpy": 0, "numba": 1, "cython": 2, "torch": 3}
    columns = sorted((c for c in meta["timing_columns"] if results.get("timing", {}).get(c)),
                     key=lambda c: (int(c.split()[1][:-1]), order.get(c.split()[0], 9), c))
    lines += ["", "## Time", "",
              "Seconds per epoch (%s images in batches of %d plus the %s-image test evaluation), "
              "measured over %s epoch(s) of seed 0; \"B nt\" = backend B with n threads (fastnet's and "
              "NumPy's BLAS threads, or `torch.set_num_threads`). The columns of a row were measured one "
              "after the other (\"load avg\": the 1-minute load average during them). \"s / run\" = the "
              "mean wall time of the full %d-epoch accuracy runs (`%s`, %d thread(s)). Machine: %s; BLAS "
              "%s. The machine is shared: the load average was %s at the start and %s at the end, and a "
              "load above 1 (this job) means other jobs competed for the 2 cores; 2-thread runs suffer most."
              % ("{:,}".format(meta["train_size"]), meta["batch_size"], "{:,}".format(meta["test_size"]),
                 ", ".join(sorted({str(v["epochs"]) for col in columns
                                   for v in results["timing"][col].values()})) or "?",
                 meta["epochs"], meta["acc_backend"], meta["threads"], meta["machine"], meta["blas"],
                 meta["load_start"], meta.get("load_end", "?")), ""]
    head = ["config"] + columns + ["load avg", "s / run (%s)" % meta["acc_backend"], "PyTorch s / run"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cfg in meta["configs"]:
        key = cfg_key(*cfg)
        row = ["%s, init %s, H=%d" % cfg]
        for col in columns:
            t = results["timing"][col].get(key)
            row.append("%.2f" % t["s_per_epoch"] if t else "—")
        loads = [float(results["timing"][col][key]["load"]) for col in columns
                 if key in results["timing"][col] and results["timing"][col][key].get("load", "?") != "?"]
        row.append("%.1f" % np.mean(loads) if loads else "—")
        for src in ("accuracy", "torch"):
            runs = list(results.get(src, {}).get(key, {}).values())
            row.append("%.1f" % np.mean([r["wall_s"] for r in runs]) if runs else "—")
        if any(x != "—" for x in row[1:len(columns) + 1]) or any(x != "—" for x in row[-2:]):
            lines.append("| " + " | ".join(row) + " |")

    lines += ["", "## How the course maps onto fastnet", "",
              "The course's eta is for a per-sample cost summed over the 10 outputs; fastnet's MSE and binary "
              "cross-entropy average over the outputs (and MSE has the factor 2), so fastnet's "
              "lr = eta * 10 / 2 = 15 for the quadratic cost (eta 3.0), lr = eta * 10 = 5 for sigmoid + "
              "binary cross-entropy (eta 0.5), and lr = eta = 0.5 for softmax + cross-entropy. "
              "`python bench/mnist_experiments.py --check-mapping` checks that one fastnet step equals one "
              "step of Nielsen's update rule. Init \"course\" = N(0, 1) weights and biases (network.py and "
              "network2.py's `large_weight_initializer`, which the course runs above use); \"scaled\" = "
              "N(0, 1/sqrt(n_in)) weights, N(0, 1) biases (network2.py's `default_weight_initializer`). "
              "PyTorch runs use the same model, init, loss, lr and batch order rule (`torch.optim.SGD`).", ""]
    if meta.get("notes"):
        lines += ["## Notes", ""] + ["- " + n for n in meta["notes"]] + [""]
    lines += ["## Every run", "", "Test accuracy after the last epoch, best epoch, wall time; learning "
              "curves in `curves/`.", ""]
    for cfg in meta["configs"]:
        key = cfg_key(*cfg)
        for src in ("accuracy", "torch"):
            for seed, r in sorted(results.get(src, {}).get(key, {}).items(), key=lambda kv: int(kv[0])):
                lines.append("- %s seed %s, %s: %.2f%% (best %.2f%% at epoch %d), %.1f s"
                             % (key, seed, r["backend"], 100 * r["final_acc"], 100 * r["best_acc"],
                                r["best_epoch"], r["wall_s"]))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def loadavg():
    try:
        return "%.1f" % os.getloadavg()[0]
    except OSError:
        return "?"


# --------------------------------------------------------------------------- main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", default="auto",
                   help="backend for the accuracy runs: auto (default), numpy, numba, cython")
    p.add_argument("--timing-backends", nargs="*", default=None,
                   help="backends to time (default: every available one)")
    p.add_argument("--timing-epochs", type=int, default=3, help="epochs per timing run (default 3)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--hidden", type=int, nargs="+", default=[30, 100])
    p.add_argument("--cost", nargs="+", default=["xent", "quadratic", "softmax"], choices=sorted(COSTS))
    p.add_argument("--init", nargs="+", default=["course"], choices=INITS)
    p.add_argument("--threads", type=int, default=None,
                   help="threads for the accuracy runs: fastnet, PyTorch and NumPy's BLAS (via threadpoolctl "
                        "when installed); default: fastnet's default (all cores)")
    p.add_argument("--timing-threads", type=int, nargs="+", default=None,
                   help="thread counts for the per-backend timing runs (default: --threads)")
    p.add_argument("--train-size", type=int, default=60000)
    p.add_argument("--test-size", type=int, default=10000)
    p.add_argument("--torch", action="store_true", help="also run every config in PyTorch (if installed)")
    p.add_argument("--torch-seeds", type=int, nargs="+", default=None, help="default: --seeds")
    p.add_argument("--quick", action="store_true",
                   help="CI-sized smoke run: 1 seed, 2 epochs, 10,000/2,000 images, H=30, 1 timing epoch, "
                        "output to a temp dir unless --out")
    p.add_argument("--out", default=None, help="output directory (default bench/results)")
    p.add_argument("--resume", action="store_true", help="reuse the runs already in OUT/mnist_experiments.json")
    p.add_argument("--retime", action="store_true", help="with --resume: redo the timing runs")
    p.add_argument("--note", action="append", default=[], help="a line for the report's notes (repeatable)")
    p.add_argument("--no-curves", action="store_true", help="do not write learning-curve PNGs")
    p.add_argument("--check-mapping", action="store_true", help="only check the lr mapping on one batch")
    p.add_argument("-v", "--verbose", action="store_true", help="print every epoch")
    args = p.parse_args(argv)

    import fastnet
    if args.threads is not None:
        set_threads(args.threads)
    if args.check_mapping:
        worst = check_mapping()
        print("worst relative difference: %.1e" % worst)
        return 0 if worst < 1e-4 else 1
    if args.quick:
        args.seeds, args.epochs, args.train_size, args.test_size = args.seeds[:1], 2, 10000, 2000
        args.hidden, args.timing_epochs = [30], 1
        if args.out is None:
            args.out = os.path.join(tempfile.gettempdir(), "fastnet_mnist_quick")
    out = args.out or DEFAULT_OUT
    os.makedirs(out, exist_ok=True)
    curves = os.path.join(out, "curves")
    json_path = os.path.join(out, "mnist_experiments.json")
    md_path = os.path.join(out, "mnist_experiments.md")

    available = fastnet.available_backends()
    acc_backend = fastnet.backends.resolve_name(args.backend)
    timing_backends = available if args.timing_backends is None else args.timing_backends
    timing_threads = args.timing_threads or [fastnet.get_num_threads()]
    for b in timing_backends:
        if b not in available:
            p.error("backend %r is not available here (%s)" % (b, fastnet.backend_status()[b]))
    have_torch = False
    if args.torch:
        try:
            import torch
            have_torch = True
        except ImportError:
            print("--torch: PyTorch is not installed (pip install torch==2.13.0); skipping the PyTorch runs")

    try:
        data = load_data(args.train_size, args.test_size)
    except FileNotFoundError as exc:  # DatasetNotFoundError
        print("MNIST not found:\n%s" % exc, file=sys.stderr)
        return 2
    configs = [(cost, init, h) for init in args.init for cost in args.cost for h in args.hidden]
    results = {"accuracy": {}, "timing": {}, "torch": {}}
    old_meta = {}
    if args.resume and os.path.exists(json_path):
        with open(json_path) as f:
            saved = json.load(f)
        results.update(saved.get("results", {}))
        old_meta = saved.get("meta", {})
    words, prev = [], None
    for w in (argv if argv is not None else sys.argv[1:]):
        if prev == "--note":
            w = "..."
        elif w.startswith("--note="):
            w = "--note=..."
        words.append(w)
        prev = w
    cmd = " ".join(["python bench/mnist_experiments.py"] + words)
    meta = dict(commands=[],
                epochs=args.epochs, batch_size=args.batch_size, train_size=data[0].shape[0],
                test_size=data[2].shape[0], machine="%s, %s, Python %s, numpy %s" % (
                    platform.machine(), platform.system(), platform.python_version(), np.__version__),
                threads=fastnet.get_num_threads(), blas=blas_threads(), load_start=loadavg(),
                timing_columns=["%s %dt" % (b, t) for t in timing_threads
                                for b in list(timing_backends) + (["torch"] if have_torch else [])],
                acc_backend=acc_backend, configs=configs, available=available,
                fastnet_version=fastnet.__version__, notes=[])
    if old_meta:  # keep the rows and columns of the runs being resumed
        meta["configs"] = [tuple(c) for c in old_meta.get("configs", [])] + [
            c for c in configs if list(c) not in old_meta.get("configs", [])]
        meta["timing_columns"] = old_meta.get("timing_columns", []) + [
            c for c in meta["timing_columns"] if c not in old_meta.get("timing_columns", [])]
        meta["load_start"] = old_meta.get("load_start", meta["load_start"])
        meta["commands"] = list(old_meta.get("commands", []))
        meta["notes"] = [n for n in old_meta.get("notes", []) if not n.startswith("PyTorch ")]
    meta["notes"] += args.note
    if have_torch:
        meta["torch"] = torch.__version__

    def save(work=True):
        if work and cmd not in meta["commands"]:
            meta["commands"].append(cmd)
        meta["load_end"] = loadavg()
        with open(json_path, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)
        write_report(md_path, results, meta)

    print("fastnet %s, backends available: %s; accuracy runs on %r, %d threads; %d train / %d test images"
          % (fastnet.__version__, ", ".join(available), acc_backend, fastnet.get_num_threads(),
             data[0].shape[0], data[2].shape[0]), flush=True)

    # 1. accuracy runs (all seeds) on the chosen backend
    for cfg in configs:
        key = cfg_key(*cfg)
        done = results["accuracy"].setdefault(key, {})
        for seed in args.seeds:
            if str(seed) in done and done[str(seed)]["history"]["val_accuracy"].__len__() == args.epochs:
                continue
            print("[fastnet %s] %s seed %d ..." % (acc_backend, key, seed), flush=True)
            r = run_fastnet(data, *cfg, seed, acc_backend, args.epochs, args.batch_size, args.verbose)
            done[str(seed)] = r
            print("[fastnet %s] %s seed %d: test accuracy %.2f%% (best %.2f%% at epoch %d), %.1f s"
                  % (r["backend"], key, seed, 100 * r["final_acc"], 100 * r["best_acc"], r["best_epoch"],
                     r["wall_s"]), flush=True)
            if not args.no_curves:
                import fastnet.plot
                os.makedirs(curves, exist_ok=True)
                course = COURSE.get((cfg[0], cfg[2])) if cfg[1] == "course" else None
                title = "MNIST 784-%d-10, %s, init %s, SGD lr %g, batch %d, seed %d%s" % (
                    cfg[2], COSTS[cfg[0]]["what"], cfg[1], COSTS[cfg[0]]["lr"], args.batch_size, seed,
                    " (course: %.2f%%)" % course if course else "")
                fastnet.plot.history(r["history"], path=os.path.join(
                    curves, "%s_%s_h%d_seed%d.png" % (cfg[0], cfg[1], cfg[2], seed)), title=title)
            save()
        save(work=False)

    # 2. time per epoch: every config x thread count x backend (and PyTorch), interleaved so that
    #    the columns of a row are measured close together in time (seed 0, --timing-epochs epochs)
    acc_threads = fastnet.get_num_threads()
    engines = list(timing_backends) + (["torch"] if have_torch else [])
    small = (data[0][:1000], data[1][:1000], data[2][:100], data[3][:100])
    warmed = set()
    for cfg in configs:
        key = cfg_key(*cfg)
        for t in timing_threads:
            set_threads(t)
            for b in engines:
                col = "%s %dt" % (b, t)
                if args.resume and not args.retime and key in results["timing"].get(col, {}):
                    continue
                if b == "torch":
                    r = run_torch(data, *cfg, args.seeds[0], args.timing_epochs, args.batch_size, t)
                else:
                    if (b, t) not in warmed:  # one untimed epoch on a slice first (JIT compilation, caches)
                        run_fastnet(small, *configs[0], 0, b, 1, args.batch_size)
                        warmed.add((b, t))
                    r = run_fastnet(data, *cfg, args.seeds[0], b, args.timing_epochs, args.batch_size)
                spe = r["wall_s"] / args.timing_epochs
                results["timing"].setdefault(col, {})[key] = dict(
                    s_per_epoch=spe, epochs=args.timing_epochs, runs=1, load=loadavg())
                print("[timing %s, %d thread(s)] %s: %.2f s / epoch (over %d epochs; test accuracy %.2f%% after "
                      "them; load %s)" % (b, t, key, spe, args.timing_epochs, 100 * r["final_acc"], loadavg()),
                      flush=True)
                save()
    set_threads(acc_threads)

    # 3. PyTorch
    if have_torch:
        for cfg in configs:
            key = cfg_key(*cfg)
            done = results["torch"].setdefault(key, {})
            for seed in (args.torch_seeds or args.seeds):
                if str(seed) in done and len(done[str(seed)]["history"]["val_accuracy"]) == args.epochs:
                    continue
                r = run_torch(data, *cfg, seed, args.epochs, args.batch_size, fastnet.get_num_threads())
                done[str(seed)] = r
                print("[%s] %s seed %d: test accuracy %.2f%% (best %.2f%% at epoch %d), %.1f s"
                      % (r["backend"], key, seed, 100 * r["final_acc"], 100 * r["best_acc"], r["best_epoch"],
                         r["wall_s"]), flush=True)
                save()
    save(work=False)
    print("wrote %s and %s" % (md_path, json_path))
    with open(md_path) as f:
        print(f.read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
