"""The documentation site builds with warnings as errors, its links resolve, and the API is documented.

The build is the documented command (`python -m sphinx -W --keep-going -b html docs OUT`), offline:
MyST resolves every internal link (`page.md`, `page.md#anchor`, `#anchor`) and image against the
pages and their headings, and a link that resolves to nothing is a warning, hence an error.
External links are not followed.
"""

import html.parser
import importlib
import inspect
import os
import re
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("sphinx", reason="the docs tools come with the `test` and `docs` extras")
pytest.importorskip("myst_parser", reason="the docs tools come with the `test` and `docs` extras")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
sys.path.insert(0, DOCS)

import build_api  # noqa: E402
import conf  # noqa: E402


def sphinx_build(source, out):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(source), str(out)]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])


def parse(path):
    parser = _Links()
    with open(path, encoding="utf-8") as f:
        parser.feed(f.read())
    return parser


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    result = sphinx_build(DOCS, out)
    return out, result


def test_site_builds_without_warnings(site):
    out, result = site
    assert result.returncode == 0, result.stdout + result.stderr
    # Sphinx writes "path:line: WARNING: ..." (TensorFlow's own start-up lines are not its warnings).
    assert not re.search(r": WARNING: ", result.stderr), result.stderr


def test_every_page_is_built_and_in_the_sidebar(site):
    out, _ = site
    pages = conf._pages()
    assert {"getting_started", "api", "benchmarks", "changelog"} <= set(pages)
    index = parse(out / "index.html")
    for page in pages:
        assert (out / f"{page}.html").is_file(), page
        assert f"{page}.html" in index.hrefs, f"{page} is not in the sidebar"


def test_internal_links_and_anchors_resolve_in_the_html(site):
    """A second, independent check on the output: every local href names a built page and an id in it."""
    out, _ = site
    ids = {}
    broken = []
    for page in sorted(p for p in os.listdir(out) if p.endswith(".html")):
        for href in parse(out / page).hrefs:
            if href.startswith(("http://", "https://", "mailto:")) or href.startswith("_"):
                continue
            target, _, anchor = href.partition("#")
            target = target or page
            if not (out / target).is_file():
                broken.append(f"{page}: {href}")
                continue
            if anchor and target.endswith(".html"):
                if target not in ids:
                    ids[target] = parse(out / target).ids
                if anchor not in ids[target]:
                    broken.append(f"{page}: {href}")
    assert not broken, broken


def test_api_page_is_generated_from_the_current_docstrings(site):
    out, _ = site
    text = open(out / "api.html", encoding="utf-8").read()
    for module in build_api.modules():
        for name in importlib.import_module(module).__all__:
            assert f"{module}.{name}" in text, f"{module}.{name} is missing from the API page"


def test_broken_links_fail_the_build(tmp_path):
    """The same configuration turns a missing page, a missing anchor and a missing image into errors."""
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(os.path.join(DOCS, "conf.py"), source)
    (source / "index.md").write_text("# Home\n\n[Page](page.md)\n", encoding="utf-8")
    (source / "page.md").write_text(
        "# Page\n\n## Real heading\n\n[ok](#real-heading) [a](#no-such-heading) [b](missing.md) "
        "[c](index.md#nowhere)\n\n![d](img/none.png)\n",
        encoding="utf-8",
    )
    result = sphinx_build(source, tmp_path / "out")
    assert result.returncode != 0
    for target in ("no-such-heading", "missing.md", "nowhere", "img/none.png"):
        assert target in result.stderr, (target, result.stderr)
    assert "real-heading" not in result.stderr


def test_every_public_name_has_a_docstring():
    undocumented = []
    for module_name in build_api.modules():
        module = importlib.import_module(module_name)
        assert module.__doc__ and module.__doc__.strip(), f"module {module_name} has no docstring"
        for name in module.__all__:
            obj = getattr(module, name)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and not (obj.__doc__ or "").strip():
                undocumented.append(f"{module_name}.{name}")
    assert not undocumented, undocumented


def test_every_public_method_and_property_of_a_public_class_is_documented():
    """Its own docstring or the one it overrides (as `inspect.getdoc` and the API page read them)."""
    undocumented = []
    for module_name in build_api.modules():
        module = importlib.import_module(module_name)
        for name in module.__all__:
            cls = getattr(module, name)
            if not inspect.isclass(cls):
                continue
            for attr, value in vars(cls).items():
                if attr.startswith("_") or not (
                    callable(value) or isinstance(value, (property, staticmethod, classmethod))
                ):
                    continue
                if not (inspect.getdoc(getattr(cls, attr)) or "").strip():
                    undocumented.append(f"{module_name}.{name}.{attr}")
    assert not undocumented, sorted(set(undocumented))
