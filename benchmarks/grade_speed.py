"""How long ``course grade`` takes per submission, and what that time is spent on.

Grades N copies of one notebook (default: 40 copies of every lesson in ``notebooks/`` that has
exercises, one lesson at a time; ``--notebook`` picks one) with ``--jobs 2`` and splits the time per
submission into:

* ``python start``: a bare ``python -c pass`` (baseline: the floor of any process-per-submission design);
* ``worker start + imports``: the grader's wall time for a submission minus the time the worker spent in
  the learner's cells and the graded cases (process start, imports of IPython, NumPy, torch and
  ``course_utils``, limits, reading results);
* ``learner cells`` and ``graded cases``: as timed inside the worker.

A second baseline executes a few copies in a real Jupyter kernel with nbclient (what otter-grader
and nbgrader do), to show what starting a ZMQ kernel per submission would cost instead.

Usage::

    python benchmarks/grade_speed.py                       # every lesson with exercises, 40 copies each
    python benchmarks/grade_speed.py --notebook notebooks/00_start_here.ipynb --copies 10

Prints a table and, last, a line ``RESULT {json}``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNNER = "import sys; from course_utils.grading.grade import main; sys.exit(main(sys.argv[1:]))"


def lessons_with_exercises() -> list[Path]:
    from course_utils.exercises.registry import exercises_for_lesson

    return [p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) if exercises_for_lesson(p.stem)]


def time_cmd(cmd: list[str], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def grade_copies(notebook: Path, copies: int, jobs: int, work: Path, extra: tuple[str, ...] = ()) -> dict:
    subs = work / f"subs-{notebook.stem}"
    out = work / f"out-{notebook.stem}"
    subs.mkdir()
    for i in range(copies):
        shutil.copy(notebook, subs / f"student{i:03d}.ipynb")
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUNNER, str(subs), "--out", str(out), "--jobs", str(jobs), "--quiet", "--seed", "1", *extra],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"course grade failed on {notebook}: {done.stderr[-2000:]}")
    data = json.loads((out / "grades.json").read_text())
    recs = list(data["students"].values())
    per = [r["seconds"] for r in recs]
    cells = [r["worker_timing"].get("cells", 0.0) for r in recs]
    cases = [r["worker_timing"].get("cases", 0.0) for r in recs]
    return {
        "lesson": notebook.stem,
        "copies": copies,
        "jobs": jobs,
        "wall_s": wall,
        "throughput_s_per_submission": wall / copies,
        "mean_submission_s": statistics.mean(per),
        "mean_cells_s": statistics.mean(cells),
        "mean_cases_s": statistics.mean(cases),
        "mean_overhead_s": statistics.mean(p - c - k for p, c, k in zip(per, cells, cases)),
        "statuses": sorted({r["status"] for r in recs}),
        "full_marks": all(r["total"] == r["max"] for r in recs),
    }


def nbclient_baseline(notebook: Path, copies: int) -> float:
    import nbclient
    import nbformat

    times = []
    env_before = os.environ.get("COURSE_GRADING")
    os.environ["COURSE_GRADING"] = "1"
    try:
        for _ in range(copies):
            nb = nbformat.read(str(notebook), as_version=4)
            t = time.perf_counter()
            nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": tempfile.gettempdir()}}).execute()
            times.append(time.perf_counter() - t)
    finally:
        if env_before is None:
            os.environ.pop("COURSE_GRADING", None)
        else:
            os.environ["COURSE_GRADING"] = env_before
    return statistics.mean(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", type=Path, action="append", help="notebook to copy (default: every lesson with exercises)")
    parser.add_argument("--copies", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--baseline-copies", type=int, default=3, help="copies run through nbclient (0 to skip)")
    parser.add_argument("--no-sandbox", action="store_true", help="grade with course grade --no-sandbox (to measure what the sandbox costs)")
    args = parser.parse_args(argv)
    notebooks = args.notebook or lessons_with_exercises()
    if not notebooks:
        raise SystemExit("no lesson notebooks with exercises found; pass --notebook")

    python_start = time_cmd([sys.executable, "-c", "pass"])
    imports = time_cmd([sys.executable, "-c", "import numpy, torch, IPython.core.interactiveshell, course_utils.grading.worker"], repeat=3)
    rows = []
    with tempfile.TemporaryDirectory(prefix="grade-speed-") as tmp:
        for nb in notebooks:
            row = grade_copies(nb, args.copies, args.jobs, Path(tmp), ("--no-sandbox",) if args.no_sandbox else ())
            row["sandbox"] = not args.no_sandbox
            row["nbclient_s"] = nbclient_baseline(nb, args.baseline_copies) if args.baseline_copies else None
            rows.append(row)

    print(f"python start (python -c pass): {python_start:.2f} s;  imports (numpy, torch, IPython, course_utils): {imports:.2f} s")
    print(f"{'lesson':<28}{'copies':>7}{'jobs':>5}{'wall s':>8}{'s/sub':>7}{'sub s':>7}{'cells':>7}{'cases':>7}{'overhd':>8}{'nbclient':>10}  status")
    for r in rows:
        nbc = f"{r['nbclient_s']:.2f}" if r["nbclient_s"] is not None else "-"
        print(
            f"{r['lesson']:<28}{r['copies']:>7}{r['jobs']:>5}{r['wall_s']:>8.1f}{r['throughput_s_per_submission']:>7.2f}"
            f"{r['mean_submission_s']:>7.2f}{r['mean_cells_s']:>7.2f}{r['mean_cases_s']:>7.2f}{r['mean_overhead_s']:>8.2f}{nbc:>10}"
            f"  {','.join(r['statuses'])}{'' if r['full_marks'] else ' (NOT full marks)'}"
        )
    print("s/sub = batch wall time / copies; sub s = one submission's wall time; overhd = sub s - cells - cases;")
    print("nbclient = one copy executed in a fresh Jupyter kernel (no grading), the per-kernel baseline.")
    result = {"python_start_s": round(python_start, 3), "imports_s": round(imports, 3), "lessons": [
        {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]}
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
