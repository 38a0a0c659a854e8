"""Build script: renders the elementwise twins from kernels/defs.py, then
cythonizes kernels/cython/*.pyx as fastnet._kernels.cython.* with OpenMP.

Environment variables:
  FASTNET_NATIVE=1   add -march=native (local builds only: such a binary is not
                     portable and must never go into a distributed wheel)
  FASTNET_NO_OPENMP=1  build the Cython kernels without OpenMP (serial prange)

The Cython kernels are optional: without a working C compiler (or without
Cython) the package installs with the numpy and numba backends and one warning,
and ``fastnet.backend_status()`` says why the cython backend is missing.  A
compiler without OpenMP builds them serial.  ``FASTNET_REQUIRE_CYTHON=1`` makes
any of this an error instead (the wheel builds use it).
"""
import os
import sys
import glob

from setuptools import setup, Extension
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


def render_templates():
    """kernels/templates/X.tp -> kernels/<twin>/_generated_X (gitignored)."""
    import importlib.util
    path = os.path.join(HERE, "kernels", "render.py")
    if not os.path.exists(path):
        return
    spec = importlib.util.spec_from_file_location("_fastnet_render", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.render_all()


def cython_include_dir():
    """An include directory in which Cython finds our .pxd files under their
    installed names.

    The kernel modules cimport each other relatively (``from .matmul cimport
    matmul_c`` in ``fastnet._kernels.cython.network``).  Cython resolves that by
    the module's full name, i.e. it looks for ``fastnet/_kernels/cython/matmul.pxd``
    on its include path, but the sources live in ``kernels/cython/`` (package_dir
    maps ``kernels`` to ``fastnet._kernels``).  So ``build/cython_include`` gets
    ``fastnet/_kernels`` -> ``kernels`` as a symlink (a copy of the .pxd files where
    symlinks are not available; ``fastnet/`` there is a namespace directory).
    """
    import shutil
    root = os.path.join(HERE, "build", "cython_include")
    link = os.path.join(root, "fastnet", "_kernels")
    target = os.path.join(HERE, "kernels")
    if os.path.islink(link) and os.path.realpath(link) == os.path.realpath(target):
        return root
    if os.path.islink(link) or os.path.isfile(link):
        os.remove(link)
    elif os.path.isdir(link):
        shutil.rmtree(link)
    os.makedirs(os.path.dirname(link), exist_ok=True)
    try:
        os.symlink(target, link, target_is_directory=True)
    except (OSError, NotImplementedError, AttributeError):
        os.makedirs(os.path.join(link, "cython"))
        for pxd in glob.glob(os.path.join(target, "cython", "*.pxd")):
            shutil.copy2(pxd, os.path.join(link, "cython"))
    return root


_NO_KERNELS = ("WARNING: fastnet is installed WITHOUT its Cython kernels (%s). The numpy and numba "
               "backends work; for the faster cython backend install a binary wheel, or a C compiler "
               "with OpenMP (e.g. gcc and libgomp) and reinstall from source. "
               "fastnet.backend_status() reports this at run time.")


def _warn(msg):
    if os.environ.get("FASTNET_REQUIRE_CYTHON"):
        raise SystemExit("error: " + msg + " (FASTNET_REQUIRE_CYTHON is set)")
    bar = "*" * 78
    print("\n%s\n%s\n%s\n" % (bar, msg, bar), file=sys.stderr, flush=True)


_OPTIONAL_ERRORS = (OSError,)
try:
    from setuptools.errors import CCompilerError, CompileError, ExecError, LinkError, PlatformError
    _OPTIONAL_ERRORS += (CCompilerError, CompileError, ExecError, LinkError, PlatformError)
except ImportError:  # setuptools < 59
    from distutils.errors import CCompilerError, DistutilsExecError, DistutilsPlatformError
    _OPTIONAL_ERRORS += (CCompilerError, DistutilsExecError, DistutilsPlatformError)


class OptionalBuildExt(build_ext):
    """Build the Cython kernels when a C compiler works; else install without them.

    A compiler is probed with a tiny C file first (with -fopenmp when the
    extensions ask for it, falling back to a serial build), so a machine without
    one fails fast with one warning, not with a compiler error per module.  A
    build that still fails half-way removes what it built: the backend is
    whole or absent, never half there."""

    def _probe(self, cflags, lflags):
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write("#ifdef _OPENMP\n#include <omp.h>\n#endif\n"
                        "int fastnet_probe(void) {\n#ifdef _OPENMP\nreturn omp_get_max_threads();\n"
                        "#else\nreturn 1;\n#endif\n}\n")
            try:
                objs = self.compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
                self.compiler.link_shared_object(objs, os.path.join(tmp, "probe.so"),
                                                 extra_postargs=lflags)
            except _OPTIONAL_ERRORS as exc:
                return "%s: %s" % (type(exc).__name__, str(exc).strip() or "failed")
        return None

    def build_extensions(self):
        if not self.extensions:
            return
        failed = self._probe([], [])
        if failed:
            _warn(_NO_KERNELS % ("no working C compiler: " + failed))
            self.extensions = []
            return
        if any("-fopenmp" in ext.extra_compile_args for ext in self.extensions):
            failed = self._probe(["-fopenmp"], ["-fopenmp"])
            if failed:
                _warn("WARNING: the C compiler has no OpenMP (%s); fastnet's Cython kernels are built "
                      "serial (one thread). Install OpenMP (e.g. libgomp / libomp) and reinstall for "
                      "threads, or install a binary wheel." % failed)
                for ext in self.extensions:
                    ext.extra_compile_args = [a for a in ext.extra_compile_args if a != "-fopenmp"]
                    ext.extra_link_args = [a for a in ext.extra_link_args if a != "-fopenmp"]
        try:
            super().build_extensions()
        except _OPTIONAL_ERRORS as exc:
            for ext in self.extensions:
                out = self.get_ext_fullpath(ext.name)
                if os.path.exists(out):
                    os.remove(out)
            _warn(_NO_KERNELS % ("the build failed: %s: %s" % (type(exc).__name__, exc)))
            self.extensions = []


def extensions():
    import numpy
    try:
        from Cython.Build import cythonize
    except ImportError:
        _warn(_NO_KERNELS % "Cython is not installed")
        return []

    openmp = sys.platform.startswith("linux") and not os.environ.get("FASTNET_NO_OPENMP")
    # -g0: no DWARF in the shipped .so (Python's CFLAGS add -g; it was ~80% of their size)
    cflags = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-g0"]
    lflags = []
    if openmp:
        cflags.append("-fopenmp")
        lflags.append("-fopenmp")
    macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
    if os.environ.get("FASTNET_NATIVE"):
        cflags.append("-march=native")
        macros.append(("FASTNET_NATIVE_BUILD", "1"))
    include = cython_include_dir()
    exts = []
    for pyx in sorted(glob.glob(os.path.join("kernels", "cython", "*.pyx"))):
        name = os.path.splitext(os.path.basename(pyx))[0]
        # IEEE rounding as the numba twin (no fast-math, no contraction) except in the
        # matmul, whose FMA kernels are contracted on purpose (both twins fuse there);
        # matters with -march=native, where gcc would otherwise fuse a * b + c anywhere
        contract = [] if name == "matmul" else ["-ffp-contract=off"]
        exts.append(Extension(
            "fastnet._kernels.cython." + name, [pyx],
            include_dirs=[numpy.get_include(), os.path.join("kernels", "cython")],
            extra_compile_args=cflags + contract, extra_link_args=lflags,
            define_macros=macros,
        ))
    return cythonize(exts, language_level=3, include_path=[include], compiler_directives={
        "boundscheck": False, "wraparound": False, "cdivision": True,
        "initializedcheck": False, "nonecheck": False,
    }, annotate=bool(os.environ.get("FASTNET_ANNOTATE")))


render_templates()

setup(
    packages=[
        "fastnet", "fastnet.backends", "fastnet.datasets",
        "fastnet._kernels", "fastnet._kernels.cython", "fastnet._kernels.numba",
    ],
    package_dir={"fastnet._kernels": "kernels"},
    package_data={"fastnet.datasets": ["data/*"], "fastnet._kernels.cython": ["*.pxd"]},
    exclude_package_data={"": ["*.c", "*.cpp", "*.html"]},
    ext_modules=extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
    # compile the extension modules in parallel (pip install / pip wheel too)
    options={"build_ext": {"parallel": os.cpu_count() or 1}},
    zip_safe=False,
)
