"""Sphinx configuration of vascalc's documentation (build: ``make docs``; ``make test`` builds it
with warnings as errors). Pages are Markdown (MyST); the API reference is autodoc over the
package's numpydoc docstrings (napoleon); the column, error, flag, config-key and profile
tables are written from vascalc's registries at every build (``_ext/vascalc_reference.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

from vascalc import __version__  # noqa: E402

project = "vascalc"
author = "vascalc developers"
copyright = "vascalc developers, BSD-3-Clause"
version = release = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "vascalc_reference",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "generated", "_ext"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]
suppress_warnings = ["myst.header"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = False
napoleon_numpy_docstring = True

html_theme = "pydata_sphinx_theme"
html_title = f"vascalc {__version__}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_static_path: list[str] = []
html_sidebars = {"**": []}  # one level of pages: the top bar is the navigation
