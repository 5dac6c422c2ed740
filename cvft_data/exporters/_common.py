"""What every exporter shares: reading rows with raw image bytes, safe output names, atomic output."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Iterator

from .. import progress
from ..errors import UsageError
from ..imageinfo import IMAGE_EXTENSIONS, sniff_extension
from ..ledger import Ledger
from ..store import bytes_view, read_info, replace_dir
from ..store import open_dataset as load
from ..vocabulary import is_split_name

#: Folder names of the exported splits, as YOLO and ImageFolder tools expect them.
SPLIT_DIR = {"train": "train", "validation": "val", "test": "test"}


class ExportContext:
    """Opens the dataset, owns the staging folder and the export ledger."""

    def __init__(self, dataset_dir: Path, out: Path, overwrite: bool):
        if out.exists() and not overwrite:
            raise UsageError(f"{out} already exists; pass --overwrite to replace it")
        self.info = read_info(dataset_dir)
        self.dataset = load(dataset_dir)
        self.out = out
        self.overwrite = overwrite
        self.staging = out.parent / f".{out.name}.cvft-export-partial"
        if self.staging.exists():
            shutil.rmtree(self.staging)
        self.staging.mkdir(parents=True)
        self.ledger = Ledger()
        self.class_names: list[str] = list(self.info["classes"])

    def rows(self, split: str) -> Iterator[dict]:
        """Rows of one split with ``image`` as ``{"bytes", "path"}`` (never decoded)."""

        ds = bytes_view(self.dataset[split])
        yield from progress.bar(ds, total=len(ds), desc=f"export {split}")

    def finish(self, summary: dict) -> dict:
        self.ledger.write_jsonl(self.staging / "export_ledger.jsonl")
        summary = {**summary, "format": summary.get("format"), "path": str(self.out), "ledger": self.ledger.summary()}
        (self.staging / "cvft_export.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        replace_dir(self.staging, self.out, self.overwrite)
        summary["ledger_entries"] = [e.to_dict() for e in self.ledger]
        return summary

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


class NameAllocator:
    """Unique, safe file names per folder, derived from ``image_id``."""

    def __init__(self):
        self.used: set[str] = set()

    def name(self, image_id: str, image: dict, *, strip: tuple[str, ...] = ()) -> str:
        """``image_id`` without the source's layout prefix (``images/``, a split folder, ``strip``),
        flattened with ``__`` where a folder is named ``images`` or ``labels`` (which would confuse
        YOLO's label lookup), with an image extension, unique in this allocator."""
        parts = list(PurePosixPath(image_id).parts)
        while len(parts) > 1 and (parts[0] in ("images", "JPEGImages", "labels") or is_split_name(parts[0])):
            parts.pop(0)
        if len(parts) > 1 and parts[0].lower() in {x.lower() for x in strip}:
            parts.pop(0)
        if any(p in ("images", "labels") or p.startswith(".") for p in parts[:-1]):
            parts = ["__".join(parts)]
        return self.unique("/".join(parts), image)

    def unique(self, name: str, image: dict) -> str:
        if os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
            name += sniff_extension(image_bytes(image)[:16])
        stem, ext = os.path.splitext(name)
        k = 1
        while name.lower() in self.used:
            name = f"{stem}_{k}{ext}"
            k += 1
        self.used.add(name.lower())
        return name


def image_bytes(image: dict) -> bytes:
    if image.get("bytes") is not None:
        return image["bytes"]
    with open(image["path"], "rb") as f:
        return f.read()


def write_image(image: dict, dst: Path) -> None:
    """Write the stored bytes as they are; a referenced file is hard-linked when possible."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if image.get("bytes") is not None:
        dst.write_bytes(image["bytes"])
        return
    try:
        os.link(image["path"], dst)
    except OSError:
        shutil.copyfile(image["path"], dst)


def split_dir(split: str) -> str:
    """The folder of ``split`` in an export: train/val/test, or the split's own name made safe
    (split names come from the dataset folder, which may have been edited)."""
    from ..paths import safe_folder_name

    return SPLIT_DIR.get(split) or safe_folder_name(split)
