"""Tests of ``course release``: stubs, cleared outputs, metadata, release errors, and every lesson.

The unit tests use the test-only lesson from ``fixtures_exercises`` (exercises ``_test_add``,
``_test_matmul``, ``_test_shape``, ``_test_value`` in lesson ``_test_lesson``). The last tests
release every lesson in ``notebooks/`` and execute each workbook in a fresh kernel.
"""
from __future__ import annotations

import ast
import copy
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fixtures_exercises as fx  # noqa: E402  (registers the _test_ exercises)
from figure_outputs import figures_without_image  # noqa: E402

import course_utils  # noqa: E402
from course_utils.grading import release  # noqa: E402
from course_utils.grading.release import STUB_LINE, ReleaseError, check_calls, find_solution_blocks, release_notebook  # noqa: E402

NOTEBOOKS = HERE.parent / "notebooks"
SLOW_LESSONS = ("06_", "07_")  # they train on CIFAR-10: here in quick mode (COURSE_QUICK=1), offline


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def with_outputs(nb):
    """The lesson with an output and an execution count on every code cell, as if it had run."""
    nb = copy.deepcopy(nb)
    for i, cell in enumerate(code_cells(nb), start=1):
        cell.execution_count = i
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"output {i}\n")]
    return nb


def cell_index(nb, ex_id, check_cell=False):
    """Position of the solution cell (or the check cell) of an exercise in the fixture notebook."""
    hits = [i for i, c in enumerate(nb.cells) if c.get("metadata", {}).get("course", {}).get("exercise") == ex_id]
    return hits[1] if check_cell else hits[0]


# --------------------------------------------------------------------------------------------
# Stubs
# --------------------------------------------------------------------------------------------


def test_function_solutions_become_a_raise_at_the_block_indentation():
    nb = fx.lesson_notebook()
    out = release_notebook(nb, fx.LESSON, "fixture.ipynb")
    add = out.cells[cell_index(out, "_test_add")].source
    assert add == f"def add(a, b):\n    {STUB_LINE}"
    matmul = out.cells[cell_index(out, "_test_matmul")].source
    # Code outside the markers (the import, the docstring) is kept.
    assert matmul == f'import torch\n\n\ndef matmul(a, b):\n    """Matrix product."""\n    {STUB_LINE}'
    for cell in code_cells(out):
        assert "SOLUTION" not in cell.source
        ast.parse(cell.source)
    # The lesson itself is not changed.
    assert "### BEGIN SOLUTION" in nb.cells[cell_index(nb, "_test_add")].source


def test_value_solution_becomes_none_for_each_name():
    out = release_notebook(fx.lesson_notebook(), fx.LESSON)
    assert out.cells[cell_index(out, "_test_value")].source == "padding = None  # YOUR ANSWER HERE"


def stub_of(source: str) -> str:
    blocks = find_solution_blocks(source)
    return release._replace_blocks(source, blocks)


def test_top_level_blocks_with_several_names_functions_and_magics():
    source = (
        "%matplotlib inline\n"
        "### BEGIN SOLUTION\n"
        "a, (b, *rest) = 1, (2, 3, 4)\n"
        "c: int = 5\n"
        "a += 1\n"
        "obj.attr = 3\n"
        "print(a)\n"
        "def helper(x, y=2, *args, k=1, **kw):\n"
        "    return x\n"
        "### END SOLUTION\n"
        "print('after')"
    )
    assert stub_of(source) == (
        "%matplotlib inline\n"
        "a = None  # YOUR ANSWER HERE\n"
        "b = None  # YOUR ANSWER HERE\n"
        "rest = None  # YOUR ANSWER HERE\n"
        "c = None  # YOUR ANSWER HERE\n"
        "def helper(x, y=2, *args, k=1, **kw):\n"
        f"    {STUB_LINE}\n"
        "print('after')"
    )


def test_indented_block_outside_a_function_assigns_none_at_its_indentation():
    source = "if True:\n    ### BEGIN SOLUTION\n    size = 3\n    ### END SOLUTION\nprint(size)"
    out = stub_of(source)
    assert out == "if True:\n    size = None  # YOUR ANSWER HERE\nprint(size)"


