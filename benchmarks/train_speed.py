"""How fast the course trains TinyCNN on CIFAR-10, against the recipe a learner would otherwise copy.

One run, the same CIFAR-10 copy, the seed's TinyCNN unchanged and starting from the same weights:

1. **baseline**: PyTorch's CIFAR-10 tutorial recipe. A torchvision data set (``ImageFolder`` on a
   JPEG copy, or ``CIFAR10`` on torchvision's ``cifar-10-batches-py/``) with ``ToTensor()`` and
   ``Normalize((0.5,)*3, (0.5,)*3)``, ``DataLoader(batch_size=4, shuffle=True, num_workers=2)``,
   ``CrossEntropyLoss`` and ``SGD(lr=0.001, momentum=0.9)``, for ``--baseline-epochs`` epochs
   (the tutorial's 2 by default). Test accuracy after every epoch through a ``DataLoader`` of
   batch 4, as the tutorial evaluates.
2. **course**: ``course_utils.data.load_cifar10`` (decoded tensors from the cache) and
   ``course_utils.train.fit`` with all its defaults.

Columns of the table:

* ``img/s``: training images per second of training steps (evaluation excluded), for both;
* ``test acc``: accuracy on the 10,000 test images after the last epoch;
* ``wall s``: everything the learner waits for: loading the data, training and the per-epoch
  evaluation;
* ``s to 65 %``: training seconds (as in img/s) until the end of the first epoch whose test accuracy
  is at least 65 % ("-" if never).

The last line is ``RESULT {json}`` with ``baseline_img_s``, ``course_img_s``, ``ratio`` (course over
baseline), ``course_test_acc``, ``course_seconds`` (``fit``'s wall time, evaluation included),
and more: the load average when the run started (timings on a shared machine are only comparable
as ratios in one run), the threads, bf16 or fp32, the data source.

Usage::

    python benchmarks/train_speed.py                        # COURSE_DATA or the course cache
    python benchmarks/train_speed.py --data ../shared/data/cifar10-jpeg
    python benchmarks/train_speed.py --quick                # a few hundred images: a smoke test
    python benchmarks/train_speed.py --baseline-epochs 0    # the course side only

Targets on the 2-core machine this course is built on: ``ratio`` >= 4, and ``fit``'s defaults reach
>= 75 % test accuracy in <= 120 s.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn

QUICK_TRAIN, QUICK_TEST = 512, 256
TUTORIAL_MEAN_STD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="CIFAR-10 folder (ImageFolder copy or cifar-10-batches-py); default: "
                             "COURSE_DATA, then the course cache")
    parser.add_argument("--baseline-epochs", type=int, default=2,
                        help="epochs of the tutorial recipe (default 2, as in the tutorial; 0 skips it)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: {QUICK_TRAIN} training and {QUICK_TEST} test images, 1 epoch each "
                             "(numbers mean nothing)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.baseline_epochs < 0:
        parser.error("--baseline-epochs must be 0 or more")
    return args


def _subset_indices(n: int, limit: int | None, seed: int) -> torch.Tensor | None:
    if limit is None or n <= limit:
        return None
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:limit].sort().values


# ------------------------------------------------------------------------------ baseline


def tutorial_datasets(location, train_idx, test_idx):
    """The tutorial's data sets on this copy: torchvision reads and converts one image at a time."""
    import torchvision
    from torchvision import transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(*TUTORIAL_MEAN_STD)])
    if location.layout == "batches":
        root = str(location.path.parent)
        train_set = torchvision.datasets.CIFAR10(root, train=True, download=False, transform=transform)
        test_set = torchvision.datasets.CIFAR10(root, train=False, download=False, transform=transform)
    else:
        train_set = torchvision.datasets.ImageFolder(str(location.path / "train"), transform=transform)
        test_set = torchvision.datasets.ImageFolder(str(location.path / "test"), transform=transform)
    if train_idx is not None:
        train_set = torch.utils.data.Subset(train_set, train_idx.tolist())
    if test_idx is not None:
        test_set = torch.utils.data.Subset(test_set, test_idx.tolist())
    return train_set, test_set


@torch.no_grad()
def tutorial_test_accuracy(model: nn.Module, test_loader) -> float:
    model.eval()
    correct = total = 0
    for images, labels in test_loader:
        correct += int((model(images).argmax(1) == labels).sum())
        total += len(labels)
    model.train()
    return correct / total


def run_baseline(model: nn.Module, location, epochs: int, train_idx, test_idx) -> dict:
    t_wall = time.perf_counter()
    train_set, test_set = tutorial_datasets(location, train_idx, test_idx)
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=4, shuffle=True, num_workers=2)
    test_loader = torch.utils.data.DataLoader(test_set, batch_size=4, shuffle=False, num_workers=2)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    train_seconds, images, accs, to_65 = 0.0, 0, [], None
    model.train()
    for _ in range(epochs):
        t = time.perf_counter()
        for inputs, labels in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(inputs), labels)
            loss.backward()
            optimizer.step()
            images += len(labels)
        train_seconds += time.perf_counter() - t
        accs.append(tutorial_test_accuracy(model, test_loader))
        if to_65 is None and accs[-1] >= 0.65:
            to_65 = train_seconds
    return {
        "img_s": images / train_seconds,
        "test_acc": accs[-1],
        "test_acc_per_epoch": accs,
        "wall_s": time.perf_counter() - t_wall,
        "train_s": train_seconds,
        "seconds_to_65": to_65,
        "epochs": epochs,
    }


# ------------------------------------------------------------------------------ course


