"""Tests of course_utils.data: sample photos, finding and loading CIFAR-10, the cache, errors.

Every CIFAR-10 copy here is a tiny fixture written into tmp_path in one of the two layouts; nothing
reads the real data set or the network.
"""
from __future__ import annotations

import argparse
import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from course_utils import data
from course_utils.data import (
    CIFAR10_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    CorruptDataError,
    DataNotFoundError,
    DownloadError,
    cache_dir,
    denormalize,
    load_cifar10,
    locate_cifar10,
    normalize,
    sample_image,
    sample_image_names,
    search_places,
    synthetic_cifar10,
)


# --------------------------------------------------------------------------------------------
# Fixtures: tiny copies of CIFAR-10 in both layouts
# --------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test sees the real COURSE_DATA or the user's cache."""
    monkeypatch.delenv("COURSE_DATA", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))


def write_imagefolder(root: Path, counts=None, fmt: str = "PNG", seed: int = 0) -> dict[bytes, int]:
    """Random 32x32 images in train/<class>/ and test/<class>/; returns {pixels: label} per split."""
    rng = np.random.default_rng(seed)
    counts = counts or {"train": 3, "test": 2}
    expected: dict[str, dict[bytes, int]] = {}
    for split, n in counts.items():
        expected[split] = {}
        for label, name in enumerate(CIFAR10_CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            per_class = n[label] if isinstance(n, (list, tuple)) else n
            for i in range(per_class):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                suffix = ".png" if fmt == "PNG" else ".jpg"
                Image.fromarray(pixels).save(folder / f"{i:04d}{suffix}", fmt)
                if fmt == "PNG":
                    expected[split][pixels.transpose(2, 0, 1).tobytes()] = label
    return expected


def write_batches(folder: Path, per_batch: int = 4, seed: int = 0, meta: bool = True) -> dict[str, np.ndarray]:
    """A fake cifar-10-batches-py in torchvision's format: pickled dicts with bytes keys."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    images, labels = {}, {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, per_batch)]
        with open(folder / name, "wb") as fh:
            pickle.dump({b"batch_label": name.encode(), b"labels": y, b"data": x,
                         b"filenames": [f"{i}.png".encode() for i in range(per_batch)]}, fh, protocol=2)
        images[name], labels[name] = x, np.array(y)
    if meta:
        with open(folder / "batches.meta", "wb") as fh:
            pickle.dump({b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_vis": 3072}, fh, protocol=2)
    train_names = [f"data_batch_{i}" for i in range(1, 6)]
    return {
        "train_images": np.concatenate([images[n] for n in train_names]).reshape(-1, 3, 32, 32),
        "train_labels": np.concatenate([labels[n] for n in train_names]),
        "test_images": images["test_batch"].reshape(-1, 3, 32, 32),
        "test_labels": labels["test_batch"],
    }


class CallCounter:
    """Wraps a function and counts its calls (how the tests see whether data was decoded)."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


# --------------------------------------------------------------------------------------------
# Sample photos
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sample_image_names())
def test_sample_image_matches_the_file_pixel_for_pixel(name):
    from matplotlib import cbook

    img = sample_image(name)
    path = cbook.get_sample_data(data._SAMPLE_FILES[name], asfileobj=False)
    with Image.open(path) as im:
        rgba = np.asarray(im.convert("RGBA")).astype(np.float64) / 255
    # Transparent pixels go onto white: rgb * alpha + 1 * (1 - alpha).
    expected = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])
    assert img.dtype == torch.float32 and img.shape == (3, *expected.shape[:2])
    assert np.abs(img.permute(1, 2, 0).numpy() - expected).max() <= 1.5 / 255


