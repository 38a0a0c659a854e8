"""The suite tests the installed package, and the README's commands stay true."""
import os
import re

import pytest

import fastnet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_ci_runs_the_readme_test_command():
    readme = open(os.path.join(ROOT, "README.md")).read()
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    cmd = re.search(r"^python3 -m venv \.venv-test .*$", ci, re.M).group(0)
    assert cmd in readme


@pytest.mark.skipif(not os.environ.get("FASTNET_REQUIRE_INSTALLED"), reason="only in CI (.ci/run)")
def test_imports_the_installed_package_with_every_backend():
    assert not os.path.abspath(fastnet.__file__).startswith(os.path.join(ROOT, "fastnet") + os.sep), \
        "tests imported the source tree, not the installed package"
    assert fastnet.backend_status() == {"numpy": None, "numba": None, "cython": None}


# ---------------------------------------------------------------------------
# the distribution: its name, version and wheel builds
# ---------------------------------------------------------------------------
def _pyproject():
    return open(os.path.join(ROOT, "pyproject.toml")).read()


def test_distribution_name_and_single_sourced_version():
    text = _pyproject()
    assert re.search(r'^name = "fastnet-mlp"$', text, re.M)     # "fastnet" on PyPI is another project
    assert re.search(r'^dynamic = \["version"\]$', text, re.M)
    assert re.search(r'^version = \{ attr = "fastnet.__version__" \}$', text, re.M)
    assert re.fullmatch(r"\d+\.\d+\.\d+", fastnet.__version__)
    changelog = open(os.path.join(ROOT, "CHANGELOG.md")).read()
    assert "## %s" % fastnet.__version__ in changelog


def test_readme_installs_the_distribution_by_its_name():
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert "pip install fastnet-mlp" in readme
    assert not re.search(r"pip install (-\S+ )*fastnet(\[|\s|$)", readme), "the PyPI name is fastnet-mlp"


@pytest.mark.skipif(not os.environ.get("FASTNET_REQUIRE_INSTALLED"), reason="only in CI (.ci/run)")
def test_installed_metadata_matches_the_package():
    from importlib import metadata
    assert metadata.version("fastnet-mlp") == fastnet.__version__
    assert "fastnet-mlp" in metadata.packages_distributions()["fastnet"]


def test_cibuildwheel_builds_every_supported_python():
    """[tool.cibuildwheel] names the intended builds (cibuildwheel reads the
    configuration without Docker); pip install cibuildwheel to run this."""
    import shutil
    import subprocess
    import sys
    exe = shutil.which("cibuildwheel", path=os.path.dirname(sys.executable)) or shutil.which("cibuildwheel")
    if exe is None:
        pytest.skip("cibuildwheel is not installed (.ci/run installs it)")
    out = subprocess.run([exe, "--print-build-identifiers", "--platform", "linux", ROOT],
                         capture_output=True, text=True, check=True, cwd=ROOT, timeout=120)
    assert out.stdout.split() == ["cp310-manylinux_x86_64", "cp311-manylinux_x86_64",
                                  "cp312-manylinux_x86_64", "cp313-manylinux_x86_64"]
    text = _pyproject()
    assert 'manylinux-x86_64-image = "manylinux_2_28"' in text
    assert "tests/test_smoke.py" in re.search(r"^test-command = .*$", text, re.M).group(0)
    assert 'FASTNET_REQUIRE_CYTHON = "1"' in text


def test_shipped_builds_are_portable():
    """-march=native only when asked for (FASTNET_NATIVE), never by the wheel builds."""
    setup = open(os.path.join(ROOT, "setup.py")).read()
    assert re.search(r'if os.environ.get\("FASTNET_NATIVE"\):\n\s+cflags.append\("-march=native"\)', setup)
    script = open(os.path.join(ROOT, ".ci", "build_wheels.sh")).read()
    assert "unset FASTNET_NATIVE" in script and "auditwheel repair" in script and "auditwheel show" in script
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    assert ".ci/build_wheels.sh" in ci and "sphinx-build -W" in ci and "--no-index --no-deps torch==2.13.0" in ci
    assert not re.search(r"pip install(\s+-\S+)*\s+torch(?!==2\.13\.0)", ci)  # never torch from an index


def test_every_c_header_the_kernels_include_ships_in_the_sdist():
    """A header a .pyx (or template) includes must sit next to it, where
    setup.py's include_dirs finds it, and be matched by MANIFEST.in, or a build
    from the sdist fails."""
    import fnmatch
    import glob
    sources = glob.glob(os.path.join(ROOT, "kernels", "cython", "*.pyx"))
    sources += glob.glob(os.path.join(ROOT, "kernels", "templates", "*.pyx.tp"))
    headers = set()
    for path in sources:
        text = open(path).read()
        headers.update(re.findall(r'cdef extern from "([\w.]+\.h)"', text))
        headers.update(re.findall(r'#include "([\w.]+\.h)"', text))
    assert {"fn_math.h", "matmul_kernels.h"} <= headers
    manifest = open(os.path.join(ROOT, "MANIFEST.in")).read()
    patterns = re.search(r"^recursive-include kernels (.*)$", manifest, re.M).group(1).split()
    for h in sorted(headers):
        assert os.path.isfile(os.path.join(ROOT, "kernels", "cython", h)), h
        assert any(fnmatch.fnmatch(h, p) for p in patterns), "MANIFEST.in does not ship " + h
