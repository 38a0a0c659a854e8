"""Thread control in one place: every backend call receives ``n_threads`` from here."""
import os

_n_threads = None


def _available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def set_num_threads(n):
    """Set the number of threads used by the compiled kernels (numba pool and
    Cython ``prange``).  ``None`` restores the default (all available cores)."""
    global _n_threads
    if n is None:
        _n_threads = None
        return
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError("set_num_threads: n must be a positive int or None; got %r" % (n,))
    if n < 1:
        raise ValueError("set_num_threads: n must be >= 1; got %d" % n)
    _n_threads = n


def get_num_threads():
    """Number of threads the kernels will use (default: all available cores)."""
    return _n_threads if _n_threads is not None else _available_cores()
