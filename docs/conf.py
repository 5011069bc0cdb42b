"""Sphinx configuration of the documentation site.

Build it from the repository root (the `docs` extra, also part of `test`, brings the tools):

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The guides are the Markdown pages of this folder, read by MyST, shown with the Furo theme and a
copy button on every code block (sphinx-copybutton). The API reference (`api.md`, one page per
module in `api/`) is generated from the docstrings by `docs/build_api.py`, which this
configuration runs before the pages are read: a build always shows the current docstrings and
rewrites the committed pages that changed (commit them; `tests/test_docs_site.py` checks that they
are current). The sidebar follows `NAV` below; a page of this folder that `NAV` does not name is
still built and listed under "More guides", so a new page never breaks the build.
"""

from __future__ import annotations

import os
import sys

DOCS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(DOCS)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the API page imports rl, hence TensorFlow
sys.path.insert(0, DOCS)  # build_api
sys.path.insert(0, ROOT)  # the rl package, when it is not installed

project = "keras-rl3"
author = "keras-rl3 contributors"
copyright = "keras-rl3 contributors, MIT License"

extensions = ["myst_parser", "sphinx_copybutton"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "README.md"]

# GitHub-style anchors for headings down to level 4 (the API reference's methods), so that
# links such as `ddpg.md#saving-and-loading-weights` work on GitHub and on the site alike.
myst_heading_anchors = 4
myst_enable_extensions = ["deflist"]
# Code fences without a language (the guides' pseudo-code: `s'`, `Q'_i`) are plain text, not Python.
highlight_language = "text"
suppress_warnings: list[str] = []

html_theme = "furo"
html_title = "keras-rl3"
html_theme_options = {
    "sidebar_hide_name": False,
    "navigation_with_keys": True,
    "top_of_page_buttons": [],
}
# A wider text column, so that code lines of 120 characters fit at 1280 px (see _static/custom.css).
html_static_path = ["_static"] if os.path.isdir(os.path.join(DOCS, "_static")) else []
html_css_files = ["custom.css"] if html_static_path else []
html_copy_source = False
# The copy button leaves out prompts (`>>> `, `$ `) and the output lines that follow them.
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True
copybutton_only_copy_prompt_lines = True
html_show_sourcelink = False

# The sidebar: (caption, pages). Pages that do not exist (yet) are left out.
NAV = [
    ("Start here", ["getting_started", "agents", "tips"]),
    ("Agents", ["ddpg", "td3", "sac", "crossq", "ppo", "dqn", "naf", "cem", "policy"]),
    (
        "Guides",
        [
            "monitoring",
            "checkpoints",
            "inference",
            "custom_environments",
            "vector",
            "offline",
            "replay",
            "recommendation",
            "distributed",
            "writing_an_agent",
            "troubleshooting",
            "migration",
        ],
    ),
    ("Reference", ["api", "benchmarks", "results", "changelog"]),
]


def _pages() -> list[str]:
    """The Markdown pages of this folder, without suffix."""
    return sorted(
        name[:-3]
        for name in os.listdir(DOCS)
        if name.endswith(".md") and name not in ("index.md", "README.md") and not name.startswith(".")
    )


def toctrees() -> str:
    """The hidden toctrees appended to the index: NAV's existing pages, then any other page."""
    pages = _pages()
    listed = {page for _, names in NAV for page in names}
    sections = [(caption, [p for p in names if p in pages]) for caption, names in NAV]
    others = [p for p in pages if p not in listed]
    if others:
        sections.append(("More guides", others))
    blocks = []
    for caption, names in sections:
        if names:
            body = "\n".join(names)
            blocks.append(f"\n\n```{{toctree}}\n:caption: {caption}\n:hidden:\n:maxdepth: 2\n\n{body}\n```\n")
    return "".join(blocks)


def _write_api_pages(app) -> None:
    """Regenerates the API reference from the docstrings before the pages are read.

    Only where `build_api.py` sits beside this file: a copy of this configuration elsewhere (the
    tests build small sites with it) builds just its own pages.
    """
    if not os.path.isfile(os.path.join(DOCS, "build_api.py")):
        return
    import build_api

    changed = build_api.write()
    if changed:
        from sphinx.util import logging

        logging.getLogger(__name__).info("API reference: rewrote %s", ", ".join(changed))


def _on_source_read(app, docname: str, source: list[str]) -> None:
    if docname == "index":
        source[0] += toctrees()


def _always_reread(app, env, added, changed, removed) -> list[str]:
    """The index's toctrees depend on which pages exist, which Sphinx does not track: re-read it."""
    return ["index"]


def setup(app):
    app.connect("builder-inited", _write_api_pages)
    app.connect("source-read", _on_source_read)
    app.connect("env-get-outdated", _always_reread)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
