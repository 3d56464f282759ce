"""Attacks on ``course grade``, one or more per class of the issue "The grader in a real sandbox".

1. Isolation fails open: a submission writes the installed package, the gradebook, leaves a process
   behind, or kills a classmate (``kill_all``).
2. A submission reads what is not its own: a classmate's notebook, the output folder, the grader's
   command line, the solution notebooks, the exercise references.
3. Two runs at once interfere.
4. The trusted side trusts untrusted data: a lying ``.npy`` header, a huge ``results.json``, a
   notebook of millions of cells, a FIFO, a symlink, formula-like names, ``MemoryError`` printed,
   closed or flooded stdout, a value whose conversion never ends, memory held across processes.

A "leak" attack sets ``answer_value = 42`` (1 point) only if it could see what it must not, so a
leak shows as a point and a held line as 0. Every notebook is built here; the exercises are the
test-only bank of ``tests/fixtures_grade_exercises.py`` (lesson ``_test_grade``). The tests that need
the sandbox run where it works (``sandbox.problem()``: bubblewrap and root on this machine).
"""
from __future__ import annotations

import csv
import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from test_grade import FIXTURE, FULL, IDS, SEED, read_csv, run_grade, write_nb

from course_utils.grading import encoding

pytestmark = pytest.mark.slow  # grades batches of attack notebooks in the sandbox: not for the quick run (tests/README.md)

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "course_utils"


def sandbox_works() -> bool:
    from course_utils.grading import sandbox

    if os.geteuid() != 0:
        return sandbox.problem() == ""
    lease = sandbox.UidLease(1)
    try:
        return sandbox.problem(as_uid=lease.uids[0]) == ""
    finally:
        lease.release()


needs_sandbox = pytest.mark.skipif(not sandbox_works(), reason="bubblewrap cannot sandbox the grader here")


def _leak(condition: str) -> list[str]:
    """A submission that earns the value point exactly when ``condition`` (Python) is true."""
    return [
        "import os, glob",
        "def add(a, b):\n    return a + b",
        f"try:\n    leaked = bool({condition})\nexcept Exception:\n    leaked = False\n"
        "answer_value = 42 if leaked else 0",
    ]


# A process tree that outlives one sweep of the grader's children (kill every child listed in /proc,
# once): the sweep kills the tree's head, then spends a while on the decoys listed after it, while
# the heir (last in the listing, so not killed yet) forks a new head that no listing holds, which
# builds the tree again. The tree is a fresh small Python (quick to fork: rebuilt well before the
# next sweep). Once the grader has exited it adds a row to grades.csv, writes into the feedback and
# leaves a marker; where it cannot see the grader (a PID namespace) it tries 15 s after it started,
# well before the batch ends. The grader before the sandbox lost to it.
_LINEAGE = """\
import ctypes, os, signal, sys, time
OUT, MARKER, GRADER, READY = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
TRY_AT = time.time() + 15

def grader_alive():
    return os.path.exists(f"/proc/{GRADER}") if GRADER else time.time() < TRY_AT

def forge():
    time.sleep(0.5)
    try:
        with open(os.path.join(OUT, "grades.csv"), "a") as fh:
            fh.write("forged_by_lingerer,2,3,1,6,6,ok,\\n")
        with open(os.path.join(OUT, "feedback", "lingerer.md"), "a") as fh:
            fh.write("forged by a process that outlived the grader\\n")
    finally:
        open(MARKER, "w").write("still here")

def heir():
    parent = os.getppid()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    ctypes.CDLL(None).prctl(1, int(signal.SIGUSR1), 0, 0, 0)  # PR_SET_PDEATHSIG: told when the head dies
    if os.getppid() == parent:
        signal.sigwait({signal.SIGUSR1})
    if os.fork() == 0:
        head(None)
    os._exit(0)

def head(ready):
    kids = []
    for _ in range(64):  # decoys: listed between the head and the heir
        pid = os.fork()
        if pid == 0:
            ballast = b"x" * (4 << 20)  # touched memory: a decoy takes a moment to die
            time.sleep(300)
            os._exit(0)
        kids.append(pid)
    pid = os.fork()
    if pid == 0:
        heir()
    kids.append(pid)
    if ready is not None:
        os.write(ready, b"x")
        os.close(ready)
    while grader_alive():
        time.sleep(0.1)
    try:
        forge()
    finally:
        for pid in kids:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        os._exit(0)

try:
    head(READY)
finally:
    os._exit(0)
"""

