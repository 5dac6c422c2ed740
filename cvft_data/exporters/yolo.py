"""Export to an Ultralytics YOLO layout (detect, segment, pose; classification as class folders)."""

from __future__ import annotations

from pathlib import Path

import yaml

from .. import boxes, masks
from ._common import ExportContext, NameAllocator, split_dir, write_image
from .imagefolder import export_imagefolder


def _fmt(v: float) -> str:
    return f"{v:.8f}".rstrip("0").rstrip(".") if v != 0 else "0"


def _kpt_shape(ctx: ExportContext) -> list[int] | None:
    """[K, dims] when every object carries K keypoints (a pose dataset), else None."""
    ks = set()
    for split in ctx.dataset:
        for attrs in ctx.dataset[split]["objects"]:
            for a in attrs["attributes"]:
                ks.add(len(a.get("keypoints") or []) // 3)
    if len(ks) != 1 or 0 in ks:
        return None
    dims = ctx.info.get("source", {}).get("info", {}).get("yolo", {}).get("kpt_dims", 3)
    return [ks.pop(), int(dims)]


def export_yolo(dataset_dir: Path, out: Path, *, overwrite: bool = False) -> dict:
    """``out/data.yaml`` + ``images/<split>/`` + ``labels/<split>/`` (splits named train/val/test).

    Unlabeled images are left out (YOLO would read a missing label file as background); null images
    get an empty label file. Crowd objects are left out; in a segmentation dataset a box-only object
    is written as its rectangle, a multi-part polygon as one line per part, and an RLE mask as its
    outer contours (needs OpenCV). Each such change is in the export ledger.
    """
    ctx = ExportContext(dataset_dir, out, overwrite)
    task = ctx.info["task"]
    if task in ("classification",):
        ctx.abort()
        return export_imagefolder(dataset_dir, out, overwrite=overwrite, fmt="yolo")
    if task not in ("detection", "instance_segmentation"):
        ctx.abort()
        from ..errors import UsageError
        raise UsageError(f"a {task} dataset cannot be exported to YOLO; use --to coco")
    seg = task == "instance_segmentation"
    kpt = None if seg else _kpt_shape(ctx)
    n_images = n_objects = 0
    try:
        splits = {}
        for split in ctx.dataset:
            d = split_dir(split)
            names = NameAllocator()
            for row in ctx.rows(split):
                if row["label_status"] == "unlabeled":
                    ctx.ledger.note(row["image_id"], "unlabeled_not_exported", "dropped_image",
                                    "unlabeled image left out: YOLO would read it as background",
                                    annotations=len(row["objects"]["bbox"]))
                    continue
                name = names.name(row["image_id"], row["image"])
                write_image(row["image"], ctx.staging / "images" / d / name)
                lines = _label_lines(row, seg, kpt, ctx)
                lp = (ctx.staging / "labels" / d / name).with_suffix(".txt")
                lp.parent.mkdir(parents=True, exist_ok=True)
                lp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
                n_images += 1
                n_objects += len(lines)
            splits[d] = f"images/{d}"
        doc = {**{k: v for k, v in splits.items() if k in ("train", "val", "test")},
               "nc": len(ctx.class_names), "names": dict(enumerate(ctx.class_names))}
        if "val" not in doc and "train" in doc:
            doc["val"] = doc["train"]  # Ultralytics requires val; say so
            ctx.ledger.note("data.yaml", "no_validation_split", "kept",
                            "the dataset has no validation split; val: points at train")
        if kpt:
            doc["kpt_shape"] = kpt
        (ctx.staging / "data.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    except BaseException:
        ctx.abort()
        raise
    return ctx.finish({"format": "yolo", "images": n_images, "objects": n_objects})


def _label_lines(row: dict, seg: bool, kpt: list[int] | None, ctx: ExportContext) -> list[str]:
    w, h = row["width"], row["height"]
    o = row["objects"]
    lines = []
    for i, bbox in enumerate(o["bbox"]):
        ref = f"{row['image_id']}#object {i}"
        cls = o["category"][i]
        if o["iscrowd"][i]:
            ctx.ledger.note(ref, "crowd_not_exported", "dropped_annotation", "iscrowd object: YOLO has no crowd flag")
            continue
        if not seg:
            cx, cy, bw, bh = boxes.xywh_to_yolo(*bbox, width=w, height=h)
            line = f"{cls} {_fmt(cx)} {_fmt(cy)} {_fmt(bw)} {_fmt(bh)}"
            if kpt:
                kp = o["attributes"][i]["keypoints"]
                for j in range(0, len(kp), 3):
                    line += f" {_fmt(kp[j] / w)} {_fmt(kp[j + 1] / h)}"
                    if kpt[1] == 3:
                        line += f" {_fmt(kp[j + 2])}"
            lines.append(line)
            continue
        s = o["segmentation"][i]
        polys = s["polygons"]
        if not polys and s["rle"] is not None:
            try:
                polys = masks.mask_to_polygons(masks.decode(s["rle"]))
                ctx.ledger.note(ref, "mask_to_polygon", "converted", f"RLE mask traced to {len(polys)} polygon(s)")
            except ImportError:
                ctx.ledger.note(ref, "mask_not_exported", "dropped_annotation",
                                "RLE mask needs OpenCV (pip install opencv-python-headless) to become a polygon")
                continue
        if not polys:
            polys = [boxes.box_corners(*bbox)]
            ctx.ledger.note(ref, "box_as_polygon", "converted", "box-only object written as its rectangle")
        elif len(polys) > 1:
            ctx.ledger.note(ref, "multipart_polygon", "converted", f"{len(polys)}-part polygon written as {len(polys)} lines")
        for p in polys:
            lines.append(f"{cls} " + " ".join(_fmt(v) for v in boxes.polygon_to_norm(p, width=w, height=h)))
    return lines
