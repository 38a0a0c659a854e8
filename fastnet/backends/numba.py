"""The numba backend: a thin adapter over ``fastnet._kernels.numba``.

Every function of the contract (``fastnet/backends/_api.py``) is exposed here
with the contract's signature, built from ``_api.KERNELS`` by
``fastnet/backends/_adapter.py``.  The wrappers are on the hot path: train_batches,
forward and regularize run the shared validator (``_api.VALIDATORS``: shapes,
dtypes, codes, the perm entries and labels the batches read, so a malformed
call never reaches a kernel running without bounds checks); every wrapper
converts the integer / float scalars to Python ``int`` / ``float`` (one
compiled specialisation per dtype, whatever integer type the caller used), the
dropout key to ``np.uint64``, passes the caller's data read-only (:func:`_ro`),
sets the thread count and calls the compiled kernel (train_batches / forward:
the feature variant :func:`train_flags` / :func:`forward_flags` pick).

Threads
-------
Each call makes ``min(n_threads, NUMBA_NUM_THREADS)`` the calling thread's pool
size (through the threading layer's C getter / setter, see _pool_size_functions)
and the kernels then use numba's pool.  That adds about a dispatcher call's cost
to a kernel call (the public ``numba.set_num_threads`` added several times more;
bench/REPORT.md's kernel table shows calls through the adapter), nothing next to
``train_batches``, which runs whole epochs per call.  The alternative, calling ``set_num_threads`` inside the
jitted kernels, costs nothing measurable but makes every such kernel
uncacheable (numba embeds the pool's ctypes function pointer: "cannot cache
... dynamic globals"), so it is not used.  The setting is per calling thread
(numba keeps it thread-local).  Results do not depend on the thread count:
every kernel chooses its serial or parallel loop from the shape and splits
work into shape-determined tiles of outputs.

On an oversubscribed machine (more runnable threads than cores) every
parallel region waits for a descheduled worker; use ``n_threads=1`` there
(or ``OMP_WAIT_POLICY=PASSIVE``).

:func:`threading_layer` and :func:`info` report numba's threading layer and
pool size for benchmarks (numba and Cython's OpenMP runtime can interfere; see
numba issues 6637 and 10454).
"""
import contextlib
import operator
import os
import threading

import numba
from numba.core import event as _event
import numpy as np

from .. import _io
from .. import _threads as _thr
from .._kernels import defs
from .._kernels.numba import _jit
from . import _adapter, _numba_cache
# before the kernels are decorated: numba picks a cache folder per function then
_numba_cache.install(os.path.dirname(os.path.abspath(_jit.__file__)))
from .._kernels.numba import matmul as _mm  # noqa: E402
from .._kernels.numba import losses as _ls
from .._kernels.numba import reduce as _rd
from .._kernels.numba import network as _nw
from .._kernels.numba import layers as _ly
from .._kernels.numba import _generated_elementwise as _ew

__all__ = [
    "matmul", "matmul_tn", "matmul_nt", "bias_act_forward", "act_backward",
    "softmax_xent", "sigmoid_bce", "mse", "mae", "bias_grad", "gather_rows",
    "regularize", "optimizer_update", "prelu_forward", "prelu_backward", "maxout_forward",
    "maxout_backward", "topk_rows", "matmul_tn_sparse", "matmul_nt_sparse", "forward",
    "train_batches",
    "check", "threading_layer", "info", "compile_notice",
]

NAME = "numba"
MAX_THREADS = numba.config.NUMBA_NUM_THREADS


def _pool_size_functions():
    """numba.set_num_threads launches the pool, type-checks and range-checks its
    argument, then calls the threading layer's C setter: most of a tiny
    kernel's cost (the small matmul rows of bench/REPORT.md's kernel table).
    _threads already clamps n to [1, MAX_THREADS], so after one public call
    (which launches the pool) the C setter and getter are called directly, at a
    fraction of that, when this numba exposes them (numba
    0.68: ``numba.np.ufunc.parallel._set_num_threads``); otherwise the public
    functions."""
    import ctypes
    numba.set_num_threads(MAX_THREADS)
    try:
        from numba.np.ufunc import parallel as _par
    except ImportError:
        return numba.set_num_threads, numba.get_num_threads
    raw_set = getattr(_par, "_set_num_threads", None)
    raw_get = getattr(_par, "_get_num_threads", None)
    if isinstance(raw_set, ctypes._CFuncPtr) and isinstance(raw_get, ctypes._CFuncPtr):
        return raw_set, raw_get
    return numba.set_num_threads, numba.get_num_threads