def test_sample_image_resizes_like_pytorch_antialiased_interpolation():
    full = sample_image("grace_hopper")
    h, w = full.shape[1:]
    small = sample_image("grace_hopper", size=(30, 25))
    expected = torch.nn.functional.interpolate(full[None], size=(30, 25), mode="bilinear", antialias=True)[0]
    torch.testing.assert_close(small, expected.clamp(0, 1))
    square = sample_image("grace_hopper", size=16)
    side = min(h, w)
    crop = full[:, (h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
    expected = torch.nn.functional.interpolate(crop[None], size=(16, 16), mode="bilinear", antialias=True)[0]
    torch.testing.assert_close(square, expected.clamp(0, 1))
    assert 0.0 <= float(square.min()) and float(square.max()) <= 1.0


def test_sample_image_rejects_bad_arguments():
    with pytest.raises(ValueError, match="name='mona_lisa'.*grace_hopper"):
        sample_image("mona_lisa")
    with pytest.raises(TypeError, match="name"):
        sample_image(3)
    for bad in ((1, 2, 3), 2.5, "32", True, (32, 1.0)):
        with pytest.raises(TypeError, match="size"):
            sample_image(size=bad)
    for bad in (0, (4, -1)):
        with pytest.raises(ValueError, match="size"):
            sample_image(size=bad)


# --------------------------------------------------------------------------------------------
# Where the data is looked for
# --------------------------------------------------------------------------------------------


def test_cache_dir_order(tmp_path, monkeypatch):
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("COURSE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "course_utils"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "course_utils"


def test_search_places_order_and_no_duplicates(tmp_path, monkeypatch):
    assert search_places() == [tmp_path / "cache"]
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "env"))
    assert search_places(tmp_path / "root") == [tmp_path / "root", tmp_path / "env", tmp_path / "cache"]
    assert search_places(str(tmp_path / "env") + "/") == [tmp_path / "env", tmp_path / "cache"]
    with pytest.raises(TypeError, match="root"):
        search_places(42)


def test_locate_follows_the_search_order(tmp_path, monkeypatch):
    write_batches(tmp_path / "cache" / "cifar-10-batches-py")
    found = locate_cifar10()
    assert found.layout == "batches" and found.path == tmp_path / "cache" / "cifar-10-batches-py"

    write_imagefolder(tmp_path / "env", {"train": 1, "test": 1})
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "env"))
    assert locate_cifar10().path == tmp_path / "env"

    write_batches(tmp_path / "root")
    assert locate_cifar10(tmp_path / "root").path == tmp_path / "root"
    # A root with nothing in it falls through to COURSE_DATA.
    (tmp_path / "empty").mkdir()
    assert locate_cifar10(tmp_path / "empty").path == tmp_path / "env"


def test_location_text_names_folder_and_layout(tmp_path):
    write_imagefolder(tmp_path / "jpeg", {"train": 1, "test": 1})
    text = str(locate_cifar10(tmp_path / "jpeg"))
    assert text.startswith(str(tmp_path / "jpeg")) and "ImageFolder" in text
    write_batches(tmp_path / "tv" / "cifar-10-batches-py")
    text = str(locate_cifar10(tmp_path / "tv"))
    assert str(tmp_path / "tv" / "cifar-10-batches-py") in text and "torchvision" in text


def test_locate_returns_none_when_nothing_is_there(tmp_path):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "unrelated.txt").write_text("hi")
    assert locate_cifar10(tmp_path / "missing") is None


# --------------------------------------------------------------------------------------------
# Loading both layouts
# --------------------------------------------------------------------------------------------


def test_load_imagefolder_gives_every_image_with_its_label(tmp_path):
    expected = write_imagefolder(tmp_path / "cifar", {"train": [3, 1, 2, 2, 2, 2, 2, 2, 2, 5], "test": 2})
    d = load_cifar10(tmp_path / "cifar")
    assert not d.synthetic and d.classes == CIFAR10_CLASSES
    assert d.train_images.dtype == torch.uint8 and d.train_labels.dtype == torch.int64
    assert d.train_images.shape == (23, 3, 32, 32) and d.test_images.shape == (20, 3, 32, 32)
    for split in ("train", "test"):
        images, labels = getattr(d, f"{split}_images"), getattr(d, f"{split}_labels")
        seen = {img.numpy().tobytes(): int(lab) for img, lab in zip(images, labels)}
        assert seen == expected[split]
    assert str(tmp_path / "cifar") in d.source and "ImageFolder" in d.source


def test_load_imagefolder_shuffles_class_order_away(tmp_path):
    write_imagefolder(tmp_path / "cifar", {"train": 4, "test": 4})
    d = load_cifar10(tmp_path / "cifar")
    # Files come in class order; a slice of the loaded set must not be one class.
    assert len(set(d.test_labels[:10].tolist())) > 1
    assert torch.equal(d.test_labels.bincount(), torch.full((10,), 4))


