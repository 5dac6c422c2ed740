"""COCO parsing, pure: categories, one annotation (box, polygons, RLE, keypoints) -> an
:class:`~cvft_data.records.ObjectRecord`, annotations grouped by image, split names from file
names. The COCO-family connectors (COCO, Roboflow COCO, Weed-AI, COCO Camera Traps, makesense
JSON) share it.

Example:
    >>> obj, derived = parse_annotation({"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4]},
    ...                                 {3: "dog"}, file="instances.json", image_size=(24, 16))
    >>> obj.category, obj.bbox, derived
    ('dog', (1.0, 2.0, 3.0, 4.0), ['area'])
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from cvft_data import masks
from cvft_data.boxes import polygon_area, polygons_bbox
from cvft_data.errors import (
    AnnotationError,
    GeometryError,
    MalformedFileError,
    SourceError,
    UnknownClassError,
)
from cvft_data.vocabulary import canonical_split, is_split_name

from .base import ImageRecord, ObjectRecord

_STANDARD_ANN_KEYS = {"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation", "attributes",
                      "keypoints", "num_keypoints"}
_STANDARD_IMG_KEYS = {"file_name", "width", "height"}
# Which annotation file wins when several describe the same split (instances carry the most).
_PREFIX_PRIORITY = ("instances", "person_keypoints", "stuff")


def split_of_file(path: Path) -> str:
    """``instances_val2017.json`` -> ``validation``; ``train/_annotations.coco.json`` -> ``train``;
    a file with no split in its name -> ``train``."""
    if path.name.startswith("_annotations") and is_split_name(path.parent.name):
        return canonical_split(path.parent.name)
    token = path.stem.split("_")[-1]
    m = re.fullmatch(r"(train|val|valid|validation|test|dev)(\d*)", token.lower())
    if m:
        return canonical_split(m.group(1))
    return "train"


def _split_token(path: Path) -> str:
    if path.name.startswith("_annotations"):
        return path.parent.name
    return path.stem.split("_")[-1]


def parse_categories(data: dict, file: str) -> list[dict]:
    cats = data.get("categories")
    if cats is None:
        raise MalformedFileError("no 'categories' list", file=file, item="categories",
                                 expected="a COCO document with images, annotations and categories")
    out = []
    for i, c in enumerate(cats):
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            raise MalformedFileError(f"category #{i} has no id or name", file=file, item=f"categories[{i}]",
                                     expected='{"id": int, "name": str}')
        out.append(c)
    return out


def is_id(value: Any) -> bool:
    """A usable COCO id: an integer or a string (never a list, a dict, a float or a bool), and an
    integer within 64 bits (a bigger one cannot be written to Arrow and read back)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(1 << 63) <= value < (1 << 63)
    return isinstance(value, str)


def sanitize_ids(doc: dict, *, file: str, policy) -> dict:
    """``doc`` with every image and category whose id is unusable or declared twice taken out,
    each one raised (or ledgered under skip). Their annotations then refer to nothing and are
    ledgered one by one where they are grouped: a duplicate id is never resolved by moving boxes
    to another image or class. Works on a shallow copy; the parsed source is left as it was."""
    out = dict(doc)
    for key, what, action in (("categories", "category", "dropped_class"), ("images", "image", "dropped_image")):
        entries = doc.get(key)
        if not isinstance(entries, list):
            continue
        counts: dict[Any, int] = defaultdict(int)
        for e in entries:
            if isinstance(e, dict) and is_id(e.get("id")):
                counts[e["id"]] += 1
        kept = []
        for i, e in enumerate(entries):
            eid = e.get("id") if isinstance(e, dict) else None
            name = (e.get("name") or e.get("file_name")) if isinstance(e, dict) else None
            label = f"{what} {eid!r}" + (f" ({name})" if name else "")
            if isinstance(e, dict) and "id" in e and not is_id(eid):
                policy.handle(MalformedFileError(f"{what} id {str(eid)[:40]} is not an integer or a string",
                                                 file=file, item=f"{key}[{i}]",
                                                 expected="an integer id (within 64 bits) or a string"), action=action)
                continue
            if isinstance(e, dict) and is_id(eid) and counts[eid] > 1:
                policy.handle(MalformedFileError(f"{what} id {eid!r} is declared {counts[eid]} times", file=file,
                                                 item=label, expected=f"one {what} per id"), action=action)
                continue
            kept.append(e)
        out[key] = kept
    return out


def _numbers(values: Any, n: int | None = None) -> list[float] | None:
    if not isinstance(values, (list, tuple)) or (n is not None and len(values) != n):
        return None
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        return None


