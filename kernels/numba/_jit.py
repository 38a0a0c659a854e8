"""The njit options of every numba kernel, in one place.

Every kernel module imports its decorators from here, so the compile options
(caching, fastmath flags, error model, threading) cannot drift apart:

``kernel``
    ``parallel=True``: ``prange`` loops become parallel regions on numba's
    thread pool.
``serial``
    the same options without ``parallel``, for the drivers that only call
    other kernels (``network.train_batches``, ``network.forward``) and the
    functions Python calls.
``helper``, ``kernel_helper``, ``strict``
    for the functions only compiled code calls (tile and row functions, the
    private kernels): compiled without numba's CPython and C wrappers, which
    only a call from Python needs (:class:`_Helper`).

Serial below a size, parallel above
-----------------------------------
Launching a parallel region costs more than a tiny kernel takes.  So
every contract kernel is ONE ``kernel`` function holding both loops over its
tiles, ``for t in range(...)`` below a threshold and ``for t in prange(...)``
above it, both calling the same serial tile function.  The choice is made
**from the shape only** (thresholds below), never from the thread count or
from timing, and tiles are fixed by the shape, so a given call runs the same
arithmetic whatever ``n_threads`` is: results are bit-identical for any thread
count.

(Why not one function compiled twice, ``kernel(f)`` and ``serial(f)``, as in
umap?  numba names a cache file after the function's qualified name and line
and keys its entries by signature and bytecode, NOT by the compile flags, so
the two variants overwrite and load each other's machine code: the "serial"
variant silently runs the parallel code or the reverse.  It also compiles
everything twice.)  The one exception, :func:`serial_twin`, renames its copy:
the training step of a model whose shapes reach no threshold (fastnet's
adapter decides, ``serial_step``) runs a twin of train_batches without any
parallel region, which compiles in a fraction of the time (numba's parfor
passes and the parallel regions' own functions are most of a ``kernel``'s
compile cost) and runs the same loops.

Caching caveat: numba invalidates a cached kernel only when ITS OWN source file
changes.  The constants below, the codes of ``kernels/defs.py`` and the code of
every kernel a kernel calls (inlined from another module: network.py's cached
train_batches holds _generated_elementwise's optimizer loop) are frozen into the
machine code, so after editing any of them the stale entries must go:
:func:`config_digest` fingerprints them (the sources of every module of this
package included) and ``fastnet.backends.numba.check()`` flushes our cache when
the fingerprint changed.

Options
-------
* ``cache=True``: compiled code is stored next to the sources
  (``kernels/numba/__pycache__``) or under ``NUMBA_CACHE_DIR``.
* ``fastmath=FASTMATH``: none of LLVM's fast-math flags: IEEE arithmetic, as
  gcc compiles the Cython twin (no ``-ffast-math``, contraction switched off), so
  the twins are arithmetic twins: the same formula in the same order rounds the
  same way in both.  ``contract`` would fuse ``a * b + c`` into an FMA on CPUs
  that have one (the optimizer updates, the polynomial of ``fn_exp``),
  ``reassoc`` would let LLVM reorder sums into vector lanes, ``arcp`` turn
  ``x / y`` into ``x * (1 / y)``, ``afn`` substitute approximate functions: each
  gives other bits than the Cython build.  Where a fused multiply-add or a split
  sum is wanted (the matmul micro-kernels, the 8 partial sums of a norm) the
  code says so explicitly, in both twins.  Without ``nnan`` / ``ninf`` NaN and
  inf propagate and ``x != x`` keeps its meaning.
* ``error_model="numpy"``: float division by zero gives inf/nan instead of a
  Python ``ZeroDivisionError`` check in every loop (which blocks vectorisation).
* ``nogil=True``: the kernels release the GIL.
* ``boundscheck=False`` (numba's default, stated here so ``NUMBA_BOUNDSCHECK``
  is the only way to turn checks on, for debugging).

Threads
-------
The kernels do not set the pool size themselves: calling
``numba.set_num_threads`` inside a jitted function embeds a ctypes pointer,
which makes the function uncacheable ("uses dynamic globals").  The adapter
``fastnet.backends.numba`` sets the pool size to ``n`` before each kernel
call (through the threading layer's C setter, a fraction of what the public
``numba.set_num_threads`` costs).  Inside the kernels the ``n_threads``
argument every kernel takes (the contract's, kept so the numba and Cython twins
have the same signatures) only sizes the matmul family's row chunks (one per
thread); the other kernels' prange loops split over fixed tiles.
"""
import hashlib
import os
import types as _pytypes