# (a cheap read skips the write when the calling thread's pool size is already n)
_set_num_threads, _get_num_threads = _pool_size_functions()
# the pool started above picked its layer; only GNU OpenMP's breaks in a forked child
_LAYER_IS_OMP = numba.threading_layer() == "omp"
_U64 = (1 << 64) - 1


# clamped to numba's pool (1 in a forked child) and made the pool size for the call
_threads = _adapter.thread_count_function(MAX_THREADS, starts_openmp=_LAYER_IS_OMP,
                                          pool_size=(_get_num_threads, _set_num_threads))


def _ro(a):
    """A read-only view of ``a`` (``a`` itself when it is read-only already).

    numba types a read-only array apart from a writable one and compiles a
    kernel again for each (a read-only one-hot Y or memmap X cost a second
    compile of the whole training step mid-session); the inputs a kernel only
    reads are passed read-only, whatever the caller's flags, so both reach the
    same compiled code.  A view: nothing is copied."""
    if isinstance(a, np.ndarray) and a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


# layers bytes -> (dropout, regularization, maxout, prelu, meprop)
_SPEC_FEATURES = {}


def _spec_features(layers):
    """Which optional features a network description uses (the conditions under
    which kernels/numba/network.py runs each), memoised per description."""
    key = layers.tobytes()
    feats = _SPEC_FEATURES.get(key)
    if feats is None:
        kind = layers["kind"]
        feats = (bool((layers["dropout"] > 0).any()),
                 any(bool((layers[f] != 0).any()) for f in defs.REGULARIZER_FIELDS),
                 bool((kind == defs.LAYER_MAXOUT).any()),
                 bool((layers["act"] == defs.ACT_PRELU).any()),
                 bool(((kind == defs.LAYER_DENSE) & (layers["topk"] > 0)).any()))
        if len(_SPEC_FEATURES) > 256:
            _SPEC_FEATURES.clear()
        _SPEC_FEATURES[key] = feats
    return feats


def _well_formed(layers):
    return (isinstance(layers, np.ndarray) and layers.ndim == 1 and layers.shape[0] >= 1
            and layers.dtype == defs.LAYER_DTYPE)


# "exact" (the default): a training-step variant per feature set, optimizer,
# activations and loss row, so a model compiles only what it runs; "one": every
# model shares the variant with every feature and code (a longer first compile,
# then none for another architecture: a search over activations / optimizers,
# the test suite).  Same bits either way.
VARIANTS = os.environ.get("FASTNET_NUMBA_VARIANTS", "exact")
if VARIANTS not in ("exact", "one"):
    raise ValueError("FASTNET_NUMBA_VARIANTS must be 'exact' or 'one', got %r" % VARIANTS)


_HEAD_BITS = {defs.HEAD_MSE: 8, defs.HEAD_MAE: 16, defs.HEAD_SIGMOID_BCE: 4}
_OPT_CODES = frozenset(d["code"] for d in defs.OPTIMIZERS)
_ACT_CODES = frozenset(a["code"] for a in defs.ACTIVATIONS)


def _act_masks(layers, head):
    """(FWD_MASK, BWD_MASK): bit c for each activation code c that train_batches
    passes to bias_act_forward / act_backward for this description and head
    (kernels/numba/network.py: _act_of and the backward pass); every code
    (``ALL_ACTS``) where one is not a known activation (that variant raises the
    precise error)."""
    fused = head == defs.HEAD_SOFTMAX_XENT or head == defs.HEAD_SIGMOID_BCE
    L = layers.shape[0]
    fwd, bwd = set(), set()
    for l in range(L):
        maxout = layers[l]["kind"] == defs.LAYER_MAXOUT
        act = int(layers[l]["act"])
        last = l == L - 1
        fwd.add(defs.ACT_LINEAR if maxout or act == defs.ACT_PRELU or (last and fused) else act)
        if (last and not fused) or (not last and not maxout and act != defs.ACT_PRELU):
            bwd.add(act)

    def mask(codes):
        return sum(1 << c for c in codes) if codes <= _ACT_CODES else _ew.ALL_ACTS
    return mask(fwd), mask(bwd)


