"""Progress bars for every long step (ingest, check, report, split, export, predict, training).

A bar is drawn only where a person watches: on a terminal (stderr is a TTY) and not ``--quiet``.
Piped or redirected output, CI logs and tests get nothing extra. One switch for the whole process,
so library functions need no ``progress=`` argument threaded through every call.

Example:
    >>> set_quiet(True)
    >>> with bar(total=3, desc="check") as b:
    ...     b.update(3)
    >>> sum(1 for _ in bar(range(4), desc="export"))
    4
    >>> set_quiet(False)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

_quiet = False


def set_quiet(quiet: bool = True) -> None:
    """No bars for the rest of the process (``--quiet``)."""
    global _quiet
    _quiet = quiet


def enabled() -> bool:
    """Bars are drawn: not quiet, and stderr is a terminal (``CVFT_PROGRESS=1`` forces them on,
    ``CVFT_PROGRESS=0`` off)."""
    forced = os.environ.get("CVFT_PROGRESS")
    if forced in ("0", "1"):
        return forced == "1" and not _quiet
    try:
        return not _quiet and sys.stderr.isatty()
    except (AttributeError, ValueError):   # a closed or replaced stderr
        return False


def bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str, unit: str = "img",
        initial: int = 0, leave: bool = True, hide: bool = False):
    """A tqdm bar on stderr, disabled where :func:`enabled` says no or ``hide`` (a DDP rank other
    than 0); a disabled bar costs nothing."""
    from tqdm import tqdm

    try:   # a terminal that reports no size (a bare pty, some CI consoles): tqdm would hide the bar
        size = os.get_terminal_size(sys.stderr.fileno())
        sized = size.columns > 0 and size.lines > 0
    except (OSError, ValueError, AttributeError):
        sized = False
    return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=leave,
                disable=hide or not enabled(), dynamic_ncols=sized, ncols=None if sized else 100,
                nrows=None if sized else 50, smoothing=0.1, file=sys.stderr)
