"""The course as a static website: it builds, and every lesson, image and internal link is there.

The site is built once per test session with Sphinx + MyST-NB + the Sphinx Book Theme (the engine of
Jupyter Book 1) from ``docs/site/conf.py``, into a temporary folder, from the lessons' stored
outputs (nothing is executed). Where those packages are missing the tests are skipped with the
install command, except in CI (``CI=true``), where the site must build.
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

pytestmark = pytest.mark.slow  # builds the whole site: not for the quick run (tests/README.md)

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted(p for p in (ROOT / "notebooks").glob("*.ipynb") if re.match(r"^\d\d_", p.name))
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
IMAGE_MIMES = ("image/png", "image/svg+xml", "image/jpeg")


class _Page(HTMLParser):
    """The images, links and element ids of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "img" and attrs.get("src"):
            self.images.append(attrs["src"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])

    def handle_data(self, data):
        self.text.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    missing = [m for m in ("sphinx", "myst_nb", "sphinx_book_theme") if importlib.util.find_spec(m) is None]
    if missing:
        reason = f"the site builder is not installed ({', '.join(missing)}): pip install -e \".[site]\""
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the site must build in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-c", str(ROOT / "docs" / "site"), str(ROOT), str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert done.returncode == 0, f"the site did not build:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    # A warning is a page, image or cross-reference that Sphinx could not resolve: none is allowed.
    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    assert not warnings, "the site built with warnings:\n" + "\n".join(warnings[:20])
    return out


def _pages(site: Path) -> list[Path]:
    return sorted(p for p in site.rglob("*.html") if "_static" not in p.parts)


def test_every_lesson_has_a_page_with_its_title(site):
    assert LESSONS, "no lessons found"
    for lesson in LESSONS:
        page = site / "notebooks" / f"{lesson.stem}.html"
        assert page.is_file(), f"no page for {lesson.name}; add it to docs/site/index.md's toctree"
        nb = nbformat.read(str(lesson), as_version=4)
        title = next(c.source.splitlines()[0].lstrip("# ").strip() for c in nb.cells if c.cell_type == "markdown")
        title = re.sub(r"[`*_]", "", title)  # markdown code and emphasis marks are not shown
        text = " ".join(_parse(page).text)
        assert title.split(":")[0] in text, f"{page.name} does not show the lesson's title {title!r}"


def test_every_figure_of_every_lesson_is_on_its_page_and_present(site):
    for lesson in LESSONS:
        nb = nbformat.read(str(lesson), as_version=4)
        stored = sum(any(m in out.get("data", {}) for m in IMAGE_MIMES)
                     for c in nb.cells if c.cell_type == "code" for out in c.get("outputs", []))
        in_markdown = sum(len(re.findall(r"!\[[^\]]*\]\(|<img ", c.source)) for c in nb.cells if c.cell_type == "markdown")
        page = site / "notebooks" / f"{lesson.stem}.html"
        images = _parse(page).images
        assert len(images) >= stored + in_markdown, (
            f"{page.name}: {len(images)} images, but the lesson stores {stored} figures and shows {in_markdown} pictures")
    for page in _pages(site):
        for src in _parse(page).images:
            if src.startswith("data:"):
                continue
            assert not urlsplit(src).scheme, f"{page.relative_to(site)} loads an image from the network: {src}"
            target = (page.parent / unquote(urlsplit(src).path)).resolve()
            assert target.is_file() and target.stat().st_size > 0, f"{page.relative_to(site)}: missing image {src}"


def test_no_internal_link_is_broken(site):
    checked = 0
    for page in _pages(site):
        parsed = _parse(page)
        for href in parsed.links:
            parts = urlsplit(href)
            if parts.scheme or href.startswith("mailto:"):
                continue
            target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            assert target.exists(), f"{page.relative_to(site)}: broken link {href}"
            if parts.fragment and target.suffix == ".html":
                ids = parsed.ids if target == page else _parse(target).ids
                assert parts.fragment in ids, f"{page.relative_to(site)}: link {href} names no element in {target.name}"
            checked += 1
    assert checked > 50, f"only {checked} internal links: the pages look empty"


def test_lessons_link_to_each_other_on_the_site(site):
    links = _parse(site / "notebooks" / "01_why_convolution.html").links
    assert any(urlsplit(h).path.endswith("02_output_size.html") for h in links), "lesson 01 should link to lesson 02's page"


def test_widgets_appear_as_a_note_beside_their_static_figures(site):
    seen = 0
    for lesson in LESSONS:
        nb = nbformat.read(str(lesson), as_version=4)
        widget_cells = sum(any(WIDGET_MIME in out.get("data", {}) for out in c.get("outputs", []))
                           for c in nb.cells if c.cell_type == "code")
        html = (site / "notebooks" / f"{lesson.stem}.html").read_text(encoding="utf-8")
        assert WIDGET_MIME not in html and "VBox(children=" not in html, f"{lesson.stem}: a raw widget is on the page"
        assert html.count("course-widget-note") == widget_cells, f"{lesson.stem}: one note per widget cell expected"
        seen += widget_cells
    assert seen > 0, "no lesson has a widget: the note was never tested"


def test_the_site_has_a_home_page_that_lists_every_lesson(site):
    assert (site / "index.html").is_file(), "index.html at the top of the site"
    home = site / "docs" / "site" / "index.html"
    links = {urlsplit(h).path.rsplit("/", 1)[-1] for h in _parse(home).links}
    for lesson in LESSONS:
        assert f"{lesson.stem}.html" in links, f"the home page does not link {lesson.stem}"
