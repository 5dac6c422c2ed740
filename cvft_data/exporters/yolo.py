"""Export to an Ultralytics YOLO layout (detect, segment, pose; classification as class folders)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import yaml

from .. import boxes, masks
from ._common import SPLIT_DIR, ExportContext, NameAllocator, split_dir, write_image
from .imagefolder import export_imagefolder


def _fmt(v: float) -> str:
    return f"{v:.8f}".rstrip("0").rstrip(".") if v != 0 else "0"


def _kpt_shape(ctx: ExportContext) -> tuple[list[int] | None, int]:
    """([K, dims] when the objects that carry keypoints all carry K of them, else None; how many
    objects carry keypoints). Objects without keypoints in a pose export get K invisible points."""
    ks: Counter = Counter()
    for split in ctx.dataset:
        for attrs in ctx.dataset[split]["object_attributes"]:
            for a in attrs:
                k = len((a or {}).get("keypoints") or []) // 3
                if k:
                    ks[k] += 1
    if len(ks) != 1:
        return None, sum(ks.values())
    dims = ctx.info.get("source", {}).get("info", {}).get("yolo", {}).get("kpt_dims", 3)
    k, n = ks.most_common(1)[0]
    return [k, int(dims)], n


def _yaml_splits(ctx: ExportContext) -> dict[str, str]:
    """Dataset split -> export folder. Ultralytics reads train/val/test only: a lone split of
    another name (CVAT's ``default``) becomes train; other extra splits keep their own folder."""
    names = list(ctx.dataset)
    extra = [s for s in names if s not in SPLIT_DIR]
    if extra and "train" not in names and len(extra) == 1:
        ctx.ledger.note(extra[0], "split_renamed", "converted",
                        f"split {extra[0]!r} written as train (Ultralytics reads train/val/test)")
        return {s: ("train" if s == extra[0] else split_dir(s)) for s in names}
    return {s: split_dir(s) for s in names}


def export_yolo(dataset_dir: Path, out: Path, *, overwrite: bool = False) -> dict:
    """``out/data.yaml`` + ``images/<split>/`` + ``labels/<split>/`` (splits named train/val/test).

    Unlabeled images are left out (YOLO would read a missing label file as background); null images
    get an empty label file. Crowd objects are left out; in a segmentation dataset a box-only object
    is written as its rectangle, a multi-part polygon as one line per part, and an RLE mask as its
    outer contours (needs OpenCV). ``data.yaml`` lists exactly the folders written. Each change, and
    each field YOLO cannot carry (attributes, keypoints outside a pose export, points and polylines
    written as boxes, rotated boxes as their hull), is in the export ledger.
    """
    ctx = ExportContext(dataset_dir, out, overwrite)
    task = ctx.info["task"]
    if task in ("classification",):
        ctx.abort()
        return export_imagefolder(dataset_dir, out, overwrite=overwrite, fmt="yolo")
    if task not in ("detection", "instance_segmentation"):
        ctx.abort()
        from ..errors import UsageError
        other = {"multilabel": "--to csv", "semantic_segmentation": "--to masks"}.get(task, "--to coco")
        raise UsageError(f"a {task} dataset cannot be exported to YOLO; use {other}")
    seg = task == "instance_segmentation"
    kpt, with_keypoints = (None, 0) if seg else _kpt_shape(ctx)
    lost: Counter = Counter()   # fields YOLO cannot carry: one ledger entry per kind, with the count
    if with_keypoints and not kpt:
        lost["keypoints_not_exported"] = with_keypoints
    n_images = n_objects = 0
    try:
        folders, written = _yaml_splits(ctx), Counter()
        for split in ctx.dataset:
            d = folders[split]
            names = NameAllocator()
            for row in ctx.rows(split):
                if row["label_status"] == "unlabeled":
                    ctx.ledger.note(row["image_id"], "unlabeled_not_exported", "dropped_image",
                                    "unlabeled image left out: YOLO would read it as background",
                                    annotations=len(row["objects"]["bbox"]))
                    continue
                name = names.name(row["image_id"], row["image"])
                write_image(row["image"], ctx.staging / "images" / d / name)
                lines = _label_lines(row, seg, kpt, ctx, lost)
                lp = (ctx.staging / "labels" / d / name).with_suffix(".txt")
                lp.parent.mkdir(parents=True, exist_ok=True)
                lp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
                n_images += 1
                n_objects += len(lines)
                written[d] += 1
        if not n_images:
            from ..errors import EmptyDatasetError
            raise EmptyDatasetError("nothing to export: every image is unlabeled", file=str(dataset_dir),
                                    item="yolo", expected="labeled or null images",
                                    ledger=[e.to_dict() for e in ctx.ledger])
        doc: dict = {d: f"images/{d}" for d in ("train", "val", "test") if written[d]}
        extra = sorted(d for d in written if d not in ("train", "val", "test"))
        for d in extra:
            doc[d] = f"images/{d}"
            ctx.ledger.note(d, "split_not_read_by_ultralytics", "kept",
                            f"split {d!r} is in images/{d} and listed under cvft_extra_splits; Ultralytics "
                            "reads train/val/test only")
        if extra:
            doc["cvft_extra_splits"] = extra
        if "val" not in doc and "train" in doc:
            doc["val"] = doc["train"]  # Ultralytics requires val; say so
            ctx.ledger.note("data.yaml", "no_validation_split", "kept",
                            "the dataset has no validation split; val: points at train")
        doc.update({"nc": len(ctx.class_names), "names": dict(enumerate(ctx.class_names))})
        if kpt:
            doc["kpt_shape"] = kpt
        for reason, n in sorted(lost.items()):
            ctx.ledger.note("objects", reason, "converted", f"{n} objects: {_LOST[reason]}")
        (ctx.staging / "data.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    except BaseException:
        ctx.abort()
        raise
    return ctx.finish({"format": "yolo", "images": n_images, "objects": n_objects})


#: What each aggregated export-ledger reason means.
_LOST = {
    "attributes_not_exported": "their attributes (occluded, difficult, track ids...) are not in YOLO labels",
    "keypoints_not_exported": "their keypoints are not written (a segmentation export, or objects with different "
                              "keypoint counts)",
    "keypoints_zero_filled": "no keypoints in a pose export: written as invisible points (0 0 0)",
    "shape_as_box": "CVAT points, polylines or cuboids written as their bounding box",
    "rotated_box_as_hull": "rotated boxes written as their axis-aligned hull (YOLO detect has no angle)",
    "bbox_from_polygon": "the stored box differs from the polygon's; YOLO keeps the polygon, so the box will "
                         "be re-derived from it",
}
#: attribute keys that describe geometry cvft already wrote (not user attributes)
_GEOMETRY_KEYS = {"shape", "points", "keypoints", "rotation", "nodes", "cx", "cy", "rx", "ry", "coco"}


def _label_lines(row: dict, seg: bool, kpt: list[int] | None, ctx: ExportContext, lost: Counter) -> list[str]:
    w, h = row["width"], row["height"]
    o = row["objects"]
    lines = []
    for i, bbox in enumerate(o["bbox"]):
        ref = f"{row['image_id']}#object {i}"
        cls = o["category"][i]
        if o["iscrowd"][i]:
            ctx.ledger.note(ref, "crowd_not_exported", "dropped_annotation", "iscrowd object: YOLO has no crowd flag")
            continue
        attrs = row["object_attributes"][i] or {}
        if set(attrs) - _GEOMETRY_KEYS:
            lost["attributes_not_exported"] += 1
        if not seg:
            if attrs.get("shape") in ("points", "polyline", "cuboid"):
                lost["shape_as_box"] += 1
            if attrs.get("rotation"):
                lost["rotated_box_as_hull"] += 1
            cx, cy, bw, bh = boxes.xywh_to_yolo(*bbox, width=w, height=h)
            line = f"{cls} {_fmt(cx)} {_fmt(cy)} {_fmt(bw)} {_fmt(bh)}"
            if kpt:
                kp = list(attrs.get("keypoints") or [])
                if len(kp) != 3 * kpt[0]:
                    kp = [0.0] * (3 * kpt[0])
                    lost["keypoints_zero_filled"] += 1
                for j in range(0, len(kp), 3):
                    line += f" {_fmt(kp[j] / w)} {_fmt(kp[j + 1] / h)}"
                    if kpt[1] == 3:
                        line += f" {_fmt(kp[j + 2])}"
            lines.append(line)
            continue
        if attrs.get("keypoints"):
            lost["keypoints_not_exported"] += 1
        s = o["segmentation"][i]
        polys = s["polygons"]
        if not polys and s["rle"] is not None:
            try:
                traced = masks.mask_to_polygons(masks.decode(s["rle"]))
            except ImportError:
                ctx.ledger.note(ref, "mask_not_exported", "dropped_annotation",
                                "RLE mask needs OpenCV (pip install opencv-python-headless) to become a polygon")
                continue
            polys = [p for p in traced if len(p) >= 6 and boxes.polygon_area(p) > 0]   # no zero-area slivers
            if not polys:
                ctx.ledger.note(ref, "mask_without_area", "dropped_annotation",
                                "the RLE mask traces to no polygon with an area")
                continue
            ctx.ledger.note(ref, "mask_to_polygon", "converted", f"RLE mask traced to {len(polys)} polygon(s)"
                            + (f"; {len(traced) - len(polys)} zero-area part(s) left out" if len(traced) > len(polys) else ""))
        elif polys and _box_differs(bbox, boxes.polygons_bbox(polys)):
            lost["bbox_from_polygon"] += 1
        if not polys:
            polys = [boxes.box_corners(*bbox)]
            ctx.ledger.note(ref, "box_as_polygon", "converted", "box-only object written as its rectangle")
        elif len(polys) > 1:
            ctx.ledger.note(ref, "multipart_polygon", "converted", f"{len(polys)}-part polygon written as {len(polys)} lines")
        for p in polys:
            lines.append(f"{cls} " + " ".join(_fmt(v) for v in boxes.polygon_to_norm(p, width=w, height=h)))
    return lines


def _box_differs(a, b, tol: float = 1.0) -> bool:
    return any(abs(float(x) - float(y)) > tol for x, y in zip(a, b))
