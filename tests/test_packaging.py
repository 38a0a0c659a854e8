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