from numba import njit, prange  # noqa: F401  (prange re-exported for the kernel modules)
from numba.core.dispatcher import Dispatcher as _Dispatcher
from numba.core.registry import CPUDispatcher as _CPUDispatcher

# Fast-math flags: none (see the module docstring: the Cython twin's IEEE arithmetic).
FASTMATH = frozenset()

_OPTIONS = dict(cache=True, fastmath=set(FASTMATH), nogil=True, error_model="numpy",
                boundscheck=False)

#: the options that leave out a compiled function's entry points from Python:
#: the CPython wrapper (unboxes each argument) and the C wrapper.  A function
#: called only from compiled code needs neither, and leaving them out takes a
#: good part off a cold compile's time and peak memory (bench/numba_compile_time.py).
_WRAPPERLESS = dict(no_cpython_wrapper=True, no_cfunc_wrapper=True)
#: suffix of the qualified name of a helper's copy compiled for calls from Python
PY_SUFFIX = "__py"


class _Helper(_CPUDispatcher):
    """A dispatcher compiled without the wrappers (``_WRAPPERLESS``): for the
    functions only compiled code calls.  Its compiled code has no entry point
    for Python, so a call from Python (the tests call some helpers directly)
    runs a copy of it compiled with the wrappers, under its own qualified name
    (its own cache file); the copies compiled for calls from Python are in
    :data:`PY_COPIES`."""

    def __call__(self, *args, **kws):
        copy = PY_COPIES.get(id(self))
        if copy is None:
            opts = {k: v for k, v in self.targetoptions.items() if k not in _WRAPPERLESS and k != "nopython"}
            copy = _copy(self, {}, PY_SUFFIX, opts, helper=False)
            PY_COPIES[id(self)] = copy
        return copy(*args, **kws)


#: id(helper) -> its copy compiled with the wrappers, made by the first call from Python
PY_COPIES = {}


def _jit(helper=False, **options):
    """numba's ``njit(**options)`` as a decorator; with ``helper``, a
    :class:`_Helper` compiled without the wrappers."""
    if not helper:
        return njit(**options)

    def decorate(f):
        disp = njit(**dict(options, **_WRAPPERLESS))(f)
        if isinstance(disp, _Dispatcher):           # (NUMBA_DISABLE_JIT: the plain function)
            disp.__class__ = _Helper
        return disp
    return decorate


#: Decorator for the contract kernels (serial loop below a size, prange above).
kernel = _jit(parallel=True, **_OPTIONS)
#: Decorator for the drivers and the functions called from Python.
serial = _jit(**_OPTIONS)
#: Decorator for the serial helpers (tile / row functions) only compiled code calls.
helper = _jit(helper=True, **_OPTIONS)
#: Decorator for the kernels only compiled code calls (serial below a size, prange above).
kernel_helper = _jit(helper=True, parallel=True, **_OPTIONS)
#: a serial helper inlined into its callers at numba's IR level: no compiled
#: function of its own, so its callees' code is not optimised and compiled again
#: at one more level (bench/numba_compile_time.py)
inlined = njit(inline="always", **_OPTIONS)
#: Decorator for the helpers whose sums and roundings were the first to be pinned
#: to the Cython twin's (the softmax cross-entropy row, the penalty and batch-loss
#: sums): fast-math off explicitly, so they stay IEEE whatever FASTMATH becomes.
strict = _jit(helper=True, **dict(_OPTIONS, fastmath=False))

