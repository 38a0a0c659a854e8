"""The compiled backends' public kernels, built from the contract.

:func:`build_kernels` makes one function per entry of ``_api.KERNELS`` with the
contract's argument names and order, ``_api.kernel_doc(name)`` as its only
docstring, and a body that

1. runs the shared validator of that kernel (``_api.VALIDATORS``: train_batches,
   forward, regularize) on the arguments as given, before anything else;
2. stands in the empty array for an absent optional argument (``_api.OPTIONAL``);
3. normalises each scalar by its kind: "int" -> ``operator.index`` (a Python
   int: one compiled specialisation whatever integer type the caller used),
   "float" -> ``float``, "key" -> the backend's ``key``, "threads" -> the
   backend's ``threads`` (clamping, fork safety, numba's pool size);
4. passes the inputs named in ``read_only`` through the backend's ``ro``;
5. unpacks each record argument (``_api.RECORDS``) into its fields and passes
   the fields flat, in ``_api.FLAT_ORDER`` (the compiled kernels' order);
6. calls the backend's kernel, or, for a kernel in ``pick``, the kernel that
   ``pick[name]`` returns for the (normalised) arguments its parameters name
   (numba's feature variants of train_batches / forward).

The body is generated source (as ``collections.namedtuple`` and ``dataclasses``
do): a wrapper is on the hot path of every small kernel call, and the generated
one is the hand-written wrapper, with no per-call walk over the table.
"""
import inspect
import linecache
import operator

import numpy as np

from .. import _threads as _thr
from . import _api

_SCALAR = {"int": "_index(%s)", "float": "_float(%s)", "key": "_key(%s)",
           "threads": "_threads(%s)"}


def thread_count_function(cap, starts_openmp, pool_size=None):
    """The backend's ``threads(n_threads)``: n as an int >= 1 (ValueError
    otherwise), at most ``cap`` (results do not depend on it), 1 in a child
    forked after OpenMP's threads started (fastnet/_threads.py: fork safety;
    a call with n > 1 notes that start when ``starts_openmp``); with
    ``pool_size = (get, set)`` it also makes n the pool size (numba)."""
    get, put = pool_size or (None, None)

    def threads(n_threads):
        n = int(n_threads)
        if n < 1:
            raise ValueError("n_threads must be >= 1; got %d" % n)
        if n > 1:
            if _thr._forked_serial:
                _thr.warn_forked_serial(n)
                n = 1
            elif starts_openmp and not _thr._omp_pool_started:
                _thr.note_threads_started()
            if n > cap:
                n = cap
        if get is not None and get() != n:
            put(n)
        return n
    return threads


def find_kernels(modules):
    """{contract name: the first attribute of that name in ``modules``}
    (reversed: an earlier module's overwrites a later one's)."""
    return {name: getattr(mod, name) for name in _api.KERNELS
            for mod in reversed(modules) if hasattr(mod, name)}


def build_kernels(module, kernels, threads, key, ro=None, read_only=None, pick=None):
    """{name: function} for every kernel of the contract.

    module: the backend module's ``__name__`` (the functions' ``__module__``);
    kernels: {name: compiled kernel taking the normalised arguments}; a name it
    lacks (a backend that failed to import) gets ``kernels[None]``, a callable
    that raises; threads(n) / key(k): the backend's scalar normalisers;
    ro(a) and read_only {name: argument names}: the inputs passed as ``ro(a)``;
    pick {name: select}: ``select`` is called with the (normalised) arguments
    its parameters name and returns the kernel to call."""
    read_only, pick = read_only or {}, pick or {}
    made = {}
    for name, args in _api.KERNELS.items():
        made[name] = _build(module, name, args, kernels.get(name, kernels.get(None)), threads, key,
                            ro, read_only.get(name, ()), pick.get(name))
    return made


def _build(module, name, args, kernel, threads, key, ro, read_only, select):
    if kernel is None and select is None:
        raise LookupError("%s has no kernel %r of the contract (_api.KERNELS)" % (module, name))
    optional = _api.OPTIONAL.get(name, {})
    names = [a for a, _, _ in args]
    env = {"_index": operator.index, "_float": float, "_key": key, "_threads": threads, "_ro": ro,
           "_kernel": kernel, "_check": _api.VALIDATORS.get(name)}
    head = ", ".join(a + "=None" if a in optional else a for a in names)
    lines = ["def %s(%s):" % (name, head)]
    if env["_check"] is not None:
        lines.append("    _check(%s)" % ", ".join(names))
    for a, dtype in optional.items():
        env["_absent_" + a] = np.empty(0, dtype)
        lines.append("    if %s is None:\n        %s = _absent_%s" % (a, a, a))
    # a record argument is unpacked into its fields; the kernel takes the fields
    # flat, in _api.FLAT_ORDER
    flat = args
    for a, kind, shape in args:
        if kind == "record":
            fields = _api.RECORDS[shape.split(":")[0]]
            lines.append("    %s%s = %s" % (", ".join(f for f, _, _ in fields), "," * (len(fields) == 1), a))
    if any(kind == "record" for _, kind, _ in args):
        kinds = dict((f, (k, sh)) for f, k, sh in _api.record_fields(name))
        flat = [(a,) + kinds[a] for a in _api.FLAT_ORDER[name]]
    call = []
    for a, kind, _ in flat:
        if kind in _SCALAR:
            call.append(_SCALAR[kind] % a)
        elif a in read_only:
            call.append("_ro(%s)" % a)
        else:
            call.append(a)
    target = "_kernel"
    if select is not None:
        env["_select"] = select
        wanted = list(inspect.signature(select).parameters)
        # the selector sees the normalised scalars (threads excepted: no side effect twice)
        kinds = {a: kind for a, kind, _ in flat}
        if not set(wanted) <= set(kinds):
            raise TypeError("%s: the selector's parameters %s are not all arguments of the kernel"
                            % (name, wanted))
        target = "_select(%s)" % ", ".join(
            _SCALAR[kinds[a]] % a if kinds[a] in _SCALAR and kinds[a] != "threads" else a
            for a in wanted)
    lines.append("    %s(%s)" % (target, ", ".join(call)))
    fn = _define(module, name, lines, env)
    # ``unchecked``: the same call without the contract's validator, for callers
    # whose arguments are valid by construction (Model's predict: its own spec,
    # parameters and buffers, X checked); the validator costs more than a
    # batch-1 forward pass of a small net (bench/report.py's predict rows)
    fn.unchecked = fn if env["_check"] is None else _define(
        module, name, [ln for ln in lines if not ln.startswith("    _check(")], env, "unchecked")
    return fn


def _define(module, name, lines, env, suffix=""):
    source = "\n".join(lines) + "\n"
    filename = "<fastnet adapter %s.%s%s>" % (module, name, suffix and " " + suffix)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # tracebacks
    scope = dict(env)
    exec(compile(source, filename, "exec"), scope)
    fn = scope[name]
    fn.__module__ = module
    fn.__doc__ = _api.kernel_doc(name)
    return fn
