"""course_utils: the helper package of the CNN lab course.

Notebooks import only the names exported here.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .train import choose_device, grading_mode, seed_everything

__all__ = ["__version__", "setup", "seed_everything", "choose_device", "grading_mode"]


def setup(seed: int = 0, device: str | None = None, quiet: bool = False):
    """Prepare a lesson: seed every generator, choose the device, set the plotting style.

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
    if not quiet:
        print(f"course_utils {__version__}: seed {seed}, device {dev.type}")
    return dev