def run_course(model: nn.Module, location, train_idx, test_idx, quick: bool) -> dict:
    from course_utils.data import load_cifar10
    from course_utils.train import fit

    t_wall = time.perf_counter()
    data = load_cifar10(location.path)
    load_s = time.perf_counter() - t_wall
    if train_idx is not None or test_idx is not None:
        tr = slice(None) if train_idx is None else train_idx
        te = slice(None) if test_idx is None else test_idx
        data = (data.train_images[tr], data.train_labels[tr], data.test_images[te], data.test_labels[te])
    # fit's defaults, untouched; --quick only shortens the run to one epoch.
    history = fit(model, data, progress=False, live_plot=False, **({"epochs": 1} if quick else {}))
    images = len(history.epoch) * _images_per_epoch(data, history)
    to_65 = next((t for t, a in zip(history.train_seconds, history.test_acc) if a >= 0.65), None)
    return {
        "img_s": images / history.train_seconds[-1],
        "test_acc": history.test_acc[-1],
        "test_acc_per_epoch": history.test_acc,
        "wall_s": time.perf_counter() - t_wall,
        "fit_s": history.seconds[-1],
        "train_s": history.train_seconds[-1],
        "load_s": load_s,
        "seconds_to_65": to_65,
        "epochs": len(history.epoch),
        "precision": history.precision,
        "note": history.note,
    }


def _images_per_epoch(data, history) -> int:
    from course_utils.train import fit

    n = len(data[0]) if isinstance(data, tuple) else len(data.train_images)
    batch = fit.__kwdefaults__["batch_size"]
    # fit drops a last, smaller batch when there are at least two full ones.
    return (n // batch) * batch if n >= 2 * batch else n


# ------------------------------------------------------------------------------ report


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from course_utils.data import locate_cifar10
    from course_utils.models import TinyCNN

    location = locate_cifar10(args.data)
    if location is None:
        print("CIFAR-10 not found: pass --data PATH or set COURSE_DATA (see `course data --help`)", file=sys.stderr)
        return 2
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    train_idx = test_idx = None
    if args.quick:
        train_idx = _subset_indices(_count(location, "train"), QUICK_TRAIN, args.seed)
        test_idx = _subset_indices(_count(location, "test"), QUICK_TEST, args.seed + 1)
    baseline_epochs = min(args.baseline_epochs, 1) if args.quick else args.baseline_epochs

    print(f"data: {location.path} ({location.layout}){'  QUICK smoke test: numbers mean nothing' if args.quick else ''}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"load average {_fmt(load_avg, '.2f')} at start")

    torch.manual_seed(args.seed)
    initial = TinyCNN().state_dict()
    baseline = None
    if baseline_epochs > 0:
        model = TinyCNN()
        model.load_state_dict(initial)
        baseline = run_baseline(model, location, baseline_epochs, train_idx, test_idx)
    model = TinyCNN()
    model.load_state_dict(initial)
    course = run_course(model, location, train_idx, test_idx, args.quick)

    rows = []
    if baseline is not None:
        rows.append((f"tutorial recipe ({baseline['epochs']} ep, batch 4)", baseline))
    rows.append((f"course fit defaults ({course['epochs']} ep, {course['precision']})", course))
    print()
    print(f"{'method':<40} {'img/s':>8} {'test acc':>9} {'wall s':>8} {'s to 65 %':>10}")
    for name, r in rows:
        print(f"{name:<40} {r['img_s']:>8,.0f} {r['test_acc']:>9.1%} {r['wall_s']:>8.1f} "
              f"{_fmt(r['seconds_to_65'], '.1f'):>10}")
    ratio = course["img_s"] / baseline["img_s"] if baseline is not None else None
    print(f"\nspeed ratio (course / tutorial img/s): {_fmt(ratio, '.2f')};  course fit wall time "
          f"{course['fit_s']:.1f} s (+ {course['load_s']:.1f} s loading), test accuracy {course['test_acc']:.1%}")
    if course["note"]:
        print(f"note: {course['note']}")
    result = {
        "baseline_img_s": None if baseline is None else round(baseline["img_s"], 1),
        "course_img_s": round(course["img_s"], 1),
        "ratio": None if ratio is None else round(ratio, 3),
        "course_test_acc": round(course["test_acc"], 4),
        "course_seconds": round(course["fit_s"], 2),
        "course_load_seconds": round(course["load_s"], 2),
        "course_wall_seconds": round(course["wall_s"], 2),
        "course_seconds_to_65": None if course["seconds_to_65"] is None else round(course["seconds_to_65"], 2),
        "course_epochs": course["epochs"],
        "course_precision": course["precision"],
        "course_test_acc_per_epoch": [round(a, 4) for a in course["test_acc_per_epoch"]],
        "baseline_test_acc": None if baseline is None else round(baseline["test_acc"], 4),
        "baseline_seconds": None if baseline is None else round(baseline["wall_s"], 2),
        "baseline_seconds_to_65": None if baseline is None or baseline["seconds_to_65"] is None
        else round(baseline["seconds_to_65"], 2),
        "baseline_epochs": baseline_epochs,
        "quick": args.quick,
        "load_average_at_start": None if load_avg is None else round(load_avg, 2),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "data": f"{location.path} ({location.layout})",
    }
    print("RESULT " + json.dumps(result))
    return 0


def _count(location, split: str) -> int:
    if location.layout == "batches":
        return 50_000 if split == "train" else 10_000
    return sum(1 for _ in (location.path / split).glob("*/*"))


if __name__ == "__main__":
    sys.exit(main())
