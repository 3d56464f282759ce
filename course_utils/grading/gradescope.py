"""Gradescope output for ``course grade --gradescope``.

Gradescope's autograder runs a script inside a container with the submission in
``/autograder/submission`` and reads ``/autograder/results/results.json``. Its format: a top-level
``score`` (overrides the sum of the tests), ``output`` (text shown above the tests), and a
``tests`` list whose items have ``name``, ``score``, ``max_score``, ``status``
(``"passed"``/``"failed"``) and ``output``. A ``run_autograder`` script for the course is one line::

    course grade /autograder/submission --out /autograder/results --gradescope --jobs 1 --no-sandbox

(the folder must hold exactly one notebook). ``--no-sandbox`` is right there, and only there: the
container is thrown away after this one submission, and Gradescope's containers may not allow the
user namespaces bubblewrap needs. ``results.json`` is written by the grader after the submission's
processes are gone, so nothing the submission wrote there survives. ``grades.json``, ``grades.csv`` and the Markdown
feedback are written next to ``results.json`` as usual.
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

__all__ = ["gradescope_results", "write_gradescope"]


def gradescope_results(record: Mapping[str, Any], exercises: Sequence[Mapping[str, Any]]) -> dict:
    """Turn one student's grade record into Gradescope's ``results.json`` structure.

    Parameters
    ----------
    record : mapping
        One entry of ``grades.json["students"]``.
    exercises : sequence of mapping
        ``grades.json["exercises"]``: id, title and points of every graded exercise, in order.

    Returns
    -------
    dict
        ``{"score": ..., "output": ..., "tests": [...]}``.

    Examples
    --------
    >>> rec = {"status": "ok", "total": 1.0, "max": 2, "exercises": {"a": {"score": 1.0, "points": 2,
    ...        "status": "ok", "passed": 1, "total": 2, "cases": []}}}
    >>> gradescope_results(rec, [{"id": "a", "title": "A", "points": 2}])["tests"][0]["score"]
    1.0
    """
    tests = []
    for number, ex in enumerate(exercises, start=1):
        result = record.get("exercises", {}).get(ex["id"], {})
        score = float(result.get("score", 0.0))
        lines = [f"{result.get('passed', 0)} of {result.get('total', 0)} graded cases passed ({result.get('status', 'no result')})."]
        for case in result.get("cases", []):
            if not case.get("passed"):
                lines.append(f"- {case.get('input', '')}: {case.get('reason', '')}")
                break
        tests.append(
            {
                "name": f"{ex['id']}: {ex.get('title') or ex['id']}",
                "number": str(number),
                "score": score,
                "max_score": float(ex["points"]),
                "status": "passed" if score >= float(ex["points"]) else "failed",
                "output": "\n".join(lines),
            }
        )
    status = record.get("status", "ok")
    output = f"Graded in a separate process on inputs drawn for this run. Submission status: {status}."
    if record.get("detail"):
        output += f" {record['detail']}"
    return {"score": float(record.get("total", 0.0)), "output": output, "tests": tests}


def write_gradescope(path: str, record: Mapping[str, Any], exercises: Sequence[Mapping[str, Any]]) -> None:
    """Write :func:`gradescope_results` to ``path`` atomically."""
    data = gradescope_results(record, exercises)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, path)