_LINGERER = """\
import os, select, sys
GRADER = 0
pid = os.getpid()
for _ in range(30):  # the grading process among this one's ancestors, where /proc shows it
    try:
        if b"course_utils.grading.grade" in open(f"/proc/{pid}/cmdline", "rb").read():
            GRADER = pid
            break
        stat = open(f"/proc/{pid}/stat", "rb").read()
        pid = int(stat[stat.rfind(b")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        break
    if pid <= 1:
        break
r, w = os.pipe()
if os.fork() == 0:
    os.close(r)
    os.setsid()
    os.set_inheritable(w, True)
    os.execv(sys.executable, [sys.executable, "-S", "-c", LINEAGE, OUT, MARKER, str(GRADER), str(w)])
os.close(w)
select.select([r], [], [], 30)  # the tree is in place before the notebook goes on
os.close(r)
"""


def _lingerer(out: Path, marker: Path) -> str:
    return f"LINEAGE = {_LINEAGE!r}\nOUT, MARKER = {str(out)!r}, {str(marker)!r}\n" + _LINGERER


_PRINTING_ADD = "def add(a, b):\n    print('adding', a, b)\n    return a + b"


def _attacks(subs: Path, out: Path, marker: Path) -> dict[str, list[str]]:
    probe = PACKAGE / ".attack_probe"
    return {
        "honest": FULL,
        # 1. isolation
        "whoami": ["import os", "def add(a, b):\n    return a + b", "answer_value = 42 if os.getuid() == 0 else 0"],
        "package_writer": [
            *FULL[:3],
            f"try:\n    open({str(probe)!r}, 'w').write('x')\n    answer_value = 42\nexcept OSError:\n    answer_value = 0",
        ],
        "lingerer": [_lingerer(out, marker), *FULL],
        # 2. reading what is not its own
        "reads_classmate": _leak(f"open({str(subs / 'honest.ipynb')!r}).read()"),
        "reads_out": _leak(f"os.listdir({str(out)!r}) is not None"),
        "reads_solutions": _leak(f"open({str(REPO / 'notebooks' / '00_start_here.ipynb')!r}).read()"),
        "reads_bank": _leak(f"open({str(FIXTURE)!r}).read()"),
        "imports_reference": _leak(
            "__import__('course_utils.exercises.registry', fromlist=['x']).get_exercise('_tg_value').reference() == 42"
        ),
        "reads_cmdline": _leak(
            "any(b'--out' in open(p, 'rb').read() for p in glob.glob('/proc/[0-9]*/cmdline'))"
        ),
        # 4. the trusted side
        "prints_memoryerror": [*FULL, "print('MemoryError: cannot allocate memory')\nimport sys\nprint('MemoryError', file=sys.stderr)"],
        # Its function prints while it is graded, into a buffer that is flushed only after every
        # answer was computed: onto descriptors the last cell closed, or onto /dev/full.
        "closes_stdio": [FULL[0], _PRINTING_ADD, *FULL[2:], "import os\nos.close(0)\nos.close(1)\nos.close(2)"],
        "full_stdout": [FULL[0], _PRINTING_ADD, *FULL[2:],
                        "import os\nfull = os.open('/dev/full', os.O_WRONLY)\nos.dup2(full, 1)\nos.dup2(full, 2)"],
        "floods_stdout": [
            *FULL,
            "import resource, sys\nresource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
            "for _ in range(64):\n    print('x' * 65536)",
        ],
        "endless_value": [
            "import torch",
            "class Forever(list):\n    def __iter__(self):\n        while True:\n            yield 1",
            "def add(a, b):\n    return Forever([a + b])",
            FULL[2],
            FULL[3],
        ],
        "npy_bomb": [
            *FULL,
            # Forge its own results: one array whose header claims 1 TiB, then leave before the worker
            # rewrites them. The grader must refuse it before allocating, and grade the rest.
            "import os, json, numpy as np\n"
            "results = '/grading/results' if os.path.isdir('/grading/results') else os.path.join(os.path.dirname(os.getcwd()), 'results')\n"
            "header = np.lib.format.header_data_from_array_1_0(np.zeros(1, dtype=np.float64))\n"
            "header['shape'] = (1 << 37,)\n"
            "with open(os.path.join(results, 'bomb.npy'), 'wb') as fh:\n"
            "    np.lib.format.write_array_header_1_0(fh, header)\n"
            "    fh.write(b'\\0' * 64)\n"
            "node = {'t': 'ndarray', 'f': 'bomb.npy'}\n"
            "forged = {'cells': {'run': 5, 'errors': []}, 'done': True, 'exercises': {\n"
            "    '_tg_add': {'status': 'ok', 'cases': [{'out': node}] * 8},\n"
            "    '_tg_relu_sum': {'status': 'ok', 'cases': [{'out': node}] * 6},\n"
            "    '_tg_value': {'status': 'ok', 'cases': [{'out': {'t': 'int', 'v': '42'}}]}}}\n"
            "json.dump(forged, open(os.path.join(results, 'results.json'), 'w'))\n"
            "os._exit(0)",
        ],
    }


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    root = tmp_path_factory.mktemp("attacks")
    subs, out = root / "subs", root / "out"
    subs.mkdir()
    marker = root / "lingered.txt"
    probe = PACKAGE / ".attack_probe"
    for name, cells in _attacks(subs, out, marker).items():
        write_nb(subs / f"{name}.ipynb", cells)
    write_nb(subs / "=HYPERLINK(1)", FULL).rename(subs / "=HYPERLINK(1).ipynb")
    write_nb(subs / "-2+3.ipynb", FULL)
    os.mkfifo(subs / "fifo.ipynb")
    os.symlink(REPO / "notebooks" / "00_start_here.ipynb", subs / "linked.ipynb")
    try:
        done = run_grade(subs, "--out", out, "--seed", SEED, "--jobs", 2, "--timeout", 40, timeout=900)
        time.sleep(3)  # the lingerer writes 0.5 s after the grader has exited, if it is still there
    finally:
        probe_written = probe.exists()
        if probe_written:
            probe.unlink()
    data = json.loads((out / "grades.json").read_text()) if (out / "grades.json").exists() else {"students": {}}
    return {"proc": done, "data": data, "out": out, "marker": marker, "probe_written": probe_written, "subs": subs}


