"""Safe handling of file names that come from annotation files (untrusted input)."""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from .errors import UnsafePathError


def normalise_name(name: str) -> str:
    """Backslashes to slashes, strip ``./``; keeps ``..`` so the caller can refuse it."""
    return name.replace("\\", "/").strip()


_DRIVE = re.compile(r"[A-Za-z]:")


def is_absolute_name(name: str) -> bool:
    """POSIX absolute, UNC (``\\\\server\\share``) or with a Windows drive (``C:\\``, ``C:x``)."""
    return normalise_name(name).startswith("/") or _DRIVE.match(name.strip()) is not None


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
    parts = [q for q in normalise_name(name).split("/") if q not in (".", "")]
    if is_absolute_name(name) or ".." in parts or not parts:
        raise UnsafePathError(f"file name {name!r} escapes the dataset root", file=file, item=item or name,
                              expected="a path relative to the dataset root, without '..'")
    return PurePosixPath("/".join(parts))


def inside(root: str | os.PathLike, path: str | os.PathLike, real_dirs: dict[str, str] | None = None) -> bool:
    """True if ``path`` (after resolving symlinks) lies inside ``root``.

    ``real_dirs`` caches the real path of each folder (a connector checking every image of a
    dataset resolves each folder once, not every component of every file); the file itself is
    still resolved when it is a symlink.

    Example:
        >>> inside("/data/ds", "/data/ds/images/a.jpg"), inside("/data/ds", "/data/ds/../other/a.jpg")
        (True, False)
    """
    def real(d: str) -> str:
        if real_dirs is None:
            return os.path.realpath(d)
        r = real_dirs.get(d)
        if r is None:
            r = real_dirs[d] = os.path.realpath(d)
        return r

    path = os.fspath(path)
    folder, name = os.path.split(path)
    resolved = os.path.realpath(path) if (os.path.islink(path) or name in ("", ".", "..")) \
        else os.path.join(real(folder), name)
    top = real(os.fspath(root))
    return resolved == top or resolved.startswith(top.rstrip(os.sep) + os.sep)


_UNSAFE_IN_NAME = re.compile(r'[/\\\x00-\x1f\x7f]')


def safe_folder_name(name: str) -> str:
    """``name`` (a class name from annotations) as one folder name that stays where it is put:
    separators and control characters become ``_``, and ``.``, ``..`` and empty names get a ``_``
    in front.

    Example:
        >>> safe_folder_name("cat"), safe_folder_name("person/rider"), safe_folder_name(".."), safe_folder_name("../../x")
        ('cat', 'person_rider', '_..', '.._.._x')
    """
    folder = _UNSAFE_IN_NAME.sub("_", str(name)).strip()
    return "_" + folder if folder in ("", ".", "..") else folder


def resolve_inside(root: Path, rel: PurePosixPath | str, *, file: str | None = None, item: str | None = None) -> Path:
    """Join ``rel`` under ``root`` and refuse results that leave it (through symlinks too)."""
    p = Path(root, *PurePosixPath(str(rel)).parts)
    if not inside(root, p):
        raise UnsafePathError(f"{rel} resolves outside the dataset root {root}", file=file, item=item or str(rel),
                              expected="a file inside the dataset root")
    return p


def relpath_posix(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def prefetch(paths) -> None:
    """Ask the kernel to start reading these files now (``POSIX_FADV_WILLNEED``), so that reads
    that follow find them cached; many reads in flight keep a disk busier than one process reading
    one file at a time. A no-op for cached files, for files that cannot be opened (their reader
    reports them), and where the call does not exist (macOS, Windows)."""
    if not hasattr(os, "posix_fadvise"):
        return
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        except OSError:
            pass
        finally:
            os.close(fd)
