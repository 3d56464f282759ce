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
from typing import Any

__all__ = ["Check", "run_checks", "format_report", "minimum_versions", "main", "lesson06_plan",
           "predict_fit_seconds", "predict_lesson06_seconds", "measure_training_speed", "check_training_speed"]

PYTHON_MINIMUM = (3, 10)
# What the course writes into its cache on the download path, in GB: the CIFAR-10 archive (0.17),
# its unpacked batches (0.18), the decoded uint8 tensors (60,000 x 3 x 32 x 32 bytes = 0.18; the
# prepared file is a hard link to them) and lesson checkpoints (a few MB). Preparing a copy you
# already have needs only the 0.18 GB of tensors.
DATA_DISK_GB = {"download": 0.17, "unpacked": 0.18, "decoded tensors": 0.18, "checkpoints": 0.01}
FREE_DISK_NEEDED_GB = round(sum(DATA_DISK_GB.values()), 1)
# Lesson 06's training, as its notebook sets it (notebooks/06_tinycnn_cifar10.ipynb): EPOCHS, and
# the training and validation images of its hold-out split. Three fit calls use them: TinyCNN and
# its GAP-head variant (EPOCHS on train_size, validating val_size per epoch) and the overfitting
# demo (12 epochs on 1,000 images, validating 1,000 held-out images and the 1,000 training images per epoch).
# tests/test_doctor.py reads the notebook and fails when these drift from it.
LESSON_06 = {"EPOCHS": 3, "train_size": 10_000, "val_size": 5_000}
LESSON_06_OVERFIT = {"epochs": 12, "train_size": 1_000, "val_size": 1_000}
# Above this many seconds, doctor says how to make lesson 06's training shorter.
SLOW_FIT_SECONDS = 600.0
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


def lesson06_plan() -> dict[str, int]:
    """Lesson 06's training knobs as doctor predicts them: ``EPOCHS``, ``train_size``, ``val_size``.

    Examples
    --------
    >>> sorted(lesson06_plan())
    ['EPOCHS', 'train_size', 'val_size']
    """
    return dict(LESSON_06)


def predict_fit_seconds(train_img_s: float, eval_img_s: float, epochs: int, n_train: int, n_eval: int) -> float:
    """Seconds one ``fit`` call takes: every epoch trains on ``n_train`` images and evaluates ``n_eval``.

    Parameters
    ----------
    train_img_s, eval_img_s : float
        Measured training and evaluation throughput, images per second.
    epochs, n_train, n_eval : int

    Returns
    -------
    float

    Examples
    --------
    >>> predict_fit_seconds(1000.0, 4000.0, epochs=13, n_train=50_000, n_eval=10_000)
    682.5
    """
    for name, value in (("train_img_s", train_img_s), ("eval_img_s", eval_img_s)):
        if not value > 0:
            raise ValueError(f"{name} must be a positive throughput, got {value!r}")
    return epochs * (n_train / train_img_s + n_eval / eval_img_s)


def predict_lesson06_seconds(train_img_s: float, eval_img_s: float, epochs: int | None = None,
                             train_size: int | None = None) -> float:
    """Seconds of training in lesson 06 (its three ``fit`` calls), at its settings or changed ones.

    The one formula behind doctor's prediction and its advice.

    Parameters
    ----------
    train_img_s, eval_img_s : float
        Measured throughput, images per second.
    epochs, train_size : int, optional
        Lesson 06's ``EPOCHS`` and ``train_size`` (its own values by default).

    Returns
    -------
    float

    Examples
    --------
    >>> round(predict_lesson06_seconds(1000.0, 5000.0, epochs=1, train_size=10_000))
    61
    """
    epochs = LESSON_06["EPOCHS"] if epochs is None else epochs
    train_size = LESSON_06["train_size"] if train_size is None else train_size
    val = LESSON_06["val_size"]
    main = 2 * predict_fit_seconds(train_img_s, eval_img_s, epochs, train_size, val)  # TinyCNN, then its GAP variant
    over = LESSON_06_OVERFIT
    overfit = predict_fit_seconds(train_img_s, eval_img_s, over["epochs"], over["train_size"], over["val_size"] + over["train_size"])
    return main + overfit


