#!/usr/bin/env python
"""fastnet.sklearn vs scikit-learn's own MLP: the same estimator parameters, the
same data, one thread each; fit time (median over seeds) and test accuracy / R^2
(mean over seeds).  Writes a markdown section (and a JSON file next to it).

Rows (issue 19):

* digits 64-100-10, adam, 50 epochs, batch 200 and batch 32;
* MNIST 784-100-10, adam, 10 epochs, batch 200 (``fastnet.datasets.load_mnist``;
  skipped when the files are not found);
* ``load_diabetes`` (scaled features and target) regression, 64-unit hidden
  layer, adam, 200 epochs;
* ``make_classification`` 100,000 x 50, 10 classes, 50-100-10, adam, 10 epochs;
* L-BFGS rows: digits (200 iterations) and diabetes (200 iterations).

Every stochastic fit runs exactly its epoch count (``n_iter_no_change`` past
``max_iter``), so the timings compare the same work.  Targets: fastnet's fit
>= 5x faster on every row, test accuracy within 1 point (R^2 within 0.02).

Usage::

    python bench/sklearn_vs_fastnet.py                 # full run (minutes), writes bench/results/
    python bench/sklearn_vs_fastnet.py --quick         # tiny sizes, 1 seed: a smoke run
    python bench/sklearn_vs_fastnet.py --seeds 5 --backend cython --out /tmp/x.md
"""
import argparse
import json
import os
import sys
import time