@pytest.mark.parametrize("decoder", ["torchvision", "pil-only"])
def test_load_jpeg_imagefolder_matches_pil(tmp_path, monkeypatch, decoder):
    if decoder == "pil-only":
        monkeypatch.setattr(data, "_torchvision_jpeg_decoder", lambda: None)
    write_imagefolder(tmp_path / "cifar", {"train": 1, "test": 1}, fmt="JPEG")
    d = load_cifar10(tmp_path / "cifar", cache=False)
    by_label = {int(lab): img for img, lab in zip(d.test_images, d.test_labels)}
    for label, name in enumerate(CIFAR10_CLASSES):
        with Image.open(tmp_path / "cifar" / "test" / name / "0000.jpg") as im:
            ref = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)
        # Different libjpeg builds may round the inverse DCT differently by a level or two.
        assert (by_label[label].int() - ref.int()).abs().max() <= 2


def test_loading_raises_no_warnings(tmp_path):
    import warnings

    write_imagefolder(tmp_path / "cifar", {"train": 1, "test": 1}, fmt="JPEG")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_cifar10(tmp_path / "cifar")
        load_cifar10(tmp_path / "cifar")


@pytest.mark.parametrize("mode", [None, "COURSE_GRADING", "COURSE_QUICK"])
def test_grading_and_quick_mode_keep_only_the_first_images(tmp_path, monkeypatch, mode):
    # Under `course grade` and in quick mode a lesson's cells only have to run: the loader keeps
    # the first images (a fair sample, the order being shuffled) and says so in `source`.
    write_imagefolder(tmp_path / "cifar", {"train": 2, "test": 2})
    monkeypatch.delenv("COURSE_GRADING", raising=False)
    monkeypatch.delenv("COURSE_QUICK", raising=False)
    full = load_cifar10(tmp_path / "cifar", cache=False)
    monkeypatch.setattr(data, "SHORT_RUN_TRAIN_IMAGES", 7)
    monkeypatch.setattr(data, "SHORT_RUN_TEST_IMAGES", 5)
    if mode:
        monkeypatch.setenv(mode, "1")
    d = load_cifar10(tmp_path / "cifar", cache=False)
    if mode is None:
        assert len(d.train_labels) == 20 and len(d.test_labels) == 20 and d.source == full.source
        return
    assert d.train_images.shape == (7, 3, 32, 32) and d.test_images.shape == (5, 3, 32, 32)
    for key in ("train_images", "train_labels", "test_images", "test_labels"):
        n = len(getattr(d, key))
        assert torch.equal(getattr(d, key), getattr(full, key)[:n]), key
    assert d.classes == full.classes and not d.synthetic
    assert d.source.startswith(full.source) and "only the first 7 training and 5 test images" in d.source


def test_load_batches_in_their_order(tmp_path):
    expected = write_batches(tmp_path / "tv" / "cifar-10-batches-py", per_batch=3)
    d = load_cifar10(tmp_path / "tv")
    for key, value in expected.items():
        assert torch.equal(getattr(d, key), torch.from_numpy(value).to(getattr(d, key).dtype)), key
    assert d.classes == CIFAR10_CLASSES and "torchvision" in d.source and not d.synthetic


def test_grayscale_images_become_three_channels(tmp_path):
    write_imagefolder(tmp_path / "cifar", {"train": 1, "test": 1})
    gray = tmp_path / "cifar" / "train" / "cat" / "0000.png"
    Image.new("L", (32, 32), 77).save(gray)
    d = load_cifar10(tmp_path / "cifar")
    cat = d.train_images[d.train_labels == CIFAR10_CLASSES.index("cat")]
    assert torch.equal(cat, torch.full((1, 3, 32, 32), 77, dtype=torch.uint8))


def test_repr_is_short_and_names_the_source(tmp_path):
    write_imagefolder(tmp_path / "cifar", {"train": 1, "test": 1})
    text = repr(load_cifar10(tmp_path / "cifar"))
    assert text.startswith("Cifar10(train=10, test=10, classes=10") and str(tmp_path / "cifar") in text
    assert "\n" not in text and len(text) < 300


def test_flags_must_be_booleans(tmp_path):
    with pytest.raises(TypeError, match="download"):
        load_cifar10(download="yes")
    with pytest.raises(TypeError, match="cache"):
        load_cifar10(cache=1)


# --------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------