def test_blocks_in_methods_nested_loops_and_several_blocks_per_cell():
    source = (
        "class Net:\n"
        "    def forward(self, x):\n"
        "        for _ in range(2):\n"
        "            ### BEGIN SOLUTION\n"
        "            x = x + 1\n"
        "            ### END SOLUTION\n"
        "        return x\n"
        "\n"
        "def g(y):\n"
        "    ### BEGIN SOLUTION\n"
        "    return y\n"
        "    ### END SOLUTION\n"
    )
    blocks = find_solution_blocks(source)
    assert [b.defines for b in blocks] == [["Net", "forward"], ["g"]]
    assert all(b.in_function for b in blocks)
    out = stub_of(source)
    assert f"            {STUB_LINE}\n        return x" in out and f"def g(y):\n    {STUB_LINE}\n" in out
    ast.parse(out)


def test_check_calls_are_found_by_parsing():
    assert check_calls('check("a", f)\nx = check(\n    "b", g)\n# check("c", h)\ncourse_utils.exercises.check("d", k)') == [
        (1, "a"), (2, "b"), (5, "d"),
    ]
    assert check_calls('%%time\ncheck("e", f)') == [(2, "e")]


# --------------------------------------------------------------------------------------------
# Outputs and metadata
# --------------------------------------------------------------------------------------------


def test_exercise_outputs_cleared_other_outputs_kept_and_metadata_set():
    nb = with_outputs(fx.lesson_notebook())
    nb.cells[cell_index(nb, "_test_add")].metadata["execution"] = {"iopub.status.busy": "2026-01-01"}
    out = release_notebook(nb, fx.LESSON)
    for before, after in zip(nb.cells, out.cells):
        if before.cell_type != "code":
            continue
        if "exercise" in before.metadata.get("tags", []):
            assert after.outputs == [] and after.execution_count is None and "execution" not in after.metadata
            assert after.metadata["tags"] == ["exercise"]
        else:
            assert after.outputs == before.outputs and after.execution_count == before.execution_count
    assert out.metadata["course"] == {"lesson": fx.LESSON, "title": "Test lesson", "version": course_utils.__version__, "released": True}
    assert out.metadata["kernelspec"]["name"] == "python3"
    nbformat.validate(out)


def test_untagged_cell_with_a_solution_is_cleared_too():
    nb = with_outputs(fx.lesson_notebook())
    where = cell_index(nb, "_test_add")
    nb.cells[where].metadata = {}
    out = release_notebook(nb, fx.LESSON)
    assert out.cells[where].outputs == [] and out.cells[where].execution_count is None
    assert out.cells[where - 2].outputs == nb.cells[where - 2].outputs  # the cell before is kept


# --------------------------------------------------------------------------------------------
# Release errors name the notebook and the cell
# --------------------------------------------------------------------------------------------


def broken(change):
    nb = fx.lesson_notebook()
    change(nb)
    return nb


def set_source(ex_id, source):
    def change(nb):
        nb.cells[cell_index(nb, ex_id)].source = source

    return change


@pytest.mark.parametrize(
    "change, match",
    [
        (set_source("_test_add", "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b"), "line 2 is never closed"),
        (set_source("_test_add", "def add(a, b):\n    return a + b\n    ### END SOLUTION"), "has no '### BEGIN SOLUTION' before it"),
        (
            set_source("_test_add", "def add(a, b):\n    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION\n    ### END SOLUTION"),
            "nested",
        ),
        (set_source("_test_add", "def add(a, b):\n    ## BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION"), "looks like a solution marker"),
        (set_source("_test_add", "def add(a, b):\n    ### BEGIN SOLUTION\n    return a +\n    ### END SOLUTION"), "not valid Python"),
        (set_source("_test_value", "### BEGIN SOLUTION\nprint(2)\n### END SOLUTION"), "assigns no name"),
        (set_source("_test_value", "### BEGIN SOLUTION\nclass padding:\n    pass\n### END SOLUTION"), "defines class"),
    ],
    ids=["unclosed", "end-without-begin", "nested", "misspelt", "syntax", "assigns-nothing", "class"],
)
def test_marker_errors(change, match):
    nb = broken(change)
    where = cell_index(nb, "_test_value" if match in ("assigns no name", "defines class") else "_test_add") + 1
    with pytest.raises(ReleaseError, match=match) as info:
        release_notebook(nb, fx.LESSON, "lesson.ipynb")
    assert str(info.value).startswith(f"lesson.ipynb, cell {where}:")