if __name__ == "__main__":  # run as a script: one thread everywhere, pinned before the pools start
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[_var] = "1"

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def _datasets(quick):
    from sklearn.datasets import load_diabetes, load_digits, make_classification
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    data = {}
    X, y = load_digits(return_X_y=True)
    data["digits"] = train_test_split((X / 16.0).astype(np.float32), y, test_size=0.25, random_state=0)
    X, y = load_diabetes(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0)
    sx = StandardScaler().fit(Xtr)
    mu, sd = ytr.mean(), ytr.std()
    data["diabetes"] = [sx.transform(Xtr).astype(np.float32), sx.transform(Xte).astype(np.float32),
                        ((ytr - mu) / sd).astype(np.float32), ((yte - mu) / sd).astype(np.float32)]
    n = 4000 if quick else 100_000
    X, y = make_classification(n_samples=n + n // 5, n_features=50, n_informative=30, n_classes=10,
                               random_state=0)
    data["synthetic"] = train_test_split(X.astype(np.float32), y, test_size=n // 5, random_state=0)
    try:
        import fastnet
        (Xm, ym), (Xt, yt) = fastnet.datasets.load_mnist(flatten=True)
        Xm, Xt = Xm.astype(np.float32) / 255.0, Xt.astype(np.float32) / 255.0
        if quick:
            Xm, ym, Xt, yt = Xm[:2000], ym[:2000], Xt[:500], yt[:500]
        data["mnist"] = [Xm, Xt, np.asarray(ym), np.asarray(yt)]
    except Exception as exc:  # noqa: BLE001 - the row is skipped with the reason
        data["mnist"] = "MNIST not available (%s)" % (exc,)
    return data


def _rows(quick):
    e = (lambda full, small: small if quick else full)  # noqa: E731
    stoch = dict(solver="adam", tol=0.0)
    return [
        ("digits, batch 200", "digits", "clf", dict(hidden_layer_sizes=(100,), batch_size=200,
                                                     max_iter=e(50, 3), **stoch)),
        ("digits, batch 32", "digits", "clf", dict(hidden_layer_sizes=(100,), batch_size=32,
                                                    max_iter=e(50, 3), **stoch)),
        ("MNIST 784-100-10", "mnist", "clf", dict(hidden_layer_sizes=(100,), batch_size=200,
                                                  max_iter=e(10, 1), **stoch)),
        ("diabetes regression", "diabetes", "reg", dict(hidden_layer_sizes=(64,), max_iter=e(200, 5), **stoch)),
        ("make_classification 100k x 50", "synthetic", "clf", dict(hidden_layer_sizes=(100,), batch_size=200,
                                                                   max_iter=e(10, 1), **stoch)),
        ("digits, lbfgs", "digits", "clf", dict(hidden_layer_sizes=(100,), solver="lbfgs", max_iter=e(200, 5))),
        ("diabetes, lbfgs", "diabetes", "reg", dict(hidden_layer_sizes=(64,), solver="lbfgs", max_iter=e(200, 5))),
    ]


def _fit(cls, params, Xtr, ytr, Xte, yte):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    est = cls(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        est.fit(Xtr, ytr)
        elapsed = time.perf_counter() - t0
    return elapsed, float(est.score(Xte, yte)), int(est.n_iter_)


def run(args):
    from sklearn.neural_network import MLPClassifier as SkC
    from sklearn.neural_network import MLPRegressor as SkR

    import fastnet
    from fastnet.sklearn import MLPClassifier, MLPRegressor
    fastnet.set_num_threads(1)
    data = _datasets(args.quick)
    seeds = list(range(1 if args.quick else args.seeds))
    results = []
    for name, key, kind, params in _rows(args.quick):
        if isinstance(data[key], str):
            results.append({"row": name, "skipped": data[key]})
            print("%-32s skipped: %s" % (name, data[key]), flush=True)
            continue
        Xtr, Xte, ytr, yte = data[key]
        p = dict(params)
        if p.get("solver") != "lbfgs":
            p["n_iter_no_change"] = p["max_iter"] + 1  # run every epoch in both
        sk_cls, fn_cls = (SkC, MLPClassifier) if kind == "clf" else (SkR, MLPRegressor)
        if not args.quick:  # first-call costs (numba's cache load, imports) out of the timings
            _fit(fn_cls, dict(p, max_iter=1, backend=args.backend), Xtr[:300], ytr[:300], Xte, yte)
        row = {"row": name, "n_train": int(Xtr.shape[0]), "params": p, "sk": [], "fn": []}
        for seed in seeds:
            row["sk"].append(_fit(sk_cls, dict(p, random_state=seed), Xtr, ytr, Xte, yte))
            row["fn"].append(_fit(fn_cls, dict(p, random_state=seed, backend=args.backend), Xtr, ytr, Xte, yte))
        sk_t = float(np.median([r[0] for r in row["sk"]]))
        fn_t = float(np.median([r[0] for r in row["fn"]]))
        sk_s = float(np.mean([r[1] for r in row["sk"]]))
        fn_s = float(np.mean([r[1] for r in row["fn"]]))
        tol = 0.01 if kind == "clf" else 0.02
        row.update(sk_time=sk_t, fn_time=fn_t, speedup=sk_t / fn_t, sk_score=sk_s, fn_score=fn_s,
                   met=bool(sk_t / fn_t >= 5.0 and fn_s >= sk_s - tol), metric="accuracy" if kind == "clf" else "R^2")
        results.append(row)
        print("%-32s sklearn %.3f s  fastnet %.3f s  %.1fx   %s %.4f vs %.4f" % (
            name, sk_t, fn_t, sk_t / fn_t, row["metric"], sk_s, fn_s), flush=True)
    return results


def markdown(results, args):
    import platform

    import sklearn

    import fastnet
    lines = ["## fastnet.sklearn vs scikit-learn's MLP (1 thread)", "",
             "scikit-learn %s, fastnet %s (backend %s), Python %s, %s; %s; medians of the fit time over %s, "
             "scores: test accuracy / R^2, mean over the same seeds.%s" % (
                 sklearn.__version__, fastnet.__version__, args.backend, platform.python_version(),
                 platform.machine(), "quick smoke sizes" if args.quick else "full sizes",
                 "1 seed" if args.quick else "%d seeds" % args.seeds,
                 " Not a measurement." if args.quick else ""), "",
             "| workload | n train | sklearn fit (s) | fastnet fit (s) | speed-up | sklearn score | fastnet score "
             "| target met |", "|---|---:|---:|---:|---:|---:|---:|:-:|"]
    for r in results:
        if "skipped" in r:
            lines.append("| %s | | | | | | | skipped: %s |" % (r["row"], r["skipped"]))
            continue
        lines.append("| %s | %d | %.3f | %.3f | %.1fx | %.4f | %.4f | %s |" % (
            r["row"], r["n_train"], r["sk_time"], r["fn_time"], r["speedup"], r["sk_score"], r["fn_score"],
            "yes" if r["met"] else "no"))
    lines += ["", "Target: fastnet's fit >= 5x faster, accuracy within 1 point (R^2 within 0.02) of "
              "scikit-learn's.", ""]
    return "\n".join(lines)


def _write_atomic(path, text):
    import tempfile
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one seed (a smoke run)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "sklearn_vs_fastnet.md"))
    args = ap.parse_args(argv)
    results = run(args)
    text = markdown(results, args)
    _write_atomic(args.out, text)
    _write_atomic(os.path.splitext(args.out)[0] + ".json", json.dumps(results, indent=1, default=str))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
