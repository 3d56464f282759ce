"""``course doctor``: is this laptop ready for the course?

Each check is a pure function returning a :class:`Check`; :func:`run_checks` gathers them and
:func:`format_report` turns them into the ✅/❌ lines that ``course doctor`` prints. A failed
required check makes the exit status 1, so an instructor can run it on every laptop in a room
(or in a script) before the workshop starts.
"""
from __future__ import annotations

import importlib
import importlib.metadata as metadata
import json
import os
import re
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["Check", "run_checks", "format_report", "minimum_versions", "main"]

PYTHON_MINIMUM = (3, 10)
FREE_DISK_NEEDED_GB = 1.0  # CIFAR-10 download (0.17 GB) + decoded tensor cache (0.18 GB) + checkpoints
INSTALL_FIX = 'pip install -e ".[test]"   (from the course folder)'


@dataclass(frozen=True)
class Check:
    """One line of the report.

    Parameters
    ----------
    name : str
        What was checked, e.g. "torch".
    ok : bool
        Whether it passed.
    detail : str
        What was found.
    fix : str
        What to do when it did not pass ("" when it did).
    required : bool
        Whether the course cannot run without it (decides the exit status).
    """

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


# --------------------------------------------------------------------------------------------
# Versions
# --------------------------------------------------------------------------------------------

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:\[[^\]]*\])?\s*(?:>=\s*([0-9][0-9a-zA-Z.]*))?")


def minimum_versions() -> dict[str, str]:
    """The runtime dependencies and their minimum versions, read from the installed package.

    Reading them from the package metadata keeps ``pyproject.toml`` the one place they are written.

    Returns
    -------
    dict
        Distribution name -> minimum version ("" when there is no lower bound).

    Examples
    --------
    >>> "torch" in minimum_versions()
    True
    """
    try:
        requires = metadata.requires("course-utils") or []
    except metadata.PackageNotFoundError:
        requires = []
    out: dict[str, str] = {}
    for line in requires:
        if "extra ==" in line:
            continue
        match = _REQUIREMENT.match(line)
        if match:
            out[match.group(1).lower()] = match.group(2) or ""
    return out


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def check_python() -> Check:
    """Python itself against the minimum the course supports."""
    found = sys.version_info[:3]
    ok = found[:2] >= PYTHON_MINIMUM
    wanted = ".".join(map(str, PYTHON_MINIMUM))
    return Check(
        "python",
        ok,
        f"{'.'.join(map(str, found))} (needs >= {wanted})",
        "" if ok else f"install Python {wanted} or newer (e.g. with conda: conda env create -f environment.yml)",
    )


def check_package(name: str, minimum: str) -> Check:
    """One installed distribution against its minimum version."""
    try:
        found = metadata.version(name)
    except metadata.PackageNotFoundError:
        return Check(name, False, "not installed", f"{INSTALL_FIX}, or: pip install '{name}>={minimum}'")
    ok = not minimum or _version_tuple(found) >= _version_tuple(minimum)
    need = f" (needs >= {minimum})" if minimum else ""
    return Check(name, ok, f"{found}{need}", "" if ok else f"pip install --upgrade '{name}>={minimum}'")


def check_torch_works() -> Check:
    """Import torch and run a convolution: a broken wheel fails here rather than in lesson 1."""
    try:
        import torch
        import torch.nn.functional as F

        out = F.conv2d(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 3, 3))
        ok = tuple(out.shape) == (1, 1, 2, 2) and float(out.sum()) == 36.0
        return Check("torch runs", ok, f"a 3×3 convolution gives {tuple(out.shape)}", "" if ok else "reinstall torch")
    except Exception as exc:  # the point of the check is to report any failure
        return Check("torch runs", False, f"{type(exc).__name__}: {exc}", "reinstall torch: pip install --force-reinstall torch")


# --------------------------------------------------------------------------------------------
# JupyterLab widgets
# --------------------------------------------------------------------------------------------


def _jupyter_dirs(kind: str) -> list[Path]:
    try:
        from jupyter_core.paths import jupyter_config_path, jupyter_path
    except ImportError:
        return []
    paths = jupyter_path(kind) if kind != "config" else jupyter_config_path()
    return [Path(p) for p in paths]


def check_widget_extension() -> Check:
    """Whether JupyterLab will render ipywidgets: the lab extension installed and not disabled."""
    name = "@jupyter-widgets/jupyterlab-manager"
    found = None
    for base in _jupyter_dirs("labextensions"):
        pkg = base / "@jupyter-widgets" / "jupyterlab-manager" / "package.json"
        if pkg.is_file():
            found = pkg
            break
    if found is None:
        return Check(
            "widgets in JupyterLab",
            False,
            f"the JupyterLab extension {name} is not installed, so widgets show 'Error displaying widget'",
            "pip install --upgrade ipywidgets jupyterlab_widgets, then restart JupyterLab",
        )
    try:
        version = json.loads(found.read_text()).get("version", "?")
    except (OSError, ValueError):
        version = "?"
    for base in _jupyter_dirs("config"):
        for page_config in (base / "labconfig" / "page_config.json",):
            try:
                disabled = json.loads(page_config.read_text()).get("disabledExtensions", {})
            except (OSError, ValueError):
                continue
            if (isinstance(disabled, dict) and disabled.get(name)) or (isinstance(disabled, list) and name in disabled):
                return Check(
                    "widgets in JupyterLab",
                    False,
                    f"{name} {version} is installed but disabled in {page_config}",
                    f"jupyter labextension enable {name}",
                )
    return Check("widgets in JupyterLab", True, f"{name} {version} installed and enabled")


