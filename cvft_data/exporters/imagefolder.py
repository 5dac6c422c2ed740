"""Export a classification dataset as class folders (torchvision ImageFolder, Ultralytics -cls)."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from ._common import ExportContext, NameAllocator, split_dir, write_image

NULL_FOLDER = "empty"


def export_imagefolder(dataset_dir: Path, out: Path, *, overwrite: bool = False, fmt: str = "imagefolder") -> dict:
    """``out/<split>/<class>/<image>``; null images go to ``<split>/empty/`` (read back as null
    images by the folder connector); unlabeled images are left out and ledgered."""
    ctx = ExportContext(dataset_dir, out, overwrite)
    if ctx.info["task"] != "classification":
        ctx.abort()
        raise UsageError(f"imagefolder needs a single-label classification dataset, this one is {ctx.info['task']}")
    if NULL_FOLDER in ctx.class_names:
        ctx.abort()
        raise UsageError(f"a class is named {NULL_FOLDER!r}, which the folder layout reserves for null images")
    n = 0
    try:
        for split in ctx.dataset:
            names: dict[str, NameAllocator] = {}
            for row in ctx.rows(split):
                if row["label_status"] == "unlabeled" or (row["label"] is None and row["label_status"] != "empty"):
                    ctx.ledger.note(row["image_id"], "unlabeled_not_exported", "dropped_image",
                                    "unlabeled image has no class folder")
                    continue
                folder = NULL_FOLDER if row["label"] is None else ctx.class_names[row["label"]]
                rel = names.setdefault(folder, NameAllocator()).name(row["image_id"], row["image"], strip=(folder, row["meta"].get("folder", "")) if row["meta"] else (folder,))
                write_image(row["image"], ctx.staging / split_dir(split) / folder / rel)
                n += 1
    except BaseException:
        ctx.abort()
        raise
    return ctx.finish({"format": fmt, "images": n, "objects": 0})
