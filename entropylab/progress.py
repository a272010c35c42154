"""Progress bars, drawn only where someone watches them: a terminal or a notebook, never a log file or a pipe."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any


def watched() -> bool:
    """Whether a bar would be seen: stderr is a terminal, or this runs in a notebook (tqdm's own test)."""
    from tqdm import auto

    if getattr(auto, "notebook_tqdm", None) is not getattr(auto, "std_tqdm", None):
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def bar(iterable: Iterable | None = None, *, show: bool = True, **kwargs: Any):
    """`tqdm.auto.tqdm(iterable, **kwargs)`, disabled unless `show` and `watched()`: redirected output stays clean."""
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=not (show and watched()), **kwargs)
