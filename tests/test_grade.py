"""Tests of ``course grade``: real notebooks, honest and adversarial, graded in real worker processes.

Every submission here is a notebook built in the test. The exercises come from a test-only bank
(``tests/fixtures_grade_exercises.py``, lesson ``_test_grade``: ``_tg_add`` 2 points over 8 cases,
``_tg_relu_sum`` 3 points over 6 cases, ``_tg_value`` 1 point), which the grader and its workers
load through ``COURSE_EXTRA_EXERCISES``. The grader runs as a separate process, as it would from
the ``course`` command.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from course_utils.grading import encoding

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixtures_grade_exercises.py"
SEED = 12345
RUNNER = "import sys; from course_utils.grading.grade import main; sys.exit(main(sys.argv[1:]))"
IDS = ["_tg_add", "_tg_relu_sum", "_tg_value"]

FULL = [
    "import torch",
    "def add(a, b):\n    return a + b",
    "def relu_sum(x, dim=1):\n    return torch.relu(x).sum(dim=dim)",
    "answer_value = 42",
]


def grade_env() -> dict:
    return {**os.environ, "COURSE_EXTRA_EXERCISES": str(FIXTURE)}


def run_grade(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", RUNNER, *map(str, args)], env=grade_env(), capture_output=True, text=True, timeout=timeout)


def write_nb(path: Path, cells: list[str], lesson: str = "_test_grade", markdown: bool = False) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["course"] = {"lesson": lesson}
    maker = nbformat.v4.new_markdown_cell if markdown else nbformat.v4.new_code_cell
    nb.cells = [maker(c) for c in cells]
    nbformat.write(nb, str(path))
    return path


def read_csv(out: Path) -> dict[str, dict]:
    with open(out / "grades.csv", newline="") as fh:
        return {row["student"]: row for row in csv.DictReader(fh)}


def drawn_cases(exercise_id: str):
    from course_utils.exercises.registry import get_exercise
    from course_utils.grading.grade import _exercise_seed
    from course_utils.grading.worker import load_extra_exercises

    load_extra_exercises(str(FIXTURE))
    ex = get_exercise(exercise_id)
    return ex.draw_cases(_exercise_seed(SEED, exercise_id))


def can_drop_privileges() -> bool:
    """Root, and the sandbox works: submissions then run as a reserved uid, never root."""
    if os.geteuid() != 0:
        return False
    from course_utils.grading import sandbox

    lease = sandbox.UidLease(1)
    try:
        return sandbox.problem(as_uid=lease.uids[0]) == ""
    finally:
        lease.release()


def whole_submission_memory() -> bool:
    """Whether a cgroup bounds each submission's memory here (otherwise RLIMIT_AS per process)."""
    from course_utils.grading import sandbox

    cg = sandbox.Cgroup.create(f"course-grade-test-{os.getpid()}", 1 << 30)
    if cg is None:
        return False
    cg.remove()
    return True


# With a cgroup the memory hog is stopped by the kernel (status ``memory``, its later cells never
# run); with RLIMIT_AS alone it gets a MemoryError in its cell and the rest of the notebook runs.
MEMORY_HOG = ("memory", 0, "memory") if whole_submission_memory() else ("memory", 6, "ok")
# A cgroup counts memory in use (a worker with torch is ~0.4 GB), so a small limit is reached in a
# second, well inside the hog cell's time budget; RLIMIT_AS needs room for torch's 3.2 GB mappings.
BATCH_MEMORY_MB = 1536 if MEMORY_HOG[2] == "memory" else 4096


# --------------------------------------------------------------------------------------------
# The adversarial batch: graded once, in one run, so "none stops the rest" is tested too
# --------------------------------------------------------------------------------------------


