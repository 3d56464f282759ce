"""course_utils: the helper package of the CNN lab course.

Notebooks import only the names exported here.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .train import choose_device, grading_mode, quick_mode, seed_everything

__all__ = ["__version__", "setup", "seed_everything", "choose_device", "grading_mode", "quick_mode",
           "show_figures_as_images"]


def show_figures_as_images() -> bool:
    """Make every matplotlib Figure that a cell displays appear as a PNG image, in any IPython kernel.

    ``course_utils`` draws with ``matplotlib.figure.Figure`` directly, never through pyplot, so
    nothing else registers a display formatter for figures: without this a figure shows up as the
    text ``<Figure size 900x280 with 2 Axes>``. Registering the formatter here, from ``setup()``,
    means no lesson can forget it. Outside IPython it does nothing.

    Returns
    -------
    bool
        True when a formatter was registered (an IPython shell is running).

    Examples
    --------
    >>> show_figures_as_images()   # plain Python: nothing to do
    False
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    from IPython.core.pylabtools import select_figure_formats

    # bbox_inches="tight" as in matplotlib's inline backend, so nothing is cropped by a fixed size.
    select_figure_formats(shell, {"png"}, bbox_inches="tight")
    return True


def setup(seed: int = 0, device: str | None = None, quiet: bool = False):
    """Prepare a lesson: seed every generator, choose the device, set the plotting style.

    It also makes figures display as images in the notebook (:func:`show_figures_as_images`) and
    prints a warning when quick mode is on (:func:`course_utils.train.quick_mode`).

    Parameters
    ----------
    seed : int
        Seed for Python, NumPy and PyTorch.
    device : {"cuda", "mps", "cpu"} or None
        Force a device; ``None`` picks CUDA, then MPS, then the CPU.
    quiet : bool
        Do not print the one-line summary.

    Returns
    -------
    torch.device
        The device the lesson will use.

    Examples
    --------
    >>> dev = setup(0, device="cpu", quiet=True)
    >>> dev.type
    'cpu'
    """
    seed_everything(seed)
    dev = choose_device(device)
    try:
        from .plots import use_course_style
    except ImportError:  # plots not built yet in a partial checkout
        use_course_style = None
    if use_course_style is not None:
        use_course_style()
    show_figures_as_images()
    if not quiet:
        print(f"course_utils {__version__}: seed {seed}, device {dev.type}")
        if quick_mode():
            print("QUICK MODE (COURSE_QUICK=1): training cells train for a few batches only, so their "
                  "accuracies mean nothing; unset COURSE_QUICK for the real lesson")
    return dev
