"""Fixtures for the browser suite: one private JupyterLab server and one headless Chromium per run.

Where Chromium or Playwright is missing the suite is skipped with a message that says so; with
``CI=true`` it fails instead, because CI must prove the course works in the real front end.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import lab_driver

REPO = Path(__file__).resolve().parents[2]
LESSONS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _missing() -> str | None:
    if not (Path(lab_driver.CHROMIUM).exists() or shutil.which(lab_driver.CHROMIUM)):
        return f"Chromium not found at {lab_driver.CHROMIUM} (install it: apt-get install chromium, or set COURSE_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e \".[test]\")"
    return None


def require_browser() -> None:
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser suite cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"browser suite skipped: {reason}")


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    require_browser()
    server = lab_driver.start_lab(LESSONS, tmp_path_factory.mktemp("lab"))
    try:
        yield server
    finally:
        lab_driver.stop_lab(server)
        left = lab_driver._processes_of(server)
        assert not left, f"processes left behind by JupyterLab: {[p.pid for p in left]}"


@pytest.fixture(scope="session")
def browser():
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = lab_driver.launch_browser(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        yield context.new_page()
    finally:
        context.close()