def train_flags(layers, opt, hyper, diag, head=-1, labels=None):
    """(DROP, REG, CLIP, MAXOUT, PRELU, MEPROP, DIAG, OPT_MASK, FWD_MASK, BWD_MASK,
    HEAD_MASK): the train_batches variant for this call
    (kernels/numba/network.py, train_variant): the features the description
    uses, and the optimizer, the activations and the loss row it runs (one
    bit each), so a model compiles only its own; every feature and code when
    the arguments are malformed (that variant's checks raise the precise
    error)."""
    if not (VARIANTS == "exact" and _well_formed(layers) and isinstance(hyper, np.ndarray)
            and hyper.ndim == 1 and hyper.shape[0] >= defs.NH):
        return (True,) * 7
    drop, reg, maxout, prelu, meprop = _spec_features(layers)
    opt = int(opt)
    clip = opt != defs.OPT_NONE and (hyper[defs.H_CLIPNORM] > 0 or hyper[defs.H_GLOBAL_CLIPNORM] > 0)
    flags = (drop, reg, bool(clip), maxout, prelu, meprop, diag is not None and diag.shape[0] > 0)
    head = int(head)
    if head == defs.HEAD_SOFTMAX_XENT and isinstance(labels, np.ndarray):
        head_mask = 1 if labels.shape[0] > 0 else 2
    else:
        head_mask = _HEAD_BITS.get(head, _nw.HEAD_ALL)
    if head_mask == _nw.HEAD_ALL:
        return flags
    opt_mask = (0 if opt == defs.OPT_NONE else 1 << opt) if opt in _OPT_CODES else _ew.ALL_OPTS
    return flags + (opt_mask,) + _act_masks(layers, head) + (head_mask,)


_VARIANTS = {}


def _variant(make, flags, *more):
    """The kernel variant ``make(flags, *more)``, uncached like the others when
    no cache folder is writable."""
    disp = _VARIANTS.get((make, flags) + more)
    if disp is None:
        disp = make(flags, *more)
        _numba_cache.uncache([getattr(disp, "worker", disp)] + [copy for _, copy in _jit.SPECIALS.values()] +
                             [twin for _, twin in _jit.TWINS.values()])
        _VARIANTS[(make, flags) + more] = disp
    return disp


# layers bytes -> (widest row: bs times it is the largest elementwise kernel's
# size, largest product's n_in * z width)
_SPEC_SIZES = {}


def serial_step(layers, batch_size, params):
    """Whether no kernel of a training step (batches of ``batch_size`` rows, the
    network of ``layers``, ``params.shape[0]`` parameters) reaches a parallel
    threshold of kernels/numba/_jit.py: the step then runs the same loops in
    the serial twin of train_batches, which compiles none of the parallel
    regions (the results are the same bits either way: the kernels' tiles are
    fixed by the shape)."""
    if not isinstance(params, np.ndarray) or params.ndim != 1 or batch_size < 1:
        return False
    key = layers.tobytes()
    sizes = _SPEC_SIZES.get(key)
    if sizes is None:
        zw = np.where(layers["kind"] == defs.LAYER_MAXOUT,
                      layers["n_out"] * np.maximum(1, layers["pieces"]), layers["n_out"])
        sizes = (int(max(layers["n_in"].max(), zw.max())), int((layers["n_in"] * zw).max()))
        if len(_SPEC_SIZES) > 256:
            _SPEC_SIZES.clear()
        _SPEC_SIZES[key] = sizes
    widest, product = sizes
    # (batch_size + 1): meProp's sparse products also count the transposed B
    return (batch_size * widest < _jit.ELEM_PAR_MIN and (batch_size + 1) * product < _jit.MATMUL_PAR_MIN
            and params.shape[0] < _jit.ELEM_PAR_MIN)


def forward_flags(layers):
    """(MAXOUT, PRELU): the forward variant for this description."""
    if VARIANTS != "exact" or not _well_formed(layers):
        return (True, True)
    feats = _spec_features(layers)
    return (feats[2], feats[3])


