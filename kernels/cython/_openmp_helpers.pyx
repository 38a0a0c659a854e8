# cython: language_level=3, boundscheck=False, wraparound=False
"""What the Cython kernels were compiled with (OpenMP, -march=native), for tests and
``fastnet.backends.cython.info()``.  Built with the same flags as every kernel
module (setup.py compiles all of kernels/cython/*.pyx alike)."""
from cython.parallel cimport prange, threadid

import numpy as np

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define FASTNET_OPENMP 1
    static int fastnet_max_threads(void) { return omp_get_max_threads(); }
    #else
    #define FASTNET_OPENMP 0
    static int fastnet_max_threads(void) { return 1; }
    #endif
    """
    bint FASTNET_OPENMP
    int fastnet_max_threads() noexcept nogil

cdef extern from *:
    """
    #ifdef FASTNET_NATIVE_BUILD
    #define FASTNET_NATIVE 1
    #else
    #define FASTNET_NATIVE 0
    #endif
    """
    bint FASTNET_NATIVE


def openmp_enabled():
    """True when the extension modules were compiled with OpenMP."""
    return bool(FASTNET_OPENMP)


def native_build():
    """True when built with FASTNET_NATIVE=1 (-march=native: not portable)."""
    return bool(FASTNET_NATIVE)


def max_threads():
    """OpenMP's default team size (omp_get_max_threads); 1 without OpenMP."""
    return fastnet_max_threads()


def threads_used(int n_threads):
    """Number of distinct threads that run a ``prange`` with num_threads=n_threads
    (1 without OpenMP)."""
    cdef int i, n = max(n_threads, 1) * 4
    cdef int[::1] seen = np.zeros(n, dtype=np.intc)
    with nogil:
        for i in prange(n, schedule='static', chunksize=1, num_threads=max(n_threads, 1)):
            seen[i] = threadid()
    return len(set(seen))
