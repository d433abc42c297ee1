"""Sphinx configuration of the cyfes documentation site (`make docs`)."""
from __future__ import annotations

import sys
from pathlib import Path

import cyfes

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "cyfes"
author = "The cyfes developers"
copyright = "the cyfes developers, MIT licence"
release = version = cyfes.__version__

extensions = [
    "myst_parser",  # the pages are Markdown, readable on a forge too
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",  # the API's docstrings are numpydoc, as numpy's, scipy's and KDEpy's
    "cli_help",  # the CLI reference: each command's --help, rendered from its argparse parser
    "matplotlib.sphinxext.plot_directive",  # the tutorial's figures are drawn by its own code at build time
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
templates_path = ["_templates"]
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]

autosummary_generate = True
autodoc_typehints = "none"  # numpydoc's Parameters sections say the types
numpydoc_show_class_members = False
numpydoc_xref_param_type = False

plot_include_source = True
plot_working_directory = str(Path(__file__).parent)  # the tutorial reads ../tests/data
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 100)]

html_theme = "pydata_sphinx_theme"
html_title = f"cyfes {release}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2,
                      # the help texts are pre-wrapped wider than the content column beside a page outline
                      "secondary_sidebar_items": {"cli-reference": []}}