def parse_annotation(ann: dict, id_to_name: dict[Any, str], *, file: str, image_size: tuple[int, int] | None
                     ) -> tuple[ObjectRecord, list[str]]:
    """One COCO annotation -> :class:`ObjectRecord`, plus the names of fields it had to derive.

    Raises :class:`AnnotationError` (or a subclass) when the annotation cannot be used.
    """
    ref = f"annotation {str(ann.get('id', '?'))[:40]}"
    if "category_id" not in ann or ann["category_id"] is None:
        raise AnnotationError("annotation has no category_id", file=file, item=ref,
                              expected="a category_id from the categories list")
    cid = ann["category_id"]
    if not is_id(cid) or cid not in id_to_name:
        raise UnknownClassError(f"category_id {cid} is not declared", file=file, item=ref,
                                expected=f"one of the declared ids {sorted(id_to_name, key=str)}")
    derived: list[str] = []
    polygons: list[list[float]] = []
    rle = None
    seg = ann.get("segmentation")
    if isinstance(seg, dict):
        if "counts" not in seg or "size" not in seg:
            raise GeometryError("RLE segmentation without counts/size", file=file, item=ref,
                                expected='{"size": [h, w], "counts": ...}')
        if image_size and [int(v) for v in seg["size"]] != [image_size[1], image_size[0]]:
            raise GeometryError(f"RLE size {seg['size']} differs from the image size (h, w) "
                                f"{[image_size[1], image_size[0]]}", file=file, item=ref,
                                expected="an RLE over the whole image")
        try:
            rle = masks.to_compressed(seg)
        except Exception as exc:
            raise GeometryError(f"RLE does not decode: {exc}", file=file, item=ref,
                                expected="a valid COCO RLE") from None
    elif isinstance(seg, list):
        for part in seg:
            if part in ([], None):
                continue  # "[[]]" and "[]" mean "box only"
            nums = _numbers(part)
            if nums is None or len(nums) < 6 or len(nums) % 2:
                raise GeometryError(f"polygon with {len(part) if isinstance(part, list) else '?'} values",
                                    file=file, item=ref, expected="at least 3 (x, y) pairs")
            polygons.append(nums)
    elif seg is not None:
        raise GeometryError(f"segmentation of type {type(seg).__name__}", file=file, item=ref,
                            expected="a list of polygons or an RLE dict")
    bbox = _numbers(ann.get("bbox"), 4) if ann.get("bbox") not in (None, []) else None
    if ann.get("bbox") not in (None, []) and bbox is None:
        raise GeometryError(f"bbox {ann.get('bbox')!r} is not 4 numbers", file=file, item=ref,
                            expected="[x, y, width, height]")
    if bbox is None:
        if polygons:
            bbox = list(polygons_bbox(polygons))
        elif rle is not None:
            bbox = list(masks.bbox(rle))
        else:
            raise GeometryError("annotation has neither bbox nor segmentation", file=file, item=ref,
                                expected="a bbox or a segmentation")
        derived.append("bbox")
    if bbox[2] <= 0 or bbox[3] <= 0:
        raise GeometryError(f"degenerate box {bbox} (width or height <= 0)", file=file, item=ref,
                            expected="a box with positive width and height")
    area = ann.get("area")
    if area is None:
        area = masks.area(rle) if rle else (sum(polygon_area(p) for p in polygons) if polygons
                                            else bbox[2] * bbox[3])
        derived.append("area")
    attributes: dict[str, Any] = dict(ann["attributes"]) if isinstance(ann.get("attributes"), dict) else {}
    extras = {k: v for k, v in ann.items() if k not in _STANDARD_ANN_KEYS}
    coco = {"id": ann.get("id"), **extras}
    if "num_keypoints" in ann:
        coco["num_keypoints"] = ann["num_keypoints"]
    attributes["coco"] = coco
    keypoints = _numbers(ann.get("keypoints")) if ann.get("keypoints") else None
    obj = ObjectRecord(category=id_to_name[cid], bbox=tuple(bbox), polygons=polygons, rle=rle,
                       iscrowd=bool(ann.get("iscrowd", 0)), area=float(area), attributes=attributes,
                       keypoints=keypoints, ref=ref)
    return obj, derived


def annotations_by_image(doc: dict, *, file: str, policy) -> dict[Any, list[dict]]:
    """COCO-family annotations grouped by ``image_id``; one whose image is not declared goes to
    ``policy`` (dropped)."""
    image_ids = {img.get("id") for img in doc.get("images") or [] if isinstance(img, dict) and is_id(img.get("id"))}
    by_image: dict[Any, list[dict]] = defaultdict(list)
    for ann in doc.get("annotations") or ():
        iid = ann.get("image_id") if isinstance(ann, dict) else None
        if not is_id(iid) or iid not in image_ids:
            ref = ann.get("id", "?") if isinstance(ann, dict) else "?"
            policy.handle(AnnotationError(f"image_id {iid!r} is not in the images list", file=file,
                                          item=f"annotation {ref}", expected="an image_id of a declared image"),
                          action="dropped_annotation")
            continue
        by_image[iid].append(ann)
    return by_image


def add_annotations(rec: ImageRecord, anns: list[dict], id_to_name: dict[Any, str], *, file: str,
                    policy) -> None:
    """Parse ``anns`` into ``rec.objects`` (bad ones to ``policy``) and set ``rec.label_status``:
    labeled, empty (no annotations: COCO's null image) or unlabeled (all of them dropped)."""
    for ann in anns:
        try:
            obj, derived = parse_annotation(ann, id_to_name, file=file, image_size=rec.declared_size)
        except SourceError as exc:
            exc.item = f"{rec.image_id}#{exc.item}"
            policy.handle(exc, action="dropped_annotation")
            continue
        if "bbox" in derived:
            rec.note("bbox_derived", "derived", f"annotation {ann.get('id')}: bbox computed from its segmentation")
        rec.objects.append(obj)
    if rec.objects:
        rec.label_status = "labeled"
    elif anns:
        rec.label_status = "unlabeled"  # it had annotations, none usable
        rec.note("all_annotations_dropped", "unlabeled",
                 f"all {len(anns)} annotations were dropped; the image is kept as unlabeled")
    else:
        rec.label_status = "empty"