def test_exercise_whose_name_no_block_defines():
    nb = broken(set_source("_test_value", "padding = 2"))
    where = cell_index(nb, "_test_value", check_cell=True) + 1
    with pytest.raises(ReleaseError, match=rf"lesson.ipynb, cell {where}: exercise '_test_value'.*asks for 'padding', but no solution block defines it"):
        release_notebook(nb, fx.LESSON, "lesson.ipynb")


def test_solution_block_without_a_following_check():
    def move_check_before(nb):
        i = cell_index(nb, "_test_shape")
        nb.cells[i], nb.cells[i + 1] = nb.cells[i + 1], nb.cells[i]

    nb = broken(move_check_before)
    where = cell_index(nb, "_test_shape", check_cell=True) + 1  # the solution cell, now after its check
    with pytest.raises(ReleaseError, match=rf"cell {where}: .*defines 'out_shape' but no check\('_test_shape', \.\.\.\) follows it"):
        release_notebook(nb, fx.LESSON, "lesson.ipynb")


def test_helper_block_needs_some_check_after_it():
    nb = fx.lesson_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("def helper(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION"))
    with pytest.raises(ReleaseError, match=rf"cell {len(nb.cells)}: .*defining helper.*has no check"):
        release_notebook(nb, fx.LESSON, "lesson.ipynb")


def test_exercise_without_a_check_cell():
    def drop_check(nb):
        del nb.cells[cell_index(nb, "_test_value", check_cell=True)]

    nb = broken(drop_check)
    where = cell_index(nb, "_test_value") + 1
    with pytest.raises(ReleaseError, match=rf"lesson.ipynb, cell {where}: exercise '_test_value' .* has no check\('_test_value', \.\.\.\) cell"):
        release_notebook(nb, fx.LESSON, "lesson.ipynb")


def test_check_of_an_unknown_exercise():
    nb = fx.lesson_notebook()
    nb.cells.append(nbformat.v4.new_code_cell('check("_test_nope", add)'))
    with pytest.raises(ReleaseError, match=rf"cell {len(nb.cells)}: check\('_test_nope', \.\.\.\) names no exercise"):
        release_notebook(nb, fx.LESSON, "lesson.ipynb")


def test_lesson_missing_an_exercise_of_the_bank():
    nb = fx.lesson_notebook(ids=("_test_add", "_test_matmul", "_test_shape"))
    with pytest.raises(ReleaseError, match="'_test_value'"):
        release_notebook(nb, fx.LESSON, "lesson.ipynb")


def test_bad_arguments():
    with pytest.raises(TypeError, match="nb must be a notebook"):
        release_notebook({"cells": []}, fx.LESSON)
    with pytest.raises(ValueError, match="lesson must be"):
        release_notebook(fx.lesson_notebook(), "")


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


@pytest.fixture
def lesson_dir(tmp_path, monkeypatch):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nbformat.write(with_outputs(fx.lesson_notebook()), str(folder / "01_fixture.ipynb"))
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), str(folder / "02_plain.ipynb"))
    (folder / "notes.ipynb").write_text("not a lesson, not released")
    monkeypatch.chdir(tmp_path)
    return folder


def test_command_releases_every_lesson_by_default(lesson_dir, tmp_path, capsys):
    assert release.main(["--out", "workbooks"]) == 0
    written = sorted(p.name for p in (tmp_path / "workbooks").iterdir())
    assert written == ["01_fixture.ipynb", "02_plain.ipynb"]
    printed = capsys.readouterr().out
    assert "01_fixture.ipynb -> workbooks/01_fixture.ipynb" in printed
    plain = nbformat.read(str(tmp_path / "workbooks" / "02_plain.ipynb"), as_version=4)
    assert plain.metadata["course"] == {"lesson": "02_plain", "version": course_utils.__version__, "released": True}