def _forward_kernel(layers):
    """The forward variant for this description (the adapter's selector)."""
    return _variant(_nw.forward_variant, forward_flags(layers))


def _split_step(layers, hyper, diag, batch_size, params, n_threads):
    """Whether this call runs the split step (kernels/numba/network.py: step_plan
    as for two threads): Dense layers without dropout, L1/L2, PReLU or meProp, no
    clipping or diagnostics, and the plan's shapes (the same bits either way).
    With one thread (or in a forked child, whose calls run on one) its worker runs
    every part alone, so a model of these shapes compiles one training step, not
    the plain step as well: the thread tuner's first calls run one thread, its
    later ones two (bench/numba_compile_time.py)."""
    try:
        n = min(int(n_threads), MAX_THREADS)
    except (TypeError, ValueError):
        return False
    if (n < 1 or numba.config.DISABLE_JIT   # (Python workers would share the GIL)
            or not _well_formed(layers) or not isinstance(params, np.ndarray)
            or params.ndim != 1 or not isinstance(batch_size, (int, np.integer))
            or not isinstance(hyper, np.ndarray) or hyper.ndim != 1 or hyper.shape[0] < defs.NH
            or any(_spec_features(layers))):
        return False
    return _nw.step_plan(layers, params.shape[0], hyper, int(batch_size), 2,
                         diag is not None and diag.shape[0] > 0)[1]


def _train_kernel(layers, opt, hyper, diag, batch_size, params, head=-1, labels=None, n_threads=1):
    """The train_batches variant for this call (the adapter's selector): the split
    step's for the shapes step_plan gives two threads, at any thread count."""
    flags = train_flags(layers, opt, hyper, diag, head, labels)
    if _split_step(layers, hyper, diag, batch_size, params, n_threads):
        # (VARIANTS "one": the split worker with every code, shared like the step)
        return _variant(_nw.train_variant, flags if VARIANTS == "exact" else (False,) * 7, False, True)
    return _variant(_nw.train_variant, flags, VARIANTS == "exact" and _well_formed(layers)
                    and serial_step(layers, batch_size, params))


# the inputs passed read-only (see _ro): the caller's data, which may be read-only
_READ_ONLY = {"softmax_xent": ("Y", "labels", "sw"), "sigmoid_bce": ("Y", "sw"), "mse": ("Y", "sw"),
              "mae": ("Y", "sw"), "gather_rows": ("X", "idx"), "all_finite": ("X",), "forward": ("X",),
              "train_batches": ("X", "Y", "labels", "sw", "perm")}


def _finite_halves(X, flag, n_threads):
    """all_finite as two serial passes over the halves of X's rows, one on the
    calling thread and one on the split step's helper thread (network._SplitStep).
    The parallel kernel's region leaves numba's pool threads spinning for
    milliseconds (libgomp's wait policy) on the cores the split step's two
    workers need next: fit checks X, then trains (seed epoch at 2 threads,
    bench/REPORT.md).  The same answer: every element tested either way."""
    h = X.shape[0] // 2
    other = [True]
    done = threading.Event()

    def second_half():
        try:
            other[0] = _rd.finite(X[h:])
        finally:
            done.set()
    _nw._SplitStep._post(second_half, ())
    mine = _rd.finite(X[:h])
    # a helper busy with another model's training step: the second half here too
    if not done.wait(0.02):
        other[0] = _rd.finite(X[h:])
    flag[0] = 1 if mine and other[0] else 0


def _finite_kernel(X, n_threads):
    """all_finite's kernel for this call (the adapter's selector): the two halves
    where the parallel kernel would open a region (at least 2**20 elements, two
    threads asked for) and the split step's helper can run them."""
    if (isinstance(n_threads, (int, np.integer)) and min(int(n_threads), MAX_THREADS) >= 2
            and not _thr._forked_serial and not numba.config.DISABLE_JIT
            and X.ndim == 2 and X.shape[0] >= 2 and X.size >= _jit.ELEM_PAR_MIN * 32
            and X.flags.c_contiguous):
        return _finite_halves
    return _rd.all_finite


