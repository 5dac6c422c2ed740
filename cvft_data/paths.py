"""Safe handling of file names that come from annotation files (untrusted input)."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from .errors import UnsafePathError


def normalise_name(name: str) -> str:
    """Backslashes to slashes, strip ``./``; keeps ``..`` so the caller can refuse it."""
    return name.replace("\\", "/").strip()


def is_absolute_name(name: str) -> bool:
    n = normalise_name(name)
    return n.startswith("/") or PureWindowsPath(name).drive != ""


def safe_relative(name: str, *, file: str | None = None, item: str | None = None) -> PurePosixPath:
    """A relative posix path with no ``..`` component; anything else raises :class:`UnsafePathError`.

    Example:
        >>> str(safe_relative("images/a.jpg"))
        'images/a.jpg'
        >>> safe_relative("../etc/passwd")
        Traceback (most recent call last):
        ...
        cvft_data.errors.UnsafePathError: file name '../etc/passwd' escapes the dataset root; ...
    """
    n = normalise_name(name)
    p = PurePosixPath(n)
    if is_absolute_name(name) or any(part == ".." for part in p.parts) or n == "":
        raise UnsafePathError(f"file name {name!r} escapes the dataset root", file=file, item=item or name,
                              expected="a path relative to the dataset root, without '..'")
    return PurePosixPath(*[q for q in p.parts if q not in (".", "")])


def inside(root: Path, path: Path) -> bool:
    """True if ``path`` (after resolving symlinks) lies inside ``root``."""
    try:
        Path(os.path.realpath(path)).relative_to(os.path.realpath(root))
        return True
    except ValueError:
        return False


def resolve_inside(root: Path, rel: PurePosixPath | str, *, file: str | None = None, item: str | None = None) -> Path:
    """Join ``rel`` under ``root`` and refuse results that leave it (through symlinks too)."""
    p = Path(root, *PurePosixPath(str(rel)).parts)
    if not inside(root, p):
        raise UnsafePathError(f"{rel} resolves outside the dataset root {root}", file=file, item=item or str(rel),
                              expected="a file inside the dataset root")
    return p


def relpath_posix(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()