def test_command_by_stem_and_by_path(lesson_dir, tmp_path):
    assert release.main(["01_fixture", "--out", "a"]) == 0
    assert release.main([str(lesson_dir / "02_plain.ipynb"), "--out", "b"]) == 0
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["01_fixture.ipynb"]
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["02_plain.ipynb"]


def test_command_takes_a_lesson_number(lesson_dir, tmp_path):
    assert release.main(["01", "--out", "by_number"]) == 0
    assert release.main(["2", "--out", "short_number"]) == 0
    assert [p.name for p in (tmp_path / "by_number").iterdir()] == ["01_fixture.ipynb"]
    assert [p.name for p in (tmp_path / "short_number").iterdir()] == ["02_plain.ipynb"]


def test_command_usage_errors(lesson_dir, tmp_path, capsys):
    assert release.main(["99_nothing", "--out", "x"]) == 2
    assert "no lesson '99_nothing'" in capsys.readouterr().err
    assert release.main(["missing.ipynb", "--out", "x"]) == 2
    assert release.main(["01_fixture", "--out", str(lesson_dir)]) == 2
    assert "would erase its solutions" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert release.main(["01_fixture", "--out", "file"]) == 2
    assert not (tmp_path / "x").exists()


def test_command_release_error_writes_no_workbook_for_that_lesson(lesson_dir, tmp_path, capsys):
    nb = nbformat.read(str(lesson_dir / "01_fixture.ipynb"), as_version=4)
    nb.cells[cell_index(nb, "_test_add")].source = "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b"
    nbformat.write(nb, str(lesson_dir / "01_fixture.ipynb"))
    assert release.main(["--out", "out"]) == 1
    err = capsys.readouterr().err
    assert f"01_fixture.ipynb, cell {cell_index(nb, '_test_add') + 1}: '### BEGIN SOLUTION' on line 2 is never closed" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["02_plain.ipynb"]


