"""benchmarks/train_speed.py --quick runs end to end on a tiny CIFAR-10-shaped copy and ends with RESULT."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _tiny_imagefolder(root: Path, per_class: dict[str, int]) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in per_class.items():
        for k, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                pixels[..., k % 3] = 200  # a class colour, so the images are not all alike
                Image.fromarray(pixels).save(folder / f"{i:04d}.jpg", quality=90)
    return root


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COURSE_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    env.pop("COURSE_GRADING", None)
    env.pop("COURSE_DATA", None)
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_speed.py"), *args],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


@pytest.mark.slow  # trains in two ways: not for the quick run (tests/README.md)
def test_quick_run_prints_a_table_and_a_result_line(tmp_path):
    data = _tiny_imagefolder(tmp_path / "cifar", {"train": 3, "test": 1})
    proc = _run(["--quick", "--data", str(data)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].startswith("RESULT ")
    result = json.loads(lines[-1][len("RESULT "):])
    for key in ("baseline_img_s", "course_img_s", "ratio", "course_test_acc", "course_seconds"):
        assert key in result, key
    assert result["baseline_img_s"] > 0 and result["course_img_s"] > 0
    assert result["ratio"] == pytest.approx(result["course_img_s"] / result["baseline_img_s"], rel=1e-2)
    assert 0.0 <= result["course_test_acc"] <= 1.0
    assert result["quick"] is True and result["baseline_epochs"] == 1 and result["course_epochs"] == 1
    assert result["course_precision"] in ("bf16", "fp32")
    table = "\n".join(lines)
    assert "tutorial recipe" in table and "course fit defaults" in table and "img/s" in table


def test_missing_data_is_reported(tmp_path):
    proc = _run(["--quick", "--data", str(tmp_path / "nothing"), "--baseline-epochs", "0"], tmp_path)
    assert proc.returncode == 2
    assert "CIFAR-10 not found" in proc.stderr
