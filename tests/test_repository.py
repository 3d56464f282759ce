"""The files a user expects in the repository: LICENSE (MIT), CHANGELOG, CONTRIBUTING, and README links."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import course_utils

ROOT = Path(__file__).resolve().parents[1]


def test_license_is_the_mit_text_the_readme_and_package_promise():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License")
    assert "Permission is hereby granted, free of charge" in text and 'THE SOFTWARE IS PROVIDED "AS IS"' in text
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'license = { text = "MIT" }' in pyproject


@pytest.mark.slow  # starts the course command: not for the quick run (tests/README.md)
def test_changelog_has_the_version_that_course_version_prints():
    out = subprocess.run([sys.executable, "-m", "course_utils", "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == f"course_utils {course_utils.__version__}"
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    versions = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", changelog, flags=re.M)
    assert versions and versions[0] == course_utils.__version__, (
        f"CHANGELOG's newest release is {versions[:1]}, course --version says {course_utils.__version__}")


def test_contributing_covers_lessons_exercises_tests_and_re_execution():
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    for heading in ("## Add a lesson", "## Add an exercise", "## Add a test", "## Re-execute a notebook"):
        assert heading in text
    assert "jupyter nbconvert --to notebook --execute --inplace" in text


def test_readme_points_to_license_changelog_and_contributing():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in ("LICENSE", "CHANGELOG.md", "CONTRIBUTING.md"):
        assert f"]({name})" in readme, f"README does not link {name}"
        assert (ROOT / name).is_file()