@pytest.mark.slow  # runs `course grade` or a kernel end to end: not for the quick run (tests/README.md)
def test_course_command_in_a_subprocess_with_extra_exercises(lesson_dir, tmp_path):
    env = dict(os.environ, COURSE_EXTRA_EXERCISES=str(HERE / "fixtures_exercises.py"))
    env.pop("COURSE_GRADING", None)
    done = subprocess.run(
        [sys.executable, "-m", "course_utils", "release", "01_fixture", "--out", "wb"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    out = nbformat.read(str(tmp_path / "wb" / "01_fixture.ipynb"), as_version=4)
    assert out.cells[cell_index(out, "_test_add")].source == f"def add(a, b):\n    {STUB_LINE}"
    # Without the extra exercises the check ids are unknown: an error of the release.
    env.pop("COURSE_EXTRA_EXERCISES")
    done = subprocess.run(
        [sys.executable, "-m", "course_utils", "release", "01_fixture", "--out", "wb2"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    assert done.returncode == 1 and "names no exercise in the bank" in done.stderr


# --------------------------------------------------------------------------------------------
# Executing workbooks
# --------------------------------------------------------------------------------------------


def execute(nb, cwd: Path, timeout: int = 600, env: dict[str, str] | None = None):
    """Run ``nb`` in a fresh kernel in quick mode: training cells train a few batches (the full
    training run of each lesson is nbval's), everything else runs as a learner's would. ``env``
    adds variables for the kernel (it inherits this process's environment)."""
    import nbclient

    changes = {"COURSE_QUICK": "1", "COURSE_GRADING": None, **(env or {})}
    old = {name: os.environ.get(name) for name in changes}
    for name, value in changes.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    try:
        nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(cwd)}}).execute()
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return nb


def text_of(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")


def assert_every_check_not_attempted(nb, exercise_ids):
    seen = set()
    for cell in code_cells(nb):
        if "exercise" not in cell.metadata.get("tags", []):
            continue
        for _, ex_id in check_calls(cell.source):
            assert f"⏳ {ex_id}: not attempted yet" in text_of(cell), (cell.source, text_of(cell))
            seen.add(ex_id)
    assert seen >= set(exercise_ids)


@pytest.mark.slow  # runs `course grade` or a kernel end to end: not for the quick run (tests/README.md)
def test_fixture_workbook_runs_and_every_check_is_not_attempted(tmp_path):
    workbook = release_notebook(with_outputs(fx.lesson_notebook()), fx.LESSON)
    execute(workbook, tmp_path)
    assert_every_check_not_attempted(workbook, fx.IDS)
    # The lesson itself, with its solutions, passes every check.
    lesson = execute(fx.lesson_notebook(), tmp_path)
    checks = [text_of(c) for c in code_cells(lesson) if check_calls(c.source)]
    assert len(checks) == 4 and all(t.startswith("✅") for t in checks), checks


def _lessons():
    return [
        # Every one starts a kernel and runs a whole lesson: not for the quick run (tests/README.md).
        pytest.param(p, id=p.stem, marks=[pytest.mark.slow])
        for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    ]


BROWSER_TEST = "tests/browser/test_lessons_in_browser.py::test_lesson_runs_in_jupyterlab"


def browser_runs_the_workbooks(session) -> bool:
    """True when this pytest run also runs the browser suite, which executes every released workbook
    in JupyterLab and checks what this test checks (each check "not attempted yet", pictures, quick
    mode, the offline stand-in): then the workbooks need not run a second time here."""
    sys.path.insert(0, str(HERE / "browser"))
    import lab_driver

    return lab_driver.browser_missing() is None and any(item.nodeid.startswith(BROWSER_TEST) for item in session.items)


@pytest.mark.parametrize("lesson", _lessons())
def test_every_lesson_releases_and_its_workbook_runs(tmp_path, lesson, request):
    """Release the lesson and run its workbook as a learner would, in quick mode.

    Lessons 06 and 07 load CIFAR-10. Their workbooks run here with ``COURSE_DATA`` and
    ``COURSE_CACHE`` pointing at empty folders, as on a laptop that has no copy and cannot download:
    this one run also checks the offline path (the labelled synthetic stand-in is used and named,
    nothing is written into either folder). The lessons' own run on the real data is nbval's.
    """
    from course_utils.exercises import exercises_for_lesson

    target = release.release_lesson(lesson, tmp_path)
    workbook = nbformat.read(str(target), as_version=4)
    assert workbook.metadata["course"]["released"] is True
    for cell in code_cells(workbook):
        assert "SOLUTION" not in cell.source
    if browser_runs_the_workbooks(request.session):
        pytest.skip("released and checked; tests/browser runs this workbook in JupyterLab in this same run")
    offline = lesson.name.startswith(SLOW_LESSONS)
    env = None
    if offline:
        empty_data, empty_cache = tmp_path / "no-data", tmp_path / "no-cache"
        empty_data.mkdir()
        empty_cache.mkdir()
        env = {"COURSE_DATA": str(empty_data), "COURSE_CACHE": str(empty_cache)}
    execute(workbook, NOTEBOOKS, env=env)
    assert_every_check_not_attempted(workbook, [e.id for e in exercises_for_lesson(lesson.stem)])
    # Every figure the lesson displays arrives as a picture, whatever the stored outputs say.
    as_text = [(i, t) for i, cell in enumerate(workbook.cells) if cell.cell_type == "code"
               for t in figures_without_image(cell.outputs)]
    assert not as_text, f"{lesson.stem}: figures displayed as text, not pictures (cell index, text): {as_text}"
    if offline:
        text = "".join(text_of(c) for c in code_cells(workbook)) + "".join(
            o["data"]["text/plain"] for c in code_cells(workbook) for o in c.outputs if "text/plain" in o.get("data", {}))
        assert "QUICK MODE (COURSE_QUICK=1)" in text
        assert "SYNTHETIC stand-in, not CIFAR-10" in text, "the stand-in must be named in the output"
        assert "Traceback" not in text
        assert list(empty_data.iterdir()) == [], "nothing may be written into the data folder"
        assert list(empty_cache.iterdir()) == [], "the stand-in must not be cached or downloaded"
