"""The ``course`` command: ``course doctor``, ``course data``, the learner's ``course workbooks`` /
``course progress`` / ``course reset``, and the instructor's ``course release`` and ``course grade``.

Each subcommand lives in the module that does its job; this file only assembles the parser.
"""
from __future__ import annotations

import argparse
import sys

from . import __version__

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (exposed for tests and for ``--help`` output in the docs)."""
    parser = argparse.ArgumentParser(
        prog="course",
        description="Tools for the CNN lab course: check a machine, get the data, get your workbooks and see your "
                    "progress, release workbooks, grade submissions.",
    )
    parser.add_argument("--version", action="version", version=f"course_utils {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    from . import data, doctor, workbooks
    from .grading import grade, release

    doctor.add_parser(sub)
    data.add_parser(sub)
    workbooks.add_parser(sub)
    release.add_parser(sub)
    grade.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``course`` command; returns the exit status (2 for a usage error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
