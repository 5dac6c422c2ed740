"""Segmentation predictions on disk: ``masks`` (one class-index PNG per image, at the image's
size, beside ``classes.txt`` and ``masks.csv``: what ``cvft-ingest --format mask_folder`` and GIS
tools read) and ``coco_panoptic`` (COCO panoptic JSON + segment PNGs, for Mask2Former).

The folder is written under a temporary name and renamed into place. Names follow the source's
relative paths (``site1/a.jpg`` -> ``site1/a.png``); a path that would leave the folder is refused.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Iterator

from cvft_data.errors import UnsafePathError


def _png_name(file: str) -> str:
    rel = PurePosixPath(file).with_suffix(".png")
    if rel.is_absolute() or ".." in rel.parts:
        raise UnsafePathError(f"image name {file!r} would leave the output folder", item=file,
                              expected="a path relative to the source")
    return rel.as_posix()


def _staging(out: Path) -> Path:
    tmp = out.parent / f".{out.name}.{os.getpid()}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def _publish(tmp: Path, out: Path) -> None:
    if out.exists():
        old = out.parent / f".{out.name}.{os.getpid()}.old"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def write_masks(results: Iterator[dict], out: Path, *, classes: list[str]) -> int:
    tmp = _staging(out)
    n = 0
    with open(tmp / "masks.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["image", "mask", *[f"share_{c}" for c in classes], "error"])
        for r in results:
            if r.get("failure") or not r.get("mask_png"):
                w.writerow([r["file"], "", *[""] * len(classes), r.get("failure", "no mask")])
                continue
            name = _png_name(r["file"])
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_bytes(base64.b64decode(r["mask_png"]))
            shares = r.get("class_pixels", {})
            w.writerow([r["file"], name, *[shares.get(c, 0.0) for c in classes], ""])
            n += 1
    (tmp / "classes.txt").write_text("".join(f"{c}\n" for c in classes), encoding="utf-8")
    _publish(tmp, out)
    return n


def write_coco_panoptic(results: Iterator[dict], out: Path, *, classes: list[str], things: list[bool]) -> int:
    """``out/panoptic.json`` (COCO panoptic: images, annotations with ``segments_info``, categories
    with ``isthing``) and ``out/panoptic/<name>.png`` (segment ids as ``R + 256 G + 256^2 B``)."""
    tmp = _staging(out)
    doc = {"info": {"description": "cvft predict"}, "images": [], "annotations": [],
           "categories": [{"id": i + 1, "name": c, "isthing": int(t)} for i, (c, t) in enumerate(zip(classes, things))]}
    for image_id, r in enumerate(results, start=1):
        if r.get("failure") or not r.get("panoptic_png"):
            continue
        name = _png_name(r["file"])
        (tmp / "panoptic" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "panoptic" / name).write_bytes(base64.b64decode(r["panoptic_png"]))
        doc["images"].append({"id": image_id, "file_name": r["file"], "width": r["width"], "height": r["height"]})
        doc["annotations"].append({"image_id": image_id, "file_name": name, "segments_info": [
            {**s, "category_id": classes.index(s["category"]) + 1} for s in r.get("segments", [])]})
    (tmp / "panoptic.json").write_text(json.dumps(doc), encoding="utf-8")
    _publish(tmp, out)
    return len(doc["images"])
