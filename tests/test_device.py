"""Device selection: CUDA, then Apple MPS, then the CPU, with CUDA and MPS simulated.

This machine has neither, so availability is monkeypatched; what is tested is the choice the course
makes (``course_utils.train.choose_device``, used by ``setup()`` and ``fit``) and what doctor says.
Real CUDA is checked by running lesson 06 on a GPU machine (see the report of issue 16).
"""
from __future__ import annotations

import pytest
import torch

import course_utils
from course_utils import doctor, train


@pytest.fixture
def machine(monkeypatch):
    """Set which accelerators this 'machine' has: machine(cuda=..., mps=...)."""
    monkeypatch.delenv("COURSE_DEVICE", raising=False)

    def have(cuda: bool = False, mps: bool = False) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)

    return have


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_the_fastest_usable_device_is_chosen(machine, cuda, mps, expected):
    machine(cuda=cuda, mps=mps)
    assert train.choose_device() == torch.device(expected)
    assert course_utils.choose_device() == torch.device(expected)  # the name lessons import


def test_setup_reports_the_chosen_device(machine, capsys):
    machine(mps=True)
    assert course_utils.setup(0).type == "mps"
    assert "device mps" in capsys.readouterr().out


def test_asking_for_a_device_works_where_it_exists_and_says_why_not_elsewhere(machine):
    machine(cuda=False, mps=True)
    assert train.choose_device("cpu") == torch.device("cpu")
    assert train.choose_device("mps") == torch.device("mps")
    with pytest.raises(ValueError, match="no CUDA device"):
        train.choose_device("cuda")
    machine(cuda=True, mps=False)
    with pytest.raises(ValueError, match="MPS is not usable"):
        train.choose_device("mps")
    with pytest.raises(ValueError, match="'cuda', 'mps', 'cpu'"):
        train.choose_device("gpu")


def test_course_device_variable_forces_a_device(machine, monkeypatch):
    machine(cuda=True, mps=True)
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert train.choose_device() == torch.device("cpu")
    monkeypatch.setenv("COURSE_DEVICE", "tpu")
    with pytest.raises(ValueError, match="prefer must be"):
        train.choose_device()


def test_doctor_names_the_accelerator(machine, monkeypatch):
    machine(cuda=True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA H200")
    line = doctor.check_accelerator()
    assert line.ok and "CUDA: NVIDIA H200" in line.detail
    machine(mps=True)
    assert "Apple MPS" in doctor.check_accelerator().detail
    machine()
    assert "the CPU is used" in doctor.check_accelerator().detail


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_fit_trains_on_a_real_gpu():
    from course_utils.models import TinyCNN

    x = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8)
    y = torch.randint(0, 10, (256,))
    model = TinyCNN()
    history = train.fit(model, (x, y, x, y), epochs=1, batch_size=64, progress=False, live_plot=False)
    assert next(model.parameters()).device.type == "cuda" and len(history.test_acc) == 1
