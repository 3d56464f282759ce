"""Fixtures for the browser suite: one private JupyterLab server and one headless Chromium per run.

The server holds every lesson's released workbook (what a learner opens: stubs where the solutions
were) and runs with empty ``COURSE_DATA`` and ``COURSE_CACHE`` folders, the way a laptop that has no
CIFAR-10 copy and cannot download runs lessons 06-07: on the labelled synthetic stand-in. The
lessons themselves, solutions and real data, are nbval's (``pytest notebooks``).

Where Chromium or Playwright is missing the suite is skipped with a message that says so; with
``CI=true`` it fails instead, because CI must prove the course works in the real front end.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import lab_driver

REPO = Path(__file__).resolve().parents[2]
LESSONS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def require_browser() -> None:
    reason = lab_driver.browser_missing()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser suite cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"browser suite skipped: {reason}")


@pytest.fixture(scope="session")
def offline(tmp_path_factory) -> dict[str, Path]:
    """Empty data and cache folders for the server's kernels: nothing to find, nothing to download."""
    root = tmp_path_factory.mktemp("offline")
    folders = {"COURSE_DATA": root / "no-data", "COURSE_CACHE": root / "no-cache"}
    for folder in folders.values():
        folder.mkdir()
    return folders


@pytest.fixture(scope="session")
def workbooks(tmp_path_factory) -> dict[str, Path]:
    """Every lesson released as a learner gets it, by lesson stem."""
    from course_utils.grading.release import release_lesson

    out = tmp_path_factory.mktemp("workbooks")
    return {lesson.stem: release_lesson(lesson, out) for lesson in LESSONS}


@pytest.fixture(scope="session")
def lab(tmp_path_factory, workbooks, offline):
    require_browser()
    server = lab_driver.start_lab(list(workbooks.values()), tmp_path_factory.mktemp("lab"),
                                  env={name: str(folder) for name, folder in offline.items()})
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
