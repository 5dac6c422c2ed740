"""One :class:`~connectors.base.ImageRecord` -> one canonical row (runs in the worker processes).

This is where the real image is met: bytes read, header probed, geometry checked against the
displayed size, YOLO coordinates scaled, optional downscale applied. Problems go to the policy.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any

from . import boxes, masks
from .archive import read_member
from .errors import (
    CorruptImageError,
    GeometryError,
    MissingImageError,
    SizeMismatchError,
    SourceError,
    UnknownClassError,
    UnsafePathError,
)
from .imageinfo import ImageInfo, downscale, probe
from .ledger import ErrorPolicy
from .paths import inside

#: How far (pixels) geometry may leave the image before it counts as out of bounds. Sub-pixel
#: overshoot is what rounding in annotation tools produces; it is kept unchanged.
BOUNDS_TOLERANCE = 1.0


@dataclass(frozen=True)
class RowContext:
    task: str
    class_names: tuple[str, ...]
    reference: bool = False
    max_side: int | None = None
    #: folders the images may be read from (the source root, an ``images`` folder the user named);
    #: empty: not checked
    image_roots: tuple[str, ...] = ()
    ignore_index: int = 255   # semantic masks: pixels nobody labelled


def _read_member(rec) -> bytes:
    try:
        return read_member(rec.path, rec.member)
    except SourceError as exc:   # named by the image, as every other image error is
        raise type(exc)(exc.message, file=exc.file, item=rec.image_id, expected=exc.expected) from None


def _check_inside(rec, ctx: RowContext) -> None:
    """An image file is read only when it lies inside a folder the source may read (a symlink that
    leads elsewhere is refused, whatever connector listed it)."""
    if ctx.image_roots and rec.path is not None and rec.data is None \
            and not any(inside(root, rec.path, _REAL_DIRS) for root in ctx.image_roots):
        raise UnsafePathError("the image is a link that leads out of the source", file=str(rec.path),
                              item=rec.image_id, expected="an image file inside the source folder")


_REAL_DIRS: dict[str, str] = {}   # folder -> real path, for one shard (see reset_caches)


def reset_caches() -> None:
    """Forget the folders resolved so far (called per shard: a folder may be replaced between builds)."""
    _REAL_DIRS.clear()


def _read(rec, arena=None, ctx: RowContext | None = None):
    """The image's bytes: into ``arena`` (a view of it) when one is given, else a ``bytes``."""
    if ctx is not None:
        _check_inside(rec, ctx)
    if rec.data is not None:
        return arena.add(rec.data) if arena is not None else rec.data
    if rec.member is not None:
        data = _read_member(rec)
        return arena.add(data) if arena is not None else data
    try:
        if arena is not None:
            return arena.read_file(rec.path)
        with open(rec.path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise MissingImageError("image file not found", file=str(rec.path), item=rec.image_id,
                                expected="an image file at this path") from None
    except OSError as exc:
        raise CorruptImageError(f"cannot read the file ({exc.strerror})", file=str(rec.path), item=rec.image_id,
                                expected="a readable image file") from None


def _check_box(box, info: ImageInfo, policy: ErrorPolicy, rec, ref: str):
    """Returns the box to keep (maybe clipped) or None to drop it."""
    if box[2] <= 0 or box[3] <= 0:
        policy.handle(GeometryError(f"degenerate box {list(box)}", file=rec.source_file, item=ref,
                                    expected="positive width and height"), action="dropped_annotation")
        return None
    if boxes.out_of_bounds(box, info.width, info.height, BOUNDS_TOLERANCE):
        clipped = boxes.clip_box(box, info.width, info.height)
        keep = clipped[2] > 0 and clipped[3] > 0
        policy.handle(GeometryError(f"box {[round(v, 2) for v in box]} leaves the {info.width}x{info.height} image",
                                    file=rec.source_file, item=ref, expected="a box inside the image"),
                      action="clipped" if keep else "dropped_annotation")
        return clipped if keep else None
    return box


def _not_finite(obj) -> str | None:
    """Which of the object's numbers is NaN or infinite (or a negative area), if any: every
    connector's objects pass here, so one check covers them all."""
    for what, values in (("bbox", obj.bbox or ()), ("keypoints", obj.keypoints or ()),
                         *((f"polygon {i}", p) for i, p in enumerate(obj.polygons))):
        for v in values:
            try:
                if not math.isfinite(float(v)):
                    return f"{what} value {v}"
            except (TypeError, ValueError):
                return f"{what} value {v!r}"
    if obj.area is not None and (not math.isfinite(float(obj.area)) or float(obj.area) < 0):
        return f"area {obj.area}"
    return None


def _object(obj, info: ImageInfo, policy: ErrorPolicy, rec, names: set[str]) -> dict | None:
    ref = f"{rec.image_id}#{obj.ref or obj.category}"
    if obj.category not in names:
        policy.handle(UnknownClassError(f"class {obj.category!r} is not declared", file=rec.source_file, item=ref,
                                        expected="one of the dataset's classes"), action="dropped_annotation")
        return None
    bad = _not_finite(obj)
    if bad:
        policy.handle(GeometryError(f"{bad} is not a finite number", file=rec.source_file, item=ref,
                                    expected="finite coordinates, a finite non-negative area"),
                      action="dropped_annotation")
        return None
    w, h = info.width, info.height
    polygons = [boxes.polygon_to_abs(p, width=w, height=h) if obj.normalized else list(p) for p in obj.polygons]
    bbox = obj.bbox
    if bbox is not None and obj.normalized:
        bbox = boxes.yolo_to_xywh(*bbox, width=w, height=h) if obj.centre else boxes.scale_box(bbox, w, h)
    elif bbox is not None and obj.centre:
        bbox = boxes.centre_to_xywh(*bbox)
    kept_polys = []
    for p in polygons:
        if boxes.polygon_out_of_bounds(p, w, h, BOUNDS_TOLERANCE):
            policy.handle(GeometryError(f"polygon leaves the {w}x{h} image", file=rec.source_file, item=ref,
                                        expected="vertices inside the image"), action="clipped")
            p = boxes.clip_polygon(p, w, h)
        if boxes.polygon_area(p) <= 0:
            policy.handle(GeometryError("polygon has zero area", file=rec.source_file, item=ref,
                                        expected="a polygon with area"), action="dropped_annotation")
            continue
        kept_polys.append(p)
    if obj.polygons and not kept_polys:
        return None
    rle = obj.rle
    if rle is not None and list(rle["size"]) != [h, w]:
        policy.handle(GeometryError(f"mask size {rle['size']} differs from the image (h, w) {[h, w]}",
                                    file=rec.source_file, item=ref, expected="a mask over the whole image"),
                      action="dropped_annotation")
        return None
    if bbox is None:
        bbox = boxes.polygons_bbox(kept_polys) if kept_polys else masks.bbox(rle) if rle else None
        if bbox is None:
            return None
    bbox = _check_box(bbox, info, policy, rec, ref)
    if bbox is None:
        return None
    area = obj.area if obj.area is not None else (
        masks.area(rle) if rle else sum(boxes.polygon_area(p) for p in kept_polys) if kept_polys else bbox[2] * bbox[3])
    attributes = dict(obj.attributes)
    if obj.keypoints:
        kp = list(obj.keypoints)
        if obj.normalized:
            kp = [v * (w if i % 3 == 0 else h if i % 3 == 1 else 1) for i, v in enumerate(kp)]
        attributes["keypoints"] = kp
    return {"bbox": list(bbox), "category": obj.category, "area": float(area), "iscrowd": bool(obj.iscrowd),
            "segmentation": {"polygons": kept_polys, "rle": rle}, "attributes": attributes}


def _scale_objects(objects: dict, attributes: list[dict], sx: float, sy: float, new_w: int, new_h: int) -> None:
    for i in range(len(objects["bbox"])):
        objects["bbox"][i] = list(boxes.scale_box(objects["bbox"][i], sx, sy))
        objects["area"][i] = objects["area"][i] * sx * sy
        seg = objects["segmentation"][i]
        seg["polygons"] = [boxes.scale_polygon(p, sx, sy) for p in seg["polygons"]]
        if seg["rle"] is not None:
            seg["rle"] = masks.resize(seg["rle"], new_w, new_h)
            objects["area"][i] = masks.area(seg["rle"])
        kp = attributes[i].get("keypoints")
        if kp:
            attributes[i]["keypoints"] = [v * (sx if j % 3 == 0 else sy if j % 3 == 1 else 1) for j, v in enumerate(kp)]


def build_row(rec, ctx: RowContext, policy: ErrorPolicy, arena=None) -> dict[str, Any] | None:
    """The canonical row for ``rec``, or None when the image is dropped (ledgered).

    With an :class:`~cvft_data.shardwriter.ImageArena`, the image is read into it and the row's
    ``image.bytes`` is a view of it, valid until the writer's batch is written; a dropped row's
    bytes are rolled back.
    """
    mark = arena.mark() if arena is not None else None
    row = _build_row(rec, ctx, policy, arena, mark)
    if row is None and arena is not None:
        arena.rollback(mark)
    return row


def _build_row(rec, ctx: RowContext, policy: ErrorPolicy, arena, mark) -> dict[str, Any] | None:
    try:
        data = _read(rec, arena, ctx)
        info = probe(data, name=rec.image_id, file=str(rec.path) if rec.path else rec.image_id, header=rec.header)
        if rec.declared_size and tuple(rec.declared_size) != (info.width, info.height):
            raw = (info.raw_width, info.raw_height)
            hint = " (it matches the pixels before EXIF rotation)" if tuple(rec.declared_size) == raw != (info.width, info.height) else ""
            policy.handle(SizeMismatchError(f"declared size {rec.declared_size[0]}x{rec.declared_size[1]} differs "
                                            f"from the image's {info.width}x{info.height}{hint}",
                                            file=rec.source_file, item=rec.image_id,
                                            expected="the displayed size of the image"), action="kept")
    except SourceError as exc:
        policy.handle(exc, action="dropped_image", annotations=rec.annotation_count)
        return None
    for n in rec.notes:
        policy.note(rec.image_id, n.reason, n.action, n.detail, file=n.file)
    meta = dict(rec.meta)
    row: dict[str, Any] = {"image_id": rec.image_id, "width": info.width, "height": info.height,
                           "label_status": rec.label_status, "group": rec.group}
    names = set(ctx.class_names)
    if ctx.task == "classification":
        row["label"] = rec.label
        if rec.label is not None and rec.label not in names:
            policy.handle(UnknownClassError(f"class {rec.label!r} is not declared", file=rec.source_file,
                                            item=rec.image_id, expected="one of the dataset's classes"),
                          action="dropped_annotation")
            row["label"], row["label_status"] = None, "unlabeled"
    elif ctx.task == "multilabel":
        row["labels"] = [lb for lb in (rec.labels or []) if lb in names]
        for lb in rec.labels or []:
            if lb not in names:
                policy.handle(UnknownClassError(f"label {lb!r} is not declared", file=rec.source_file,
                                                item=rec.image_id, expected="one of the dataset's classes"),
                              action="dropped_annotation")
        if rec.labels and not row["labels"]:
            row["label_status"] = "unlabeled"
    elif ctx.task == "panoptic":
        row["segments_info"], row["panoptic"] = [], None
        if rec.panoptic_path is not None:
            try:
                png = _read(type(rec)(image_id=rec.image_id, path=rec.panoptic_path))
                pinfo = probe(png, name=str(rec.panoptic_path))
                if (pinfo.width, pinfo.height) != (info.width, info.height):
                    raise SizeMismatchError(f"panoptic PNG is {pinfo.width}x{pinfo.height}, the image "
                                            f"{info.width}x{info.height}", file=str(rec.panoptic_path),
                                            item=rec.image_id, expected="a PNG of the image's size")
                row["panoptic"] = {"bytes": png, "path": None}
                row["segments_info"] = [{"id": s.id, "category": s.category, "area": s.area, "bbox": list(s.bbox),
                                         "iscrowd": s.iscrowd} for s in rec.segments]
            except SourceError as exc:
                policy.handle(exc, action="dropped_annotation")
                row["label_status"] = "unlabeled"
    elif ctx.task == "semantic_segmentation":
        from .semantic import semantic_fields

        row.update(semantic_fields(rec, info.width, info.height, class_names=list(ctx.class_names),
                                   ignore=ctx.ignore_index, policy=policy,
                                   read=lambda p: _read(type(rec)(image_id=rec.image_id, path=p), ctx=ctx)))
    else:
        objs = [o for o in (_object(obj, info, policy, rec, names) for obj in rec.objects) if o is not None]
        row["objects"] = {k: [o[k] for o in objs] for k in
                          ("bbox", "category", "area", "iscrowd", "segmentation")}
        row["object_attributes"] = [o["attributes"] for o in objs]
        if rec.objects and not objs and rec.label_status == "labeled":
            row["label_status"] = "unlabeled"
            policy.note(rec.image_id, "all_annotations_dropped", "unlabeled",
                        f"all {len(rec.objects)} objects were dropped; the image is kept as unlabeled",
                        file=rec.source_file)
    if ctx.max_side and max(info.width, info.height) > ctx.max_side:
        data, new_w, new_h = downscale(data, info, ctx.max_side)
        if arena is not None:  # the original's bytes are not stored: the downscaled image takes their place
            arena.rollback(mark)
            data = arena.add(data)
        sx, sy = new_w / info.width, new_h / info.height
        meta["original_size"] = [info.width, info.height]
        row["width"], row["height"] = new_w, new_h
        if "objects" in row:
            _scale_objects(row["objects"], row["object_attributes"], sx, sy, new_w, new_h)
        if row.get("mask"):
            from .semantic import resize_mask
            row["mask"] = {"bytes": resize_mask(row["mask"]["bytes"], new_w, new_h), "path": None}
        if row.get("panoptic"):
            import io

            from PIL import Image
            with Image.open(io.BytesIO(row["panoptic"]["bytes"])) as p:
                out = io.BytesIO()
                p.convert("RGB").resize((new_w, new_h), Image.Resampling.NEAREST).save(out, "PNG")
            row["panoptic"] = {"bytes": out.getvalue(), "path": None}
            for s in row["segments_info"]:
                s["bbox"], s["area"] = list(boxes.scale_box(s["bbox"], sx, sy)), s["area"] * sx * sy
        row["image"] = {"bytes": data, "path": None}
    elif ctx.reference and rec.path is not None and rec.member is None:
        row["image"] = {"bytes": None, "path": os.path.abspath(rec.path)}
    else:
        row["image"] = {"bytes": data, "path": None}
    row["meta"] = meta
    row["_xxh3"] = info.xxh3
    return row


def row_digest_text(row: dict) -> str:
    """The text a row contributes to the dataset's content hash (image hash + annotations)."""
    import xxhash

    ann = {k: v for k, v in row.items() if k not in ("image", "panoptic", "mask", "_xxh3")}
    for k in ("panoptic", "mask"):   # a label image counts by its content
        if row.get(k):
            ann[k] = xxhash.xxh3_128_hexdigest(row[k]["bytes"])
    return row["_xxh3"] + json.dumps(ann, sort_keys=True, default=str)

