"""Lessons 00-05: every number the prose quotes about a result is in the stored output it describes.

Each row names a notebook, a phrase of a markdown cell, and the text that the stored outputs of the
code cells between that markdown cell and the next markdown cell (or, for a takeaway, anywhere in the
notebook) must contain. When a lesson is re-executed and a result changes, the test names the
sentence that no longer agrees. It reads the stored notebooks only; nothing is executed.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _outputs_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif "data" in out and "text/plain" in out["data"]:
            parts.append(out["data"]["text/plain"])
    return "".join(parts)


def _around(nb, phrase: str, where: str) -> tuple[str, str]:
    """The markdown cell holding ``phrase`` and the outputs it speaks of.

    ``where="before"``: the code cells between the previous markdown cell and this one;
    ``where="after"``: the code cells up to the next markdown cell; ``where="anywhere"``: all.
    """
    cells = nb.cells
    hits = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and phrase in c.source]
    assert len(hits) == 1, f"expected one markdown cell containing {phrase!r}, found {len(hits)}"
    i = hits[0]
    if where == "anywhere":
        code = [c for c in cells if c.cell_type == "code"]
    elif where == "after":
        code = []
        for c in cells[i + 1:]:
            if c.cell_type == "markdown":
                break
            code.append(c)
    else:
        code = []
        for c in reversed(cells[:i]):
            if c.cell_type == "markdown":
                break
            code.append(c)
    return cells[i].source, "\n".join(_outputs_text(c) for c in code)


# (lesson, phrase in the prose, where its result is, texts the output must contain)
CLAIMS = [
    ("00_start_here", "Why did **1 of 22** checks pass?", "before", ["1 of 22 checks passed"]),
    ("01_why_convolution", "660 to 6,600 times too many", "after", ["664 times", "6,637 times"]),
    ("01_why_convolution", "50,176 (= 224 × 224", "before",
     ["parameters ÷ 50,176, multiply-adds ÷ 1", "1,792", "7 KiB", "86,704,128", "12.2 MiB",
      "output 1,792 times the size of the weights", "1.76 TiB"]),
    ("01_why_convolution", "equal the hand-made ones to four decimals", "before",
     ["step 30: loss before the step   0.0000, largest error in a weight after it 0.0000"]),
    ("02_output_size", "(28 of the 64 pixels)", "after", ["28 of 64 input pixels are never reached"]),
    ("02_output_size", "extra pixel on the **right and bottom**", "after",
     ["extra on the right and bottom): True", "extra on the left and top):     False",
      "ValueError: padding='same' is not supported for strided convolutions"]),
    ("02_output_size", "a shift of 2 pixels\nmoves a stride-2 output by exactly 1", "after",
     ["input moved 2 px -> the old output moved by 1 px", "input moved 1 px -> no shift of the old output",
      "input moved 4 px -> the old output moved by 2 px"]),
    ("02_output_size", "so the same padding is `F.pad(x, (2, 2, 1, 1))`", "after",
     ["padding=(1, 2) equals F.pad(x, (2, 2, 1, 1)) then no padding: True"]),
    ("03_conv2d_in_pytorch", "(4,608 becomes 4,672)", "after", ["params   4608", "params   2336"]),
    ("03_conv2d_in_pytorch", "(4,608 becomes 4,672)", "anywhere", ["= 4,672 parameters", "depthwise-separable        2,432"]),
    ("03_conv2d_in_pytorch", "yet they do 99.6% of the\nmultiply-adds", "before",
     ["( 37%)", "(99.6%)", "( 63%)", "( 44%)", "( 56%)", "a batch of 128 images: 128 MiB of outputs"]),
    ("03_conv2d_in_pytorch", "The first drawing shows the top-left output value", "after", ["[[56.0, 72.0], [104.0, 120.0]]"]),
    ("04_pooling_and_activation", "The saved tensors are the same either way.", "before",
     ["inplace=False: saved for backward 2.20 MiB in 5 tensors; new memory for one ReLU's result 1.00 MiB",
      "inplace=True : saved for backward 2.20 MiB in 5 tensors; new memory for one ReLU's result 0.00 MiB"]),
    ("04_pooling_and_activation", "is centred at 3.5 and sees 22 pixels", "before",
     ["2      MaxPool2d       2       2    0    1   4     2    0.5",
      "8      MaxPool2d       2       2    0    1  22     8    3.5"]),
    ("05_global_average_pooling", "training loop below (cross-entropy loss, the Adam optimizer", "after",
     ["3,602"]),
    ("05_global_average_pooling", 'the square leans clearly towards "horizontal" (+40.3 per pixel)', "before",
     ["on the square          +40.3", "on horizontal bars    +113.5", "on vertical bars       -11.9",
      "on plain background     -4.5"]),
]


@pytest.mark.parametrize("lesson,phrase,where,expected", CLAIMS, ids=[f"{c[0][:2]}:{c[1][:30]}" for c in CLAIMS])
def test_prose_agrees_with_stored_output(lesson, phrase, where, expected):
    nb = nbformat.read(str(NOTEBOOKS / f"{lesson}.ipynb"), as_version=4)
    _, outputs = _around(nb, phrase, where)
    for text in expected:
        assert text in outputs, f"{lesson}: the sentence with {phrase!r} quotes a result whose output no longer shows {text!r}"


@pytest.mark.parametrize("lesson", ["00_start_here", "01_why_convolution", "02_output_size", "03_conv2d_in_pytorch",
                                    "04_pooling_and_activation", "05_global_average_pooling"])
def test_every_figure_cell_stores_a_picture(lesson):
    # The course_utils figure calls added for issue 15 must have stored a PNG, not a repr.
    nb = nbformat.read(str(NOTEBOOKS / f"{lesson}.ipynb"), as_version=4)
    calls = ("plot_first_layer_params(", "plot_shift_comparison(", "show_kernel_values(", "show_signed_feature_maps(",
             "draw_multichannel_conv(", "draw_conv_output_channels(", "draw_zero_insertion(")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and any(call in cell.source for call in calls):
            kinds = [k for out in cell.get("outputs", []) for k in out.get("data", {})]
            assert "image/png" in kinds, f"{lesson} cell {i} draws a figure but stored no image: {kinds}"
