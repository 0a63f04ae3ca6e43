"""Sphinx configuration of the course site (sphinx-book-theme + myst-nb), used by scripts/build_site.py.

The site is built from a staged copy of the committed notebooks (nothing is executed): build_site.py
writes the pages into a source folder, then runs ``sphinx-build -c docs/book <stage> <out>``.
Everything a page loads is served from the site itself: no CDN (plotly.js and MathJax are copied into
``_static/`` after the build and only pages that use them load them).
"""
from __future__ import annotations

import json
import os

project = "Linear attention, read along"
author = "the linattn_edu authors"
copyright = "the linattn_edu authors · code MIT, text CC BY 4.0"
language = "en"

extensions = ["myst_nb"]
# the staged notebooks carry their stored outputs; never run them
nb_execution_mode = "off"
nb_ipywidgets_js = {}  # stored widget views are removed by the staging step; never load the CDN's widget manager
nb_merge_streams = True
nb_output_stderr = "remove"
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_dmath_double_inline = True
myst_heading_anchors = 3
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type", "misc.highlighting_failure"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# MathJax 3 from the site itself (copied to _static/mathjax/ by build_site.py), on pages with math only
mathjax_path = "mathjax/tex-chtml-full.js"
mathjax3_config = {"chtml": {"fontURL": "_static/mathjax/output/chtml/fonts/woff-v2"}}

_site = json.loads(os.environ.get("LINATTN_SITE_CONFIG", "{}"))  # repository, branch (pyproject.toml), hub (--hub-url)

html_theme = "sphinx_book_theme"
html_title = project
html_static_path = ["_static"]
html_css_files = ["linattn.css", "linattn-icons.css"]
html_js_files = ["linattn.js"]
html_last_updated_fmt = None
html_show_sourcelink = False
html_copy_source = True  # the download button offers each page's .ipynb
html_theme_options = {
    "repository_url": _site.get("repository", ""),
    "repository_branch": _site.get("branch", "main"),
    "path_to_docs": "notebooks",
    "use_repository_button": bool(_site.get("repository")),
    "use_download_button": True,
    "use_fullscreen_button": False,
    "launch_buttons": {"binderhub_url": "https://mybinder.org", "colab_url": "https://colab.research.google.com",
                       "notebook_interface": "jupyterlab",
                       # a class's own JupyterHub (nbgitpuller pulls the course into each student's home)
                       "jupyterhub_url": _site.get("hub", "")},
    "show_toc_level": 2,
    "home_page_in_toc": True,
    "navigation_with_keys": False,
    "show_navbar_depth": 1,
    "pygments_light_style": "default",
    "pygments_dark_style": "github-dark",
    "icon_links": [],
    "article_header_start": ["toggle-primary-sidebar.html"],
}
html_sidebars = {"**": ["navbar-logo.html", "search-button-field.html", "sbt-sidebar-nav.html"]}


def _page_assets(app, pagename, templatename, context, doctree):
    """plotly.js only on pages that draw a plotly figure (4.6 MiB that other pages need not load)."""
    body = context.get("body", "")
    if "plotly-graph-div" in body:
        app.add_js_file("plotly.min.js", priority=400)


def setup(app):
    app.connect("html-page-context", _page_assets)
