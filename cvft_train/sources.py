"""What ``predict`` runs on: raw images streamed from a folder, a camera-trap archive, a zip, or a
cvft dataset, each as a :class:`SourceImage` named by its path relative to the source.

- a **cvft dataset** (``cvft.json``): every row of every split (``file`` is its ``image_id``);
- a **camera-trap archive** (top-level folders are years, or ``layout`` given): the camera-trap
  connector's records, so each image keeps its site ``group``, EXIF capture time and sequence;
- a **zip**: its image members, read in place (names with ``..`` or absolute names are refused);
- a **folder**: its image files in sorted order; a symlink that leads out of the folder is skipped.

Nothing is decoded here; images stream one at a time (bounded memory on millions of files).

Example:
    >>> import tempfile, pathlib
    >>> from cvft_data.sample import write_coco_sample
    >>> root = write_coco_sample(pathlib.Path(tempfile.mkdtemp()) / "src", n_images=3)
    >>> kind, images = open_source(root / "images")
    >>> kind, [i.file for i in images][:2]
    ('folder', ['train/site00/IMG_0000.JPG', 'train/site01/IMG_0001.JPG'])
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from cvft_data.errors import UsageError
from cvft_data.paths import inside, relpath_posix


@dataclass
class SourceImage:
    file: str                       # posix path relative to the source (what outputs call the image)
    path: Path | None = None        # a file to read, or None when ``data`` holds the bytes
    data: bytes | None = None
    group: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    notes: list[tuple[str, str]] = field(default_factory=list)   # (reason, detail) from the source reader


def _is_archive(root: Path, layout: str | None) -> bool:
    if layout:
        return True
    try:
        top = [e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")]
    except OSError:
        return False
    return bool(top) and all(re.fullmatch(r"(19|20)\d\d", n) for n in top)


def open_source(source: str | os.PathLike, *, layout: str | None = None) -> tuple[str, Iterator[SourceImage]]:
    """``(kind, images)`` for ``source``; kind is ``dataset``, ``camera_trap``, ``zip`` or ``folder``."""
    root = Path(source)
    if root.is_dir() and (root / "cvft.json").is_file():
        return "dataset", _dataset_images(root)
    if root.is_file() and zipfile.is_zipfile(root):
        return "zip", _zip_images(root)
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder, a zip archive or a cvft dataset")
    if _is_archive(root, layout):
        return "camera_trap", _camera_trap_images(root, layout)
    return "folder", _folder_images(root)


def _folder_images(root: Path) -> Iterator[SourceImage]:
    from connectors.base import is_image_name, walk_files

    real_dirs: dict[str, str] = {}
    for p in walk_files(root):
        if not is_image_name(p.name):
            continue
        rel = relpath_posix(p, root)
        if p.is_symlink() and not inside(root, p, real_dirs):
            yield SourceImage(file=rel, notes=[("symlink_outside_source", "a symlink that leads out of the source")])
            continue
        yield SourceImage(file=rel, path=p)


def _zip_images(root: Path) -> Iterator[SourceImage]:
    from connectors._source import ZipSource
    from connectors.base import is_image_name

    src = ZipSource(root)
    for name in src.refused:
        yield SourceImage(file=name, notes=[("unsafe_member_name", "zip member name escapes the archive root")])
    for name in src.files():
        if is_image_name(name):
            yield SourceImage(file=name, data=src.read_bytes(name))


def _camera_trap_images(root: Path, layout: str | None) -> Iterator[SourceImage]:
    from connectors.camera_traps import CameraTrapConnector

    conn = CameraTrapConnector(root, on_error="skip", **({"layout": layout} if layout else {}))
    for rec in conn.records():
        notes = [(n.reason, n.detail) for n in rec.notes]
        yield SourceImage(file=rec.image_id, path=rec.path, group=rec.group, meta=dict(rec.meta), notes=notes)


def _dataset_images(root: Path) -> Iterator[SourceImage]:
    import cvft_data
    from cvft_data.store import bytes_view

    dsd = cvft_data.load(root)
    for split in dsd:
        ds = bytes_view(dsd[split].select_columns(["image_id", "image", "group", "meta"]))
        for batch in ds.iter(batch_size=64):
            for image_id, image, group, meta in zip(batch["image_id"], batch["image"], batch["group"], batch["meta"]):
                meta = {**(meta or {}), "split": split}
                if image.get("bytes") is not None:
                    yield SourceImage(file=image_id, data=image["bytes"], group=group, meta=meta)
                else:
                    yield SourceImage(file=image_id, path=Path(image["path"]), group=group, meta=meta)