# --------------------------------------------------------------------------------------------
# Hardware
# --------------------------------------------------------------------------------------------


def check_cpu() -> Check:
    """CPU threads available to PyTorch."""
    try:
        import torch

        threads = torch.get_num_threads()
    except Exception:
        threads = 0
    cores = os.cpu_count() or 0
    return Check("cpu", cores >= 1, f"{cores} logical cores, PyTorch uses {threads} threads", required=False)


def check_accelerator() -> Check:
    """CUDA or Apple MPS if usable; a CPU is enough for every lesson."""
    try:
        import torch

        if torch.cuda.is_available():
            return Check("accelerator", True, f"CUDA: {torch.cuda.get_device_name(0)}", required=False)
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return Check("accelerator", True, "Apple MPS", required=False)
    except Exception as exc:
        return Check("accelerator", True, f"none usable ({type(exc).__name__}); the CPU is used", required=False)
    return Check("accelerator", True, "none; the CPU is used (every lesson is sized for a laptop CPU)", required=False)


# --------------------------------------------------------------------------------------------
# Data and disk
# --------------------------------------------------------------------------------------------


def check_data(root: str | None = None) -> Check:
    """Where CIFAR-10 would be loaded from, or where the course looked and how to fix it."""
    try:
        data = importlib.import_module("course_utils.data")
    except Exception as exc:
        return Check("CIFAR-10", False, f"course_utils.data failed to import: {exc}", INSTALL_FIX)
    try:
        found = data.locate_cifar10(root)
    except Exception as exc:  # a corrupt copy is reported, not raised
        return Check("CIFAR-10", False, f"{type(exc).__name__}: {exc}", "delete the damaged copy and run: course data --download")
    if found is not None:
        return Check("CIFAR-10", True, str(found))
    places = "; ".join(str(p) for p in data.search_places(root))
    return Check(
        "CIFAR-10",
        False,
        f"not found. Looked in: {places}. Lessons 06-07 would run on a labelled synthetic stand-in",
        "course data --download   (or: export COURSE_DATA=/path/to/cifar10, a cifar-10-batches-py/ or train/ + test/ folder)",
        # Every lesson still runs without it (06-07 on the named stand-in), so it does not fail the exit status.
        required=False,
    )


def check_disk() -> Check:
    """Free disk where the data cache lives."""
    try:
        from .data import cache_dir

        place = Path(cache_dir())
    except Exception:
        place = Path.home() / ".cache"
    probe = place
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free_gb = shutil.disk_usage(probe).free / 1e9
    except OSError as exc:
        return Check("disk", False, f"cannot read free space at {probe}: {exc}", "set COURSE_CACHE to a writable folder", required=False)
    ok = free_gb >= FREE_DISK_NEEDED_GB
    return Check(
        "disk",
        ok,
        f"{free_gb:.1f} GB free at {place} (needs {FREE_DISK_NEEDED_GB:.0f} GB)",
        "" if ok else "free some space, or set COURSE_CACHE to a folder on a larger disk",
    )


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def run_checks(data_root: str | None = None) -> list[Check]:
    """Run every check and return them in report order.

    Parameters
    ----------
    data_root : str, optional
        A CIFAR-10 folder to check instead of the usual search order.

    Returns
    -------
    list of Check

    Examples
    --------
    >>> names = [c.name for c in run_checks()]  # doctest: +SKIP
    """
    checks = [check_python()]
    checks += [check_package(name, minimum) for name, minimum in minimum_versions().items()]
    checks += [check_torch_works(), check_widget_extension(), check_cpu(), check_accelerator(), check_data(data_root), check_disk()]
    return checks


def format_report(checks: list[Check]) -> str:
    """The report as text: one ✅/❌ line per check, the fix under each failure, a verdict.

    Examples
    --------
    >>> print(format_report([Check("python", True, "3.11.7")]))
    ✅ python                 3.11.7
    <BLANKLINE>
    Ready: the course can run on this machine.
    """
    lines = []
    for c in checks:
        mark = "✅" if c.ok else "❌"
        lines.append(f"{mark} {c.name:<22} {c.detail}")
        if not c.ok and c.fix:
            lines.append(f"   {'fix:':<22} {c.fix}")
    failed = [c.name for c in checks if c.required and not c.ok]
    optional = [c.name for c in checks if not c.required and not c.ok]
    lines.append("")
    if failed:
        lines.append(f"Not ready: fix {', '.join(failed)} (see the 'fix:' lines above), then run `course doctor` again.")
    elif optional:
        lines.append(f"Ready: the course can run on this machine, but fix {', '.join(optional)} for the full course "
                     "(see the 'fix:' lines above).")
    else:
        lines.append("Ready: the course can run on this machine.")
    return "\n".join(lines)


def main(args) -> int:
    """Entry point of ``course doctor``; prints the report and returns the exit status."""
    checks = run_checks(getattr(args, "data", None))
    if getattr(args, "json", False):
        print(json.dumps({"ready": all(c.ok for c in checks if c.required), "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        print(format_report(checks))
    return 0 if all(c.ok for c in checks if c.required) else 1


def add_parser(subparsers) -> None:
    """Register ``course doctor`` on an argparse subparsers object."""
    p = subparsers.add_parser("doctor", help="check that this machine is ready for the course",
                              description="Check Python, packages, JupyterLab widgets, device, data and disk.")
    p.add_argument("--data", metavar="PATH", help="check this CIFAR-10 folder instead of the usual places")
    p.add_argument("--json", action="store_true", help="print the report as JSON (for collecting a room's reports)")
    p.set_defaults(func=main)
