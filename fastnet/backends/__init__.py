"""Backend registry: one contract (``_api.py``), three implementations.

``get_backend(name)`` returns the module implementing the contract for
``"numpy"`` (the reference), ``"numba"`` or ``"cython"``; ``"auto"`` resolves to
the fastest available one (order :data:`AUTO_ORDER`, chosen from the benchmark
suite in ``bench/``).  Imports are lazy, and a backend whose import fails is
reported as unavailable with the reason instead of breaking ``import fastnet``.
"""
import importlib
import importlib.util
import sys

BACKENDS = ("numpy", "numba", "cython")
AUTO_ORDER = ("cython", "numba", "numpy")
_MODULES = {
    "numpy": "fastnet.backends.numpy_ref",
    "numba": "fastnet.backends.numba",
    "cython": "fastnet.backends.cython",
}
_cache = {}


class BackendUnavailable(ImportError):
    """Raised when a backend is asked for but cannot be used here."""


def _explain(name, mod, exc):
    """The reason a backend is unavailable, in words a user can act on.

    The cython backend's extension modules fail to import for three different
    reasons that need three different fixes: fastnet was installed from source
    without a C compiler (nothing was built), the OpenMP runtime the build links
    (libgomp) is missing on this machine, or the build is stale / foreign."""
    reason = "%s: %s" % (type(exc).__name__, exc)
    cause = getattr(mod, "_IMPORT_ERROR", None)
    if name != "cython" or cause is None:
        return reason
    text = str(cause)
    try:
        built = importlib.util.find_spec("fastnet._kernels.cython.matmul") is not None
    except ImportError:
        built = False
    if not built:
        return ("fastnet was installed without its compiled Cython kernels (%s): a source install on a "
                "machine without a working C compiler skips them. Install a binary wheel (pip install "
                "fastnet-mlp picks one on Linux x86_64), or install a C compiler with OpenMP (e.g. gcc "
                "and libgomp) and reinstall from source: pip install --force-reinstall --no-binary "
                "fastnet-mlp fastnet-mlp" % text)
    for lib in ("libgomp", "libomp", "libiomp"):
        if lib in text and "cannot open shared object" in text:
            return ("the OpenMP runtime the Cython kernels were built against is missing on this machine "
                    "(%s). Install it (Debian / Ubuntu: apt install libgomp1; Fedora / RHEL: dnf install "
                    "libgomp), or install fastnet's binary wheel, which bundles it." % text)
    return reason


def _load(name):
    if name not in _cache:
        try:
            mod = importlib.import_module(_MODULES[name])
            check = getattr(mod, "check", None)
            if check is not None:
                check()
            _cache[name] = (mod, None)
        except Exception as exc:  # noqa: BLE001 - any failure makes it unavailable
            _cache[name] = (None, _explain(name, sys.modules.get(_MODULES[name]), exc))
    return _cache[name]


def backend_status():
    """Dict mapping every backend name to None (usable) or why it is not."""
    return {name: _load(name)[1] for name in BACKENDS}


def available_backends():
    """Names of the backends that work on this machine, in BACKENDS order."""
    return [name for name in BACKENDS if _load(name)[1] is None]


def resolve_name(name):
    """Validate a backend name and resolve "auto"."""
    if not isinstance(name, str):
        raise TypeError("backend must be a string, one of %s or 'auto'; got %r"
                        % (", ".join(repr(b) for b in BACKENDS), name))
    if name == "auto":
        for cand in AUTO_ORDER:
            if _load(cand)[1] is None:
                return cand
        raise BackendUnavailable("no backend is available: %r" % backend_status())
    if name not in BACKENDS:
        raise ValueError("backend must be one of %s or 'auto'; got %r"
                         % (", ".join(repr(b) for b in BACKENDS), name))
    return name


def get_backend(name):
    """The module implementing the kernel contract for ``name`` (or "auto")."""
    name = resolve_name(name)
    mod, reason = _load(name)
    if mod is None:
        raise BackendUnavailable("backend %r is not available: %s" % (name, reason))
    return mod