# --------------------------------------------------------------------------
# Parallel thresholds and tile sizes (work units from the shape only).
# Below a threshold a kernel loops over its tiles serially; tiles fix how work
# is split, so a tile's result never depends on which thread ran it or how
# many there are.
# --------------------------------------------------------------------------
#: matmul family: parallel when n * k * m (multiply-adds) reaches this; below it
#: waking a team (far dearer when the cores are shared) does not pay: the
#: batch-10 seed step's products (<= 235k) always run on the calling thread.
MATMUL_PAR_MIN = 1 << 20
#: one row (batch-1 inference) splits its columns between the threads from this
#: many multiply-adds: the row streams B from L2 / L3, which two cores read
#: nearly twice as fast as one (bench/REPORT.md's predict latency)
ROW_PAR_MIN = 1 << 18
#: elementwise / row-wise kernels and the optimizer update: parallel when the
#: element count reaches this.  Alone a parallel Adam pays from fewer elements,
#: but in a batch-10 step on a loaded machine each barrier costs far more (the
#: seed epoch at 2 threads in bench/REPORT.md); 2**15 keeps every batch-10 seed
#: kernel serial.
ELEM_PAR_MIN = 1 << 15
#: elementwise kernels: columns per tile (a tile never spans two rows).
ELEM_TILE = 4096
#: flat (1-D) kernels (optimizer, regularization): elements per tile.
FLAT_TILE = 4096
#: bias_grad: columns per tile (rows are summed in order inside a tile).
COL_TILE = 64


def config_digest():
    """Fingerprint of everything frozen into the cached machine code besides
    the kernels' own source files: the options and constants of this module
    and the integer codes and tables of kernels/defs.py."""
    from .. import defs

    def canon(v):  # sets repr in hash order, which changes from process to process
        return sorted(v) if isinstance(v, (set, frozenset)) else v

    options = sorted((k, canon(v)) for k, v in _OPTIONS.items())
    consts = sorted((k, canon(v)) for k, v in globals().items()
                    if k.isupper() and isinstance(v, (int, frozenset)))
    codes = sorted((k, v) for k, v in vars(defs).items() if k.isupper() and isinstance(v, int))
    text = repr((options, consts, codes, defs.ACTIVATIONS, defs.OPTIMIZERS, defs.HYPER))
    h = hashlib.sha256(text.encode())
    # the kernel sources: a callee's edit must reach its cached callers
    here = os.path.dirname(os.path.abspath(__file__))
    for name in sorted(os.listdir(here)):
        if name.endswith(".py"):
            with open(os.path.join(here, name), "rb") as f:
                h.update(name.encode() + b"\0" + f.read())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------
# Serial twins: a driver compiled without any parallel region
# --------------------------------------------------------------------------
#: id(dispatcher) -> (dispatcher, its serial twin); the twins made so far
TWINS = {}
#: suffix of a twin's qualified name (numba names the cache file after it)
TWIN_SUFFIX = "__serial"


def _global_names(code):
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, _pytypes.CodeType):
            names |= _global_names(c)
    return names


def _reaches_parallel(disp, memo):
    """Whether ``disp`` or a kernel it calls (through its globals) is ``parallel``."""
    got = memo.get(id(disp))
    if got is None:
        memo[id(disp)] = False                      # (a cycle adds nothing)
        f = disp.py_func
        got = bool(disp.targetoptions.get("parallel"))
        for name in _global_names(f.__code__):
            obj = f.__globals__.get(name)
            if isinstance(obj, _Dispatcher) and _reaches_parallel(obj, memo):
                got = True
        memo[id(disp)] = got
    return got


#: True in a serial twin's globals (``serial_twin``): a path that only pays with
#: threads tests ``if not SERIAL_TWIN:``, a constant numba prunes, so the twin does
#: not compile it (bench/numba_compile_time.py)
SERIAL_TWIN = False


def serial_twin(disp, _callee=False):
    """``disp`` compiled without ``parallel``, calling the serial twins of the
    kernels it calls that have (or reach) a ``prange``: the same code, each
    ``prange`` a ``range``.  The kernels choose their serial or parallel loop
    from the shape and split work into tiles fixed by the shape, so a twin
    gives the same bits; where no shape reaches a parallel threshold it runs
    the same loops, and skips numba's parfor passes and the parallel regions'
    compiled functions (most of the cost of a ``kernel`` over a ``serial``:
    bench/numba_compile_time.py).  A twin is the same function object with a
    suffixed qualified name (so numba gives it its own cache file: see this
    module's docstring on why one function must not be compiled both ways) and
    globals where each such callee is replaced by its twin (a :class:`_Helper`:
    only compiled code calls it).  Memoised; a dispatcher that reaches no
    ``prange`` is its own twin."""
    if not isinstance(disp, _Dispatcher):      # NUMBA_DISABLE_JIT: plain Python, no prange
        return disp
    entry = TWINS.get(id(disp))
    if entry is not None:
        return entry[1]
    memo = {}
    if not _reaches_parallel(disp, memo):
        return disp
    f = disp.py_func
    glb = dict(f.__globals__)
    glb["SERIAL_TWIN"] = True
    for name in _global_names(f.__code__):
        obj = glb.get(name)
        if isinstance(obj, _Dispatcher) and _reaches_parallel(obj, memo):
            glb[name] = serial_twin(obj, True)
    opts = {k: v for k, v in disp.targetoptions.items() if k not in ("parallel", "nopython")}
    twin = _copy(disp, glb, TWIN_SUFFIX, opts, helper=True if _callee else None)
    TWINS[id(disp)] = (disp, twin)
    return twin


