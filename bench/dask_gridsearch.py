#!/usr/bin/env python
"""A grid search spread over a Dask cluster: ``GridSearchCV`` over
``fastnet.sklearn.MLPClassifier``, 8 candidates x 3 folds, run serially
(``n_jobs=1``) and on a ``distributed.LocalCluster`` of 2 worker processes x 1
thread (TCP on 127.0.0.1) through joblib's Dask backend, and for scale on
joblib's own pool of as many local processes (loky).  Reports the wall
times (the cluster's start-up apart; medians of rounds that alternate serial and
cluster runs), their ratio and whether ``cv_results_`` are identical.  The
target (<= 0.65 on 2 cores) is on the 8 x 3 search: ``GridSearchCV.fit``'s wall
time less its ``refit_time_``, the one fit of the best candidate on all rows
that follows the search, on the calling process in both runs (no cluster can
spread one fit); the ratio with the refit is reported beside it.  Writes a
markdown section (and a JSON file next to it).

Usage::

    python bench/dask_gridsearch.py              # digits, 8 candidates x 3 folds, max_iter 200, 5 rounds
    python bench/dask_gridsearch.py --quick      # 2 candidates x 2 folds, tiny: a smoke run
    python bench/dask_gridsearch.py --scheduler tcp://scheduler:8786   # an existing cluster
"""
import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def _search(X, y, grid, cv, max_iter, backend, n_jobs):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV

    from fastnet.sklearn import MLPClassifier
    est = MLPClassifier(max_iter=max_iter, random_state=0, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        search = GridSearchCV(est, grid, cv=cv, n_jobs=n_jobs).fit(X, y)
        return search, time.perf_counter() - t0


def _worker_threads():
    import fastnet
    return fastnet.get_num_threads()


def run(args):
    import distributed
    import joblib
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    if args.quick:
        X, y = X[:300], y[:300]
        grid, cv, max_iter = {"alpha": [1e-4, 1e-2]}, 2, 3
    else:
        grid = {"alpha": [1e-4, 1e-2], "hidden_layer_sizes": [(50,), (100,)], "learning_rate_init": [1e-3, 3e-3]}
        cv, max_iter = 3, args.max_iter
    n_cand = int(np.prod([len(v) for v in grid.values()]))
    rounds = 1 if args.quick else max(args.rounds, 1)
    _search(X[:100], y[:100], {"alpha": [1e-4]}, 2, 1, args.backend, 1)  # imports / caches out of the timing
    import fastnet
    t0 = time.perf_counter()
    if args.scheduler:
        cluster = None
        client = distributed.Client(args.scheduler, timeout="60s")
    else:
        # LocalCluster writes its workers' thread limits (OMP_NUM_THREADS=1, ...) into
        # this process's environment and leaves them there: fastnet here (the serial
        # runs, GridSearchCV's refit) would then run on 1 thread, which a client of
        # a real cluster does not; the workers, already started, keep theirs
        environ = dict(os.environ)
        cluster = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                           host="127.0.0.1", dashboard_address=None)
        for name in set(os.environ) - set(environ):
            del os.environ[name]
        os.environ.update(environ)
        client = distributed.Client(cluster, timeout="60s")
    try:
        t_start = time.perf_counter() - t0
        threads = client.run(_worker_threads)
        # each worker imports fastnet and loads its kernels once, outside the timing
        client.run(lambda: __import__("fastnet.sklearn"))
        _search(X[:100], y[:100], {"alpha": [1e-4]}, 2, 1, args.backend, args.workers)  # loky's workers started
        runs = {"serial": [], "cluster": [], "loky": []}
        for _ in range(rounds):  # alternated: the machine's load drifts alike for both
            serial_threads = fastnet.get_num_threads()
            serial, t_serial = _search(X, y, grid, cv, max_iter, args.backend, 1)
            runs["serial"].append((t_serial, serial.refit_time_))
            with joblib.parallel_config(backend="dask"):
                spread, t_cluster = _search(X, y, grid, cv, max_iter, args.backend, -1)
            runs["cluster"].append((t_cluster, spread.refit_time_))
            # the same search on joblib's own local process pool (loky, 1 thread per
            # worker): what two processes give on this machine without a cluster
            local, t_local = _search(X, y, grid, cv, max_iter, args.backend, args.workers)
            runs["loky"].append((t_local, local.refit_time_))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    keys = [k for k in serial.cv_results_ if k.startswith("split") or k in ("mean_test_score", "rank_test_score")]
    same = all(np.array_equal(serial.cv_results_[k], spread.cv_results_[k]) for k in keys)
    med = {name: (float(np.median([w for w, _ in r])), float(np.median([f for _, f in r])),
                  float(np.median([w - f for w, f in r]))) for name, r in runs.items()}
    return {"candidates": n_cand, "folds": cv, "fits": n_cand * cv, "n_samples": int(X.shape[0]),
            "max_iter": max_iter, "rounds": rounds,
            "serial_s": med["serial"][0], "cluster_s": med["cluster"][0],
            "serial_refit_s": med["serial"][1], "cluster_refit_s": med["cluster"][1],
            "serial_search_s": med["serial"][2], "cluster_search_s": med["cluster"][2],
            "search_ratio": med["cluster"][2] / med["serial"][2], "ratio": med["cluster"][0] / med["serial"][0],
            "loky_s": med["loky"][0], "loky_refit_s": med["loky"][1], "loky_search_s": med["loky"][2],
            "loky_search_ratio": med["loky"][2] / med["serial"][2],
            "runs": runs, "cluster_start_s": t_start, "workers": len(threads), "worker_threads": sorted(threads.values()),
            "identical_cv_results": bool(same), "serial_threads": serial_threads, "scheduler": args.scheduler or "LocalCluster",
            "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}


def markdown(r, args):
    import dask
    import distributed
    met = r["search_ratio"] <= 0.65 and r["identical_cv_results"]
    lines = ["## Grid search on a Dask cluster", "",
             "dask %s, distributed %s; %s with %d workers x 1 thread (fastnet threads per worker: %s) on a %d-CPU "
             "machine; GridSearchCV(MLPClassifier(max_iter=%d), %d candidates, cv=%d) on digits (%d samples)%s." % (
                 dask.__version__, distributed.__version__, r["scheduler"], r["workers"], r["worker_threads"],
                 r["cpus"], r["max_iter"], r["candidates"], r["folds"], r["n_samples"],
                 ", quick smoke sizes: not a measurement" if args.quick else ""), "",
             "Wall times: medians of %d rounds, serial and cluster alternated. The search is "
             "GridSearchCV.fit less its refit_time_ (the refit: one fit of the best candidate on all rows, "
             "after the search, on the calling process in both runs)." % r["rounds"], "",
             "| run | GridSearchCV.fit (s) | refit (s) | %d x %d search (s) |" % (r["candidates"], r["folds"]),
             "|---|---:|---:|---:|",
             "| serial (n_jobs=1, fastnet on %d threads) | %.2f | %.2f | %.2f |" % (
                 r["serial_threads"], r["serial_s"], r["serial_refit_s"], r["serial_search_s"]),
             "| cluster (joblib Dask backend, n_jobs=-1) | %.2f | %.2f | %.2f |" % (
                 r["cluster_s"], r["cluster_refit_s"], r["cluster_search_s"]),
             "| local processes (joblib's loky, n_jobs=%d, for scale) | %.2f | %.2f | %.2f |" % (
                 r["workers"], r["loky_s"], r["loky_refit_s"], r["loky_search_s"]),
             "| cluster start-up (not in the ratio) | %.2f | | |" % r["cluster_start_s"], "",
             "Ratio cluster / serial of the search: **%.2f** (target <= 0.65); with the refit: %.2f; cv_results_ "
             "identical to the serial run: **%s**; target met: %s.  The same search on local processes "
             "without a cluster: %.2f of the serial time." % (
                 r["search_ratio"], r["ratio"], "yes" if r["identical_cv_results"] else "NO",
                 "yes" if met else "no", r["loky_search_ratio"]),
             ""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 candidates x 2 folds on 300 samples (a smoke run)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-iter", type=int, default=200, help="MLPClassifier's max_iter (scikit-learn's default)")
    ap.add_argument("--rounds", type=int, default=5, help="alternated serial / cluster rounds (medians)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--scheduler", default=None, help="address of an existing scheduler (default: a LocalCluster)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "dask_gridsearch.md"))
    args = ap.parse_args(argv)
    import importlib.util  # the sibling script's atomic writer, without touching sys.path
    spec = importlib.util.spec_from_file_location("_sklearn_vs_fastnet", os.path.join(HERE, "sklearn_vs_fastnet.py"))
    sibling = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sibling)
    _write_atomic = sibling._write_atomic
    result = run(args)
    text = markdown(result, args)
    _write_atomic(args.out, text)
    _write_atomic(os.path.splitext(args.out)[0] + ".json", json.dumps(result, indent=1))
    print(text)
    return 0 if result["identical_cv_results"] else 1


if __name__ == "__main__":
    sys.exit(main())
