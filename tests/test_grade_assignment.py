"""``course grade`` per issue 12: one batch is one assignment, scores are reproducible, a time-out
keeps what was earned, cells are named as JupyterLab shows them, and "from scratch" exercises that
call the library score 0 with the reason while the same call elsewhere costs nothing.

Each test builds its own notebooks and runs the grader as a separate process, as ``course grade``
would. The test-only bank (``tests/fixtures_grade_exercises.py``, lesson ``_test_grade``:
``_tg_add`` 2 points, ``_tg_relu_sum`` 3 points, ``_tg_value`` 1 point) is loaded through
``COURSE_EXTRA_EXERCISES``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.slow  # grades batches with `course grade`: not for the quick run (tests/README.md)

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixtures_grade_exercises.py"
RUNNER = "import sys; from course_utils.grading.grade import main; sys.exit(main(sys.argv[1:]))"

FULL = [
    "import torch",
    "def add(a, b):\n    return a + b",
    "def relu_sum(x, dim=1):\n    return torch.relu(x).sum(dim=dim)",
    "answer_value = 42",
]


def sandbox_args() -> list[str]:
    return [] if shutil.which("bwrap") and os.geteuid() == 0 else ["--no-sandbox"]


def run_grade(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "COURSE_EXTRA_EXERCISES": str(FIXTURE)}
    env.pop("COURSE_BANK", None)
    return subprocess.run([sys.executable, "-c", RUNNER, *map(str, args), *sandbox_args()], env=env,
                          capture_output=True, text=True, timeout=timeout)


def write_nb(path: Path, cells: list[str], lesson: str | None = "_test_grade") -> Path:
    nb = nbformat.v4.new_notebook()
    if lesson is not None:
        nb.metadata["course"] = {"lesson": lesson}
    nb.cells = [nbformat.v4.new_markdown_cell("# Homework")] + [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, str(path))
    return path


def grades(out: Path) -> dict:
    return json.loads((out / "grades.json").read_text())


def test_a_mixed_batch_is_one_assignment_graded_fairly_and_flagged(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("ann", "ben", "cat"):
        write_nb(subs / f"{name}.ipynb", FULL)
    # A notebook that claims another lesson cannot change what the batch is graded on.
    write_nb(subs / "dan.ipynb", FULL, lesson="02_output_size")
    out = tmp_path / "out"
    done = run_grade(subs, "--out", out, "--jobs", 2, "--timeout", 60)
    assert done.returncode == 0, done.stderr
    data = grades(out)
    assert data["exercise_ids"] == ["_tg_add", "_tg_relu_sum", "_tg_value"]
    assert {s: (r["total"], r["max"]) for s, r in data["students"].items()} == {s: (6, 6) for s in ("ann", "ben", "cat", "dan")}
    assert "02_output_size" in data["students"]["dan"]["flag"] and data["students"]["ann"]["flag"] == ""
    assert "warning" in done.stderr and "02_output_size (1)" in done.stderr and "_test_grade (3)" in done.stderr
    rows = (out / "grades.csv").read_text().splitlines()
    assert rows[0].endswith(",status,flag")
    assert any(r.startswith("dan,") and "02_output_size" in r for r in rows)
    assert "Flagged:" in (out / "feedback" / "dan.md").read_text()


def test_a_tie_between_lessons_asks_for_lesson_and_lesson_decides(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    write_nb(subs / "a.ipynb", FULL)
    write_nb(subs / "b.ipynb", FULL, lesson="02_output_size")
    done = run_grade(subs, "--out", tmp_path / "out", "--jobs", 1)
    assert done.returncode == 2 and "--lesson" in done.stderr and "02_output_size" in done.stderr
    done = run_grade(subs, "--out", tmp_path / "out", "--jobs", 2, "--lesson", "_test_grade", "--timeout", 60)
    assert done.returncode == 0, done.stderr
    data = grades(tmp_path / "out")
    assert data["students"]["b"]["total"] == 6 and data["students"]["b"]["flag"]


def test_the_seed_is_stored_reused_and_overridden(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    # A half-right answer, so the score depends on the drawn cases.
    write_nb(subs / "half.ipynb", ["def add(a, b):\n    return a + b if a > 0 else 0"])
    out = tmp_path / "out"
    assert run_grade(subs, "--out", out, "--jobs", 1, "--timeout", 60).returncode == 0
    first = grades(out)
    assert isinstance(first["seed"], int)
    assert run_grade(subs, "--out", out, "--jobs", 1, "--timeout", 60, "--force").returncode == 0
    again = grades(out)
    assert again["seed"] == first["seed"]
    assert again["students"]["half"]["exercises"]["_tg_add"]["cases"] == first["students"]["half"]["exercises"]["_tg_add"]["cases"]
    assert run_grade(subs, "--out", out, "--jobs", 1, "--timeout", 60, "--seed", 99).returncode == 0
    assert grades(out)["seed"] == 99


def test_a_cell_that_never_returns_keeps_what_was_earned_and_is_named(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    write_nb(subs / "loop.ipynb", [*FULL[:3], "x = 1\nwhile True:\n    pass", "answer_value = 42"])
    write_nb(subs / "raises.ipynb", [*FULL[:3], "\n\nundefined_name + 1", "answer_value = 42"])
    out = tmp_path / "out"
    done = run_grade(subs, "--out", out, "--jobs", 2, "--timeout", 30)
    assert done.returncode == 0, done.stderr
    loop = grades(out)["students"]["loop"]
    assert loop["total"] == 6, loop  # the functions before the loop and the value after it
    (stopped,) = loop["cells"]["errors"]
    assert stopped["cell"] == 3 and stopped["name"] == "cell [4] `x = 1`"
    feedback = (out / "feedback" / "loop.md").read_text()
    assert "- cell [4] `x = 1`: `ran past its" in feedback
    raises = (out / "feedback" / "raises.md").read_text()
    # The markdown cell above has no number in JupyterLab: code cells count from 1.
    assert "- cell [4] `undefined_name + 1`: `NameError" in raises
    assert "code cell" not in feedback + raises


CONV_FROM_SCRATCH = (
    "def conv2d_forward(x, weight, bias=None, stride=1, padding=0, dilation=1):\n"
    "    x = F.pad(x, (padding,) * 4)\n"
    "    n, c, h, w = x.shape\n"
    "    o, _, kh, kw = weight.shape\n"
    "    sh, sw = dilation * (kh - 1) + 1, dilation * (kw - 1) + 1\n"
    "    oh, ow = (h - sh) // stride + 1, (w - sw) // stride + 1\n"
    "    out = torch.zeros(n, o, oh, ow)\n"
    "    for i in range(oh):\n"
    "        for j in range(ow):\n"
    "            win = x[:, :, i * stride:i * stride + sh:dilation, j * stride:j * stride + sw:dilation]\n"
    "            out[:, :, i, j] = torch.einsum('nchw,ochw->no', win, weight)\n"
    "    return out if bias is None else out + bias.view(1, -1, 1, 1)"
)
CONV_LIBRARY = ("def conv2d_forward(x, weight, bias=None, stride=1, padding=0, dilation=1):\n"
                "    return F.conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation)")
BN_LIBRARY = (
    "def batchnorm2d_forward(x, weight, bias, running_mean, running_var, training, momentum=0.1, eps=1e-5):\n"
    "    rm, rv = running_mean.clone(), running_var.clone()\n"
    "    return F.batch_norm(x, rm, rv, weight, bias, training=training, momentum=momentum, eps=eps), rm, rv"
)
ELSEWHERE = "import torch\nimport torch.nn.functional as F\ndemo = F.conv2d(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 3, 3))  # allowed here"


def test_library_calls_in_from_scratch_exercises_score_zero_with_the_reason(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    write_nb(subs / "honest.ipynb", [ELSEWHERE, CONV_FROM_SCRATCH], lesson="03_conv2d_in_pytorch")
    write_nb(subs / "library.ipynb", [ELSEWHERE, CONV_LIBRARY], lesson="03_conv2d_in_pytorch")
    # Hidden from the static scan (built at run time): the worker's guard still sees F.conv2d.
    write_nb(subs / "hidden.ipynb", [ELSEWHERE, "def conv2d_forward(x, weight, bias=None, stride=1, padding=0, dilation=1):\n"
                                     "    return getattr(F, 'conv' + '2d')(x, weight, bias, stride=stride, padding=padding,"
                                     " dilation=dilation)"],
             lesson="03_conv2d_in_pytorch")
    out = tmp_path / "out"
    done = run_grade(subs, "--out", out, "--jobs", 2, "--timeout", 120, "--lesson", "03_conv2d_in_pytorch")
    assert done.returncode == 0, done.stderr
    students = grades(out)["students"]
    honest = students["honest"]["exercises"]["conv2d_forward"]
    assert honest["score"] == honest["points"], honest["cases"][:2]
    for name in ("library", "hidden"):
        rec = students[name]["exercises"]["conv2d_forward"]
        assert rec["score"] == 0 and rec["status"] == "forbidden", (name, rec["cases"][:1])
        assert "F.conv2d" in rec["cases"][0]["reason"]
        feedback = (out / "feedback" / f"{name}.md").read_text()
        assert "F.conv2d" in feedback and "forbidden" in feedback
    assert not students["honest"]["cells"]["errors"]  # F.conv2d in the first cell cost nothing


def test_batchnorm_wrapping_F_batch_norm_scores_zero(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    write_nb(subs / "bn.ipynb", ["import torch\nimport torch.nn.functional as F", BN_LIBRARY], lesson="07_batchnorm_dropout")
    out = tmp_path / "out"
    done = run_grade(subs, "--out", out, "--jobs", 1, "--timeout", 120, "--lesson", "07_batchnorm_dropout")
    assert done.returncode == 0, done.stderr
    rec = grades(out)["students"]["bn"]["exercises"]["batchnorm2d_forward"]
    assert rec["score"] == 0 and rec["status"] == "forbidden"
    assert "F.batch_norm" in rec["cases"][0]["reason"]