# the module-level dispatchers (forward / train_batches: the variants, through their selectors)
globals().update(_adapter.build_kernels(
    __name__, _adapter.find_kernels((_mm, _ew, _ls, _rd, _ly)), _threads,
    key=lambda k: np.uint64(operator.index(k) & _U64),
    ro=_ro, read_only=_READ_ONLY, pick={"forward": _forward_kernel, "train_batches": _train_kernel,
                                        "all_finite": _finite_kernel}))


def predictor(dtype):
    """Model.predict's fast path (see the Cython backend's): ``run(X, layers,
    params, work, out, n_threads)`` runs ``forward`` and returns True when every
    element of X is finite, else writes nothing and returns False.  X made
    read-only once for both kernels, checked by the serial ``reduce.finite``
    (a call of the parallel all_finite cost more than a small net's forward
    pass), the pool size set once, the forward variant looked up once per
    layer table (the selector costs about a dispatcher call; bench/REPORT.md's
    predict overhead)."""
    finite, memo = _rd.finite, [(None, None)]

    def run(X, layers, params, work, out, n_threads):
        X = _ro(X)
        if not finite(X):
            return False
        n = _threads(n_threads)
        seen, kernel = memo[0]   # one tuple: threads sharing the model see a matching pair
        if seen is not layers:
            kernel = _forward_kernel(layers)
            memo[0] = (layers, kernel)
        kernel(X, layers, params, work, out, n)
        return True
    return run


# ---------------------------------------------------------------------------
# backend services
# ---------------------------------------------------------------------------


_KERNEL_MODULES = (_mm, _ls, _rd, _ly, _nw, _ew)
_MARKER = "fastnet-numba-config.txt"


def _dispatchers():
    from numba.core.registry import CPUDispatcher
    seen = set()
    # the module-level ones, then the feature variants of train_batches and forward made so far
    for obj in [obj for mod in _KERNEL_MODULES for obj in vars(mod).values()] + \
            list(_nw._TRAIN_VARIANTS.values()) + list(_nw._FORWARD_VARIANTS.values()) + \
            [step.worker for step in _nw._SPLIT_VARIANTS.values()] + \
            [copy for _, copy in _jit.SPECIALS.values()] + [twin for _, twin in _jit.TWINS.values()] + \
            list(_jit.PY_COPIES.values()):
        if isinstance(obj, CPUDispatcher) and obj.py_func.__module__.startswith(_nw.__package__) \
                and id(obj) not in seen:
            seen.add(id(obj))
            yield obj


# the serial twins of the training step and of every kernel it calls (their cache
# files are one per function, whatever the variant: made here so that
# refresh_cache flushes them with the others)
_nw.train_variant((True,) * 7, serial=True)
_numba_cache.uncache(_dispatchers())


_FLAG_NAMES = {_nw.train_variant: ("dropout", "regularization", "clipping", "Maxout", "PReLU",
                                   "meProp", "diagnostics"),
               _nw.forward_variant: ("Maxout", "PReLU")}


#: the functions the adapter's selector calls before the training step's compile
_PLAN_FUNCTIONS = ("_ksplit", "_split_plan")


def _describe(disp, args):
    """'the training step (float32, with dropout)' for a compile notice."""
    what = {"train_batches": "the training step", "forward": "the forward pass",
            "_split_worker": "the training step"}.get(
        disp.py_func.__name__, "kernel %s" % disp.py_func.__name__)
    args = tuple(args or ())
    # X (the first argument of both) has the model's dtype
    detail = str(args[0].dtype) if args and isinstance(args[0], numba.types.Array) else ""
    for (make, flags, *_), d in list(_VARIANTS.items()):
        if d is disp:
            used = [n for n, on in zip(_FLAG_NAMES[make], flags) if on]
            detail += ("; with " + ", ".join(used)) if used else ""
    return what + (" (%s)" % detail if detail else "")