def rec(attacked, name):
    assert name in attacked["data"]["students"], attacked["proc"].stderr[-2000:]
    return attacked["data"]["students"][name]


def test_attack_batch_completes(attacked):
    assert attacked["proc"].returncode == 0, attacked["proc"].stderr[-3000:]


# ---- 1. isolation ---------------------------------------------------------------------------


@needs_sandbox
def test_root_grading_runs_submissions_in_the_sandbox_not_as_root(attacked):
    assert attacked["data"]["isolation"].startswith("sandbox"), attacked["data"]["isolation"]
    assert rec(attacked, "whoami")["total"] == 2  # add right, value point withheld: uid was not 0
    assert "sandbox" in attacked["proc"].stdout + attacked["proc"].stderr


@needs_sandbox
def test_a_submission_cannot_write_the_installed_package(attacked):
    assert not attacked["probe_written"]
    assert rec(attacked, "package_writer")["exercises"]["_tg_value"]["score"] == 0


@needs_sandbox
def test_nothing_a_submission_starts_outlives_it(attacked):
    assert not attacked["marker"].exists()
    assert rec(attacked, "lingerer")["total"] == 6
    # The gradebook is as the grader left it: no row added, no feedback rewritten after it exited.
    rows = read_csv(attacked["out"])
    assert "forged_by_lingerer" not in rows and len(rows) == len(attacked["data"]["students"]), sorted(rows)
    assert "forged" not in (attacked["out"] / "feedback" / "lingerer.md").read_text()


# ---- 2. reading what is not its own ---------------------------------------------------------


@needs_sandbox
@pytest.mark.parametrize("name", ["reads_classmate", "reads_out", "reads_solutions", "reads_bank", "imports_reference", "reads_cmdline"])
def test_a_submission_sees_only_itself(attacked, name):
    r = rec(attacked, name)
    assert r["exercises"]["_tg_add"]["score"] == 2, r  # the notebook itself ran
    assert r["exercises"]["_tg_value"]["score"] == 0, f"{name} could read what is not its own"


# ---- 4. the trusted side --------------------------------------------------------------------


def test_printed_memoryerror_is_not_a_status(attacked):
    r = rec(attacked, "prints_memoryerror")
    assert (r["status"], r["total"]) == ("ok", 6), r["detail"]