def _adversaries(out: Path, marker: Path) -> dict[str, list[str] | str]:
    forged_results = json.dumps(
        {
            "cells": {"run": 9, "errors": []},
            "exercises": {i: {"status": "ok", "cases": [{"out": {"t": "int", "v": "999999"}}] * 8} for i in IDS},
            "done": True,
        }
    )
    subs: dict[str, list[str] | str] = {
        "full": FULL,
        "partial": [
            "import torch",
            "def add(a, b):\n    return abs(a) + b  # wrong when a < 0",
            FULL[2],
        ],
        "wrong": [
            "import torch",
            "def add(a, b):\n    return a + b + 1",
            "def relu_sum(x, dim=1):\n    return x",
            "answer_value = '42'",
        ],
        "blank": [
            "def add(a, b):\n    raise NotImplementedError('replace this line with your solution')",
            "def relu_sum(x, dim=1):\n    raise NotImplementedError('replace this line with your solution')",
            "answer_value = None",
        ],
        "raises": [
            "def add(a, b):\n    raise ValueError('bad input')",
            "def relu_sum(x, dim=1):\n    return x.nonexistent_method()",
            "answer_value = 1 / 0",
        ],
        "timeout": ["while True:\n    pass", *FULL],
        "hang": [*FULL, "def add(a, b):\n    while True:\n        pass"],
        "memory": [
            "def hog():\n    blocks = []\n    while True:\n        blocks.append(bytearray(64 << 20))",
            "hog()",
            *FULL,
        ],
        "reordered": [
            "answer_value = 42",
            "def relu_sum(x, dim=1):\n    return torch.relu(x).sum(dim=dim)",
            "def add(a, b):\n    return a - b",
            "x = 3  # an extra cell",
            "def add(a, b):\n    return a + b",
            "import torch",
            "answer_value = 42",
        ],
        "deleted": [FULL[0], FULL[1], FULL[3]],
        "patcher": [
            "import numpy, torch, course_utils, course_utils.exercises.core as core",
            "numpy.allclose = lambda *a, **k: True\nnumpy.array_equal = lambda *a, **k: True\ntorch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True",
            "from course_utils.exercises.core import Comparison\ncore.compare = lambda *a, **k: Comparison(True)\n"
            "def check(*args, **kwargs):\n    print('all checks passed')\n    return True\ncourse_utils.check = check",
            "core.Exercise.expected = lambda self, case: 0\ncore.to_plain = lambda value, *a: 0",
            "def add(a, b):\n    return 0.5",
            "def relu_sum(x, dim=1):\n    return torch.zeros(1)",
            "answer_value = 41",
        ],
        "eqall": [
            "class Everything:\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n        return False\n"
            "    def __hash__(self):\n        return 0",
            "class Liar(int):\n    def __eq__(self, other):\n        return True",
            "def add(a, b):\n    return Everything()",
            "import torch\nclass T(torch.Tensor):\n    def __eq__(self, other):\n        return True\n"
            "def relu_sum(x, dim=1):\n    return Everything()",
            "answer_value = Liar(7)",
        ],
        "vandal": [
            "import os, json\n"
            f"OUT = {str(out)!r}\n"
            "for name in ('grades.csv', 'grades.json'):\n"
            "    with open(os.path.join(OUT, name), 'w') as fh:\n"
            "        fh.write('student,total\\nvandal,1000\\n')\n"
            "os.makedirs(os.path.join(OUT, 'feedback'), exist_ok=True)\n"
            "for name in ['full.md', 'vandal.md'] + os.listdir(os.path.join(OUT, 'feedback')):\n"
            "    with open(os.path.join(OUT, 'feedback', name), 'w') as fh:\n"
            "        fh.write('FORGED full marks')",
            # then forge its own results and leave before the worker can overwrite them
            "results = os.path.join(os.path.dirname(os.getcwd()), 'results')\n"
            f"with open(os.path.join(results, 'results.json'), 'w') as fh:\n    fh.write({forged_results!r})\n"
            "os._exit(0)",
        ],
        "parent_killer": [
            "import os, time\nos.kill(os.getppid(), 9)\ntime.sleep(3)",
            *FULL,
        ],
        "escaper": [
            "import os, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        time.sleep(4)\n"
            f"        open({str(marker)!r}, 'w').write('escaped')\n"
            f"        open(os.path.join({str(out)!r}, 'grades.csv'), 'w').write('student\\nescaper\\n')\n"
            "    os._exit(0)",
            *FULL,
        ],
        "exits_early": [*FULL, "import os\nos._exit(0)"],
        "sys_exit": ["import sys\nsys.exit(3)", *FULL],
        "corrupt": '{"cells": [ {"cell_type": "code", "source": "def add(a, b): return a + b"',
        "old_format": json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": []}),
        "no_code": ["# only prose here"],
    }
    return subs


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    subs_dir, out = root / "subs", root / "out"
    subs_dir.mkdir()
    out.mkdir()
    marker = root / "escaped.txt"
    for name, cells in _adversaries(out, marker).items():
        if isinstance(cells, str):
            (subs_dir / f"{name}.ipynb").write_text(cells)
        else:
            write_nb(subs_dir / f"{name}.ipynb", cells, markdown=(name == "no_code"))
    if can_drop_privileges():
        write_nb(subs_dir / "kill_all.ipynb", ["import os, signal\nos.killpg(0, 9) if False else None\nos.kill(-1, signal.SIGKILL)", *FULL])
    started = time.monotonic()
    done = run_grade(subs_dir, "--out", out, "--seed", SEED, "--jobs", 2, "--timeout", 25, "--memory", BATCH_MEMORY_MB)
    elapsed = time.monotonic() - started
    time.sleep(5)  # longer than the escaper's grandchild sleeps: it must have been killed
    data = json.loads((out / "grades.json").read_text())
    return {"out": out, "proc": done, "data": data, "csv": read_csv(out), "marker": marker, "elapsed": elapsed}


