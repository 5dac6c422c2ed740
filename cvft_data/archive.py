"""Reading zip members in place, safely: a size and a compression-ratio limit on every member (a
1 MB zip must not inflate 1 GiB into memory), and open handles cached per archive *version* (a
replaced archive at the same path is opened again, never served from a stale handle).

Example:
    >>> import tempfile, zipfile, pathlib
    >>> z = pathlib.Path(tempfile.mkdtemp()) / "a.zip"
    >>> with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as f:
    ...     f.writestr("ok.txt", "hello"); f.writestr("bomb.bin", b"\\0" * (4 << 20))
    >>> read_member(z, "ok.txt")
    b'hello'
    >>> try:
    ...     read_member(z, "bomb.bin")
    ... except Exception as exc:
    ...     print(type(exc).__name__, "expands" in str(exc))
    MalformedFileError True
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from .errors import MalformedFileError, MissingImageError

#: The most one member may inflate to (an image or an annotation file read into memory).
MAX_MEMBER_BYTES = 1 << 30
#: Members above :data:`RATIO_FLOOR` bytes may not expand more than this (JPEG/PNG barely compress;
#: JSON reaches ~20x; a zip bomb reaches 1000x).
MAX_RATIO = 200
RATIO_FLOOR = 1 << 20

_HANDLES: dict[str, tuple[tuple, zipfile.ZipFile]] = {}


def check_member(info: zipfile.ZipInfo, archive: str | os.PathLike, *, max_bytes: int = MAX_MEMBER_BYTES,
                 max_ratio: float = MAX_RATIO) -> None:
    """Raise :class:`MalformedFileError` when ``info`` is too large or too compressed to read."""
    if info.file_size > max_bytes:
        raise MalformedFileError(f"member is {info.file_size:,} bytes uncompressed", file=str(archive),
                                 item=info.filename, expected=f"at most {max_bytes:,} bytes per member")
    if info.file_size > RATIO_FLOOR and info.file_size > max_ratio * max(info.compress_size, 1):
        raise MalformedFileError(f"member expands {info.file_size / max(info.compress_size, 1):,.0f}x "
                                 "(a zip bomb?)", file=str(archive), item=info.filename,
                                 expected=f"at most {max_ratio}x compression")


def open_zip(path: str | os.PathLike) -> zipfile.ZipFile:
    """An open handle on ``path``, shared while the file on disk is the same one (inode, size,
    modification time); a replaced or rewritten archive gets a new handle."""
    key = str(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise MissingImageError(f"cannot open the archive ({exc.strerror})", file=key, item=Path(key).name,
                                expected="a readable zip archive") from None
    stamp = (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)
    cached = _HANDLES.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    if cached is not None:
        cached[1].close()
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise MalformedFileError(f"not a readable zip archive ({exc})", file=key, item=Path(key).name,
                                 expected="a zip file") from None
    _HANDLES[key] = (stamp, z)
    return z


def read_member(path: str | os.PathLike, member: str) -> bytes:
    """The bytes of ``member`` of the archive at ``path``, within the limits above."""
    z = open_zip(path)
    try:
        info = z.getinfo(member)
    except KeyError:
        raise MissingImageError("member not in the archive", file=str(path), item=member,
                                expected=f"a member named {member}") from None
    check_member(info, path)
    try:
        return z.read(info)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise MalformedFileError(f"member cannot be read ({exc})", file=str(path), item=member,
                                 expected="an intact, unencrypted zip member") from None
