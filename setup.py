"""Build script: renders the elementwise twins from kernels/defs.py, then
cythonizes kernels/cython/*.pyx as fastnet._kernels.cython.* with OpenMP.

Environment variables:
  FASTNET_NATIVE=1   add -march=native (local builds only: such a binary is not
                     portable and must never go into a distributed wheel)
  FASTNET_NO_OPENMP=1  build the Cython kernels without OpenMP (serial prange)
"""
import os
import sys
import glob

from setuptools import setup, Extension

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


def extensions():
    import numpy
    from Cython.Build import cythonize

    openmp = sys.platform.startswith("linux") and not os.environ.get("FASTNET_NO_OPENMP")
    cflags = ["-O3", "-fno-math-errno", "-fno-trapping-math"]
    lflags = []
    if openmp:
        cflags.append("-fopenmp")
        lflags.append("-fopenmp")
    if os.environ.get("FASTNET_NATIVE"):
        cflags.append("-march=native")
    exts = []
    for pyx in sorted(glob.glob(os.path.join("kernels", "cython", "*.pyx"))):
        name = os.path.splitext(os.path.basename(pyx))[0]
        exts.append(Extension(
            "fastnet._kernels.cython." + name, [pyx],
            include_dirs=[numpy.get_include(), os.path.join("kernels", "cython")],
            extra_compile_args=cflags, extra_link_args=lflags,
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        ))
    return cythonize(exts, language_level=3, compiler_directives={
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
    zip_safe=False,
)
