"""A source tree that is either a folder or a zip archive, read in place (zips are never unpacked).

Member names from a zip are untrusted: names with ``..``, absolute names and names that would
land outside the archive root are never listed (they are reported in ``refused``). Members larger
than :data:`MAX_TEXT_BYTES` are not read as annotation text (a zip bomb guard).

Example:
    >>> import tempfile, zipfile, pathlib
    >>> z = pathlib.Path(tempfile.mkdtemp()) / "export.zip"
    >>> with zipfile.ZipFile(z, "w") as f:
    ...     f.writestr("annotations.xml", "<annotations/>"); f.writestr("../evil.txt", "x")
    >>> src = open_source(z)
    >>> src.files(), src.refused
    (['annotations.xml'], ['../evil.txt'])
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path, PurePosixPath

from cvft_data.archive import check_member
from cvft_data.errors import MalformedFileError
from cvft_data.paths import relpath_posix

from ._files import is_hidden, walk_files

#: Annotation files above this size are refused (images are read by the builder, not here).
MAX_TEXT_BYTES = 1 << 30


class Source:
    """Read-only view of a folder or a zip: posix relative names -> bytes."""

    root: Path
    refused: list[str]

    def files(self) -> list[str]:
        raise NotImplementedError

    def read_bytes(self, name: str) -> bytes:
        raise NotImplementedError

    def read_text(self, name: str) -> str:
        data = self.read_bytes(name)
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise MalformedFileError(f"not UTF-8 text ({exc.reason})", file=self.describe(name), item=name,
                                     expected="UTF-8 text") from None

    def exists(self, name: str) -> bool:
        return name in self._index()

    def location(self, name: str) -> tuple[Path, str | None]:
        """(file path, zip member or None) for an ImageRecord."""
        raise NotImplementedError

    def describe(self, name: str) -> str:
        raise NotImplementedError

    def find(self, name: str) -> str | None:
        """``name`` itself, or the one entry that equals it ignoring case."""
        idx = self._index()
        if name in idx:
            return name
        return self._lower().get(name.lower())

    def _index(self) -> set[str]:
        if not hasattr(self, "_idx"):
            self._idx = set(self.files())
        return self._idx

    def _lower(self) -> dict[str, str]:
        if not hasattr(self, "_low"):
            self._low = {n.lower(): n for n in sorted(self._index(), reverse=True)}
        return self._low


class DirSource(Source):
    def __init__(self, root: Path):
        self.root = Path(root)
        self.refused = []
        self._files: list[str] | None = None

    def files(self) -> list[str]:
        if self._files is None:
            self._files = [relpath_posix(p, self.root) for p in walk_files(self.root)]
        return self._files

    def read_bytes(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def location(self, name: str) -> tuple[Path, str | None]:
        return self.root / name, None

    def describe(self, name: str) -> str:
        return name


class ZipSource(Source):
    def __init__(self, path: Path):
        self.root = Path(path)
        self.refused = []
        try:
            self._zip = zipfile.ZipFile(self.root)
        except (zipfile.BadZipFile, OSError) as exc:
            raise MalformedFileError(f"not a readable zip archive ({exc})", file=str(path), item=Path(path).name,
                                     expected="a zip file") from None
        self._infos: dict[str, zipfile.ZipInfo] = {}
        for info in self._zip.infolist():
            if info.is_dir():
                continue
            name = info.filename.replace("\\", "/")
            parts = PurePosixPath(name).parts
            if name.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
                self.refused.append(info.filename)
                continue
            if any(is_hidden(p) for p in parts):
                continue
            self._infos[name] = info

    def files(self) -> list[str]:
        return sorted(self._infos)

    def read_bytes(self, name: str) -> bytes:
        info = self._infos[name]
        check_member(info, self.root, max_bytes=MAX_TEXT_BYTES)   # size and ratio: no zip bomb into memory
        try:
            return self._zip.read(info)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
            raise MalformedFileError(f"member cannot be read ({exc})", file=self.describe(name), item=name,
                                     expected="an intact, unencrypted zip member") from None

    def location(self, name: str) -> tuple[Path, str | None]:
        return self.root, self._infos[name].filename

    def describe(self, name: str) -> str:
        return f"{self.root.name}:{name}"


def open_source(path: str | os.PathLike) -> Source:
    p = Path(path)
    if p.is_file() and zipfile.is_zipfile(p):
        return ZipSource(p)
    return DirSource(p)
