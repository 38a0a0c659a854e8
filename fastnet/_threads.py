"""Thread control in one place: every backend call receives ``n_threads`` from here."""
import numbers
import os
import sys as _sys

_n_threads = None


def _available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def set_num_threads(n):
    """Set the number of threads used by the compiled kernels (numba pool and
    Cython ``prange``).  ``None`` restores the default (all available cores).

    ``n`` is a positive int (NumPy integers too).  More than the cores this
    process may run on (``len(os.sched_getaffinity(0))``) is clamped to that
    number with a ``RuntimeWarning``: extra threads would only wait, and
    OpenMP cannot start thousands of them (libgomp aborts the process)."""
    global _n_threads
    if n is None:
        _n_threads = None
        return
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError("set_num_threads: n must be a positive int or None; got %r" % (n,))
    n = int(n)
    if n < 1:
        raise ValueError("set_num_threads: n must be >= 1; got %d" % n)
    cores = _available_cores()
    if n > cores:
        import warnings
        warnings.warn("set_num_threads: %d threads requested but this process can run on %d cores; "
                      "using %d" % (n, cores, cores), RuntimeWarning, stacklevel=2)
        n = cores
    _n_threads = n


def get_num_threads():
    """Number of threads the kernels will use (default: all available cores;
    1 in a process forked after OpenMP threads had started, see
    :func:`forked_serial`)."""
    if _forked_serial:
        if _n_threads is not None and _n_threads > 1:
            warn_forked_serial(_n_threads)
        return 1
    return _n_threads if _n_threads is not None else default_num_threads()


def default_num_threads():
    """The limits in force now, not at import: the CPUs this process may run on
    (``os.sched_getaffinity``), ``OMP_NUM_THREADS`` (as joblib's and Dask's
    workers set it) and, once the Cython kernels are loaded, OpenMP's own limit
    (``omp_get_max_threads``, which threadpoolctl's ``threadpool_limits`` lowers)."""
    n = _available_cores()
    env = os.environ.get("OMP_NUM_THREADS")
    if env:
        try:
            n = min(n, max(1, int(env.split(",")[0])))
        except ValueError:
            pass
    omp = _sys.modules.get("fastnet._kernels.cython._openmp_helpers")
    if omp is not None:
        n = min(n, max(1, omp.max_threads()))
    return n


# ---------------------------------------------------------------------------
# fork safety
# ---------------------------------------------------------------------------
# GNU OpenMP (Cython's prange, numba's 'omp' threading layer) keeps its worker
# threads in a pool owned by the thread that started it; fork() copies the pool's
# bookkeeping but not its threads, so the child's next parallel region waits
# forever for them.  A team of one thread never touches the pool, so a forked
# child runs every kernel on the calling thread: same tiles, same bits.
_omp_pool_started = False   # a compiled kernel ran with n_threads > 1 on OpenMP
_forked_serial = False      # this process was forked after that
_fork_warned = False


def note_threads_started():
    """Called by the compiled backends' adapters the first time a kernel runs
    with more than one OpenMP thread in this process."""
    global _omp_pool_started
    _omp_pool_started = True


def forked_serial():
    """True in a process forked (``os.fork``, multiprocessing's 'fork' start
    method) from one whose OpenMP threads had started: fastnet's kernels run on
    one thread here.  Workers started with 'spawn' or 'forkserver' (or joblib's
    loky) start fresh and use threads as usual."""
    return _forked_serial


def warn_forked_serial(requested):
    """One warning per process when more threads are asked for in a forked child."""
    global _fork_warned
    if _fork_warned:
        return
    _fork_warned = True
    import warnings
    warnings.warn("fastnet: this process was forked after OpenMP threads had started in its parent; "
                  "GNU OpenMP cannot start threads in such a child, so fastnet's kernels run on 1 thread "
                  "here instead of %d (use the 'spawn' or 'forkserver' start method, or joblib's loky, "
                  "for threaded workers)" % requested, RuntimeWarning, stacklevel=3)


def _rearm_numba_omp():
    """numba's 'omp' threading layer records the pid that launched it and kills a
    forked child (SIGTERM: "fork() called from a process already using GNU
    OpenMP") on its first parallel loop.  Calling the layer's launch function
    again records the child's pid; the loops then run (on one thread: see above)."""
    import sys
    par = sys.modules.get("numba.np.ufunc.parallel")
    if par is None or not getattr(par, "_is_initialized", False) \
            or getattr(par, "_threading_layer", None) != "omp":
        return
    try:
        import ctypes
        from numba.np.ufunc import omppool
        if getattr(omppool, "openmp_vendor", None) != "GNU":
            return
        launch = ctypes.CFUNCTYPE(None, ctypes.c_int)(omppool.launch_threads)
        launch(int(par.NUM_THREADS))
    except Exception:  # noqa: BLE001 - without it numba's own check stands
        pass


def _after_fork_in_child():
    global _forked_serial, _fork_warned
    if _omp_pool_started:
        _forked_serial = True
        _fork_warned = False
    _rearm_numba_omp()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