def test_second_load_reads_the_cache_without_decoding(tmp_path, monkeypatch):
    write_imagefolder(tmp_path / "cifar")
    counter = CallCounter(data._decode_imagefolder)
    monkeypatch.setattr(data, "_decode_imagefolder", counter)
    first = load_cifar10(tmp_path / "cifar")
    second = load_cifar10(tmp_path / "cifar")
    assert counter.calls == 1
    assert first.cache_file is not None and first.cache_file.is_file()
    assert first.cache_file.parent.parent == tmp_path / "cache"
    for key in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(first, key), getattr(second, key))
    assert second.classes == first.classes
    assert "cached" in second.source


def test_changed_source_invalidates_the_cache(tmp_path, monkeypatch):
    write_imagefolder(tmp_path / "cifar")
    counter = CallCounter(data._decode_imagefolder)
    monkeypatch.setattr(data, "_decode_imagefolder", counter)
    load_cifar10(tmp_path / "cifar")
    Image.new("RGB", (32, 32), (1, 2, 3)).save(tmp_path / "cifar" / "test" / "dog" / "extra.png")
    d = load_cifar10(tmp_path / "cifar")
    assert counter.calls == 2 and len(d.test_labels) == 21
    # Rewriting a file in place with other pixels changes its size or time stamp.
    target = tmp_path / "cifar" / "test" / "dog" / "extra.png"
    Image.new("RGB", (32, 32), (200, 100, 50)).save(target)
    os.utime(target, ns=(1, 1))
    d = load_cifar10(tmp_path / "cifar")
    assert counter.calls == 3
    assert (d.test_images == torch.tensor([200, 100, 50], dtype=torch.uint8).view(3, 1, 1)).all(dim=(1, 2, 3)).any()


def test_batches_are_cached_too(tmp_path, monkeypatch):
    write_batches(tmp_path / "cifar-10-batches-py")
    counter = CallCounter(data._read_batches)
    monkeypatch.setattr(data, "_read_batches", counter)
    a = load_cifar10(tmp_path / "cifar-10-batches-py")
    b = load_cifar10(tmp_path / "cifar-10-batches-py")
    assert counter.calls == 1 and torch.equal(a.train_images, b.train_images)


def test_cache_false_decodes_every_time_and_writes_nothing(tmp_path, monkeypatch):
    write_imagefolder(tmp_path / "cifar", {"train": 1, "test": 1})
    counter = CallCounter(data._decode_imagefolder)
    monkeypatch.setattr(data, "_decode_imagefolder", counter)
    load_cifar10(tmp_path / "cifar", cache=False)
    d = load_cifar10(tmp_path / "cifar", cache=False)
    assert counter.calls == 2 and d.cache_file is None
    assert not (tmp_path / "cache").exists()


def test_damaged_cache_file_is_rebuilt(tmp_path, monkeypatch):
    write_imagefolder(tmp_path / "cifar", {"train": 1, "test": 1})
    first = load_cifar10(tmp_path / "cifar")
    reference = first.train_images.clone()
    first.cache_file.write_bytes(b"not a torch file")
    counter = CallCounter(data._decode_imagefolder)
    monkeypatch.setattr(data, "_decode_imagefolder", counter)
    again = load_cifar10(tmp_path / "cifar")
    assert counter.calls == 1 and torch.equal(again.train_images, reference)
    assert load_cifar10(tmp_path / "cifar") is not None and counter.calls == 1


def test_cache_write_failure_warns_and_leaves_no_partial_file(tmp_path, monkeypatch):
    write_imagefolder(tmp_path / "cifar", {"train": 1, "test": 1})

    def broken_save(obj, fh, *args, **kwargs):
        fh.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(data.torch, "save", broken_save)
    with pytest.warns(UserWarning, match="disk full"):
        d = load_cifar10(tmp_path / "cifar")
    assert d.train_images.shape == (10, 3, 32, 32) and d.cache_file is None
    assert list((tmp_path / "cache" / "tensors").iterdir()) == []


def test_cache_write_leaves_only_the_cache_file(tmp_path):
    write_imagefolder(tmp_path / "cifar", {"train": 1, "test": 1})
    d = load_cifar10(tmp_path / "cifar")
    assert list((tmp_path / "cache" / "tensors").iterdir()) == [d.cache_file]


# --------------------------------------------------------------------------------------------
# Damaged or partial copies: an error that names the file, never a short data set
# --------------------------------------------------------------------------------------------


