"""Instructors' own exercise banks (issue 12, item 3): loaded with ``--bank`` or ``$COURSE_BANK``,
released, attempted and graded end to end, with the bank's references never in a workbook.

The bank and the instructor's notebook below are the README's worked example, written into a
temporary folder by the test.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from course_utils.exercises import bank as bank_module
from course_utils.exercises.bank import BankError, load_bank, load_env_banks
from course_utils.exercises.registry import _BANK, get_exercise

REPO = Path(__file__).resolve().parent.parent

BANK_FILE = textwrap.dedent(
    '''
    """hw_relu: two exercises for the instructor's own notebook hw_relu.ipynb."""
    import numpy as np
    import torch

    from course_utils.exercises import Case, Exercise, register

    LESSON = "hw_relu"  # the notebook's file name without .ipynb


    def count_positive(x):
        return int((x > 0).sum())  # PRIVATE-REFERENCE-1


    def channel_mean(x):
        return x.mean(dim=(0, 2, 3))  # PRIVATE-REFERENCE-2


    def _tensors(rng, n):
        shapes = [(1, 1, 1, 1)] + [tuple(int(s) for s in rng.integers(1, 5, size=4)) for _ in range(n - 1)]
        return [Case((torch.from_numpy(rng.standard_normal(s).astype(np.float32)),)) for s in shapes]


    register(Exercise(
        id="count_positive", lesson=LESSON, name="count_positive", points=2,
        reference=count_positive,
        public_cases=(Case((torch.tensor([[-1.0, 2.0], [3.0, 0.0]]),), label="2 of 4 positive"),),
        make_cases=_tensors, n_cases=6,
        title="count_positive(x): how many values ReLU lets through unchanged and non-zero.",
        hints=("Which values does ReLU keep as they are?", "Compare with zero, then count; return an int."),
        forbidden=("torch.count_nonzero",),
    ))

    register(Exercise(
        id="channel_mean", lesson=LESSON, name="channel_mean", points=3,
        reference=channel_mean,
        public_cases=(Case((torch.ones(2, 3, 4, 4),), label="all ones"),),
        make_cases=_tensors, n_cases=6, rtol=1e-4, atol=1e-5,
        title="channel_mean(x): the mean of each channel of an N×C×H×W batch, as C values.",
        hints=("One value per channel: which axes does a channel's mean run over?",
               "Average over the batch and both spatial axes; keep the channel axis."),
        forbidden=("torch.nn.functional.batch_norm", "torch.nn.functional.adaptive_avg_pool2d"),
    ))
    '''
)

NOTEBOOK_CELLS = [
    ("markdown", "# Homework: ReLU and channels"),
    ("code", "import torch\nfrom course_utils.exercises import check"),
    ("code", "def count_positive(x):\n    ### BEGIN SOLUTION\n    return int((x > 0).sum())\n    ### END SOLUTION"),
    ("code", 'check("count_positive", count_positive)'),
    ("code", "def channel_mean(x):\n    ### BEGIN SOLUTION\n    return x.sum(dim=(0, 2, 3)) / (x.shape[0] * x.shape[2] * x.shape[3])\n    ### END SOLUTION"),
    ("code", 'check("channel_mean", channel_mean)'),
]


def write_example(root: Path) -> tuple[Path, Path]:
    bank = root / "my_bank"
    bank.mkdir()
    (bank / "hw_relu.py").write_text(BANK_FILE)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(s) if kind == "markdown" else nbformat.v4.new_code_cell(s) for kind, s in NOTEBOOK_CELLS]
    path = root / "hw_relu.ipynb"
    nbformat.write(nb, str(path))
    return bank, path


def course(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("COURSE_BANK", "COURSE_EXTRA_EXERCISES")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "course_utils", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def sandbox_args() -> list[str]:
    # The real sandbox where bubblewrap works; in a container without it, the documented fallback.
    return [] if shutil.which("bwrap") and os.geteuid() == 0 else ["--no-sandbox"]


@pytest.mark.slow  # runs `course grade` or a kernel end to end: not for the quick run (tests/README.md)
def test_instructor_bank_released_attempted_and_graded_end_to_end(tmp_path):
    bank, notebook = write_example(tmp_path)

    released = course("release", str(notebook), "--out", str(tmp_path / "released"), "--bank", str(bank))
    assert released.returncode == 0, released.stderr
    workbook_path = tmp_path / "released" / "hw_relu.ipynb"
    text = workbook_path.read_text()
    # Neither the solutions nor anything from the private bank reaches the learner.
    for secret in ("PRIVATE-REFERENCE", "int((x > 0).sum())", "x.sum(dim=(0, 2, 3))", "_tensors", "my_bank", "x.mean(dim"):
        assert secret not in text, secret
    assert text.count("NotImplementedError") == 2

    # Two learners: ada answers both right; bob calls the forbidden torch.count_nonzero in one and
    # gets the other wrong.
    subs = tmp_path / "submissions"
    subs.mkdir()
    answers = {
        "ada": ("return int((x > 0).sum())", "return x.sum(dim=(0, 2, 3)) / (x.numel() // x.shape[1])"),
        "bob": ("return int(torch.count_nonzero(x > 0))", "return x.mean(dim=(0, 2, 3)) + 1"),
    }
    secret = bank / "hw_relu.py"
    if not sandbox_args():
        # eve is right only if the private bank cannot be read from inside the sandbox.
        answers["eve"] = (
            f"return -1 if __import__('os').path.exists({str(secret)!r}) and open({str(secret)!r}).read() else int((x > 0).sum())",
            "return x.mean(dim=(0, 2, 3))",
        )
    for student, (first, second) in answers.items():
        nb = nbformat.read(str(workbook_path), as_version=4)
        stubs = [c for c in nb.cells if c.cell_type == "code" and "NotImplementedError" in c.source]
        for cell, body in zip(stubs, (first, second)):
            cell.source = "\n".join(
                line[: len(line) - len(line.lstrip())] + body if "NotImplementedError" in line else line
                for line in cell.source.split("\n")
            )
        nbformat.write(nb, str(subs / f"{student}.ipynb"))

    out = tmp_path / "gradebook"
    graded = course("grade", str(subs), "--out", str(out), "--bank", str(bank), "--jobs", "2", "--seed", "7", *sandbox_args())
    assert graded.returncode == 0, graded.stderr + graded.stdout
    data = json.loads((out / "grades.json").read_text())
    ada, bob = data["students"]["ada"], data["students"]["bob"]
    assert data["exercise_ids"] == ["count_positive", "channel_mean"] and data["max"] == 5
    assert (ada["total"], ada["status"]) == (5, "ok"), ada
    assert bob["exercises"]["count_positive"]["score"] == 0
    assert bob["exercises"]["count_positive"]["status"] == "forbidden"
    assert bob["exercises"]["channel_mean"]["score"] == 0 and bob["total"] == 0
    feedback = (out / "feedback" / "bob.md").read_text()
    assert "torch.count_nonzero" in feedback and "off-limits" in feedback
    assert "PRIVATE-REFERENCE" not in feedback
    if "eve" in data["students"]:
        assert data["students"]["eve"]["total"] == 5  # the bank was hidden from her worker


def test_course_bank_env_var_is_honoured_by_check(tmp_path):
    bank, _ = write_example(tmp_path)
    code = (
        "import torch\nfrom course_utils.exercises import check\n"
        "check('count_positive', lambda x: int((x > 0).sum()))\n"
        "check('channel_mean', lambda x: x.mean(dim=(2, 3)).sum(0))\n"
        "check('count_positive', lambda x: int(torch.count_nonzero(x > 0)))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "COURSE_BANK"}
    env["COURSE_BANK"] = str(bank)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("✅ count_positive: all 7 checks passed")
    assert any(line.startswith("❌ channel_mean") for line in lines)
    assert "torch.count_nonzero is off-limits in exercise 'count_positive'" in done.stdout


def test_load_bank_returns_ids_once_and_reports_bad_banks(tmp_path):
    bank, _ = write_example(tmp_path)
    try:
        assert load_bank(bank) == ["count_positive", "channel_mean"]
        assert load_bank(bank) == ["count_positive", "channel_mean"]  # a second load registers nothing twice
        assert get_exercise("channel_mean").hints[0].startswith("One value per channel")
        assert str(bank.resolve()) in bank_module.loaded_bank_paths()
    finally:
        for ex_id in ("count_positive", "channel_mean"):
            _BANK.pop(ex_id, None)
    with pytest.raises(BankError, match="does not exist"):
        load_bank(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BankError, match="holds no .py files"):
        load_bank(empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "oops.py").write_text("raise RuntimeError('typo in my bank')\n")
    with pytest.raises(BankError, match=r"oops.py.*RuntimeError: typo in my bank"):
        load_bank(broken)
    clash = tmp_path / "clash"
    clash.mkdir()
    (clash / "dup.py").write_text(
        "from course_utils.exercises import Exercise, register\n"
        "register(Exercise(id='conv_out', lesson='x', name='conv_out', points=1, reference=lambda: 1, kind='value'))\n"
    )
    with pytest.raises(BankError, match="registered twice"):
        load_bank(clash)
    assert get_exercise("conv_out").lesson == "02_output_size"  # the built-in one is untouched
    with pytest.raises(BankError, match="COURSE_BANK"):
        load_env_banks(str(tmp_path / "nowhere"))


@pytest.mark.slow  # starts `course release` and `course grade`: not for the quick run (tests/README.md)
def test_release_and_grade_refuse_a_missing_bank(tmp_path):
    _, notebook = write_example(tmp_path)
    released = course("release", str(notebook), "--out", str(tmp_path / "r"), "--bank", str(tmp_path / "nope"))
    assert released.returncode == 2 and "does not exist" in released.stderr
    graded = course("grade", str(notebook), "--out", str(tmp_path / "g"), "--bank", str(tmp_path / "nope"), *sandbox_args())
    assert graded.returncode == 2 and "does not exist" in graded.stderr
