"""course doctor: the report, its fixes, and its exit status."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from course_utils import doctor
from course_utils.doctor import Check


def test_minimum_versions_come_from_the_installed_package():
    minimums = doctor.minimum_versions()
    for name in ("torch", "torchvision", "matplotlib", "ipywidgets", "jupyterlab", "tqdm", "nbformat", "nbclient"):
        assert name in minimums and minimums[name], f"{name} has no minimum in the package metadata"
    assert "pytest" not in minimums  # test extra is not a runtime requirement


def test_package_check_compares_versions_numerically(monkeypatch):
    monkeypatch.setattr(doctor.metadata, "version", lambda name: "2.10.0")
    assert doctor.check_package("torch", "2.9").ok  # 10 > 9, not "10" < "9"
    too_old = doctor.check_package("torch", "2.11")
    assert not too_old.ok and "2.11" in too_old.fix and "needs >= 2.11" in too_old.detail


def test_missing_package_says_how_to_install(monkeypatch):
    def missing(name):
        raise doctor.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(doctor.metadata, "version", missing)
    check = doctor.check_package("nbclient", "0.8")
    assert not check.ok and check.detail == "not installed" and "pip install" in check.fix


def test_widget_extension_found_missing_and_disabled(tmp_path, monkeypatch):
    labext = tmp_path / "labextensions"
    config = tmp_path / "config"
    monkeypatch.setattr(doctor, "_jupyter_dirs", lambda kind: [config] if kind == "config" else [labext])
    missing = doctor.check_widget_extension()
    assert not missing.ok and "Error displaying widget" in missing.detail and "ipywidgets" in missing.fix

    pkg = labext / "@jupyter-widgets" / "jupyterlab-manager"
    pkg.mkdir(parents=True)
    (pkg / "package.json").write_text(json.dumps({"version": "5.0.9"}))
    assert doctor.check_widget_extension().ok

    (config / "labconfig").mkdir(parents=True)
    (config / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyter-widgets/jupyterlab-manager": True}})
    )
    disabled = doctor.check_widget_extension()
    assert not disabled.ok and "disabled" in disabled.detail
    assert disabled.fix == "jupyter labextension enable @jupyter-widgets/jupyterlab-manager"


def test_widget_extension_is_installed_in_this_environment():
    assert doctor.check_widget_extension().ok


def test_report_marks_failures_with_fixes_and_a_verdict():
    checks = [
        Check("python", True, "3.11.7"),
        Check("torch", False, "not installed", "pip install torch"),
        Check("accelerator", True, "none", required=False),
    ]
    text = doctor.format_report(checks)
    assert "✅ python" in text and "❌ torch" in text
    assert "fix:" in text and "pip install torch" in text
    assert text.splitlines()[-1].startswith("Not ready: fix torch")


def test_optional_failures_do_not_block():
    text = doctor.format_report([Check("disk", False, "0.2 GB free", "free space", required=False)])
    assert text.startswith("❌ disk") and "fix:" in text
    assert text.endswith("Ready: the course can run on this machine, but fix disk for the full course (see the 'fix:' lines above).")


def test_missing_data_says_where_it_looked_and_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    check = doctor.check_data()
    assert not check.ok
    assert str(tmp_path / "nowhere") in check.detail and str(tmp_path / "cache") in check.detail
    assert "course data --download" in check.fix and "COURSE_DATA" in check.fix


def test_data_found_in_an_image_folder(tmp_path, monkeypatch):
    pytest.importorskip("PIL")
    from PIL import Image

    from course_utils.data import CIFAR10_CLASSES

    for split in ("train", "test"):
        for name in CIFAR10_CLASSES:
            folder = tmp_path / "cifar" / split / name
            folder.mkdir(parents=True)
            Image.new("RGB", (32, 32), (10, 20, 30)).save(folder / "0000.png")
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    check = doctor.check_data(str(tmp_path / "cifar"))
    assert check.ok, check.detail
    assert str(tmp_path / "cifar") in check.detail


def _run_doctor(env_updates: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ, **env_updates)
    # --no-speed: these tests are about the other lines; the speed line has its own tests below.
    return subprocess.run([sys.executable, "-m", "course_utils", "doctor", "--no-speed", *args],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow  # runs `course doctor` in a subprocess: not for the quick run (tests/README.md)
def test_missing_data_is_reported_but_the_course_can_still_run(tmp_path):
    missing = _run_doctor({"COURSE_DATA": str(tmp_path / "none"), "COURSE_CACHE": str(tmp_path / "cache")})
    # Without CIFAR-10 every lesson still runs (06-07 on the named stand-in): exit 0, with the fix shown.
    assert missing.returncode == 0, missing.stdout + missing.stderr
    assert "❌ CIFAR-10" in missing.stdout and "Looked in:" in missing.stdout
    assert "course data --download" in missing.stdout
    assert "fix CIFAR-10 for the full course" in missing.stdout

    as_json = _run_doctor({"COURSE_DATA": str(tmp_path / "none"), "COURSE_CACHE": str(tmp_path / "cache")}, "--json")
    report = json.loads(as_json.stdout)
    assert report["ready"] is True
    assert any(c["name"] == "CIFAR-10" and not c["ok"] for c in report["checks"])


def test_a_missing_requirement_makes_the_exit_status_1(monkeypatch, capsys):
    import argparse

    real = doctor.check_package

    def torch_too_old(name, minimum):
        if name == "torch":
            return doctor.Check("torch", False, "1.0.0 (needs >= 2.2)", "pip install -U torch")
        return real(name, minimum)

    monkeypatch.setattr(doctor, "check_package", torch_too_old)
    status = doctor.main(argparse.Namespace(data=None, json=False, no_speed=True))
    out = capsys.readouterr().out
    assert status == 1
    assert "❌ torch" in out and "pip install -U torch" in out and "Not ready: fix torch" in out


# --------------------------------------------------------------------------------------------
# Training speed: a few seconds of measurement predict lesson 06's training cell
# --------------------------------------------------------------------------------------------


def test_prediction_formula_counts_training_and_evaluation_of_every_epoch():
    assert doctor.predict_fit_seconds(1000.0, 5000.0, epochs=2, n_train=10_000, n_eval=5_000) == 2 * (10 + 1)
    with pytest.raises(ValueError, match="train_img_s"):
        doctor.predict_fit_seconds(0.0, 1.0, 1, 1, 1)
    plan = doctor.lesson06_plan()
    # Lesson 06: two runs of EPOCHS on train_size, plus the overfitting demo.
    expected = (2 * doctor.predict_fit_seconds(1000.0, 5000.0, plan["EPOCHS"], plan["train_size"], plan["val_size"])
                + doctor.predict_fit_seconds(1000.0, 5000.0, doctor.LESSON_06_OVERFIT["epochs"], 1000, 1000 + 1000))
    assert doctor.predict_lesson06_seconds(1000.0, 5000.0) == pytest.approx(expected)
    assert doctor.predict_lesson06_seconds(1000.0, 5000.0, epochs=1) < expected


def _lesson06_settings() -> tuple[dict[str, int], list[tuple[object, str]]]:
    """EPOCHS, train_size and val_size as lesson 06 sets them, and the (epochs, data) of its fit calls."""
    import ast
    import re

    import nbformat

    nb = nbformat.read(str(Path(__file__).resolve().parents[1] / "notebooks" / "06_tinycnn_cifar10.ipynb"), as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    found = {}
    for name, pattern in (("EPOCHS", r"^EPOCHS\s*=\s*(\d+)"), ("val_size", r"^val_size\s*=\s*min\((\d+),"),
                          ("train_size", r"^train_size\s*=\s*min\((\d+),")):
        match = re.search(pattern, code, flags=re.M)
        assert match, f"lesson 06 no longer sets {name} the way doctor reads it; update doctor.LESSON_06"
        found[name] = int(match.group(1))
    calls = []
    plain = "\n".join(l for l in code.splitlines() if not l.lstrip().startswith(("%", "!")))
    for node in ast.walk(ast.parse(plain)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "fit" and len(node.args) == 2:
            kw = {k.arg: k.value for k in node.keywords}
            epochs = kw.get("epochs")
            epochs = epochs.id if isinstance(epochs, ast.Name) else ast.literal_eval(epochs) if epochs is not None else None
            calls.append((epochs, ast.unparse(node.args[1])))
    return found, calls


def test_doctor_predicts_the_training_that_lesson_06_really_does():
    settings, calls = _lesson06_settings()
    assert settings == doctor.lesson06_plan(), "lesson 06's EPOCHS/train_size/val_size changed: update doctor.LESSON_06"
    assert sorted(map(str, calls)) == sorted(map(str, [("EPOCHS", "split"), ("EPOCHS", "split"),
                                                         (doctor.LESSON_06_OVERFIT["epochs"], "tiny")])), (
        f"lesson 06's fit calls changed ({calls}): update doctor.predict_lesson06_seconds")


def test_a_fast_machine_gets_a_green_line_with_the_time():
    line = doctor.check_training_speed({"train_img_s": 7400.0, "eval_img_s": 20000.0, "device": "cpu", "precision": "bf16"})
    expected = doctor.predict_lesson06_seconds(7400.0, 20000.0)
    assert line.ok and not line.required
    assert f"about {expected:.0f} s" in line.detail or f"about {expected / 60:.0f} min" in line.detail
    assert "7,400 training images/s on cpu (bf16)" in line.detail


def test_a_slow_machine_is_told_what_to_do_and_each_option_fits_the_budget():
    import re

    line = doctor.check_training_speed({"train_img_s": 120.0, "eval_img_s": 400.0, "device": "cpu", "precision": "fp32"})
    assert not line.ok and not line.required
    assert "EPOCHS = " in line.fix and "train_size = " in line.fix and "GPU" in line.fix
    epochs = int(re.search(r"EPOCHS = (\d+)", line.fix).group(1))
    subset = int(re.search(r"train_size = (\d+)", line.fix).group(1))
    plan = doctor.lesson06_plan()
    assert doctor.predict_lesson06_seconds(120.0, 400.0, epochs=epochs) <= doctor.SLOW_FIT_SECONDS
    assert doctor.predict_lesson06_seconds(120.0, 400.0, train_size=subset) <= doctor.SLOW_FIT_SECONDS
    assert epochs < plan["EPOCHS"] and 1000 <= subset < plan["train_size"]


@pytest.mark.slow  # measures training speed for real: not for the quick run (tests/README.md)
def test_the_measurement_is_real_and_short():
    import time

    start = time.perf_counter()
    speed = doctor.measure_training_speed(0.3)
    assert time.perf_counter() - start < 60  # a few seconds on a quiet machine; generous for a busy one
    assert speed["train_img_s"] > 0 and speed["eval_img_s"] > 0
    assert speed["device"] in ("cpu", "cuda", "mps") and speed["precision"] in ("fp32", "bf16")


def test_disk_and_install_figures_are_the_real_ones():
    disk = doctor.check_disk()
    assert f"needs {sum(doctor.DATA_DISK_GB.values()):.1f} GB" in disk.detail
    assert doctor.FREE_DISK_NEEDED_GB < 1.0  # the data, not the 6 GB environment
    install = doctor.check_install()
    total, torch_part, _ = doctor._installed_gb()
    assert f"{total:.1f} GB of packages" in install.detail and torch_part <= total and total > 0.1


def test_no_speed_skips_the_measurement(monkeypatch):
    monkeypatch.setattr(doctor, "measure_training_speed", lambda *a, **k: pytest.fail("measured despite --no-speed"))
    names = [c.name for c in doctor.run_checks(speed=False)]
    assert "training speed" not in names and "install size" in names
