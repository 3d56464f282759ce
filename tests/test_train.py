"""train: the batch loader and its augmentation, fit, evaluate, predict, confusion matrix, checkpoints.

Everything runs on small tensors built here; the one run of the real TinyCNN uses a synthetic set
whose classes (stripe orientation × dominant colour) survive crops and flips, so learning it shows
that fit really trains.
"""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from course_utils import train
from course_utils.models import TinyCNN
from course_utils.train import (
    BatchLoader,
    History,
    amp_decision,
    confusion_matrix,
    evaluate,
    fit,
    iterate_batches,
    load_checkpoint,
    per_class_accuracy,
    predict,
    random_crop,
    random_flip,
    save_checkpoint,
)

MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


@pytest.fixture(autouse=True)
def _not_grading(monkeypatch):
    monkeypatch.delenv("COURSE_GRADING", raising=False)
    monkeypatch.delenv("COURSE_QUICK", raising=False)


def _normalize(x: torch.Tensor) -> torch.Tensor:
    """What the loader must do to uint8 pixels, written the textbook way."""
    return (x.float() / 255.0 - MEAN) / STD


def _stripes(n: int, seed: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images of 4 classes: horizontal or vertical stripes, mostly red or mostly blue."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    coords = torch.arange(size).float()
    phase = torch.rand(n, 1, 1, generator=g) * 6.28
    wave = torch.sin(coords.view(1, 1, size) * 1.2 + phase)  # varies along the width: vertical stripes
    horizontal = labels % 2 == 0
    pattern = torch.where(horizontal.view(n, 1, 1), wave.transpose(1, 2), wave).expand(n, size, size)
    red = labels < 2
    colour = torch.stack([torch.where(red, 1.0, 0.2), torch.full((n,), 0.3), torch.where(red, 0.2, 1.0)], 1)
    images = 0.5 + 0.35 * pattern[:, None] * colour.view(n, 3, 1, 1)
    images = images + 0.08 * torch.randn(n, 3, size, size, generator=g)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8), labels


