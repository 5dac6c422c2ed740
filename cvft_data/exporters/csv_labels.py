"""Export (multi-label) classification as Roboflow's multi-label CSV: ``<split>/_classes.csv``
(``filename`` then one 0/1 column per class) beside the split's images. cvft reads it back with
its ``roboflow_multilabel`` connector; pandas and most training scripts read it as it is.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..errors import EmptyDatasetError, UsageError
from ._common import ExportContext, NameAllocator, split_dir, write_image


def export_csv(dataset_dir: Path, out: Path, *, overwrite: bool = False) -> dict:
    """``out/<split>/_classes.csv`` + ``out/<split>/<image>`` for a classification or multi-label
    dataset. Null images are rows of zeros; unlabeled images are left out and ledgered.

    Example:
        >>> import pathlib, tempfile, cvft_data
        >>> from PIL import Image
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> for i, cls in enumerate(["cat", "dog", "dog"]):
        ...     (tmp / "src" / cls).mkdir(parents=True, exist_ok=True)
        ...     Image.new("RGB", (8, 8), (i * 60, 0, 0)).save(tmp / "src" / cls / f"{i}.png")
        >>> _ = cvft_data.ingest(tmp / "src", tmp / "ds")
        >>> cvft_data.export(tmp / "ds", "csv", tmp / "csv")["images"]
        3
        >>> print((tmp / "csv" / "train" / "_classes.csv").read_text().splitlines()[1])
        cat__0.png,1,0
    """
    ctx = ExportContext(dataset_dir, out, overwrite)
    task = ctx.info["task"]
    if task not in ("classification", "multilabel"):
        ctx.abort()
        other = "--to masks" if task == "semantic_segmentation" else "--to coco or --to yolo"
        raise UsageError(f"--to csv writes image-level labels; a {task} dataset has more than that: use {other}")
    n = 0
    try:
        for split in ctx.dataset:
            d = split_dir(split)
            names = NameAllocator()
            table = io.StringIO()
            writer = csv.writer(table, lineterminator="\n")
            writer.writerow(["filename", *ctx.class_names])
            for row in ctx.rows(split):
                ids = [row["label"]] if task == "classification" else list(row["labels"] or [])
                ids = [i for i in ids if i is not None]
                if row["label_status"] == "unlabeled" or (not ids and row["label_status"] != "empty"):
                    ctx.ledger.note(row["image_id"], "unlabeled_not_exported", "dropped_image",
                                    "unlabeled image left out: a row of zeros would say it shows no class")
                    continue
                name = names.name(row["image_id"], row["image"]).replace("/", "__")
                write_image(row["image"], ctx.staging / d / name)
                writer.writerow([name, *(1 if k in ids else 0 for k in range(len(ctx.class_names)))])
                n += 1
            if table.getvalue().count("\n") > 1:
                (ctx.staging / d / "_classes.csv").write_text(table.getvalue(), encoding="utf-8")
        if not n:
            raise EmptyDatasetError("nothing to export: every image is unlabeled", file=str(dataset_dir), item="csv",
                                    expected="labeled or null images", ledger=[e.to_dict() for e in ctx.ledger])
    except BaseException:
        ctx.abort()
        raise
    return ctx.finish({"format": "csv", "images": n, "objects": 0})
