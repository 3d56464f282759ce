"""plots: the training pictures of lessons 06-07 (curves named after what they measured, the
learning-rate schedule, per-layer activation statistics)."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from course_utils import plots
from course_utils.train import History


def _history(eval_set: str = "test", train_eval: bool = False) -> History:
    h = History(epoch=[1, 2, 3], train_loss=[2.0, 1.5, 1.2], test_loss=[2.1, 1.7, 1.6],
                train_acc=[0.3, 0.45, 0.5], test_acc=[0.28, 0.4, 0.44], eval_set=eval_set)
    if train_eval:
        h.train_eval_acc = [0.35, 0.5, 0.6]
    return h


def _labels(ax) -> list[str]:
    return sorted(line.get_label() for line in ax.lines)


def test_plot_training_names_the_held_out_curve_after_its_set():
    fig = plot = plots.plot_training(_history("validation", train_eval=True), title="t")
    assert isinstance(plot, Figure)
    loss_ax, acc_ax = fig.axes[:2]
    assert _labels(loss_ax) == ["train", "validation"]
    assert _labels(acc_ax) == ["train", "train (eval mode)", "validation"]
    # The plotted values are the history's, epoch by epoch.
    validation = next(l for l in acc_ax.lines if l.get_label() == "validation")
    assert list(validation.get_xdata()) == [1, 2, 3]
    assert list(validation.get_ydata()) == [0.28, 0.4, 0.44]
    assert fig._suptitle.get_text() == "t"
    assert _labels(plots.plot_training(_history()).axes[1]) == ["test", "train"]


def test_plot_training_compares_runs_by_name():
    fig = plots.plot_training({"plain": _history("validation"), "BN": _history("validation")})
    assert _labels(fig.axes[1]) == ["BN: train", "BN: validation", "plain: train", "plain: validation"]
    with pytest.raises(TypeError, match="History"):
        plots.plot_training({"a": [1, 2]})


def test_plot_lr_schedule_draws_every_step_and_epoch_lines():
    lrs = [0.1, 0.5, 1.0, 0.75, 0.5, 0.25]
    fig = plots.plot_lr_schedule(lrs, steps_per_epoch=2)
    ax = fig.axes[0]
    curve = ax.lines[0]
    assert list(curve.get_ydata()) == lrs
    # One vertical line at the start of each epoch after the first: steps 2 and 4.
    verticals = [l for l in ax.lines[1:] if len(set(l.get_xdata())) == 1]
    assert sorted(l.get_xdata()[0] for l in verticals) == [2, 4]
    for bad in ([], [0.1, float("nan")]):
        with pytest.raises(ValueError, match="lrs"):
            plots.plot_lr_schedule(bad)


class _Recorder:
    names = ["relu 1", "relu 2"]
    steps = [0, 4, 8]
    means = {"relu 1": [0.5, 0.4, 0.3], "relu 2": [0.1, 0.2, 0.3]}
    stds = {"relu 1": [1.0, 0.9, 0.8], "relu 2": [0.01, 0.02, 0.04]}


def test_plot_activation_stats_one_row_per_run_and_one_line_per_layer():
    fig = plots.plot_activation_stats({"plain": _Recorder(), "BatchNorm": _Recorder()})
    assert len(fig.axes) == 4
    mean_ax, std_ax = fig.axes[0], fig.axes[1]
    assert _labels(mean_ax) == ["relu 1", "relu 2"]
    assert std_ax.get_yscale() == "log"
    line = next(l for l in std_ax.lines if l.get_label() == "relu 2")
    assert list(line.get_xdata()) == [0, 4, 8]
    np.testing.assert_allclose(line.get_ydata(), [0.01, 0.02, 0.04])
    assert "plain" in mean_ax.get_title() and "BatchNorm" in fig.axes[2].get_title()
    with pytest.raises(ValueError, match="recorders"):
        plots.plot_activation_stats({})