def test_truncated_batch_file_is_named(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_batches(folder)
    blob = (folder / "data_batch_3").read_bytes()
    (folder / "data_batch_3").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CorruptDataError, match="data_batch_3.*truncated"):
        load_cifar10(folder)


def test_missing_batch_file_is_named_when_locating(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_batches(folder)
    (folder / "test_batch").unlink()
    with pytest.raises(CorruptDataError, match="missing test_batch"):
        locate_cifar10(tmp_path)
    with pytest.raises(CorruptDataError, match="test_batch"):
        load_cifar10(tmp_path, allow_synthetic=True)  # damage is never papered over


@pytest.mark.parametrize(
    "content, message",
    [
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, "3072"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 images but 1 labels"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "labels must be integers 0-9"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8"),
        ({b"labels": [0, 1]}, "lacks 'data'"),
        ([1, 2, 3], "does not hold a dict"),
    ],
)
def test_malformed_batch_contents_are_named(tmp_path, content, message):
    folder = tmp_path / "cifar-10-batches-py"
    write_batches(folder)
    with open(folder / "data_batch_2", "wb") as fh:
        pickle.dump(content, fh, protocol=2)
    with pytest.raises(CorruptDataError, match=f"data_batch_2.*{message}"):
        load_cifar10(folder)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_batch_file_cannot_run_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_batches(folder)
    marker = tmp_path / "pwned"
    with open(folder / "data_batch_1", "wb") as fh:
        pickle.dump({b"data": _Exploit(marker), b"labels": []}, fh, protocol=2)
    with pytest.raises(CorruptDataError, match="data_batch_1.*refusing"):
        load_cifar10(folder)
    assert not marker.exists()


def test_image_that_does_not_decode_is_named(tmp_path):
    write_imagefolder(tmp_path / "cifar", {"train": 2, "test": 1}, fmt="JPEG")
    bad = tmp_path / "cifar" / "train" / "horse" / "0001.jpg"
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(CorruptDataError, match="horse.0001.jpg.*does not decode"):
        load_cifar10(tmp_path / "cifar")


def test_non_image_file_is_named(tmp_path):
    write_imagefolder(tmp_path / "cifar", {"train": 1, "test": 1})
    (tmp_path / "cifar" / "test" / "ship" / "notes.txt").write_text("not a picture")
    (tmp_path / "cifar" / "test" / "ship" / ".DS_Store").write_bytes(b"\0\1")  # hidden files are skipped
    with pytest.raises(CorruptDataError, match="ship.notes.txt"):
        load_cifar10(tmp_path / "cifar")


def test_wrong_image_size_is_named(tmp_path):
    write_imagefolder(tmp_path / "cifar", {"train": 1, "test": 1})
    Image.new("RGB", (31, 32)).save(tmp_path / "cifar" / "train" / "frog" / "0000.png")
    with pytest.raises(CorruptDataError, match="frog.0000.png is 31x32"):
        load_cifar10(tmp_path / "cifar")


def test_missing_class_folder_is_named(tmp_path):
    write_imagefolder(tmp_path / "cifar", {"train": 1, "test": 1})
    for f in (tmp_path / "cifar" / "test" / "deer").iterdir():
        f.unlink()
    (tmp_path / "cifar" / "test" / "deer").rmdir()
    with pytest.raises(CorruptDataError, match=r"missing class folder\(s\) .*test.deer"):
        locate_cifar10(tmp_path / "cifar")
    with pytest.raises(CorruptDataError, match="deer"):
        load_cifar10(tmp_path / "cifar")


def test_empty_class_folder_is_named(tmp_path):
    write_imagefolder(tmp_path / "cifar", {"train": 1, "test": 1})
    for f in (tmp_path / "cifar" / "train" / "bird").iterdir():
        f.unlink()
    with pytest.raises(CorruptDataError, match="empty class folder .*train.bird"):
        load_cifar10(tmp_path / "cifar")


def test_missing_split_and_stray_folders_are_named(tmp_path):
    write_imagefolder(tmp_path / "a", {"train": 1})
    with pytest.raises(CorruptDataError, match="no test/ folder"):
        locate_cifar10(tmp_path / "a")
    write_imagefolder(tmp_path / "b", {"train": 1, "test": 1})
    (tmp_path / "b" / "train" / "airplanes").mkdir()
    with pytest.raises(CorruptDataError, match="train.airplanes"):
        locate_cifar10(tmp_path / "b")
    (tmp_path / "b" / "train" / "airplanes").rmdir()
    (tmp_path / "b" / "train" / "cat" / "more").mkdir()
    with pytest.raises(CorruptDataError, match="cat.more"):
        load_cifar10(tmp_path / "b")


