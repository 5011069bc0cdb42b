"""Sphinx configuration of the documentation site.

Build it from the repository root (the `docs` extra, also part of `test`, brings the tools):

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The guides are the Markdown pages of this folder, read by MyST. The API reference is generated
from the docstrings at build time: the page `api` is replaced, as it is read, by the output of
`docs/build_api.py` (the committed `docs/api.md` is the same text, for reading on GitHub).
The sidebar follows `NAV` below; a page of this folder that `NAV` does not name is still built
and listed under "More guides", so a new page never breaks the build.
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

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "README.md"]

# GitHub-style anchors for headings down to level 4 (the API reference's methods), so that
# links such as `ddpg.md#saving-and-loading-weights` work on GitHub and on the site alike.
myst_heading_anchors = 4
myst_enable_extensions = ["deflist"]
suppress_warnings: list[str] = []

html_theme = "alabaster"
html_title = "keras-rl3"
html_theme_options = {
    "description": "Keras-style reinforcement learning on Keras 3, TensorFlow 2 and gymnasium",
    "fixed_sidebar": True,
    "page_width": "1200px",
    "sidebar_width": "240px",
    "show_relbars": True,
}
html_sidebars = {"**": ["about.html", "searchbox.html", "navigation.html", "relations.html"]}
html_static_path: list[str] = []
html_show_sourcelink = False

# The sidebar: (caption, pages). Pages that do not exist (yet) are left out.
NAV = [
    ("Start here", ["getting_started", "agents", "tips"]),
    ("Agents", ["ddpg", "td3", "sac", "dqn", "naf", "cem", "policy"]),
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
    ("Reference", ["api", "benchmarks", "changelog"]),
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


def _on_source_read(app, docname: str, source: list[str]) -> None:
    if docname == "index":
        source[0] += toctrees()
    elif docname == "api":
        import build_api

        source[0] = build_api.build()


def _always_reread(app, env, added, changed, removed) -> list[str]:
    """The index's toctrees and the API page depend on files Sphinx does not track: re-read both."""
    return ["index", "api"]


def setup(app):
    app.connect("source-read", _on_source_read)
    app.connect("env-get-outdated", _always_reread)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