@pytest.mark.parametrize("name", ["closes_stdio", "full_stdout", "floods_stdout"])
def test_answers_survive_closed_or_flooded_stdout(attacked, name):
    r = rec(attacked, name)
    assert (r["status"], r["total"]) == ("ok", 6), r["detail"]


def test_a_value_whose_conversion_never_ends_is_that_case_s_timeout(attacked):
    r = rec(attacked, "endless_value")
    assert r["status"] == "ok", r["detail"]
    assert r["exercises"]["_tg_add"]["score"] == 0
    assert r["exercises"]["_tg_relu_sum"]["score"] == 3 and r["exercises"]["_tg_value"]["score"] == 1


def test_a_lying_npy_header_is_refused_before_allocating(attacked):
    r = rec(attacked, "npy_bomb")
    assert r["exercises"]["_tg_add"]["score"] == 0
    assert any("larger than" in c["reason"] or "claims" in c["reason"] for c in r["exercises"]["_tg_add"]["cases"])
    assert r["exercises"]["_tg_value"]["score"] == 1  # the rest of its forged results is still read


def test_fifo_and_symlink_submissions_are_refused_not_followed(attacked):
    assert rec(attacked, "fifo")["status"] == "invalid-notebook"
    linked = rec(attacked, "linked")
    assert (linked["status"], linked["total"]) == ("invalid-notebook", 0)
    assert "link" in linked["detail"]


def test_formula_names_are_safe_in_csv_and_exact_in_json(attacked):
    names = set(attacked["data"]["students"])
    assert {"=HYPERLINK(1)", "-2+3"} <= names
    with open(attacked["out"] / "grades.csv", newline="") as fh:
        first_column = [row[0] for row in csv.reader(fh)][1:]
    assert all(not n[:1] in ("=", "+", "-", "@") for n in first_column), first_column
    assert "'=HYPERLINK(1)" in first_column and "'-2+3" in first_column


def test_output_folder_is_private_while_grading(attacked):
    # After the run it is as the grader made it: only the grader's user may enter it.
    assert stat.S_IMODE(os.stat(attacked["out"]).st_mode) & 0o077 == 0


# ---- 1. a forged gradebook row is not trusted on a rerun ------------------------------------