# --------------------------------------------------------------------------------------------
# Nothing found: the message, the download, the synthetic stand-in
# --------------------------------------------------------------------------------------------


def test_not_found_message_lists_every_place_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "env"))
    with pytest.raises(DataNotFoundError) as info:
        load_cifar10(tmp_path / "root")
    assert isinstance(info.value, FileNotFoundError)
    text = str(info.value)
    for place in (tmp_path / "root", tmp_path / "env", tmp_path / "cache"):
        assert str(place) in text
    assert text.index(str(tmp_path / "root")) < text.index(str(tmp_path / "env")) < text.index(str(tmp_path / "cache"))
    assert "course data --download" in text and "export COURSE_DATA=" in text


class _OfflineCIFAR10:
    def __init__(self, root, train=True, download=False):
        raise RuntimeError("Temporary failure in name resolution")


class _FakeDownloadCIFAR10:
    def __init__(self, root, train=True, download=False):
        write_batches(Path(root) / "cifar-10-batches-py", per_batch=2)


def test_failed_download_is_reported(tmp_path, monkeypatch):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", _OfflineCIFAR10)
    with pytest.raises(DownloadError, match="name resolution"):
        data.download_cifar10()
    with pytest.raises(DataNotFoundError, match="Downloading failed too.*name resolution"):
        load_cifar10(download=True)
    fallback = load_cifar10(download=True, allow_synthetic=True)
    assert fallback.synthetic and "download failed" in fallback.source


def test_download_lands_in_the_cache_and_is_found_next_time(tmp_path, monkeypatch):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", _FakeDownloadCIFAR10)
    d = load_cifar10(download=True)
    assert not d.synthetic and d.train_images.shape == (10, 3, 32, 32)
    assert str(tmp_path / "cache" / "cifar-10-batches-py") in d.source
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", _OfflineCIFAR10)
    assert locate_cifar10().path == tmp_path / "cache" / "cifar-10-batches-py"


def test_synthetic_stand_in_says_what_it_is_everywhere():
    d = load_cifar10(allow_synthetic=True)
    assert d.synthetic and d.source.startswith("SYNTHETIC stand-in, not CIFAR-10")
    assert "SYNTHETIC stand-in, not CIFAR-10" in repr(d) and "SYNTHETIC" in str(d)
    assert "course data --download" in d.source
    assert all(name.startswith("fake ") for name in d.classes) and len(d.classes) == 10
    assert d.train_images.shape == (5000, 3, 32, 32) and d.test_images.shape == (1000, 3, 32, 32)
    assert d.train_images.dtype == torch.uint8 and d.train_labels.dtype == torch.int64
    assert torch.equal(d.train_labels.bincount(), torch.full((10,), 500))


def test_synthetic_is_seeded_and_classes_differ():
    a, b, c = synthetic_cifar10(200, 50), synthetic_cifar10(200, 50), synthetic_cifar10(200, 50, seed=1)
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.test_labels, b.test_labels)
    assert not torch.equal(a.train_images, c.train_images)
    # Class-dependent: the per-class mean colours are far apart compared with the noise.
    means = torch.stack([a.train_images[a.train_labels == k].float().mean(dim=(0, 2, 3)) for k in range(10)])
    gaps = torch.cdist(means, means) + torch.eye(10) * 1e9
    assert gaps.min() > 5
    with pytest.raises(ValueError, match="n_train"):
        synthetic_cifar10(0, 10)
    with pytest.raises(TypeError, match="seed"):
        synthetic_cifar10(10, 10, seed=0.5)


# --------------------------------------------------------------------------------------------
# Normalization
# --------------------------------------------------------------------------------------------