def student(batch, name):
    return batch["data"]["students"][name]


@pytest.mark.slow  # uses the graded adversarial batch: not for the quick run (tests/README.md)
def test_batch_completes_with_exit_status_0(batch):
    proc = batch["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(batch["csv"]) == set(batch["data"]["students"])
    assert len(batch["csv"]) == 20 + can_drop_privileges()
    assert batch["data"]["seed"] == SEED


@pytest.mark.parametrize(
    "name, total, status",
    [
        ("full", 6, "ok"),
        ("wrong", 0, "ok"),
        ("blank", 0, "ok"),
        ("raises", 0, "ok"),
        ("timeout", 6, "ok"),  # its endless first cell is stopped; the functions after it still earn (issue 12)
        ("hang", 4, "ok"),
        MEMORY_HOG,
        ("reordered", 6, "ok"),
        ("deleted", 3, "ok"),
        ("patcher", 0, "ok"),
        ("eqall", 0, "ok"),
        ("parent_killer", 0, "crashed"),
        ("escaper", 6, "ok"),
        ("exits_early", 0, "crashed"),
        ("sys_exit", 6, "ok"),
        ("corrupt", 0, "invalid-notebook"),
        ("old_format", 0, "invalid-notebook"),
        ("no_code", 0, "invalid-notebook"),
    ],
)
@pytest.mark.slow  # uses the graded adversarial batch: not for the quick run (tests/README.md)
def test_each_submission_gets_its_expected_score_and_status(batch, name, total, status):
    rec = student(batch, name)
    assert (rec["total"], rec["status"]) == (total, status), rec.get("detail")
    row = batch["csv"][name]
    assert float(row["total"]) == total and row["status"] == status and row["max"] == "6"


@pytest.mark.slow  # uses the graded adversarial batch: not for the quick run (tests/README.md)
def test_partial_credit_is_per_case(batch):
    cases = drawn_cases("_tg_add")
    right = sum(1 for c in cases if c.args[0] >= 0)
    assert 0 < right < len(cases), "the drawn cases must include negative and non-negative a"
    rec = student(batch, "partial")
    assert rec["exercises"]["_tg_add"]["passed"] == right
    assert rec["total"] == pytest.approx(2 * right / len(cases) + 3)
    assert rec["exercises"]["_tg_value"]["status"] == "missing"
    failed = [c for c in rec["exercises"]["_tg_add"]["cases"] if not c["passed"]]
    assert failed and all("expected" in c["reason"] and c["input"].startswith("(-") for c in failed)


@pytest.mark.slow  # uses the graded adversarial batch: not for the quick run (tests/README.md)
def test_exercise_statuses_say_what_happened(batch):
    blank = student(batch, "blank")["exercises"]
    assert {k: v["status"] for k, v in blank.items()} == dict.fromkeys(IDS, "not-attempted")
    raises = student(batch, "raises")
    assert raises["exercises"]["_tg_add"]["status"] == "error"
    assert "ValueError: bad input" in raises["exercises"]["_tg_add"]["cases"][0]["reason"]
    assert raises["exercises"]["_tg_value"]["status"] == "missing"  # 1 / 0 failed, so never defined
    assert any("ZeroDivisionError" in e["error"] for e in raises["cells"]["errors"])
    hang = student(batch, "hang")["exercises"]["_tg_add"]
    assert hang["status"] == "error" and "did not return" in hang["cases"][0]["reason"]
    deleted = student(batch, "deleted")["exercises"]["_tg_relu_sum"]
    assert deleted["status"] == "missing" and deleted["score"] == 0
    eqall = student(batch, "eqall")["exercises"]
    assert "not plain data" in eqall["_tg_add"]["cases"][0]["reason"]
    assert eqall["_tg_value"]["cases"][0]["passed"] is False  # Liar(7) is the int 7, not 42


@pytest.mark.slow  # uses the graded adversarial batch: not for the quick run (tests/README.md)
def test_timeout_and_memory_reports(batch):
    stopped = student(batch, "timeout")["cells"]["errors"]
    assert stopped[0]["cell"] == 0 and "time limit" in stopped[0]["error"] and stopped[0]["name"] == "cell [1] `while True:`"
    assert student(batch, "timeout")["exercises"]["_tg_add"]["status"] == "ok"
    mem = student(batch, "memory")
    if MEMORY_HOG[2] == "memory":
        assert "memory limit" in mem["detail"]
    else:
        assert any("MemoryError" in e["error"] for e in mem["cells"]["errors"])


@pytest.mark.slow  # uses the graded adversarial batch: not for the quick run (tests/README.md)
def test_grader_files_cannot_be_forged(batch):
    out = batch["out"]
    assert "vandal" in batch["csv"] and float(batch["csv"]["vandal"]["total"]) == 0
    assert "1000" not in (out / "grades.csv").read_text()
    for md in (out / "feedback").glob("*.md"):
        assert "FORGED" not in md.read_text(), md.name
    assert student(batch, "vandal")["total"] == 0


@pytest.mark.slow  # uses the graded adversarial batch: not for the quick run (tests/README.md)
def test_detached_processes_are_killed(batch):
    assert not batch["marker"].exists()
    assert "escaper" in (batch["out"] / "grades.csv").read_text()


@pytest.mark.slow  # uses the graded adversarial batch: not for the quick run (tests/README.md)
def test_reports_never_show_the_reference_code(batch):
    text = (batch["out"] / "grades.json").read_text() + "".join(p.read_text() for p in (batch["out"] / "feedback").glob("*.md"))
    assert "clamp(x, min=0)" not in text and "return a + b" not in text


@pytest.mark.slow  # uses the graded adversarial batch: not for the quick run (tests/README.md)
def test_feedback_explains_failures(batch):
    fb = (batch["out"] / "feedback" / "partial.md").read_text()
    assert "Score:" in fb and "_tg_add" in fb and "expected" in fb and "not defined" in fb
    fb = (batch["out"] / "feedback" / "timeout.md").read_text()
    assert "- cell [1] `while True:`: `ran past its" in fb and "time limit" in fb


@pytest.mark.skipif(not can_drop_privileges(), reason="needs root and a Python that an unprivileged user may run")
@pytest.mark.slow  # uses the graded adversarial batch: not for the quick run (tests/README.md)
def test_kill_everything_is_contained(batch):
    assert student(batch, "kill_all")["status"] in ("ok", "crashed")
    assert student(batch, "full")["total"] == 6


# --------------------------------------------------------------------------------------------
# Reruns, Gradescope, usage errors
# --------------------------------------------------------------------------------------------


@pytest.mark.slow  # runs `course grade` or a kernel end to end: not for the quick run (tests/README.md)
def test_rerun_skips_graded_and_regrades_changed(tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    write_nb(subs / "ann.ipynb", FULL)
    write_nb(subs / "bob.ipynb", ["def add(a, b):\n    raise NotImplementedError"])
    first = run_grade(subs, "--out", out, "--jobs", 2)
    assert first.returncode == 0, first.stderr
    seed = json.loads((out / "grades.json").read_text())["seed"]
    assert read_csv(out)["bob"]["total"] == "0"

    write_nb(subs / "bob.ipynb", FULL)  # bob resubmits
    second = run_grade(subs, "--out", out, "--jobs", 2)
    assert second.returncode == 0, second.stderr
    assert "skipping 1 already graded" in second.stdout
    data = json.loads((out / "grades.json").read_text())
    assert data["seed"] == seed  # the rerun reuses the batch's seed
    assert read_csv(out)["bob"]["total"] == "6"

    third = run_grade(subs, "--out", out, "--force", "--seed", 7)
    assert third.returncode == 0 and "skipping" not in third.stdout
    assert json.loads((out / "grades.json").read_text())["students"]["ann"]["seed"] == 7


@pytest.mark.slow  # runs `course grade` or a kernel end to end: not for the quick run (tests/README.md)
def test_gradescope_results(tmp_path):
    sub = write_nb(tmp_path / "alice.ipynb", FULL[:2])
    out = tmp_path / "results"
    done = run_grade(sub, "--out", out, "--gradescope", "--lesson", "_test_grade")
    assert done.returncode == 0, done.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["score"] == 2.0
    assert [t["max_score"] for t in res["tests"]] == [2.0, 3.0, 1.0]
    assert [t["status"] for t in res["tests"]] == ["passed", "failed", "failed"]
    assert sum(t["score"] for t in res["tests"]) == res["score"]
    assert all(isinstance(t["name"], str) and isinstance(t["output"], str) for t in res["tests"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["does/not/exist.ipynb"], "does not exist"),
        (["{two}", "--gradescope"], "exactly one"),
        (["{one}", "--jobs", "0"], "positive integer"),
        (["{one}", "--timeout", "soon"], "seconds"),
        (["{one}", "--lesson", "no_such_lesson"], "no exercises"),
        (["{txt}"], "not a .ipynb"),
    ],
)
@pytest.mark.slow  # starts `course grade` once per case: not for the quick run (tests/README.md)
def test_usage_errors_exit_2(tmp_path, args, message):
    two = tmp_path / "two"
    two.mkdir()
    write_nb(two / "a.ipynb", FULL)
    write_nb(two / "b.ipynb", FULL)
    txt = tmp_path / "notes.txt"
    txt.write_text("hi")
    paths = {"two": str(two), "one": str(two / "a.ipynb"), "txt": str(txt)}
    done = run_grade(*[a.format(**paths) for a in args], "--out", tmp_path / "out")
    assert done.returncode == 2
    assert message in done.stderr


@pytest.mark.slow  # starts `course grade`: not for the quick run (tests/README.md)
def test_missing_lesson_metadata_is_a_usage_error(tmp_path):
    nb = write_nb(tmp_path / "x.ipynb", FULL, lesson="not_a_lesson")
    done = run_grade(nb, "--out", tmp_path / "out")
    assert done.returncode == 2 and "--lesson" in done.stderr


# --------------------------------------------------------------------------------------------
# The plain-data encoding, which is the only thing that crosses from a submission to the grader
# --------------------------------------------------------------------------------------------


def test_encoding_round_trips_every_plain_type(tmp_path):
    value = {
        "ints": [0, -3, 10**40],
        "floats": (0.1, float("nan"), float("-inf"), 1e-310),
        "text": "é",
        "none": None,
        "flags": [True, False],
        "array": np.arange(6, dtype=np.int16).reshape(2, 3),
        "tensor": torch.linspace(-1, 1, 5, dtype=torch.float64),
        "half": torch.tensor([1.5, 2.0], dtype=torch.bfloat16),
    }
    node = json.loads(json.dumps(encoding.encode(value, tmp_path)))
    back = encoding.decode(node, tmp_path)
    assert back["ints"] == [0, -3, 10**40]
    assert back["floats"][0] == 0.1 and np.isnan(back["floats"][1]) and back["floats"][2] == float("-inf")
    assert back["floats"][3] == 1e-310 and isinstance(back["floats"], tuple)
    assert back["text"] == "é" and back["none"] is None and back["flags"] == [True, False]
    assert back["array"].dtype == np.int16 and np.array_equal(back["array"], value["array"])
    assert isinstance(back["tensor"], torch.Tensor) and torch.equal(back["tensor"], value["tensor"])
    assert back["half"].dtype == torch.bfloat16 and torch.equal(back["half"], value["half"])
    as_arrays = encoding.decode(node, tmp_path, tensors=False)
    assert isinstance(as_arrays["tensor"], np.ndarray)


def test_encoding_refuses_what_is_not_plain(tmp_path):
    class Thing:
        pass

    deep: list = [0]
    for _ in range(30):
        deep = [deep]
    for bad in (Thing(), np.array([Thing()], dtype=object), {1: 2}, lambda: 0, deep):
        with pytest.raises(encoding.EncodingError):
            encoding.encode(bad, tmp_path)


def test_decode_refuses_untrusted_tricks(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "target.npy").write_bytes((tmp_path / "obj.npy").read_bytes())
    os.symlink(tmp_path / "target.npy", tmp_path / "link.npy")
    np.save(tmp_path / "ok.npy", np.zeros(3))
    np.save(tmp_path / "linked.npy", np.zeros(3))
    os.link(tmp_path / "linked.npy", tmp_path / "hard.npy")
    for node, message in [
        ({"t": "ndarray", "f": "obj.npy"}, "not a valid .npy"),
        ({"t": "ndarray", "f": "link.npy"}, "cannot read"),
        ({"t": "ndarray", "f": "hard.npy"}, "hard links"),
        ({"t": "ndarray", "f": "../ok.npy"}, "bad array file name"),
        ({"t": "ndarray", "f": "/etc/passwd"}, "bad array file name"),
        ({"t": "int", "v": "1" * 5000}, "malformed int"),
        ({"t": "float", "v": 1.5}, "malformed float"),
        ({"t": "pickle", "v": "x"}, "unknown node type"),
        ({"t": "dict", "v": [[1, {"t": "none"}]]}, "malformed dict"),
        ({"t": "tensor", "f": "ok.npy", "dtype": "object"}, "unsupported tensor dtype"),
        ("not a node", "malformed node"),
    ]:
        with pytest.raises(encoding.EncodingError, match=message):
            encoding.decode(node, tmp_path)
    deep = {"t": "none"}
    for _ in range(40):
        deep = {"t": "list", "v": [deep]}
    with pytest.raises(encoding.EncodingError, match="nested"):
        encoding.decode(deep, tmp_path)
    with pytest.raises(encoding.EncodingError, match="arrays"):
        encoding.decode({"t": "list", "v": [{"t": "ndarray", "f": "ok.npy"}] * 3}, tmp_path, encoding.Limits(max_arrays=2))
    with pytest.raises(encoding.EncodingError, match="not written by the worker"):
        encoding.decode({"t": "ndarray", "f": "ok.npy"}, tmp_path, encoding.Limits(owner_uid=os.geteuid() + 1))


# --------------------------------------------------------------------------------------------
# Every lesson: the lesson itself earns full marks, its released workbook earns 0 with status ok
# --------------------------------------------------------------------------------------------

NOTEBOOKS = HERE.parent / "notebooks"
LESSONS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


# Lessons whose exercise tests grade, in one batch (tests/graded_batches.py), the lesson itself (full
# marks, no cell errors) and its untouched workbook (0, every exercise "not attempted") beside wrong and
# forbidden attempts:
# grading them here as well would only repeat that batch.
GRADED_WITH_THEIR_ATTEMPTS = {
    "01_why_convolution": "tests/test_exercises_01_03_graded.py",
    "02_output_size": "tests/test_exercises_01_03_graded.py",
    "03_conv2d_in_pytorch": "tests/test_exercises_01_03_graded.py",
    "04_pooling_and_activation": "tests/test_exercises_04_05_graded.py",
    "05_global_average_pooling": "tests/test_exercises_04_05_graded.py",
    "06_tinycnn_cifar10": "tests/test_lesson06_07_exercises.py",
    "07_batchnorm_dropout": "tests/test_lesson06_07_exercises.py",
}
# The name of the one-batch test in each of those files.
BATCH_TESTS = ("def test_released_lesson_attempted_wrongly_and_with_forbidden_calls_then_graded",
               "def test_lesson_graded_end_to_end_in_one_batch")


def _lesson_params():
    return [
        # Every one grades a whole lesson twice: not for the quick run (tests/README.md).
        pytest.param(p, id=p.stem, marks=[pytest.mark.slow])
        for p in LESSONS
        if p.stem not in GRADED_WITH_THEIR_ATTEMPTS
    ]


def test_every_lesson_is_graded_in_full_somewhere():
    """Each lesson is graded end to end, here or in the exercise test named for it."""
    here = {p.stem for p in LESSONS if p.stem not in GRADED_WITH_THEIR_ATTEMPTS}
    for stem, test_file in GRADED_WITH_THEIR_ATTEMPTS.items():
        source = (HERE.parent / test_file).read_text()
        assert any(name in source for name in BATCH_TESTS), test_file
        assert "assert_solved_and_untouched(" in source, test_file
    shared = (HERE / "graded_batches.py").read_text()
    assert '["cells"]["errors"] == []' in shared and '["total"] == 0' in shared
    assert here | set(GRADED_WITH_THEIR_ATTEMPTS) == {p.stem for p in LESSONS}


@pytest.mark.parametrize("lesson", _lesson_params())
def test_lesson_full_marks_and_released_workbook_zero(tmp_path, lesson):
    from course_utils.exercises.registry import exercises_for_lesson

    if not exercises_for_lesson(lesson.stem):
        pytest.skip(f"{lesson.stem} has no exercises in the bank")
    released = tmp_path / "released"
    done = subprocess.run([sys.executable, "-m", "course_utils", "release", str(lesson), "--out", str(released)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    workbooks = sorted(released.rglob("*.ipynb"))
    assert len(workbooks) == 1, workbooks

    # (tests/test_release.py executes every workbook in a kernel; here the grader runs them.)
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "solution.ipynb").write_bytes(lesson.read_bytes())
    (subs / "workbook.ipynb").write_bytes(workbooks[0].read_bytes())
    out = tmp_path / "out"
    graded = run_grade(subs, "--out", out, "--jobs", 2, "--timeout", 300)
    assert graded.returncode == 0, graded.stderr
    data = json.loads((out / "grades.json").read_text())
    solution, workbook = data["students"]["solution"], data["students"]["workbook"]
    assert solution["status"] == "ok" and solution["total"] == solution["max"] > 0, json.dumps(solution, indent=1)[:3000]
    # Every cell of the lesson runs in the grading process too (a setup cell's `%matplotlib inline` once failed there).
    assert solution["cells"]["errors"] == [], solution["cells"]
    assert workbook["status"] == "ok" and workbook["total"] == 0
    assert {e["status"] for e in workbook["exercises"].values()} == {"not-attempted"}


@pytest.mark.parametrize("jobs, own, expected", [(1, None, 4), (2, None, 2), (3, None, 1), (8, None, 1),
                                                  (1, "1", 1), (2, "1", 1), (1, "3", 3), (1, "junk", 4)])
def test_submissions_share_the_cpu_threads(monkeypatch, jobs, own, expected):
    # On a 4-core machine: each of `jobs` submissions gets its share of the cores, and never
    # more threads than the grader itself was given through OMP_NUM_THREADS.
    from course_utils.grading import grade

    monkeypatch.setattr(grade.os, "cpu_count", lambda: 4)
    if own is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", own)
    grader = object.__new__(grade._Grader)  # only the environment is under test, not a batch
    grader.jobs = jobs
    env = grader._child_env("/nonexistent-home")
    assert {env[name] for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")} == {str(expected)}


def test_grading_shell_draws_no_pictures():
    # A figure that a graded cell displays is never seen, so the grading shell must not spend time
    # drawing it as a PNG; its text form is still produced. Run apart: the shell is a singleton
    # that would make this test process look like an IPython kernel.
    code = (
        "from course_utils.grading.worker import _make_shell\n"
        "from course_utils import show_figures_as_images\n"
        "from matplotlib.figure import Figure\n"
        "shell = _make_shell()\n"
        "assert show_figures_as_images()\n"  # what every lesson's setup() does
        "fig = Figure(figsize=(2, 2)); fig.add_subplot().plot([0, 1])\n"
        "data, _ = shell.display_formatter.format(fig)\n"
        "print(sorted(data))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['text/plain']", done.stdout
