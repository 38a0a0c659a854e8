"""Process pools: a parent that trained with OpenMP threads can fork, spawn or
forkserver workers that build, fit and predict on every backend, and the workers'
results equal the parent's bit for bit (results do not depend on the thread
count; a forked child runs the kernels on one thread, see fastnet/_threads.py)."""
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fastnet
from fastnet import _threads

import _workers
from conftest import BACKENDS, COMPILED

TIMEOUT = int(os.environ.get("FASTNET_FORK_TEST_TIMEOUT", 240))  # a hang fails the test instead of blocking the suite


@pytest.fixture(scope="module")
def parent_results():
    """The parent trains on 2 threads on every backend (which starts the OpenMP
    pools) and keeps its own results for the workers to match."""
    old = _threads._n_threads
    fastnet.set_num_threads(2)
    try:
        out = {(b, s): _workers.fit_predict((b, s)) for b in BACKENDS for s in (0, 1)}
        _start_pools()
    finally:
        _threads._n_threads = old
    return out


def _start_pools():
    """Run one product large enough for a two-thread parallel region on each
    compiled backend (the small models above may run every kernel serially), so
    that OpenMP's worker threads exist when the tests fork."""
    from fastnet.backends import get_backend
    a = np.ones((512, 2048), np.float32)
    b = np.ones((2048, 64), np.float32)
    for name in COMPILED:
        c = np.empty((512, 64), np.float32)
        get_backend(name).matmul(a, b, c, 2)
        assert (c == 2048).all()
    if "cython" in COMPILED:
        from fastnet._kernels.cython import _openmp_helpers
        assert _openmp_helpers.threads_used(2) == 2


def _same(a, b):
    wa, pa, _ = a
    wb, pb, _ = b
    return all(np.array_equal(x, y) for x, y in zip(wa, wb)) and np.array_equal(pa, pb)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_pool_workers_match_parent(parent_results, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip("start method %r not available here" % method)
    jobs = [(b, s) for b in BACKENDS for s in (0, 1)]
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(2) as pool:
        results = pool.map_async(_workers.fit_predict, jobs).get(timeout=TIMEOUT)
    for job, res in zip(jobs, results):
        assert _same(res, parent_results[job]), job
        if method == "fork" and job[0] != "numpy":
            assert res[2] == 1          # forked after OpenMP started: one thread
    # the parent keeps its threads
    fastnet.set_num_threads(2)
    try:
        assert fastnet.get_num_threads() == 2
        if "cython" in COMPILED:
            from fastnet._kernels.cython import _openmp_helpers
            assert _openmp_helpers.threads_used(2) == 2
    finally:
        fastnet.set_num_threads(None)


def test_joblib_loky_workers_match_parent(parent_results):
    joblib = pytest.importorskip("joblib")
    jobs = [(b, s) for b in BACKENDS for s in (0, 1)]
    results = joblib.Parallel(n_jobs=2, timeout=TIMEOUT)(joblib.delayed(_workers.fit_predict)(j) for j in jobs)
    for job, res in zip(jobs, results):
        assert _same(res, parent_results[job]), job


def _wait(pid):
    """waitpid with a deadline: a hung child is killed and fails the test."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung for %d s" % TIMEOUT)


@pytest.mark.parametrize("backend", COMPILED)
def test_os_fork_child_fits_and_predicts(parent_results, backend):
    """A bare os.fork() of a process whose pools run: the child fits and predicts
    (same bits as the parent), warns once when asked for more threads, and the
    parent's threads keep working."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            import warnings
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fastnet.set_num_threads(2)
                res = _workers.fit_predict((backend, 0))
            warned = any("forked" in str(c.message) for c in caught)
            ok = _same(res, parent_results[(backend, 0)]) and res[2] == 1 and warned \
                and _threads.forked_serial()
            os.write(w, b"ok" if ok else b"mismatch")
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    status = _wait(pid)
    msg = os.read(r, 100)
    os.close(r)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    assert msg == b"ok", msg
    assert not _threads.forked_serial()
    res = _workers.fit_predict((backend, 0))
    assert _same(res, parent_results[(backend, 0)])


@pytest.mark.parametrize("backend", COMPILED)
def test_fork_before_any_parallel_kernel_keeps_threads(backend):
    """A parent that only built a model (numba's pool launched, no OpenMP region
    run on two threads): a forked child is not killed and keeps its threads."""
    code = textwrap.dedent("""
        import os, sys
        import fastnet
        from fastnet import _threads
        sys.path.insert(0, %r)
        import _workers
        m = fastnet.Sequential([fastnet.Dense(4), fastnet.Dense(2)], backend=%r, seed=0)
        m.build(3)
        pid = os.fork()
        if pid == 0:
            try:
                fastnet.set_num_threads(2)
                res = _workers.fit_predict((%r, 0))
                ok = res[2] == 2 and not _threads.forked_serial()
            finally:
                os._exit(0 if ok else 3)
        _, st = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(st))
    """) % (os.path.dirname(__file__), backend, backend)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr
    assert "child 0" in out.stdout, (out.stdout, out.stderr)


# ---------------------------------------------------------------------------
# the default thread count follows the limits in force when a kernel is called
# (as joblib's, Dask's and threadpoolctl's workers set them)
# ---------------------------------------------------------------------------
@pytest.fixture
def default_threads():
    old = _threads._n_threads
    _threads._n_threads = None
    yield
    _threads._n_threads = old


def test_default_threads_follow_omp_num_threads(default_threads, monkeypatch):
    cores = len(os.sched_getaffinity(0))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert fastnet.get_num_threads() == min(cores, _threads.default_num_threads())
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert fastnet.get_num_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1,1")   # nested form: the outer level counts
    assert fastnet.get_num_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert 1 <= fastnet.get_num_threads() <= cores
    fastnet.set_num_threads(1)                     # an explicit setting wins
    monkeypatch.setenv("OMP_NUM_THREADS", "64")
    assert fastnet.get_num_threads() == 1


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_default_threads_follow_affinity(default_threads):
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(before)})
        assert fastnet.get_num_threads() == 1
    finally:
        os.sched_setaffinity(0, before)
    assert fastnet.get_num_threads() == min(len(before), _threads.default_num_threads())


@pytest.mark.skipif("cython" not in COMPILED, reason="needs the Cython backend's OpenMP")
def test_default_threads_follow_threadpoolctl(default_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import fastnet.backends.cython  # noqa: F401  (loads the OpenMP runtime threadpoolctl limits)
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert fastnet.get_num_threads() == 1
