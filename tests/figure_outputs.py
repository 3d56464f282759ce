"""What counts as a figure that reached the learner as text instead of a picture.

Shared by the nbval hook in the repository's ``conftest.py`` (every canonical lesson run), the
released-workbook execution in ``test_release.py`` and the stored-output test.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

FIGURE_TEXT = re.compile(r"^<(Figure|matplotlib\.figure\.Figure)\b[^>]*>$")


def figures_without_image(outputs: Iterable[Any]) -> list[str]:
    """The text of every displayed output that is a matplotlib figure with no picture beside it.

    >>> figures_without_image([{"data": {"text/plain": "<Figure size 900x280 with 2 Axes>"}}])
    ['<Figure size 900x280 with 2 Axes>']
    >>> figures_without_image([{"data": {"text/plain": "<Figure size 90x28 with 1 Axes>", "image/png": "..."}}])
    []
    """
    found = []
    for out in outputs or []:
        data = out.get("data") or {}
        text = data.get("text/plain", "")
        text = ("".join(text) if isinstance(text, list) else str(text)).strip()
        if FIGURE_TEXT.match(text) and "image/png" not in data and "image/svg+xml" not in data:
            found.append(text)
    return found