class _Small(nn.Module):
    """A very small classifier for 8×8 images, to keep the tests quick."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(8, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def _small_data(n_train: int = 64, n_test: int = 32, seed: int = 0):
    tx, ty = _stripes(n_train, seed, size=8)
    vx, vy = _stripes(n_test, seed + 1, size=8)
    return tx, ty, vx, vy


# ---------------------------------------------------------------- augmentation


def _offsets(out: torch.Tensor, original: torch.Tensor, padding: int) -> list[tuple[int, int]]:
    """For each output image, the one (dy, dx) window of the zero-padded original it equals."""
    padded = F.pad(original, (padding,) * 4)
    h, w = original.shape[-2:]
    found = []
    for i in range(len(out)):
        matches = [(dy, dx) for dy in range(2 * padding + 1) for dx in range(2 * padding + 1)
                   if torch.equal(out[i], padded[i, :, dy:dy + h, dx:dx + w])]
        assert len(matches) == 1, f"image {i} is not exactly one padded window: {matches}"
        found.append(matches[0])
    return found


def test_random_crop_is_a_window_of_the_zero_padded_image():
    n, c, h, w = 300, 2, 5, 6
    # Distinct positive values everywhere, so zeros can only come from the padding.
    x = (torch.arange(n * c * h * w) % 250 + 1).to(torch.uint8).view(n, c, h, w)
    x = x[torch.randperm(n, generator=torch.Generator().manual_seed(0))]
    out = random_crop(x, padding=2, generator=torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    offsets = _offsets(out, x, 2)
    # Every one of the 5×5 offsets is used (300 draws: the chance that one is missed is ~1e-4).
    assert set(offsets) == {(dy, dx) for dy in range(5) for dx in range(5)}


def test_random_crop_known_offset_matches_a_hand_shift():
    x = torch.arange(1, 17, dtype=torch.float32).view(1, 1, 4, 4)
    seen = set()
    for seed in range(60):
        out = random_crop(x, padding=1, generator=torch.Generator().manual_seed(seed))
        (dy, dx), = _offsets(out, x, 1)
        # Hand shift: output pixel (i, j) is input pixel (i + dy - 1, j + dx - 1), or 0 outside.
        expected = torch.zeros(4, 4)
        for i in range(4):
            for j in range(4):
                si, sj = i + dy - 1, j + dx - 1
                if 0 <= si < 4 and 0 <= sj < 4:
                    expected[i, j] = x[0, 0, si, sj]
        assert torch.equal(out[0, 0], expected)
        seen.add((dy, dx))
    assert (1, 1) in seen and len(seen) > 4


def test_random_crop_padding_zero_and_same_generator_repeat():
    x = torch.rand(4, 3, 8, 8)
    assert torch.equal(random_crop(x, padding=0), x)
    a = random_crop(x, 4, torch.Generator().manual_seed(3))
    b = random_crop(x, 4, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_random_flip_mirrors_about_half_and_leaves_the_rest():
    x = torch.rand(400, 3, 4, 5)
    out = random_flip(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    same = torch.tensor([torch.equal(out[i], x[i]) for i in range(len(x))])
    mirrored = torch.tensor([torch.equal(out[i], x[i].flip(-1)) for i in range(len(x))])
    assert bool((same ^ mirrored).all())  # random floats: never both
    assert 150 < int(mirrored.sum()) < 250


@pytest.mark.parametrize("bad", [torch.zeros(3, 8, 8), "images", torch.zeros(2, 1, 4)])
def test_augmentation_rejects_non_batches(bad):
    with pytest.raises(ValueError, match="images"):
        random_crop(bad)
    with pytest.raises(ValueError, match="images"):
        random_flip(bad)


def test_random_crop_rejects_bad_padding():
    with pytest.raises(ValueError, match="padding"):
        random_crop(torch.zeros(1, 1, 4, 4), padding=-1)


# ---------------------------------------------------------------- batch loader


def test_loader_normalizes_uint8_like_to_tensor_and_normalize():
    x = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    y = torch.arange(10)
    batches = list(BatchLoader(x, y, batch_size=4, shuffle=False))
    assert [len(b) for _, b in batches] == [4, 4, 2]
    got = torch.cat([xb for xb, _ in batches])
    torch.testing.assert_close(got, _normalize(x), rtol=1e-5, atol=1e-5)
    assert torch.equal(torch.cat([yb for _, yb in batches]), y)


def test_loader_passes_float_images_through():
    x = torch.randn(6, 3, 4, 4)
    got = torch.cat([xb for xb, _ in iterate_batches(x, torch.zeros(6, dtype=torch.long), 4, shuffle=False)])
    assert torch.equal(got, x)


def test_loader_shuffles_every_label_once_per_epoch_and_repeats_from_the_seed():
    x = torch.zeros(50, 3, 2, 2, dtype=torch.uint8)
    y = torch.arange(50)

    def orders(seed):
        loader = BatchLoader(x, y, batch_size=8, shuffle=True, seed=seed)
        return [torch.cat([yb for _, yb in loader]) for _ in range(2)]

    first, second = orders(0)
    assert sorted(first.tolist()) == list(range(50)) == sorted(second.tolist())
    assert not torch.equal(first, second)  # a new order each epoch
    again = orders(0)
    assert torch.equal(first, again[0]) and torch.equal(second, again[1])
    assert not torch.equal(first, orders(1)[0])


def test_loader_set_epoch_replays_an_epoch_and_drop_last():
    x = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    loader = BatchLoader(x, torch.arange(10), batch_size=4, augment=True, drop_last=True)
    assert len(loader) == 2
    loader.set_epoch(3)
    a = [(xb.clone(), yb) for xb, yb in loader]
    loader.set_epoch(3)
    b = list(loader)
    assert len(a) == 2 and all(len(yb) == 4 for _, yb in a)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))


def test_loader_augmented_batches_are_crops_and_flips_of_the_normalized_images():
    x = (torch.arange(20 * 3 * 6 * 6) % 200 + 30).to(torch.uint8).view(20, 3, 6, 6)
    y = torch.arange(20)
    for xb, yb in BatchLoader(x, y, batch_size=5, augment=True, seed=2):
        assert xb.shape == (5, 3, 6, 6)
        padded = F.pad(_normalize(x[yb]), (4,) * 4, value=0.0)
        # Padding happens on the pixels, so padded pixels hold normalized 0 (-mean/std).
        zero = (0.0 - MEAN) / STD
        padded = torch.where(F.pad(torch.ones(5, 3, 6, 6), (4,) * 4) > 0, padded, zero.expand_as(padded))
        for i in range(5):
            windows = [padded[i, :, dy:dy + 6, dx:dx + 6] for dy in range(9) for dx in range(9)]
            windows += [w.flip(-1) for w in windows]
            assert any(torch.allclose(xb[i], w, atol=1e-5) for w in windows)


def test_loader_channels_last():
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    xb, _ = next(iter(BatchLoader(x, torch.arange(4), 4, channels_last=True)))
    assert xb.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize(
    "args, kwargs, argument",
    [
        ((torch.zeros(3, 3, 4, 4), torch.arange(2)), {}, "labels"),
        ((torch.zeros(3, 4, 4), torch.arange(3)), {}, "images"),
        ((torch.zeros(3, 3, 4, 4, dtype=torch.int32), torch.arange(3)), {}, "images"),
        ((torch.zeros(3, 3, 4, 4), torch.zeros(3)), {}, "labels"),
        ((torch.zeros(3, 3, 4, 4), torch.tensor([0, -1, 2])), {}, "labels"),
        ((torch.zeros(3, 3, 4, 4), torch.arange(3)), {"batch_size": 0}, "batch_size"),
        ((torch.zeros(3, 3, 4, 4), torch.arange(3)), {"seed": -1}, "seed"),
    ],
)
def test_loader_bad_input_names_the_argument(args, kwargs, argument):
    with pytest.raises((ValueError, TypeError), match=argument):
        BatchLoader(*args, **kwargs)


# ---------------------------------------------------------------- fit


def test_fit_learns_a_small_synthetic_set_with_tinycnn():
    tx, ty = _stripes(320, seed=0)
    vx, vy = _stripes(128, seed=1)
    torch.manual_seed(0)
    model = TinyCNN(num_classes=4)
    h = fit(model, (tx, ty, vx, vy), epochs=2, batch_size=32, lr=0.05, progress=False, live_plot=False,
            amp=False)
    assert h.epoch == [1, 2]
    assert h.train_loss[-1] < h.train_loss[0]
    assert h.test_acc[-1] >= 0.9  # chance is 0.25
    assert h.best_test_acc == max(h.test_acc)
    assert not model.training
    # fit's reported test numbers are exactly what evaluate gives afterwards.
    loss, acc = evaluate(model, vx, vy)
    assert acc == h.test_acc[-1]
    assert math.isclose(loss, h.test_loss[-1], rel_tol=1e-5)


def test_fit_progress_bars_redraw_at_most_once_a_second(monkeypatch):
    # Lesson 06 lost its "idle" message under nbval when the bars redrew ten times a second: a
    # 13-epoch cell queued ~4,800 widget messages that nbval reads only after the cell ends.
    import course_utils.train as train_module
    from tqdm import tqdm as plain_tqdm

    bars = []

    def recording_tqdm(*args, **kwargs):
        bars.append(kwargs)
        return plain_tqdm(*args, disable=True, **kwargs)

    monkeypatch.setattr(train_module, "_tqdm", lambda: recording_tqdm)
    tx, ty = _stripes(64, seed=0)
    fit(TinyCNN(num_classes=4), (tx, ty, tx, ty), epochs=2, batch_size=32, live_plot=False, amp=False)
    assert len(bars) == 2, "one bar per epoch"
    assert all(bar["total"] == 2 and bar["mininterval"] >= 1.0 for bar in bars), bars


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("amp", [False, True])
def test_fit_repeats_exactly_with_the_same_seed(amp):
    data = _small_data()
    runs = []
    for seed in (5, 5, 6):
        torch.manual_seed(123)  # same initial weights every time; fit's own seed drives the rest
        model = _Small()
        h = fit(model, data, epochs=2, batch_size=16, lr=0.1, seed=seed, progress=False, live_plot=False, amp=amp)
        runs.append((h, _weights(model)))
    (h1, w1), (h2, w2), (h3, w3) = runs
    assert h1.precision == h2.precision == ("bf16" if amp else "fp32")
    assert h1.train_loss == h2.train_loss and h1.test_acc == h2.test_acc
    assert all(torch.equal(a, b) for a, b in zip(w1, w2))
    assert h1.train_loss != h3.train_loss
    assert not all(torch.equal(a, b) for a, b in zip(w1, w3))


def test_fit_history_fields_schedule_and_json():
    data = _small_data()
    h = fit(_Small(), data, epochs=4, batch_size=16, lr=0.2, progress=True, live_plot=True, amp=False)
    d = json.loads(h.to_json())
    for key in ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds", "train_seconds"):
        assert len(d[key]) == 4, key
    assert d["epoch"] == [1, 2, 3, 4]
    assert all(0.0 <= a <= 1.0 for a in h.train_acc + h.test_acc)
    assert h.seconds == sorted(h.seconds) and h.seconds[0] > 0
    assert h.train_seconds == sorted(h.train_seconds)
    assert all(0 < t <= s for t, s in zip(h.train_seconds, h.seconds))
    # One-cycle: the peak rate is reached after the warm-up and the last step ends near zero.
    assert max(h.lr) <= 0.2 + 1e-9 and h.lr[-1] < 0.02
    assert h.lr.index(max(h.lr)) in (0, 1)
    assert h.note == ""
    assert History(**d).to_dict() == d


def test_fit_accepts_a_cifar10_like_object_and_names_synthetic_data():
    tx, ty, vx, vy = _small_data()

    class Data:
        train_images, train_labels, test_images, test_labels = tx, ty, vx, vy
        synthetic = True
        source = "synthetic stand-in"

    h = fit(_Small(), Data(), epochs=1, batch_size=16, progress=False, live_plot=False, amp=False)
    assert "SYNTHETIC" in h.note


def test_fit_in_grading_mode_trains_one_epoch_of_two_batches(monkeypatch):
    monkeypatch.setenv("COURSE_GRADING", "1")
    model = _Small()
    batches = []
    model.register_forward_hook(lambda m, inp, out: batches.append((m.training, len(inp[0]))))
    h = fit(model, _small_data(n_train=128, n_test=64), epochs=5, batch_size=16, progress=False,
            live_plot=False, amp=False)
    assert h.epoch == [1]
    assert "grading mode" in h.note
    assert [n for training, n in batches if training] == [16, 16]
    assert sum(n for training, n in batches if not training) == 32  # at most 2 batches of test images


def test_fit_in_quick_mode_trains_one_epoch_of_a_few_batches_and_says_so(monkeypatch):
    from course_utils.train import QUICK_BATCHES

    monkeypatch.setenv("COURSE_QUICK", "1")
    model = _Small()
    batches = []
    model.register_forward_hook(lambda m, inp, out: batches.append((m.training, len(inp[0]))))
    h = fit(model, _small_data(n_train=16 * (QUICK_BATCHES + 4), n_test=64), epochs=5, batch_size=16,
            progress=False, live_plot=False, amp=False)
    assert h.epoch == [1]
    assert "QUICK MODE (COURSE_QUICK=1)" in h.note
    assert [n for training, n in batches if training] == [16] * QUICK_BATCHES
    assert sum(n for training, n in batches if not training) == 64  # the test set is smaller than the cap


def test_quick_mode_only_for_exactly_1(monkeypatch):
    from course_utils.train import quick_mode

    for value, expected in [("1", True), ("0", False), ("", False), ("yes", False)]:
        monkeypatch.setenv("COURSE_QUICK", value)
        assert quick_mode() is expected
    monkeypatch.delenv("COURSE_QUICK")
    assert quick_mode() is False


def test_setup_warns_in_quick_mode(monkeypatch, capsys):
    import course_utils

    course_utils.setup(0, device="cpu")
    assert "QUICK MODE" not in capsys.readouterr().out
    monkeypatch.setenv("COURSE_QUICK", "1")
    course_utils.setup(0, device="cpu")
    assert "QUICK MODE (COURSE_QUICK=1)" in capsys.readouterr().out


@pytest.mark.parametrize("setting, expected", [("1", 1), ("3", 3), ("", None), ("zero", None), ("0", None)])
def test_fit_trains_with_omp_num_threads_where_it_is_set(monkeypatch, setting, expected):
    # A person, `course grade --jobs` or a test runner's workers share the CPU through
    # OMP_NUM_THREADS; fit must not raise it back to one thread per core.
    from course_utils.train import _physical_cores

    monkeypatch.setenv("OMP_NUM_THREADS", setting)
    seen = []
    model = _Small()
    model.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    fit(model, _small_data(), epochs=1, batch_size=32, progress=False, live_plot=False, amp=False)
    assert seen and set(seen) == {expected or _physical_cores()}


def test_fit_restores_the_thread_count():
    before = torch.get_num_threads()
    fit(_Small(), _small_data(), epochs=1, batch_size=32, progress=False, live_plot=False, amp=False)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(
    "data, kwargs, error, argument",
    [
        ("cifar", {}, TypeError, "data"),
        ((torch.zeros(4, 3, 8, 8), torch.arange(3), torch.zeros(2, 3, 8, 8), torch.arange(2)), {}, ValueError,
         "train_labels"),
        ((torch.zeros(4, 3, 8, 8), torch.arange(4), torch.zeros(2, 3, 4, 4), torch.arange(2)), {}, ValueError,
         "test_images"),
        (None, {"epochs": 0}, ValueError, "epochs"),
        (None, {"batch_size": 2.5}, ValueError, "batch_size"),
        (None, {"lr": -0.1}, ValueError, "lr"),
        (None, {"lr": 0}, ValueError, "lr"),
        (None, {"lr": float("nan")}, ValueError, "lr"),
        (None, {"label_smoothing": 1.0}, ValueError, "label_smoothing"),
        (None, {"amp": "yes"}, ValueError, "amp"),
        (None, {"seed": -3}, ValueError, "seed"),
    ],
)
def test_fit_bad_input_names_the_argument(data, kwargs, error, argument):
    data = _small_data() if data is None else data
    with pytest.raises(error, match=argument):
        fit(_Small(), data, progress=False, live_plot=False, **kwargs)


def test_fit_rejects_a_non_model():
    with pytest.raises(TypeError, match="model"):
        fit(lambda x: x, _small_data())


def test_amp_decision_is_a_cached_bool():
    model, batch = _Small(), torch.randn(8, 3, 8, 8)
    first = amp_decision(model, batch)
    assert isinstance(first, bool)
    assert amp_decision(model, batch) is first
    assert amp_decision(model, batch, "meta") is False  # neither CPU nor CUDA: never bf16


def _measure_bf16_here(monkeypatch):
    """Make amp_decision time the probe, as on a processor with bf16 instructions or unreadable flags."""
    monkeypatch.setattr(train, "_AMP_CACHE", {})
    monkeypatch.setattr(train, "_cpu_flags", lambda: None)


def test_amp_decision_leaves_the_random_generator_alone(monkeypatch):
    # The probe trains a copy of the model in training mode: its dropout draws random masks.
    _measure_bf16_here(monkeypatch)
    model, batch = TinyCNN(dropout=0.5), torch.randn(8, 3, 32, 32)
    torch.manual_seed(7)
    before = torch.get_rng_state()
    amp_decision(model, batch, repeats=1)
    assert torch.equal(torch.get_rng_state(), before)


def test_a_seeded_fit_that_measures_bf16_repeats_one_that_does_not(monkeypatch):
    # The first fit of a process measures bf16 (where the flags allow it); the second finds the
    # answer cached. Both must train alike, dropout masks included.
    _measure_bf16_here(monkeypatch)
    x, y = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8), torch.randint(0, 10, (64,))
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = TinyCNN(dropout=0.5)
        fit(model, (x, y, x, y), epochs=1, batch_size=32, augment=False, amp="auto",
            seed=3, progress=False, live_plot=False)
        runs.append(_weights(model))
    assert all(torch.equal(a, b) for a, b in zip(*runs))


# ---------------------------------------------------------------- evaluate, predict


def test_evaluate_equals_a_manual_computation_and_restores_the_mode():
    torch.manual_seed(0)
    model = TinyCNN(num_classes=4, batchnorm=True, dropout=0.3)
    x, y = _stripes(70, seed=3)
    model.train()
    loss, acc = evaluate(model, x, y, batch_size=32)
    assert model.training
    model.eval()
    with torch.no_grad():
        logits = model(_normalize(x))
    torch.testing.assert_close(loss, F.cross_entropy(logits, y).item(), rtol=1e-5, atol=1e-6)
    assert acc == int((logits.argmax(1) == y).sum()) / len(y)


def test_evaluate_on_a_data_set_uses_its_test_split():
    tx, ty, vx, vy = _small_data()
    model = _Small()
    assert evaluate(model, (tx, ty, vx, vy)) == evaluate(model, vx, vy)


@pytest.mark.parametrize(
    "args, argument",
    [
        ((torch.zeros(4, 3, 8, 8),), "labels"),
        ((torch.zeros(4, 3, 8, 8), torch.arange(3)), "labels"),
        ((torch.zeros(0, 3, 8, 8), torch.arange(0)), "data_or_images"),
        (((torch.zeros(4, 3, 8, 8), torch.arange(4), torch.zeros(4, 3, 8, 8), torch.arange(4)), torch.arange(4)),
         "labels"),
        ((torch.zeros(4, 8, 8), torch.arange(4)), "data_or_images"),
    ],
)
def test_evaluate_bad_input_names_the_argument(args, argument):
    with pytest.raises((ValueError, TypeError), match=argument):
        evaluate(_Small(), *args)


def test_predict_is_the_softmax_of_the_scores_in_eval_mode():
    torch.manual_seed(0)
    model = TinyCNN(num_classes=4, dropout=0.5).train()
    x, _ = _stripes(9, seed=4)
    probs = predict(model, x, batch_size=4)
    assert model.training
    model.eval()
    with torch.no_grad():
        expected = model(_normalize(x)).softmax(1)
    assert probs.shape == (9, 4) and probs.dtype == torch.float32
    torch.testing.assert_close(probs, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(probs.sum(1), torch.ones(9))


def test_predict_bad_input():
    with pytest.raises(ValueError, match="images"):
        predict(_Small(), torch.zeros(0, 3, 8, 8))
    with pytest.raises(TypeError, match="model"):
        predict("model", torch.zeros(1, 3, 8, 8))


# ---------------------------------------------------------------- confusion matrix


def test_confusion_matrix_matches_a_hand_count():
    labels = torch.tensor([0, 0, 1, 2, 2, 2, 1, 0, 2])
    preds = torch.tensor([0, 1, 1, 2, 0, 2, 2, 0, 2])
    cm = confusion_matrix(labels, preds, 4)
    hand = [[0] * 4 for _ in range(4)]
    for t, p in zip(labels.tolist(), preds.tolist()):
        hand[t][p] += 1
    assert cm.dtype == torch.long
    assert cm.tolist() == hand
    assert cm.tolist()[2] == [1, 0, 3, 0]  # class 2: once taken for 0, three times right
    acc = per_class_accuracy(cm)
    assert acc[:3].tolist() == [2 / 3, 1 / 2, 3 / 4]
    assert math.isnan(acc[3])  # no images of class 3


@pytest.mark.parametrize(
    "labels, preds, num_classes, argument",
    [
        (torch.tensor([0, 1]), torch.tensor([0]), 2, "preds"),
        (torch.tensor([0, 3]), torch.tensor([0, 1]), 3, "labels"),
        (torch.tensor([0, 1]), torch.tensor([0, 5]), 3, "preds"),
        (torch.tensor([0, 1]), torch.tensor([0, 1]), 0, "num_classes"),
        (torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), 2, "labels"),
    ],
)
def test_confusion_matrix_bad_input_names_the_argument(labels, preds, num_classes, argument):
    with pytest.raises(ValueError, match=argument):
        confusion_matrix(labels, preds, num_classes)


def test_per_class_accuracy_bad_input():
    with pytest.raises(ValueError, match="cm"):
        per_class_accuracy(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="cm"):
        per_class_accuracy(torch.tensor([[1, -1], [0, 1]]))


# ---------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = TinyCNN(batchnorm=True)
    model.features[1].running_mean.fill_(0.5)  # buffers travel too
    history = History(epoch=[1], train_loss=[1.0], test_acc=[0.4])
    path = save_checkpoint(tmp_path / "sub" / "tiny.pt", model, history, epochs=1, name="bn")
    assert path.is_file()
    fresh = TinyCNN(batchnorm=True)
    meta = load_checkpoint(path, fresh)
    assert meta["epochs"] == 1 and meta["name"] == "bn" and meta["model_class"] == "TinyCNN"
    assert meta["history"]["test_acc"] == [0.4]
    for (k, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        assert torch.equal(a, b), k
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model.eval()(x), fresh.eval()(x), rtol=0, atol=0)


def test_checkpoint_errors_name_the_path(tmp_path):
    missing = tmp_path / "nothing.pt"
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        load_checkpoint(missing, TinyCNN())
    path = save_checkpoint(tmp_path / "plain.pt", TinyCNN())
    with pytest.raises(ValueError, match="plain.pt") as err:
        load_checkpoint(path, TinyCNN(batchnorm=True))
    assert "missing" in str(err.value)
    with pytest.raises(ValueError, match="plain.pt") as err:
        load_checkpoint(path, TinyCNN(num_classes=3))
    assert "shape" in str(err.value)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        load_checkpoint(junk, TinyCNN())
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="other.pt"):
        load_checkpoint(other, TinyCNN())


def test_checkpoint_metadata_must_be_json(tmp_path):
    with pytest.raises(TypeError, match="JSON"):
        save_checkpoint(tmp_path / "x.pt", TinyCNN(), when=object())
    with pytest.raises(TypeError, match="model"):
        save_checkpoint(tmp_path / "x.pt", {"weights": 1})


def test_history_plots_with_the_course_plotting_function():
    import matplotlib

    matplotlib.use("Agg")
    from course_utils.plots import plot_history

    h = History(epoch=[1, 2], train_loss=[1.0, 0.8], test_loss=[1.1, 0.9], train_acc=[0.3, 0.5],
                test_acc=[0.3, 0.4], lr=[0.1, 0.0], seconds=[1.0, 2.0])
    assert len(plot_history(h).axes) == 2
    assert train.__all__.count("fit") == 1


# ---------------------------------------------------------------- validation split, eval-mode
# training accuracy, learning-rate schedule, activation statistics (lessons 06-07)


def test_holdout_split_is_disjoint_seeded_and_leaves_the_test_set_alone():
    n = 100
    # Each image holds its own index as its pixel value, so we can tell where every image went.
    x = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 4, 4).contiguous()
    y = torch.arange(n) % 10
    test_x = torch.full((7, 3, 4, 4), 255, dtype=torch.uint8)
    split = train.holdout_split((x, y, test_x, torch.zeros(7, dtype=torch.long)), val_size=20, train_size=50, seed=3)
    train_ids = split.train_images[:, 0, 0, 0].long()
    val_ids = split.val_images[:, 0, 0, 0].long()
    assert len(train_ids) == 50 and len(val_ids) == 20
    assert not set(train_ids.tolist()) & set(val_ids.tolist())
    assert 255 not in train_ids.tolist() + val_ids.tolist()  # no test image in either part
    assert torch.equal(split.train_labels, train_ids % 10) and torch.equal(split.val_labels, val_ids % 10)
    again = train.holdout_split((x, y, test_x, torch.zeros(7, dtype=torch.long)), 20, 50, seed=3)
    assert torch.equal(again.train_images, split.train_images)
    other = train.holdout_split((x, y, test_x, torch.zeros(7, dtype=torch.long)), 20, 50, seed=4)
    assert not torch.equal(other.val_images, split.val_images)
    everything = train.holdout_split((x, y, test_x, torch.zeros(7, dtype=torch.long)), 30)
    assert len(everything.train_images) == 70
    assert "70 training / 30 validation" in everything.source


@pytest.mark.parametrize("kwargs, argument", [
    ({"val_size": 0}, "val_size"), ({"val_size": 64}, "val_size"),
    ({"val_size": 10, "train_size": 60}, "train_size"), ({"val_size": 10, "train_size": 0}, "train_size"),
])
def test_holdout_split_bad_sizes_name_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        train.holdout_split(_small_data(), **kwargs)


def test_fit_on_a_split_evaluates_on_validation_and_measures_train_accuracy_in_eval_mode():
    tx, ty, vx, vy = _small_data(64, 32)
    split = train.holdout_split((tx, ty, vx, vy), val_size=16, seed=0)
    torch.manual_seed(0)
    model = _Small().train()
    h = fit(model, split, epochs=2, batch_size=16, progress=False, live_plot=False, amp=False, eval_train=True)
    assert h.eval_set == "validation" and h.val_acc == h.test_acc
    # The per-epoch numbers are the validation split's, not the data's test images.
    loss, acc = evaluate(model, split.val_images, split.val_labels)
    assert acc == h.test_acc[-1]
    # Eval-mode training accuracy is exactly evaluate() on the un-augmented training images.
    assert len(h.train_eval_acc) == 2
    assert h.train_eval_acc[-1] == evaluate(model, split.train_images, split.train_labels)[1]
    plain = fit(_Small(), (tx, ty, vx, vy), epochs=1, batch_size=16, progress=False, live_plot=False, amp=False)
    assert plain.eval_set == "test" and plain.train_eval_acc == []
    with pytest.raises(AttributeError, match="validation"):
        plain.val_acc
    with pytest.raises(TypeError, match="eval_train"):
        fit(_Small(), split, eval_train="yes", progress=False, live_plot=False)


def test_lr_schedule_is_what_fit_applies_step_by_step():
    tx, ty, vx, vy = _small_data(64, 16)
    model = _Small()
    h = fit(model, (tx, ty, vx, vy), epochs=3, batch_size=16, lr=0.2, progress=False, live_plot=False, amp=False)
    schedule = train.lr_schedule(3, 4, lr=0.2)
    assert len(schedule) == 12
    assert schedule[0] == pytest.approx(0.02) and max(schedule) == pytest.approx(0.2)
    assert schedule == sorted(schedule[:3]) + sorted(schedule[3:], reverse=True)
    # fit records the rate after each epoch's last step: the schedule's value one step later.
    assert h.lr == pytest.approx([0.2 * train._one_cycle(12)(s) for s in (4, 8, 12)])
    with pytest.raises(ValueError, match="lr"):
        train.lr_schedule(1, 4, lr=0)
    with pytest.raises(ValueError, match="warmup"):
        train.lr_schedule(1, 4, warmup=1.0)


def test_activation_recorder_records_training_passes_only():
    torch.manual_seed(0)
    model = TinyCNN().train()
    x = torch.randn(6, 3, 32, 32)
    with train.ActivationRecorder(model, every=2) as rec:
        for _ in range(5):
            model(x)
        with torch.no_grad():
            model(x)          # an evaluation-style pass under no_grad: not recorded
        model.eval()
        model(x)              # eval mode: not recorded
    model.train()
    model(x)                  # after the with block: hooks are gone
    assert rec.names == ["relu 1", "relu 2"]
    assert rec.steps == [0, 2, 4]
    # The recorded numbers are the statistics of the ReLU outputs, computed independently here.
    with torch.no_grad():
        a1 = model.features[:2](x)
        a2 = model.features[:5](x)
    assert rec.means["relu 1"][-1] == pytest.approx(float(a1.mean()), rel=1e-5)
    assert rec.stds["relu 2"][-1] == pytest.approx(float(a2.std()), rel=1e-5)
    assert all(len(rec.means[n]) == 3 == len(rec.stds[n]) for n in rec.names)
    with pytest.raises(ValueError, match="Conv1d"):
        train.ActivationRecorder(model, layer_type=nn.Conv1d)
    with pytest.raises(ValueError, match="every"):
        train.ActivationRecorder(model, every=0)


def test_subset_size_is_n_normally_and_small_in_quick_and_grading_mode(monkeypatch):
    from course_utils.train import QUICK_IMAGES, subset_size

    assert subset_size(4000) == 4000 and subset_size(3) == 3
    for variable in ("COURSE_QUICK", "COURSE_GRADING"):
        monkeypatch.setenv(variable, "1")
        assert subset_size(4000) == QUICK_IMAGES < 4000
        assert subset_size(3) == 3  # never more than asked for
        monkeypatch.delenv(variable)
    assert subset_size(4000) == 4000
    for bad in (0, -5, 2.5, True, "4000"):
        with pytest.raises(ValueError, match="subset_size: n must be a positive integer"):
            subset_size(bad)