def test_normalize_matches_torchvision():
    from torchvision.transforms import Normalize

    g = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (4, 3, 8, 5), generator=g, dtype=torch.uint8)
    expected = Normalize(CIFAR10_MEAN, CIFAR10_STD)(u8.float() / 255)
    torch.testing.assert_close(normalize(u8), expected)
    torch.testing.assert_close(normalize(u8.float() / 255), expected)
    torch.testing.assert_close(normalize(u8[0]), expected[0])
    custom = normalize(u8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    torch.testing.assert_close(custom, (u8.float() / 255 - 0.5) / 0.25)


def test_denormalize_inverts_normalize():
    x = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(denormalize(normalize(x)), x)
    assert denormalize(torch.full((3, 1, 1), 100.0)).max() == 1.0  # clamped for display


def test_normalize_rejects_bad_input():
    with pytest.raises(ValueError, match="channels first"):
        normalize(torch.zeros(4, 32, 32, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        normalize(torch.full((3, 2, 2), 255.0))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        normalize(normalize(torch.rand(3, 4, 4)))
    with pytest.raises(TypeError, match="uint8 or floating"):
        normalize(torch.zeros(3, 2, 2, dtype=torch.int32))
    with pytest.raises(TypeError, match="torch.Tensor"):
        normalize(np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match="mean must hold 3"):
        normalize(torch.rand(3, 2, 2), mean=(0.5, 0.5))
    with pytest.raises(ValueError, match="std must be positive"):
        normalize(torch.rand(3, 2, 2), std=(0.5, 0.0, 0.5))
    with pytest.raises(TypeError, match="floating"):
        denormalize(torch.zeros(3, 2, 2, dtype=torch.uint8))


# --------------------------------------------------------------------------------------------
# `course data`
# --------------------------------------------------------------------------------------------


def _course_data(argv):
    parser = argparse.ArgumentParser(prog="course")
    data.add_parser(parser.add_subparsers())
    args = parser.parse_args(["data", *argv])
    return args.func(args)


def test_course_data_says_where_or_how_to_fix(tmp_path, capsys):
    assert _course_data([]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "cache") in err and "course data --download" in err
    write_imagefolder(tmp_path / "cifar", {"train": 1, "test": 1})
    assert _course_data(["--root", str(tmp_path / "cifar")]) == 0
    assert str(tmp_path / "cifar") in capsys.readouterr().out


def test_course_data_reports_damage(tmp_path, capsys):
    write_imagefolder(tmp_path / "cifar", {"train": 1, "test": 1})
    (tmp_path / "cifar" / "test" / "truck" / "0000.png").unlink()
    assert _course_data(["--root", str(tmp_path / "cifar")]) == 1
    assert "test/truck" in capsys.readouterr().err.replace(os.sep, "/")


def test_course_data_prepare_prints_counts(tmp_path, capsys):
    write_imagefolder(tmp_path / "cifar", {"train": 2, "test": 1})
    assert _course_data(["--prepare", "--root", str(tmp_path / "cifar")]) == 0
    out = capsys.readouterr().out
    assert "20 train and 10 test images" in out and str(tmp_path / "cache") in out
    assert data.main(["--prepare", "--root", str(tmp_path / "cifar")]) == 0
    assert "cached" in capsys.readouterr().out


def test_course_data_download_offline_exits_1(tmp_path, monkeypatch, capsys):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", _OfflineCIFAR10)
    assert _course_data(["--download"]) == 1
    assert "Download failed" in capsys.readouterr().err
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", _FakeDownloadCIFAR10)
    assert _course_data(["--download", "--root", str(tmp_path / "mine")]) == 0
    assert str(tmp_path / "mine" / "cifar-10-batches-py") in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# Data that stays found (issue 16): prepared once, found later with no variable; PNG and JPEG
# --------------------------------------------------------------------------------------------


def _fresh_shell_env(home: Path, **extra: str) -> dict[str, str]:
    """A new shell's environment: a temporary home and none of the course's variables."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("COURSE_DATA", "COURSE_CACHE", "XDG_CACHE_HOME", "COURSE_EXTRA_EXERCISES")}
    env.update(HOME=str(home), USERPROFILE=str(home), **extra)
    return env


@pytest.mark.slow  # prepares CIFAR-10 files and runs fresh shells: not for the quick run (tests/README.md)
def test_prepared_data_is_found_in_a_fresh_shell_with_no_variable(tmp_path):
    import json
    import shutil
    import subprocess
    import sys

    home = tmp_path / "home"
    home.mkdir()
    source = tmp_path / "cifar10-jpeg"
    write_imagefolder(source, {"train": 3, "test": 2})
    expected = load_cifar10(source, cache=False)

    # The README's step: prepare once, with the variable pointing at the copy.
    done = subprocess.run([sys.executable, "-m", "course_utils", "data", "--prepare"], capture_output=True, text=True,
                          env=_fresh_shell_env(home, COURSE_DATA=str(source)), timeout=300)
    assert done.returncode == 0, done.stderr
    prepared = home / ".cache" / "course_utils" / data.PREPARED_FILE
    assert f"prepared: {prepared}" in done.stdout
    # The original copy may even go away: the prepared tensors stand alone.
    shutil.rmtree(source)

    # A new shell, no variable set: doctor says ✅ ...
    done = subprocess.run([sys.executable, "-m", "course_utils", "doctor", "--json", "--no-speed"], capture_output=True, text=True,
                          env=_fresh_shell_env(home), timeout=300)
    report = json.loads(done.stdout)
    (cifar,) = [c for c in report["checks"] if c["name"] == "CIFAR-10"]
    assert cifar["ok"] is True and str(prepared) in cifar["detail"], cifar
    # ... and the lessons' own call gets the real images, not the stand-in.
    lesson_call = ("from course_utils import data; d = data.load_cifar10(allow_synthetic=True); "
                   "print(d.synthetic, len(d.train_labels), len(d.test_labels), int(d.train_images.sum()), d.source)")
    done = subprocess.run([sys.executable, "-c", lesson_call], capture_output=True, text=True,
                          env=_fresh_shell_env(home), timeout=300)
    assert done.returncode == 0, done.stderr
    synthetic, n_train, n_test, pixel_sum, src = done.stdout.strip().split(" ", 4)
    assert synthetic == "False" and (int(n_train), int(n_test)) == (30, 20)
    assert int(pixel_sum) == int(expected.train_images.sum())
    assert "CIFAR-10 from" in src and str(prepared) in src


def test_prepare_links_the_cache_instead_of_copying_it(tmp_path):
    write_imagefolder(tmp_path / "cifar", {"train": 2, "test": 1})
    d, prepared = data.prepare_cifar10(tmp_path / "cifar")
    assert prepared == cache_dir() / data.PREPARED_FILE
    assert os.path.samefile(prepared, d.cache_file) or prepared.stat().st_size > 0
    found = locate_cifar10()
    assert found.layout == "prepared" and found.path == prepared and "course data --prepare" in str(found)
    again = load_cifar10()
    assert torch.equal(again.train_images, d.train_images) and torch.equal(again.test_labels, d.test_labels)


def test_a_variable_still_wins_over_the_prepared_copy(tmp_path, monkeypatch):
    write_imagefolder(tmp_path / "a", {"train": 2, "test": 1}, seed=1)
    data.prepare_cifar10(tmp_path / "a")
    write_imagefolder(tmp_path / "b", {"train": 1, "test": 1}, seed=2)
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "b"))
    assert locate_cifar10().path == tmp_path / "b"


def test_damaged_prepared_file_is_named_with_the_fix(tmp_path):
    cache_dir().mkdir(parents=True)
    (cache_dir() / data.PREPARED_FILE).write_bytes(b"not a tensor file")
    with pytest.raises(CorruptDataError, match="prepared CIFAR-10 file .*course data --prepare"):
        load_cifar10()


def test_png_and_jpg_files_are_both_read_in_one_copy(tmp_path):
    write_imagefolder(tmp_path / "cifar", {"train": 2, "test": 1}, fmt="PNG")
    rng = np.random.default_rng(5)
    for name in CIFAR10_CLASSES:
        pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / "cifar" / "train" / name / "extra.jpg", "JPEG")
    d = load_cifar10(tmp_path / "cifar")
    assert len(d.train_labels) == 30 and torch.equal(d.train_labels.bincount(), torch.full((10,), 3))


def test_messages_name_both_image_kinds_and_the_readme_agrees():
    with pytest.raises(DataNotFoundError) as info:
        load_cifar10()
    assert "*.png or *.jpg" in str(info.value)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert "*.png or *.jpg" in readme


def test_offline_download_says_what_to_fetch_and_where_to_unpack(tmp_path, monkeypatch, capsys):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", _OfflineCIFAR10)
    assert _course_data(["--download"]) == 1
    err = capsys.readouterr().err
    assert data.CIFAR10_URL in err
    assert f"-C {cache_dir()}" in err and str(cache_dir() / "cifar-10-batches-py" / "data_batch_1") in err