def _copy(disp, glb, suffix, opts, helper=None):
    """A new dispatcher of ``disp``'s function with the globals updated by
    ``glb``, its qualified name suffixed, compiled with ``opts``; cached when
    ``disp`` is, a :class:`_Helper` when ``disp`` is (or ``helper`` says)."""
    f = disp.py_func
    g = _pytypes.FunctionType(f.__code__, dict(f.__globals__, **glb), f.__name__, f.__defaults__,
                              f.__closure__)
    g.__qualname__ = f.__qualname__ + suffix
    g.__module__ = f.__module__
    g.__doc__ = f.__doc__
    if helper is None:
        helper = isinstance(disp, _Helper)
    opts = {k: v for k, v in opts.items() if k not in _WRAPPERLESS}
    return _jit(helper=helper, cache=disp._cache.__class__.__name__ != "NullCache", **opts)(g)


# --------------------------------------------------------------------------
# Specialised copies: a kernel compiled with narrower module constants
# --------------------------------------------------------------------------
#: (id(dispatcher), ((name, value), ...)) -> (dispatcher, its specialised copy)
SPECIALS = {}


def _reads(disp, names, memo):
    """The names of ``names`` that ``disp`` or a kernel it calls (through its
    globals) reads as a global."""
    got = memo.get(id(disp))
    if got is None:
        memo[id(disp)] = frozenset()                # (a cycle adds nothing)
        f = disp.py_func
        used = _global_names(f.__code__)
        got = set(used & names)
        for name in used:
            obj = f.__globals__.get(name)
            if isinstance(obj, _Dispatcher):
                got |= _reads(obj, names, memo)
        got = frozenset(got)
        memo[id(disp)] = got
    return got


def specialise(disp, consts, _memo=None, _callee=False):
    """``disp`` compiled with the module constants ``consts`` ({global name:
    int}) in place of its module's values, and so every kernel it calls that
    reads one of them (a copy of each, made the same way).  numba prunes a
    branch on a constant before typing (``if FWD_MASK & 2 and act == 1:``), so
    a copy compiles none of the code the narrower constants rule out: the
    activation / optimizer masks of _generated_elementwise, the head mask of
    network.py.  A copy is the same function object with globals where the
    constants are replaced and a qualified name suffixed with them (numba keys
    its cache files by qualified name, not by globals: each copy gets its own
    file); the options (``parallel`` included) are ``disp``'s (a callee's copy is a
    :class:`_Helper`), and
    :func:`serial_twin` applies to a copy as to any kernel.  Memoised; a kernel
    that reads none of the names is its own copy; under NUMBA_DISABLE_JIT the
    plain function (every branch, the module's constants)."""
    if not isinstance(disp, _Dispatcher):
        return disp
    memo = {} if _memo is None else _memo
    used = _reads(disp, frozenset(consts), memo)
    if not used:
        return disp
    mine = tuple(sorted((k, int(consts[k])) for k in used))
    key = (id(disp), mine)
    entry = SPECIALS.get(key)
    if entry is not None:
        return entry[1]
    f = disp.py_func
    glb = dict(f.__globals__)
    for name in _global_names(f.__code__):
        if name in consts:
            glb[name] = int(consts[name])
        obj = glb.get(name)
        if isinstance(obj, _Dispatcher):
            glb[name] = specialise(obj, consts, memo, True)
    opts = {k: v for k, v in disp.targetoptions.items() if k != "nopython"}
    copy = _copy(disp, glb, "__" + "_".join("%s%d" % (k.lower(), v) for k, v in mine), opts,
                 helper=True if _callee else None)
    SPECIALS[key] = (disp, copy)
    return copy
