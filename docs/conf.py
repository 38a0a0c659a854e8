"""Sphinx configuration: the API reference is generated from the installed
package's docstrings (autodoc / autosummary, NumPy-style sections through
napoleon), so build it where fastnet is installed (``.ci/run`` installs the
wheel): ``sphinx-build -W -b html docs build/docs-html``."""
import fastnet

project = "fastnet"
author = "the fastnet developers"
copyright = "the fastnet developers"
release = fastnet.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]
autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = True
nitpicky = False
intersphinx_mapping = {}
exclude_patterns = ["_build", "ARCHITECTURE.md", "FORMAT.md", "*.md", "requirements.txt"]
html_theme = "alabaster"
html_static_path = []
# markdown pages of the source tree (docs/ARCHITECTURE.md, docs/FORMAT.md) are copied
# next to the HTML so the guide can link to them; only those that exist
import os as _os
html_extra_path = [p for p in ("ARCHITECTURE.md", "FORMAT.md") if _os.path.exists(_os.path.join(_os.path.dirname(__file__), p))]
