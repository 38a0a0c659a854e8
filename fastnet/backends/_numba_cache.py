"""Where the numba backend keeps its compiled machine code.

numba caches a kernel next to its source (``fastnet/_kernels/numba/__pycache__``),
which a system-wide or read-only install cannot write.  For fastnet's own
kernels (no other numba code is affected) the folder is chosen once per process,
the first writable of:

1. ``$NUMBA_CACHE_DIR/numba_<hash>`` when ``NUMBA_CACHE_DIR`` is set (numba's
   own setting, honoured as numba does);
2. the installed package's ``fastnet/_kernels/numba/__pycache__`` (numba's
   default: one cache per installation);
3. the per-user folder :func:`user_cache_root` ``/numba_<hash>``:
   ``$FASTNET_CACHE_DIR``, else ``$XDG_CACHE_HOME/fastnet``, else
   ``~/.cache/fastnet`` on Linux (``~/Library/Caches/fastnet`` on macOS,
   ``%LOCALAPPDATA%\\fastnet\\Cache`` on Windows).  ``<hash>`` names the
   installation, so two environments never share (and fight over) one cache.

When none is writable the kernels run uncached -- each process compiles what it
uses again -- and a :class:`RuntimeWarning` says so; the backend stays
available.  ``python -m fastnet info`` prints the folder in use.
"""
import hashlib
import os
import sys
import tempfile
import warnings

from numba.core import caching as _caching
from numba.core import config as _config

_state = {"kernel_dir": None, "resolved": False, "path": None, "source": None, "tried": ()}


def user_cache_root():
    """The per-user folder fastnet caches in (see the module's docstring)."""
    env = os.environ.get("FASTNET_CACHE_DIR")
    if env:
        return os.path.abspath(os.path.expanduser(env))
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser(os.path.join("~", "AppData", "Local"))
        return os.path.join(base, "fastnet", "Cache")
    if sys.platform == "darwin":
        return os.path.expanduser(os.path.join("~", "Library", "Caches", "fastnet"))
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative value is ignored
        base = os.path.expanduser(os.path.join("~", ".cache"))
    return os.path.join(base, "fastnet")


def _writable(path):
    """Whether numba can store files in ``path`` (created if need be): the
    test numba itself applies (a temporary file), which also holds for root on
    a read-only file system, where permission bits alone would say yes."""
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        return True
    except OSError:
        return False


def candidates(kernel_dir):
    """[(source, folder)] in the order they are tried."""
    # numba's naming for a shared cache folder: <parent dir>_<sha1 of the source dir>
    sub = "numba_" + hashlib.sha1(kernel_dir.encode()).hexdigest()
    out = []
    if _config.CACHE_DIR:
        out.append(("NUMBA_CACHE_DIR", os.path.join(_config.CACHE_DIR, sub)))
    out.append(("package", os.path.join(kernel_dir, "__pycache__")))
    out.append(("user", os.path.join(user_cache_root(), sub)))
    return out


def resolve():
    """(folder, source) in use; (None, None) when running uncached.  Decided
    once per process, at the first kernel's decoration."""
    if not _state["resolved"]:
        tried = candidates(_state["kernel_dir"])
        for source, path in tried:
            if _writable(path):
                _state.update(path=path, source=source)
                break
        else:
            warnings.warn("fastnet: no writable folder for the numba backend's compiled kernels (tried %s); "
                          "they run uncached, so every process compiles them again (up to ~40 s). Set "
                          "FASTNET_CACHE_DIR to a writable folder." % ", ".join(p for _, p in tried),
                          RuntimeWarning, stacklevel=2)
        _state.update(resolved=True, tried=tuple(tried))
    return _state["path"], _state["source"]


class _FastnetLocator(_caching._SourceFileBackedLocatorMixin, _caching._CacheLocator):
    """numba cache locator for the files of fastnet's numba kernel folder only."""

    def __init__(self, py_func, py_file, path):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = path

    def get_cache_path(self):
        return self._cache_path

    @classmethod
    def from_function(cls, py_func, py_file):
        kernel_dir = _state["kernel_dir"]
        if kernel_dir is None or os.path.dirname(os.path.realpath(py_file)) != kernel_dir:
            return None
        path, _ = resolve()
        # uncached: a placeholder path; uncache() swaps in a NullCache before anything compiles
        return cls(py_func, py_file, path or os.path.join(kernel_dir, "__pycache__"))


def install(kernel_dir):
    """Put our locator first in numba's list (before the kernels are imported)."""
    _state["kernel_dir"] = os.path.realpath(kernel_dir)
    impl = getattr(_caching, "CacheImpl", None) or _caching._CacheImpl  # renamed in numba 0.62
    if _FastnetLocator not in impl._locator_classes:
        impl._locator_classes.insert(0, _FastnetLocator)


def uncache(dispatchers):
    """When no folder is writable: the kernels compile in memory only."""
    if _state["resolved"] and _state["path"] is None:
        for disp in dispatchers:
            if isinstance(getattr(disp, "_cache", None), _caching.FunctionCache):
                disp._cache = _caching.NullCache()
