"""Walking a source folder: hidden files left out, sorted, directory symlinks not followed out.

Example:
    >>> is_hidden(".DS_Store"), is_hidden("__MACOSX"), is_hidden("img.jpg")
    (True, True, False)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator


def is_hidden(name: str) -> bool:
    return name.startswith(".") or name in ("__MACOSX", "Thumbs.db", "desktop.ini")


def walk_files(top: Path) -> Iterator[Path]:
    """Every non-hidden file below ``top``, in sorted (deterministic) order, not following
    directory symlinks out of the tree."""
    try:
        entries = sorted(os.scandir(top), key=lambda e: e.name)
    except FileNotFoundError:
        return
    for e in entries:
        if is_hidden(e.name):
            continue
        if e.is_dir(follow_symlinks=False):
            yield from walk_files(Path(e.path))
        elif e.is_file():
            yield Path(e.path)