class _CompileNotice(_event.Listener):
    """Calls ``write`` once, when numba starts compiling one of our kernels on
    this thread (numba only compiles on a cache miss)."""

    def __init__(self, write):
        self._write = write
        self._thread = threading.get_ident()
        self.said = False

    def on_start(self, event):
        data = event.data or {}
        disp = data.get("dispatcher")
        if self.said or threading.get_ident() != self._thread or \
                not getattr(getattr(disp, "py_func", None), "__module__", "").startswith(_nw.__package__):
            return
        if disp.py_func.__name__ in _PLAN_FUNCTIONS:
            return      # the selector's plan (a fraction of a second): the step's compile follows
        self.said = True
        where = cache_dir()
        self._write("fastnet: numba is compiling %s for this model; this happens once, %s"
                    % (_describe(disp, data.get("args")),
                       "later runs load it from the cache in %s" % where if where else
                       "and again in each process (no writable cache folder)"))

    def on_end(self, event):
        pass


@contextlib.contextmanager
def compile_notice(write):
    """Within the block, ``write(line)`` is called once when numba compiles one
    of the kernels (a cache miss): what is compiled, that it happens once,
    where the cache is.  ``fit(verbose >= 1)`` prints that line."""
    listener = _CompileNotice(write)
    with _event.install_listener("numba:compile", listener):
        yield listener


def cache_dir():
    """The folder the compiled kernels are cached in, None when uncached (no
    writable folder; see :mod:`fastnet.backends._numba_cache`)."""
    return getattr(_mm.matmul._cache, "cache_path", None)


def refresh_cache():
    """Drop our cached machine code if it was compiled under other constants.

    numba re-validates a cached kernel against its own source file only, but
    the constants of ``kernels/numba/_jit.py`` and the codes of
    ``kernels/defs.py`` are frozen into every kernel.  A marker file next to
    the cache records :func:`_jit.config_digest`; when it differs (or is
    missing), every kernel's cache index is flushed and the marker rewritten.
    Returns True when something was flushed.  Never raises: a cache problem
    only costs a recompile."""
    try:
        path = cache_dir()
        if path is None:
            return False
        digest = _jit.config_digest()
        marker = os.path.join(path, _MARKER)
        try:
            with open(marker) as f:
                if f.read().strip() == digest:
                    return False
        except OSError:
            pass
        for disp in _dispatchers():
            disp._cache.flush()
        os.makedirs(path, exist_ok=True)
        with _io.atomic_write(marker, "w") as f:  # processes compiling at once never see half a marker
            f.write(digest + "\n")
        return True
    except Exception:  # noqa: BLE001 - best effort
        return False


def check():
    """Raise if this backend cannot be used (called once by the registry).

    Cheap: compiles nothing.  Refuses a generated elementwise module rendered
    from another version of kernels/defs.py (re-render with
    ``python kernels/render.py`` or reinstall), and drops cached machine code
    compiled under other constants (:func:`refresh_cache`)."""
    major, minor = (int(x) for x in numba.__version__.split(".")[:2])
    if (major, minor) < (0, 59):
        raise ImportError("fastnet needs numba >= 0.59; found %s" % numba.__version__)
    if getattr(_ew, "TABLE_DIGEST", None) != defs.table_digest():
        raise ImportError(
            "fastnet._kernels.numba._generated_elementwise is stale (rendered from "
            "another kernels/defs.py); run `python kernels/render.py` or reinstall")
    refresh_cache()


def _start_pool():
    """Run a small product through matmul's parallel loop so that numba starts
    its pool and picks its threading layer."""
    n = 2 * _mm.ROW_BLOCK
    k = -(-_jit.MATMUL_PAR_MIN // n)
    a = np.ones((n, k))
    _mm.matmul(a, np.ones((k, 1)), np.empty((n, 1)), 2)   # two row chunks: a parallel loop


def threading_layer():
    """Name of numba's threading layer ('omp', 'tbb' or 'workqueue'); starts the
    pool (compiling one small kernel, cached) if no parallel kernel ran yet."""
    try:
        return numba.threading_layer()
    except ValueError:
        _start_pool()
        return numba.threading_layer()


def info():
    """Versions and threading facts for benchmark reports."""
    return {
        "backend": NAME,
        "numba": numba.__version__,
        "threading_layer": threading_layer(),
        "max_threads": MAX_THREADS,
        "fastmath": sorted(_jit.FASTMATH),
        "svml": bool(getattr(numba.config, "USING_SVML", False)),
        "cache_dir": cache_dir(),
    }
