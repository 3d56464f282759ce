"""The install story: pyproject.toml, environment.yml, the README and .ci/run agree."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # this file reads pyproject.toml with Python 3.11+'s tomllib


ROOT = Path(__file__).resolve().parents[1]
# pip distribution name -> conda-forge package name, where they differ
CONDA_NAMES = {"torch": "pytorch"}


def _split(requirement: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    assert match, requirement
    return match.group(1).lower(), match.group(2).replace(" ", "")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _conda_dependencies() -> dict[str, str]:
    deps: dict[str, str] = {}
    text = (ROOT / "environment.yml").read_text()
    assert "\ndependencies:\n" in text, "environment.yml has no dependencies section"
    for line in text.split("\ndependencies:\n", 1)[1].splitlines():
        match = re.match(r"^  - ([A-Za-z0-9_.\-]+)\s*(\S*)\s*$", line)
        if match:
            deps[match.group(1).lower()] = match.group(2)
    return deps


def test_every_requirement_has_a_lower_bound_and_no_pin():
    project = _pyproject()["project"]
    requirements = list(project["dependencies"]) + list(project["optional-dependencies"]["test"])
    for requirement in requirements:
        name, spec = _split(requirement)
        assert spec.startswith(">="), f"{name} needs a lower bound (>=), got {spec!r}"
        assert "==" not in spec and "<" not in spec, f"{name} must not be pinned or capped: {spec!r}"


@pytest.mark.parametrize("group", ["dependencies", "test"])
def test_environment_yml_matches_pyproject(group):
    project = _pyproject()["project"]
    requirements = project["dependencies"] if group == "dependencies" else project["optional-dependencies"]["test"]
    conda = _conda_dependencies()
    for requirement in requirements:
        name, spec = _split(requirement)
        conda_name = CONDA_NAMES.get(name, name)
        assert conda_name in conda, f"{name} is in pyproject.toml [{group}] but {conda_name} is missing from environment.yml"
        assert conda[conda_name] == spec, f"{conda_name}: environment.yml says {conda[conda_name]!r}, pyproject.toml says {spec!r}"


def test_environment_yml_has_nothing_extra():
    project = _pyproject()["project"]
    names = {CONDA_NAMES.get(_split(r)[0], _split(r)[0]) for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    extra = set(_conda_dependencies()) - names - {"python", "pip"}
    assert not extra, f"environment.yml lists packages pyproject.toml does not: {sorted(extra)}"
    assert "conda-forge" in (ROOT / "environment.yml").read_text()


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh|shell)\n(.*?)```", text, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_ci_runs_the_readme_install_and_test_commands():
    commands = _readme_commands()
    install = next(c for c in commands if c.startswith("pip install"))
    ci = (ROOT / ".ci" / "run").read_text()
    assert install in ci, f".ci/run must install with the README's command {install!r}"
    assert "pytest" in commands, "the README's test command is `pytest`"
    assert re.search(r"^\s*pytest\b", ci, flags=re.M) or "python -m pytest" in ci or " pytest" in ci


@pytest.mark.slow  # starts the course command in subprocesses: not for the quick run (tests/README.md)
def test_course_command_and_module_entry_point_agree():
    scripts = _pyproject()["project"]["scripts"]
    assert scripts["course"] == "course_utils.cli:main"
    out = subprocess.run([sys.executable, "-m", "course_utils", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for command in ("doctor", "data", "release", "grade"):
        assert command in out.stdout
    bad = subprocess.run([sys.executable, "-m", "course_utils", "no-such-command"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
