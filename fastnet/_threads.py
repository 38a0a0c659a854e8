"""Thread control in one place: every backend call receives ``n_threads`` from here."""
import numbers
import os
import sys as _sys
import time as _time

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


# os.environ.get encodes the key and decodes the value on every call; the mapping
# behind it is read directly where it exists (this runs on every predict)
_env_data = getattr(os.environ, "_data", None)
if not (isinstance(_env_data, dict) and os.name == "posix"):  # pragma: no cover - non-POSIX
    _env_data = None
_getaffinity = getattr(os, "sched_getaffinity", None)
_omp = None


def default_num_threads():
    """The limits in force now, not at import: the CPUs this process may run on
    (``os.sched_getaffinity``), ``OMP_NUM_THREADS`` (as joblib's and Dask's
    workers set it) and, once the Cython kernels are loaded, OpenMP's own limit
    (``omp_get_max_threads``, which threadpoolctl's ``threadpool_limits`` lowers)."""
    global _omp
    if _getaffinity is not None:
        try:
            n = len(_getaffinity(0))
        except OSError:  # pragma: no cover
            n = os.cpu_count() or 1
    else:  # pragma: no cover - non-Linux
        n = os.cpu_count() or 1
    env = _env_data.get(b"OMP_NUM_THREADS") if _env_data is not None else os.environ.get("OMP_NUM_THREADS")
    if env:
        try:
            n = min(n, max(1, int(env.split(b"," if type(env) is bytes else ",")[0])))
        except ValueError:
            pass
    omp = _omp
    if omp is None:
        omp = _omp = _sys.modules.get("fastnet._kernels.cython._openmp_helpers")
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


# ---------------------------------------------------------------------------
# the thread count per workload, chosen by timing
# ---------------------------------------------------------------------------
# Results never depend on the thread count, so the default may change it at any
# call.  More threads win on an idle machine for large layers; they lose when a
# layer is small (a parallel region costs more than it saves) and badly when
# another process holds a core (every barrier waits for a descheduled thread).
# Neither is known in advance, so a repeated workload (the chunks of a fit, the
# row blocks of a predict) times the candidates and keeps the faster, probing
# the other one again from time to time because the machine's load changes.
# bench/threads_under_load.py measures the outcome idle and beside a CPU hog.
_TINY_MACS = 1 << 16      # multiply-adds per call below which 1 thread is used untimed
_PROBE_SECONDS = 0.003    # target length of one probing call
_REPROBE_SECONDS = 0.25   # exploiting time (at least) between two probes of the loser
_REPROBE_SHARE = 0.04     # probes take at most about this share of the time
_DRIFT = 1.5              # the winner's rate worsening this much starts a new probe round
_tuners = {}
_LOAD_WINDOW = 0.03       # seconds between two reads of /proc/stat (its ticks are 10 ms)
_load_prev = None         # (wall, this process's CPU seconds, busy ticks of its CPUs)
_load_last = None         # the last estimate: cores' worth of other processes' work
try:
    _HZ = os.sysconf("SC_CLK_TCK")
except (AttributeError, ValueError, OSError):  # pragma: no cover
    _HZ = 100


def _busy_ticks(cpus):
    """Busy ticks (all but idle and iowait) summed over ``cpus``, from /proc/stat."""
    total = 0
    with open("/proc/stat", "rb") as f:
        for line in f:
            if not line.startswith(b"cpu") or line[3:4] == b" ":
                if total and not line.startswith(b"cpu"):
                    break
                continue
            name, _, rest = line.partition(b" ")
            if int(name[3:]) in cpus:
                v = rest.split()
                total += sum(int(x) for x in v[:8]) - int(v[3]) - int(v[4])
    return total


def others_load():
    """Cores' worth of CPU time that other processes used on this process's CPUs
    over the last window (at least _LOAD_WINDOW, since the previous call that
    read it); None until two reads are that far apart or without /proc/stat.
    Guards the probing of more threads: beside a busy core a single parallel
    batch can cost more than a whole short fit on one thread."""
    global _load_prev, _load_last
    now = _time.perf_counter()
    prev = _load_prev
    if prev is not None and now - prev[0] < _LOAD_WINDOW:
        return _load_last
    try:
        cpus = os.sched_getaffinity(0)
        ticks = _busy_ticks(cpus)
    except (OSError, ValueError, AttributeError):
        return None
    own = _time.process_time()
    _load_prev = (now, own, ticks)
    if prev is None:
        return None
    wall = now - prev[0]
    _load_last = max(0.0, (ticks - prev[2]) / _HZ / wall - (own - prev[1]) / wall)
    return _load_last


