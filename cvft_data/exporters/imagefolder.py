"""Export a classification dataset as class folders (torchvision ImageFolder, Ultralytics -cls)."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from ..paths import safe_folder_name
from ._common import ExportContext, NameAllocator, split_dir, write_image

NULL_FOLDER = "empty"


def export_imagefolder(dataset_dir: Path, out: Path, *, overwrite: bool = False, fmt: str = "imagefolder") -> dict:
    """``out/<split>/<class>/<image>``; null images go to ``<split>/empty/`` (read back as null
    images by the folder connector); unlabeled images are left out and ledgered."""
    ctx = ExportContext(dataset_dir, out, overwrite)
    if ctx.info["task"] != "classification":
        ctx.abort()
        other = {"multilabel": "--to csv", "semantic_segmentation": "--to masks"}.get(ctx.info["task"],
                                                                                     "--to coco or --to yolo")
        raise UsageError(f"imagefolder needs a single-label classification dataset, this one is {ctx.info['task']}; "
                         f"use {other}")
    if NULL_FOLDER in ctx.class_names:
        ctx.abort()
        raise UsageError(f"a class is named {NULL_FOLDER!r}, which the folder layout reserves for null images")
    folders = class_folders(ctx)
    n = 0
    try:
        for split in ctx.dataset:
            names: dict[str, NameAllocator] = {}
            for row in ctx.rows(split):
                if row["label_status"] == "unlabeled" or (row["label"] is None and row["label_status"] != "empty"):
                    ctx.ledger.note(row["image_id"], "unlabeled_not_exported", "dropped_image",
                                    "unlabeled image has no class folder")
                    continue
                folder = NULL_FOLDER if row["label"] is None else folders[row["label"]]
                rel = names.setdefault(folder, NameAllocator()).name(row["image_id"], row["image"], strip=(folder, row["meta"].get("folder", "")) if row["meta"] else (folder,))
                write_image(row["image"], ctx.staging / split_dir(split) / folder / rel)
                n += 1
    except BaseException:
        ctx.abort()
        raise
    return ctx.finish({"format": fmt, "images": n, "objects": 0})


def class_folders(ctx: ExportContext) -> list[str]:
    """One folder name per class, safe and unique (case-insensitively: macOS and Windows folders);
    each class whose folder is not its name gets an export ledger entry."""
    taken = {NULL_FOLDER}
    out = []
    for name in ctx.class_names:
        base = folder = safe_folder_name(name)
        k = 2
        while folder.lower() in taken:
            folder = f"{base}_{k}"
            k += 1
        taken.add(folder.lower())
        out.append(folder)
        if folder != name:
            ctx.ledger.note(f"class {name!r}", "class_folder_renamed", "converted",
                            f"class name is not a safe folder name; its images are in {folder!r}")
    return out
