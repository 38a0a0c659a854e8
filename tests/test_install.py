"""fastnet installed where a user puts it: read-only, without its Cython
kernels, on a machine without libgomp; and what ``python -m fastnet`` reports.

Each case copies the installed package (fastnet and fastnet._kernels, built
extensions included) into a temporary site folder and runs a fresh interpreter
on it, so the environment of this process is never touched."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastnet
import fastnet._kernels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CLEAN_ENV = ("NUMBA_CACHE_DIR", "FASTNET_CACHE_DIR", "XDG_CACHE_HOME", "PYTHONPATH", "NUMBA_DISABLE_JIT")


def _copy_install(tmp_path, extensions=True):
    """A copy of the installed package under tmp_path/site; returns that folder."""
    site = tmp_path / "site"
    skip = shutil.ignore_patterns("__pycache__", "*.c", "*.html", "_kernels")
    shutil.copytree(os.path.dirname(os.path.abspath(fastnet.__file__)), site / "fastnet", ignore=skip)
    skip_k = ["__pycache__", "*.c", "*.html"] + ([] if extensions else ["*.so", "*.pyd"])
    shutil.copytree(os.path.dirname(os.path.abspath(fastnet._kernels.__file__)), site / "fastnet" / "_kernels",
                    ignore=shutil.ignore_patterns(*skip_k))
    return site


def _run(site, code, tmp_path, **env):
    full = {k: v for k, v in os.environ.items() if k not in _CLEAN_ENV}
    full.update(PYTHONPATH=str(site), **env)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full,
                         cwd=str(tmp_path), timeout=600)
    assert out.returncode == 0, out.stderr
    return out


_NUMBA_CASE = """if 1:
    import glob, json, os, warnings
    import numpy as np
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import fastnet
        from fastnet.backends import get_backend
        status = fastnet.backend_status()
        nb = get_backend("numba")
    assert fastnet.__file__.startswith(%(site)r), fastnet.__file__
    A = np.arange(12.0).reshape(4, 3)
    out = np.empty((2, 3))
    nb.gather_rows(A, np.array([3, 1]), out, 1)
    cache = nb.cache_dir()
    print(json.dumps(dict(
        status=status, cache=cache, out=out.tolist(), cache_type=type(nb._mm.matmul._cache).__name__,
        files=sorted(os.path.basename(p) for p in glob.glob(os.path.join(cache or "/nonexistent", "*"))),
        warnings=[str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)])))