def measure_training_speed(seconds: float = 1.5) -> dict[str, Any]:
    """Time lesson 06's network training and evaluating here, the way ``fit`` runs it, for a few seconds.

    TinyCNN on random 32×32 batches of ``fit``'s default size: same device choice, same CPU threads,
    channels-last layout and the bf16 decision that ``fit`` makes (``train.amp_decision``).

    Parameters
    ----------
    seconds : float
        Time spent timing training steps (evaluation gets a third of it).

    Returns
    -------
    dict
        ``train_img_s``, ``eval_img_s``, ``device`` and ``precision``.

    Examples
    --------
    >>> speed = measure_training_speed(0.2)  # doctest: +SKIP
    >>> speed["train_img_s"] > 0  # doctest: +SKIP
    True
    """
    import time

    import torch
    import torch.nn.functional as F

    from . import train
    from .models import TinyCNN

    import inspect

    batch = int(inspect.signature(train.fit).parameters["batch_size"].default)
    device = train.choose_device()
    old_threads = torch.get_num_threads()
    cores = getattr(train, "_cpu_threads", None)
    if device.type == "cpu" and cores is not None:
        torch.set_num_threads(cores())
    sync = (torch.cuda.synchronize if device.type == "cuda"
            else getattr(getattr(torch, "mps", None), "synchronize", lambda: None) if device.type == "mps" else (lambda: None))
    try:
        torch.manual_seed(0)
        model = TinyCNN().to(device)
        channels_last = device.type in ("cpu", "cuda")
        x = torch.randn(batch, 3, 32, 32, device=device)
        y = torch.randint(0, 10, (batch,), device=device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        bf16 = train.amp_decision(model, x, device)
        amp = (torch.autocast(device_type=device.type, dtype=torch.bfloat16) if bf16 else None)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step() -> None:
            if amp is not None:
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                    loss = F.cross_entropy(model(x), y)
            else:
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        model.train()
        step(); step()  # warm-up: kernels, allocator
        sync()
        steps, start = 0, time.perf_counter()
        while steps < 3 or time.perf_counter() - start < seconds:
            step()
            steps += 1
            if steps % 5 == 0:
                sync()
        sync()
        train_img_s = steps * batch / (time.perf_counter() - start)

        model.eval()
        xe = x.repeat(max(1, train.EVAL_BATCH_SIZE // len(x)), 1, 1, 1)  # fit's evaluation batches, in fp32
        if channels_last:
            xe = xe.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            model(xe)
            sync()
            n, start = 0, time.perf_counter()
            while n < 2 or time.perf_counter() - start < seconds / 3:
                model(xe)
                n += 1
            sync()
            eval_img_s = n * len(xe) / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(old_threads)
    return {"train_img_s": train_img_s, "eval_img_s": eval_img_s, "device": device.type,
            "precision": "bf16" if bf16 else "fp32"}


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def check_training_speed(speed: dict[str, Any] | None = None) -> Check:
    """Measure training speed (a few seconds) and predict lesson 06's training cell; advise when long.

    Parameters
    ----------
    speed : dict, optional
        A result of :func:`measure_training_speed` (tests pass one); measured here when omitted.

    Returns
    -------
    Check
        Not required: a slow machine runs the course, just slowly. ❌ when the prediction is over
        ``SLOW_FIT_SECONDS``, with what to do.
    """
    try:
        speed = speed if speed is not None else measure_training_speed()
        tr, ev = speed["train_img_s"], speed["eval_img_s"]
        full = predict_lesson06_seconds(tr, ev)
    except Exception as exc:  # a report line, never a crash
        return Check("training speed", False, f"could not measure ({type(exc).__name__}: {exc})", required=False)
    plan = lesson06_plan()
    detail = (f"{tr:,.0f} training images/s on {speed['device']} ({speed['precision']}): lesson 06's training "
              f"({plan['EPOCHS']} epochs on {plan['train_size']:,} images, twice, and a short overfitting run) "
              f"takes about {_minutes(full)}")
    if full <= SLOW_FIT_SECONDS:
        return Check("training speed", True, detail, required=False)
    advice = []
    # The largest setting that fits the budget, else the smallest sensible one.
    fewer = next((e for e in range(plan["EPOCHS"] - 1, 0, -1) if predict_lesson06_seconds(tr, ev, epochs=e) <= SLOW_FIT_SECONDS),
                 1 if plan["EPOCHS"] > 1 else None)
    if fewer is not None:
        advice.append(f"set EPOCHS = {fewer} (about {_minutes(predict_lesson06_seconds(tr, ev, epochs=fewer))}, lower accuracy)")
    subset = next((n for n in range(plan["train_size"] - 1000, 999, -1000)
                   if predict_lesson06_seconds(tr, ev, train_size=n) <= SLOW_FIT_SECONDS), 2000)
    if subset < plan["train_size"]:
        advice.append(f"train on a subset: train_size = {subset} in its split cell "
                      f"(about {_minutes(predict_lesson06_seconds(tr, ev, train_size=subset))})")
    advice.append("use a machine with a GPU (CUDA or Apple MPS), which the lessons use by themselves")
    fix = "in lesson 06, " + "; or ".join(advice) + ". (Measured just now: other busy programs slow it down.)"
    return Check("training speed", False, detail, fix, required=False)


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


def _installed_gb() -> tuple[float, float, float]:
    """Sizes in GB of every installed distribution, of PyTorch (torch, torchvision, triton, nvidia-*),
    and of the CUDA libraries among them (triton and nvidia-*).

    Read from each distribution's RECORD (sizes written at install time), so nothing is walked.
    """
    total = torch_part = cuda_part = 0
    for dist in metadata.distributions():
        size = sum(f.size or 0 for f in (dist.files or ()))
        total += size
        name = (dist.metadata.get("Name") or "").lower()
        if name == "triton" or name.startswith("nvidia-"):
            cuda_part += size
        if name in ("torch", "torchvision", "triton") or name.startswith("nvidia-"):
            torch_part += size
    return total / 1e9, torch_part / 1e9, cuda_part / 1e9


def check_install() -> Check:
    """How big the installed environment is, and whether the CPU-only PyTorch would make it smaller."""
    try:
        total_gb, torch_gb, cuda_gb = _installed_gb()
        import torch

        cuda_build = torch.version.cuda is not None
        has_gpu = torch.cuda.is_available()
    except Exception as exc:  # a report line, never a crash
        return Check("install size", True, f"not measured ({type(exc).__name__})", required=False)
    detail = f"{total_gb:.1f} GB of packages in {sys.prefix}, PyTorch {torch_gb:.1f} GB of it"
    if cuda_build and not has_gpu:
        detail += (f"; this is PyTorch's CUDA build, whose {cuda_gb:.1f} GB of CUDA libraries this machine cannot use: "
                   "the CPU-only build leaves them out (README, 'Set up')")
    return Check("install size", True, detail, required=False)


def check_disk() -> Check:
    """Free disk where the data cache lives, against what the course writes there."""
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
    parts = " + ".join(f"{k} {v:.2f}" for k, v in DATA_DISK_GB.items())
    return Check(
        "disk",
        ok,
        f"{free_gb:.1f} GB free at {place} (the data needs {FREE_DISK_NEEDED_GB:.1f} GB there: {parts})",
        "" if ok else "free some space, or set COURSE_CACHE to a folder on a larger disk",
    )


def check_grading_sandbox() -> Check:
    """Whether ``course grade`` can run submissions in its bubblewrap sandbox here (graders only)."""
    # Imported here: only this optional line needs the grader's sandbox module.
    from .grading import sandbox

    lease = None
    try:
        if os.geteuid() == 0:
            lease = sandbox.UidLease(1)
        problem = sandbox.problem(as_uid=lease.uids[0] if lease else None)
    except Exception as exc:  # a broken lock folder or cgroup must not break the whole report
        problem = f"{type(exc).__name__}: {exc}"
    finally:
        if lease is not None:
            lease.release()
    if problem:
        return Check("grading sandbox", False, "grading can not be sandboxed here", problem, required=False)
    who = "as a reserved unprivileged uid" if os.geteuid() == 0 else "as this user, in its own namespaces"
    return Check("grading sandbox", True, f"grading can be sandboxed here (bubblewrap, {who})", required=False)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def run_checks(data_root: str | None = None, speed: bool = True) -> list[Check]:
    """Run every check and return them in report order.

    Parameters
    ----------
    data_root : str, optional
        A CIFAR-10 folder to check instead of the usual search order.
    speed : bool
        Measure the training speed (a few seconds) and predict lesson 06's training time.

    Returns
    -------
    list of Check

    Examples
    --------
    >>> names = [c.name for c in run_checks()]  # doctest: +SKIP
    """
    checks = [check_python()]
    checks += [check_package(name, minimum) for name, minimum in minimum_versions().items()]
    checks += [check_torch_works(), check_widget_extension(), check_cpu(), check_accelerator()]
    if speed:
        checks.append(check_training_speed())
    checks += [check_data(data_root), check_disk(), check_install()]
    checks.append(check_grading_sandbox())
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
    checks = run_checks(getattr(args, "data", None), speed=not getattr(args, "no_speed", False))
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
    p.add_argument("--no-speed", action="store_true",
                   help="skip the few-second training-speed measurement (and lesson 06's time estimate)")
    p.set_defaults(func=main)
