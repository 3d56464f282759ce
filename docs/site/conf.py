"""Sphinx configuration of the course's static site: the lessons, read with their stored outputs.

Built with Sphinx, MyST-NB and the Sphinx Book Theme (the engine of Jupyter Book 1), offline, from
the repository root (the source folder) with this folder as the configuration:

    sphinx-build -b html -c docs/site . _site

Nothing is executed: each lesson page shows the outputs stored in the notebook, which nbval checks
are exactly what running it produces. ``tests/test_site.py`` builds the site and checks it.
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

project = "CNN Lab"
author = "the CNN Lab contributors"
copyright = "2026, the CNN Lab contributors"

extensions = ["myst_nb", "static_widgets"]
root_doc = "docs/site/index"
# The source folder is the repository root: read only the site's pages, never tests or workbooks.
include_patterns = [
    "docs/site/index.md",
    "README.md",
    "CONTRIBUTING.md",
    "CHANGELOG.md",
    "notebooks/[0-9][0-9]_*.ipynb",
    "benchmarks/README.md",
    "tests/README.md",
]
exclude_patterns = ["_site", "**/.ipynb_checkpoints", ".venv", "venv", "workbooks"]

nb_execution_mode = "off"  # stored outputs only
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
# Offline pages: no widget JavaScript from a CDN; static_widgets puts a note where a live widget was.
nb_ipywidgets_js = {}

html_theme = "sphinx_book_theme"
html_title = "CNN Lab: convolutional networks in PyTorch, on a laptop CPU"
html_show_sourcelink = False
# index.html at the top of the site sends the browser to the home page.
html_extra_path = [str(HERE / "_extra")]
html_theme_options = {"home_page_in_toc": True, "show_navbar_depth": 1}