class ThreadTuner:
    """Picks between 1 thread and ``n`` for one repeated workload.

    ``threads()`` says how many threads the next call runs with and how much
    work it should take (``units``: a batch count for fit; None = the caller's
    own amount); ``record(threads, seconds, units)`` reports the call.  A round
    times each candidate twice and keeps its best rate (a first call may pay the
    thread pool's start or numba's compile); the faster is then used until it
    has run _REPROBE_SECONDS and 1/_REPROBE_SHARE times the probes' cost, or
    until its rate drifts _DRIFT times above what it was, when the loser is
    timed once more against the winner's current rate."""

    __slots__ = ("cands", "rate", "todo", "probed", "choice", "choice_rate", "since", "runs",
                 "probe_cost", "ema", "unit_seconds")

    def __init__(self, n):
        self.cands = (n, 1)
        self.rate = {}          # threads -> best seconds per unit this round
        self.todo = [1, n, 1, n]
        others_load()           # opens the load window the first probe of n reads
        self.probed = {}        # threads -> units run this round
        self.choice = None
        self.choice_rate = None
        self.since = 0.0        # seconds the choice has run since the last round
        self.runs = 0
        self.probe_cost = 0.0
        self.ema = None
        self.unit_seconds = {}  # threads -> its last probe's seconds per unit (sizes the next)

    def threads(self):
        if self.todo:
            c = self.todo[0]
            if c > 1:
                busy = others_load()
                if busy is None:  # not known yet: one thread meanwhile (not a probe)
                    return 1, None
                if busy + c > len(os.sched_getaffinity(0)) + 0.25:
                    # other work holds cores: n loses without being tried
                    self.rate[c] = float("inf")
                    self.todo = [t for t in self.todo if t != c]
                    if not self.todo:
                        self._decide()
                        return self.choice, None
                    return self.threads()
            r = self.unit_seconds.get(c)
            return c, 1 if r is None else max(1, int(_PROBE_SECONDS / max(r, 1e-9)))
        return self.choice, None

    def _decide(self):
        self.choice = min(self.cands, key=lambda c: (self.rate.get(c, float("inf")), c))
        self.choice_rate = self.rate[self.choice] if self.rate.get(self.choice, float("inf")) < float("inf") \
            else self.unit_seconds.get(self.choice, 0.0)
        self.probe_cost = sum(self.rate[c] * u for c, u in self.probed.items())
        self.probed = {}
        self.ema = None
        self.since = 0.0
        self.runs = 0

    def record(self, threads, seconds, units):
        per = seconds / units
        todo = self.todo
        if todo and todo[0] == threads:
            try:  # two threads predicting with one model may race here; a lost sample is harmless
                todo.pop(0)
            except IndexError:
                return
            self.unit_seconds[threads] = per
            old = self.rate.get(threads)
            self.rate[threads] = per if old is None else min(old, per)
            self.probed[threads] = self.probed.get(threads, 0) + units
            if not self.todo:
                self._decide()
            return
        if threads != self.choice:
            return
        self.since += seconds
        self.runs += 1
        self.ema = per if self.ema is None else 0.7 * self.ema + 0.3 * per
        if ((self.since >= _REPROBE_SECONDS and self.since * _REPROBE_SHARE >= self.probe_cost)
                or self.runs >= 3 and self.ema > _DRIFT * self.choice_rate):
            self.rate = {self.choice: self.ema}
            self.todo = [c for c in self.cands if c != self.choice]


others_load()   # opened at import: a process's first fit then knows the load (pass_threads)


def pass_threads():
    """Threads for a one-off pass over the data (fit's finite check of X):
    :func:`get_num_threads`, less the cores other processes keep busy when that
    is known (:func:`others_load`) and the count is the default one.  A parallel
    region beside a busy core waits for that core's time slice: the finite check
    of a 3000-row MNIST fit cost more than the fit's 3000 batch-1 steps
    (bench/threads_under_load.py, busy rows)."""
    n = get_num_threads()
    if n > 1 and _n_threads is None:
        busy = others_load()
        if busy is not None:
            cores = _available_cores()
            if busy + n > cores + 0.25:
                n = max(1, min(n, int(cores + 0.25 - busy)))
    return n


def limit():
    """What the thread tuners are keyed by: the default thread count now, or
    None when it is fixed (``set_num_threads``, a forked child)."""
    if _n_threads is not None or _forked_serial:
        return None
    return default_num_threads()


def tuner(kind, key, macs):
    """The ThreadTuner for a workload, or None when the thread count is fixed:
    ``set_num_threads`` was called, the limits allow 1 thread, the process is a
    forked child (see above) or the work per call is tiny (then 1 thread:
    ``thread_count(None)``).  ``key`` identifies the workload across calls and
    models (architecture, dtype, backend, rows per call); ``macs`` is its
    multiply-adds per call."""
    if _n_threads is not None or _forked_serial:
        return None
    if macs < _TINY_MACS:
        return False
    n = default_num_threads()
    if n <= 1:
        return None
    full = (kind, n) + key
    t = _tuners.get(full)
    if t is None:
        if len(_tuners) > 256:
            _tuners.clear()
        t = _tuners[full] = ThreadTuner(n)
    return t