"""


def _numba_case(tmp_path, site, **env):
    out = _run(site, _NUMBA_CASE % {"site": str(site)}, tmp_path, **env)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif("numba" not in fastnet.available_backends(), reason="numba backend unavailable")
def test_read_only_install_caches_numba_kernels_per_user(tmp_path):
    site = _copy_install(tmp_path)
    # the package's __pycache__ is a file: nothing can be created there, even by root
    (site / "fastnet" / "_kernels" / "numba" / "__pycache__").write_text("read-only install")
    xdg = tmp_path / "xdg"
    rep = _numba_case(tmp_path, site, XDG_CACHE_HOME=str(xdg))
    assert rep["status"]["numba"] is None
    assert rep["cache"].startswith(str(xdg / "fastnet" / "numba_")), rep["cache"]
    assert rep["out"] == [[9.0, 10.0, 11.0], [3.0, 4.0, 5.0]]
    assert any(f.startswith("reduce.gather_rows") and f.endswith(".nbi") for f in rep["files"]), rep["files"]
    assert "fastnet-numba-config.txt" in rep["files"] and rep["warnings"] == []
    # the CLI names the folder
    info = _run(site, "import sys, fastnet.__main__ as m; sys.exit(m.main(['info']))", tmp_path,
                XDG_CACHE_HOME=str(xdg)).stdout
    assert "numba cache: %s (the per-user folder)" % rep["cache"] in info
    # FASTNET_CACHE_DIR overrides the per-user folder
    mine = tmp_path / "mine"
    rep2 = _numba_case(tmp_path, site, XDG_CACHE_HOME=str(xdg), FASTNET_CACHE_DIR=str(mine))
    assert rep2["cache"].startswith(str(mine / "numba_")) and rep2["out"] == rep["out"]


@pytest.mark.skipif("numba" not in fastnet.available_backends(), reason="numba backend unavailable")
def test_nothing_writable_runs_uncached_with_a_warning(tmp_path):
    site = _copy_install(tmp_path)
    (site / "fastnet" / "_kernels" / "numba" / "__pycache__").write_text("read-only install")
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, so no folder can be made under it")
    rep = _numba_case(tmp_path, site, XDG_CACHE_HOME=str(blocked / "cache"),
                      NUMBA_CACHE_DIR=str(blocked / "numba"))
    assert rep["status"]["numba"] is None           # still available
    assert rep["cache"] is None and rep["cache_type"] == "NullCache"
    assert rep["out"] == [[9.0, 10.0, 11.0], [3.0, 4.0, 5.0]]
    assert len(rep["warnings"]) == 1 and "run uncached" in rep["warnings"][0]
    assert "FASTNET_CACHE_DIR" in rep["warnings"][0]
    assert sorted(os.listdir(tmp_path)) == ["blocked", "site"]  # nothing written anywhere


_STATUS = "import json, fastnet; print(json.dumps(fastnet.backend_status()))"


def test_install_without_cython_kernels_says_why_and_how(tmp_path):
    """What a source install on a machine without a C compiler leaves."""
    site = _copy_install(tmp_path, extensions=False)
    status = json.loads(_run(site, _STATUS, tmp_path).stdout.strip().splitlines()[-1])
    assert status["numpy"] is None
    reason = status["cython"]
    assert "installed without its compiled Cython kernels" in reason
    assert "binary wheel" in reason and "C compiler" in reason and "rebuild" not in reason


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF / libgomp")
@pytest.mark.skipif("cython" not in fastnet.available_backends(), reason="cython backend unavailable")
def test_missing_libgomp_is_reported_as_such(tmp_path):
    """The dynamic loader's own failure: the copied extensions ask for a
    libgomp soname that no machine has (same length, so the ELF stays valid)."""
    site = _copy_install(tmp_path)
    patched = 0
    for dirpath, _, files in os.walk(site / "fastnet" / "_kernels" / "cython"):
        for name in files:
            if name.endswith(".so"):
                path = os.path.join(dirpath, name)
                data = open(path, "rb").read()
                if b"libgomp.so.1\0" in data:
                    open(path, "wb").write(data.replace(b"libgomp.so.1\0", b"libgomp.so.9\0"))
                    patched += 1
    if not patched:
        pytest.skip("these extensions do not link libgomp.so.1 (built without OpenMP, or vendored)")
    status = json.loads(_run(site, _STATUS, tmp_path).stdout.strip().splitlines()[-1])
    reason = status["cython"]
    assert "OpenMP runtime" in reason and "libgomp.so.9" in reason and "missing" in reason
    assert "apt install libgomp1" in reason and "rebuild" not in reason
    assert status["numpy"] is None and status["numba"] is None


# ---------------------------------------------------------------------------
# python -m fastnet --version / info
# ---------------------------------------------------------------------------
def _cli(*args):
    return subprocess.run([sys.executable, "-m", "fastnet", *args], capture_output=True, text=True,
                          cwd=os.path.dirname(ROOT), timeout=300)


def test_version_flag():
    out = _cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == "fastnet " + fastnet.__version__


def test_info_lists_versions_backends_isa_threads_and_cache():
    import numba

    out = _cli("info")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("fastnet %s " % fastnet.__version__)
    assert "  numpy          %s" % np.__version__ in text
    assert "  numba          %s" % numba.__version__ in text
    assert "threads: %d" % fastnet.get_num_threads() in text
    for name, reason in fastnet.backend_status().items():
        assert "  %-7s %s" % (name, "available" if reason is None else "unavailable: " + reason) in text
    if "cython" in fastnet.available_backends():
        info = fastnet.backends.get_backend("cython").info()
        assert "cython: matmul ISA %s, elementwise ISA %s" % (info["matmul_isa"], info["optimizer_isa"]) in text
    if "numba" in fastnet.available_backends():
        assert "numba cache: %s (" % fastnet.backends.get_backend("numba").cache_dir() in text