def test_forged_row_in_the_gradebook_is_regraded(tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    write_nb(subs / "mallory.ipynb", ["def add(a, b):\n    return 0"])
    first = run_grade(subs, "--out", out, "--seed", SEED, "--jobs", 1)
    assert first.returncode == 0, first.stderr
    earned = read_csv(out)["mallory"]["total"]  # the edge cases whose sum is 0 pass
    assert float(earned) < 6
    data = json.loads((out / "grades.json").read_text())
    row = data["students"]["mallory"]
    row["total"] = 6
    for ex in row["exercises"].values():
        ex["score"] = ex["points"]
    (out / "grades.json").write_text(json.dumps(data))
    second = run_grade(subs, "--out", out, "--seed", SEED, "--jobs", 1)
    assert second.returncode == 0, second.stderr
    assert "skipping" not in second.stdout
    assert read_csv(out)["mallory"]["total"] == earned


# ---- 3. two runs at once --------------------------------------------------------------------


@needs_sandbox
def test_two_runs_at_once_both_grade_correctly(tmp_path):
    results = {}

    def one(tag: str) -> None:
        subs, out = tmp_path / f"subs{tag}", tmp_path / f"out{tag}"
        subs.mkdir()
        write_nb(subs / "honest1.ipynb", FULL)
        write_nb(subs / "honest2.ipynb", [*FULL, "import time\ntime.sleep(2)"])
        # Tries to kill every process its uid may signal, and to write into the other run's results.
        write_nb(subs / "killer.ipynb", ["import os, signal, glob\n"
                                         "for p in glob.glob('/tmp/course-grade-*/*/results'):\n"
                                         "    try:\n        open(p + '/results.json', 'w').write('{}')\n    except OSError:\n        pass\n"
                                         "try:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass", *FULL])
        results[tag] = (run_grade(subs, "--out", out, "--seed", SEED, "--jobs", 2, "--timeout", 60), out)

    threads = [threading.Thread(target=one, args=(t,)) for t in "AB"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for tag, (proc, out) in results.items():
        assert proc.returncode == 0, proc.stderr
        rows = read_csv(out)
        assert rows["honest1"]["total"] == "6" and rows["honest1"]["status"] == "ok", (tag, rows)
        assert rows["honest2"]["total"] == "6" and rows["honest2"]["status"] == "ok", (tag, rows)


# ---- fail closed ----------------------------------------------------------------------------


def test_without_bubblewrap_grading_refuses_and_names_the_fix(tmp_path):
    write_nb(tmp_path / "a.ipynb", FULL)
    env = {**os.environ, "COURSE_EXTRA_EXERCISES": str(FIXTURE), "COURSE_BWRAP": ""}
    runner = "import sys; from course_utils.grading.grade import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", runner, str(tmp_path / "a.ipynb"), "--out", str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "bubblewrap" in done.stderr and "--no-sandbox" in done.stderr and "apt-get install bubblewrap" in done.stderr
    assert not (tmp_path / "out" / "grades.csv").exists()
    again = subprocess.run([sys.executable, "-c", runner, str(tmp_path / "a.ipynb"), "--out", str(tmp_path / "out"), "--no-sandbox"],
                           env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert read_csv(tmp_path / "out")["a"]["total"] == "6"
    assert json.loads((tmp_path / "out" / "grades.json").read_text())["isolation"].startswith("none")


# ---- memory for the whole submission --------------------------------------------------------


@needs_sandbox
def test_memory_limit_covers_every_process_of_a_submission(tmp_path):
    from course_utils.grading import sandbox

    probe = sandbox.Cgroup.create(f"course-grade-probe-{os.getpid()}", 1 << 30)
    if probe is None:
        pytest.skip("no writable cgroup here: the bound is RLIMIT_AS per process times the process limit")
    probe.remove()
    # 3 fresh interpreters of 1,800 MB each under --memory 4096: each alone fits a per-process limit
    # (a small new process, unlike a fork of the worker that already holds PyTorch), together they
    # do not. A per-process limit lets all three live; only a limit on the whole submission stops them.
    hog = ("import time\nblock = bytearray(1800 << 20)\nfor i in range(0, len(block), 4096):\n    block[i] = 1\n"
           "time.sleep(10)")
    write_nb(tmp_path / "hog.ipynb", [*FULL,
        "import subprocess, sys\n"
        f"kids = [subprocess.Popen([sys.executable, '-S', '-c', {hog!r}]) for _ in range(3)]\n"
        "for kid in kids:\n    kid.wait()"])
    # (The worker itself, with PyTorch loaded, needs more than 3 GB of address space: a smaller
    # --memory would stop it before the attack, under any grader.)
    done = run_grade(tmp_path / "hog.ipynb", "--out", tmp_path / "out", "--memory", 4096, "--timeout", 60)
    assert done.returncode == 0, done.stderr
    r = json.loads((tmp_path / "out" / "grades.json").read_text())["students"]["hog"]
    assert r["status"] == "memory", r


# ---- the trusted side's readers, directly ---------------------------------------------------


def test_npy_header_is_checked_against_the_file_size(tmp_path):
    with open(tmp_path / "bomb.npy", "wb") as fh:
        header = np.lib.format.header_data_from_array_1_0(np.zeros(1))
        header["shape"] = (1 << 40,)
        np.lib.format.write_array_header_1_0(fh, header)
    with pytest.raises(encoding.EncodingError, match="claims"):
        encoding.decode({"t": "ndarray", "f": "bomb.npy"}, tmp_path)


def test_results_json_has_a_hard_cap(tmp_path):
    (tmp_path / "results.json").write_text("[" + "0," * (9 << 20) + "0]")
    with pytest.raises(encoding.EncodingError, match="larger than"):
        encoding.read_json(tmp_path, "results.json", encoding.Limits(max_json_bytes=16 << 20))


def test_a_notebook_of_millions_of_cells_is_refused(tmp_path):
    from course_utils.grading.grade import read_submission

    cell = '{"cell_type": "code", "metadata": {}, "source": "", "outputs": [], "execution_count": null}'
    (tmp_path / "many.ipynb").write_text('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [' + ",".join([cell] * 60000) + "]}")
    nb = read_submission(str(tmp_path / "many.ipynb"))
    assert nb.cells is None and "cells" in nb.problem


def test_lesson_in_one_notebook_does_not_set_the_batch(tmp_path):
    # Issue 12 item 4 (helper A's part): the batch's lessons come from --lesson or the whole batch.
    subs = tmp_path / "subs"
    subs.mkdir()
    write_nb(subs / "a.ipynb", FULL)
    write_nb(subs / "b.ipynb", FULL)
    write_nb(subs / "claims_other.ipynb", FULL, lesson="02_output_size")
    done = run_grade(subs, "--out", tmp_path / "out", "--jobs", 2)
    assert done.returncode == 0, done.stderr
    data = json.loads((tmp_path / "out" / "grades.json").read_text())
    assert data["exercise_ids"] == IDS, data["exercise_ids"]


# ---- 2b. the built-in lessons' references, hidden from the sandbox --------------------------

# Each attack answers the value exercise (42) with the built-in reference of lesson 02's conv_out:
# conv_out(40, 3, 1, 1) is 40, so ``+ 2`` gives the point exactly when the reference was reachable.
_EXERCISES_DIR = "os.path.join(os.path.dirname(course_utils.__file__), 'exercises')"


def _answers_with(expr: str, helper: str = "pass") -> list[str]:
    return [
        "import os, glob, importlib, importlib.util, marshal, course_utils\n" + helper,
        "def add(a, b):\n    return a + b",
        f"try:\n    answer_value = int({expr})\nexcept BaseException:\n    answer_value = 0",
    ]


def _pyc_names() -> str:
    # Every name a lesson02 .pyc's code objects define, read with marshal (the 16-byte header skipped).
    return (
        "[c.co_name for f in glob.glob(os.path.join(" + _EXERCISES_DIR + ", '__pycache__', 'lesson02*.pyc'))"
        " for c in marshal.loads(open(f, 'rb').read()[16:]).co_consts if hasattr(c, 'co_name')]"
    )


_REFERENCE_ATTACKS = {
    "from_import": _answers_with("__import__('course_utils.exercises.lesson02', fromlist=['conv_out']).conv_out(40, 3, 1, 1) + 2"),
    "importlib": _answers_with("importlib.import_module('course_utils.exercises.lesson02').conv_out(40, 3, 1, 1) + 2"),
    "registry": _answers_with(
        "importlib.import_module('course_utils.exercises.registry').get_exercise('conv_out').reference(40, 3, 1, 1) + 2"
    ),
    # Executes the file under another name; registering is stubbed, as the bank may be loaded already.
    "spec_from_file": _answers_with(
        "steal(os.path.join(" + _EXERCISES_DIR + ", 'lesson02.py')).conv_out(40, 3, 1, 1) + 2",
        "def steal(path):\n"
        "    reg = importlib.import_module('course_utils.exercises.registry')\n"
        "    saved, reg.register = reg.register, lambda e: e\n"
        "    try:\n"
        "        spec = importlib.util.spec_from_file_location('course_utils.exercises.stolen02', path)\n"
        "        module = importlib.util.module_from_spec(spec)\n"
        "        spec.loader.exec_module(module)\n"
        "        return module\n"
        "    finally:\n"
        "        reg.register = saved",
    ),
    "reads_source": _answers_with(f"42 if 'def conv_out' in open(os.path.join({_EXERCISES_DIR}, 'lesson02.py')).read() else 0"),
    "marshal_pyc": _answers_with(f"42 if 'conv_out' in {_pyc_names()} else 0"),
}


def _compile_lessons() -> None:
    # The attack on bytecode needs a .pyc to read: an installed package usually has them.
    import importlib.util
    import py_compile

    exercises = PACKAGE / "exercises"
    for source in sorted(exercises.glob("lesson*.py")):
        py_compile.compile(str(source), cfile=importlib.util.cache_from_source(str(source)), doraise=True)
    assert list((exercises / "__pycache__").glob("lesson02*.pyc"))


@pytest.fixture(scope="module")
def reference_attacks(tmp_path_factory):
    _compile_lessons()
    root = tmp_path_factory.mktemp("reference_attacks")
    subs, out = root / "subs", root / "out"
    subs.mkdir()
    write_nb(subs / "honest.ipynb", FULL)
    for name, cells in _REFERENCE_ATTACKS.items():
        write_nb(subs / f"{name}.ipynb", cells)
    done = run_grade(subs, "--out", out, "--seed", SEED, "--jobs", 2, "--timeout", 60, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "grades.json").read_text())["students"]


def test_the_reference_attacks_answer_right_outside_the_sandbox():
    # Without the sandbox each attack does reach the reference: so a 0 below means it was hidden.
    _compile_lessons()
    for name, cells in _REFERENCE_ATTACKS.items():
        scope: dict = {}
        exec(cells[0], scope)
        exec(cells[2], scope)
        assert scope["answer_value"] == 42, name


@needs_sandbox
@pytest.mark.parametrize("name", sorted(_REFERENCE_ATTACKS))
def test_a_submission_cannot_reach_the_built_in_references(reference_attacks, name):
    assert reference_attacks["honest"]["total"] == 6, reference_attacks["honest"]
    r = reference_attacks[name]
    assert r["exercises"]["_tg_add"]["score"] == 2, r  # the notebook itself ran
    assert r["exercises"]["_tg_value"]["score"] == 0, f"{name} answered with a built-in reference"


def test_every_built_in_run_adapter_lives_in_the_adapters_module():
    from course_utils.exercises import adapters
    from course_utils.exercises.core import _call_answer
    from course_utils.exercises.registry import all_exercises

    seen = 0
    for ex in all_exercises():
        if not ex.lesson[:2].isdigit():
            continue  # a test bank's exercise
        seen += 1
        run = ex.run
        assert run is None or run is _call_answer or run.__module__ == adapters.__name__, (ex.id, run)
        if run is not None and run is not _call_answer:
            assert getattr(adapters, run.__qualname__) is run, ex.id
    assert seen >= 20
    source = Path(adapters.__file__).read_text()
    # No references, cases or registrations: nothing in it leads to an expected value.
    assert "register(" not in source and "Exercise(" not in source and "make_cases" not in source
    assert not [line for line in source.splitlines() if line.startswith(("from .lesson", "import course_utils.exercises.lesson"))]


# ---- 2c. an instructor's bank with its own run adapter --------------------------------------

# The learner writes a class; the bank calls it through its own adapter, kept in a helper file of
# the bank (no reference in it), which the sandbox shows as a read-only copy. The bank file itself
# (the reference) stays hidden.
_ADAPTERS = '''"""How hw_cls calls an answer: build the class, then apply it (no reference here)."""


def build_and_apply(answer, case):
    k, values = case.args
    return answer(k).apply(values)
'''

_CLS_BANK = '''"""hw_cls: the learner writes a class, called through the adapter in _adapters.py."""
from _adapters import build_and_apply

from course_utils.exercises import Case, Exercise, register


class Scaler:  # PRIVATE-REFERENCE
    def __init__(self, k):
        self.k = k

    def apply(self, values):
        return [self.k * v for v in values]


def _cases(rng, n):
    return [Case((int(rng.integers(2, 9)), [int(v) for v in rng.integers(-5, 6, size=4)])) for _ in range(n)]


register(Exercise(id="scaler", lesson="hw_cls", name="Scaler", points=2, reference=Scaler,
                  public_cases=(Case((2, [1, 2])),), make_cases=_cases, n_cases=4, run=build_and_apply))
'''

_HONEST_SCALER = "class Scaler:\n    def __init__(self, k):\n        self.k = k\n\n    def apply(self, values):\n        return [self.k * v for v in values]"
_WRONG_SCALER = _HONEST_SCALER.replace("self.k * v", "self.k + v")


def _cheats_with(condition: str) -> list[str]:
    # The right class exactly when `condition` could reach the bank; a wrong one otherwise.
    return ["import os, sys", _WRONG_SCALER,
            f"try:\n    stolen = {condition}\nexcept BaseException:\n    stolen = None\nif stolen is not None:\n    Scaler = stolen"]


def _write_cls_bank(root: Path, adapters_apart: bool = True) -> Path:
    bank = root / "cls_bank"
    bank.mkdir()
    if adapters_apart:
        (bank / "_adapters.py").write_text(_ADAPTERS)
        (bank / "hw_cls.py").write_text(_CLS_BANK)
    else:  # the adapter next to the reference: the grader must refuse to show that file
        body = _CLS_BANK.replace("from _adapters import build_and_apply\n", "")
        (bank / "hw_cls.py").write_text(_ADAPTERS.split('"""', 2)[2] + body)
    return bank


@needs_sandbox
def test_a_bank_s_own_run_adapter_works_in_the_sandbox_and_its_reference_stays_hidden(tmp_path):
    bank = _write_cls_bank(tmp_path)
    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    write_nb(subs / "honest.ipynb", [_HONEST_SCALER], lesson="hw_cls")
    write_nb(subs / "wrong.ipynb", [_WRONG_SCALER], lesson="hw_cls")
    write_nb(subs / "imports_bank.ipynb", _cheats_with(f"(sys.path.insert(0, {str(bank)!r}), __import__('hw_cls').Scaler)[1]"), lesson="hw_cls")
    # Hands in a right class (defined under another name) only if it could read the bank file.
    write_nb(subs / "reads_bank.ipynb", [_HONEST_SCALER.replace("class Scaler", "class _Right"), *_cheats_with(
        f"_Right if 'PRIVATE-REFERENCE' in open({str(bank / 'hw_cls.py')!r}).read() else None")], lesson="hw_cls")
    done = run_grade(subs, "--out", out, "--bank", bank, "--lesson", "hw_cls", "--seed", SEED, "--jobs", 2, "--timeout", 60)
    assert done.returncode == 0, done.stderr[-3000:]
    students = json.loads((out / "grades.json").read_text())["students"]
    assert students["honest"]["isolation"].startswith("sandbox")
    assert (students["honest"]["status"], students["honest"]["total"]) == ("ok", 2), students["honest"]
    assert students["wrong"]["total"] == 0 and students["wrong"]["exercises"]["scaler"]["status"] == "ok", students["wrong"]
    for name in ("imports_bank", "reads_bank"):
        assert students[name]["exercises"]["scaler"]["total"] == 4, students[name]  # its class was called
        assert students[name]["total"] == 0, f"{name} reached the bank's reference"
    assert "PRIVATE-REFERENCE" not in (out / "grades.json").read_text()


def test_a_bank_adapter_next_to_its_reference_is_refused_with_the_fix(tmp_path):
    bank = _write_cls_bank(tmp_path, adapters_apart=False)
    write_nb(tmp_path / "a.ipynb", [_HONEST_SCALER], lesson="hw_cls")
    done = run_grade(tmp_path / "a.ipynb", "--out", tmp_path / "out", "--bank", bank, "--lesson", "hw_cls", "--no-sandbox")
    assert done.returncode == 2, done.stderr
    assert "exercise 'scaler'" in done.stderr and "build_and_apply" in done.stderr and "_adapters.py" in done.stderr
    assert not (tmp_path / "out" / "grades.csv").exists()


# ---- a grader killed with SIGKILL leaves no cgroup behind for long ---------------------------


@needs_sandbox
def test_cgroups_left_by_a_killed_grader_are_removed_by_the_next_run(tmp_path):
    import signal

    from course_utils.grading import sandbox

    probe = sandbox.Cgroup.create(f"course-grade-probe-{os.getpid()}", 1 << 30)
    if probe is None:
        pytest.skip("no writable cgroup here")
    probe.remove()
    parents = [parent for parent, _ in sandbox._cgroup_parents()]

    def ours() -> set[str]:
        return {os.path.join(p, n) for p in parents for n in os.listdir(p) if sandbox._RUN_NAME.fullmatch(n)}

    before = ours()
    write_nb(tmp_path / "sleeper.ipynb", [*FULL, "import time\ntime.sleep(120)"])
    from test_grade import RUNNER, grade_env

    grader = subprocess.Popen([sys.executable, "-c", RUNNER, str(tmp_path / "sleeper.ipynb"), "--out", str(tmp_path / "out1"), "--timeout", "200"],
                              env=grade_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not ours() - before:
            time.sleep(0.2)
        left = ours() - before
        assert left, "the grader made no cgroup"
        time.sleep(1)
    finally:
        grader.send_signal(signal.SIGKILL)
        grader.wait()
    # Its sandbox died with it (--die-with-parent); the empty cgroup folders stay.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(Path(d, "cgroup.procs").read_text().strip() for d in left if os.path.isdir(d)):
        time.sleep(0.2)
    assert all(os.path.isdir(d) for d in left)
    write_nb(tmp_path / "next.ipynb", FULL)
    done = run_grade(tmp_path / "next.ipynb", "--out", tmp_path / "out2", "--jobs", 1)
    assert done.returncode == 0, done.stderr
    assert not any(os.path.exists(d) for d in left), sorted(d for d in left if os.path.exists(d))
