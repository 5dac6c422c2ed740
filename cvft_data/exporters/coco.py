"""Export to COCO: instances (boxes, polygons, RLE, keypoints) or panoptic (JSON + PNGs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .. import masks
from ._common import ExportContext, NameAllocator, split_dir, write_image


def _categories(ctx: ExportContext) -> tuple[list[dict], list[int]]:
    """COCO categories, keeping the source's ids when it had unique ones."""
    infos = {c["name"]: c for c in ctx.info.get("categories") or []}
    src_ids = [infos.get(n, {}).get("source_id") for n in ctx.class_names]
    keep = all(isinstance(i, int) for i in src_ids) and len(set(src_ids)) == len(src_ids)
    ids = src_ids if keep else list(range(1, len(ctx.class_names) + 1))
    cats = []
    for name, cid in zip(ctx.class_names, ids):
        extra = {k: v for k, v in infos.get(name, {}).items() if k not in ("name", "source_id", "id")}
        cats.append({"id": cid, "name": name, "supercategory": extra.pop("supercategory", ""), **extra})
    return cats, ids  # type: ignore[return-value]


def _image_entry(row: dict, file_name: str, next_id: int, used: set) -> dict:
    coco = dict((row["meta"] or {}).get("coco") or {})
    iid = coco.pop("id", None)
    if iid is None or iid in used:
        iid = next_id
    used.add(iid)
    return {"id": iid, "file_name": file_name, "width": row["width"], "height": row["height"], **coco}


def export_coco(dataset_dir: Path, out: Path, *, overwrite: bool = False) -> dict:
    """``out/annotations/instances_<split>.json`` + ``out/images/<split>/`` (splits train/val/test);
    panoptic datasets: ``annotations/panoptic_<split>.json`` + ``annotations/panoptic_<split>/*.png``.

    Source ids (categories, images, annotations) are kept when the dataset came from COCO.
    Unlabeled images are left out of instances files (COCO would read them as null images) and
    ledgered; crowd masks are written as uncompressed RLE, the others as compressed RLE.
    """
    ctx = ExportContext(dataset_dir, out, overwrite)
    task = ctx.info["task"]
    if task in ("classification", "multilabel", "semantic_segmentation"):
        ctx.abort()
        from ..errors import UsageError
        if task == "semantic_segmentation":
            raise UsageError("a semantic_segmentation dataset has masks of classes, not objects: use --to masks "
                             "(a mask folder, or --option layout=voc)")
        raise UsageError(f"a {task} dataset has no boxes to export to COCO; use --to csv"
                         + (" or --to imagefolder" if task == "classification" else ""))
    cats, ids = _categories(ctx)
    n_images = n_objects = 0
    try:
        for split in ctx.dataset:
            d = split_dir(split)
            names = NameAllocator()
            images, anns = [], []
            used_img: set = set()
            used_ann: set = set()
            for row in ctx.rows(split):
                if task != "panoptic" and row["label_status"] == "unlabeled":
                    ctx.ledger.note(row["image_id"], "unlabeled_not_exported", "dropped_image",
                                    "unlabeled image left out: COCO would read it as a null image",
                                    annotations=len(row["objects"]["bbox"]))
                    continue
                name = names.name(row["image_id"], row["image"])
                write_image(row["image"], ctx.staging / "images" / d / name)
                img = _image_entry(row, name, len(images) + 1, used_img)
                images.append(img)
                n_images += 1
                if task == "panoptic":
                    if row["panoptic"] is not None:
                        png_name = name.rsplit(".", 1)[0].replace("/", "__") + ".png"
                        write_image(row["panoptic"], ctx.staging / "annotations" / f"panoptic_{d}" / png_name)
                        segs = [{"id": s["id"], "category_id": ids[s["category"]], "area": s["area"],
                                 "bbox": s["bbox"], "iscrowd": int(s["iscrowd"])} for s in row["segments_info"]]
                        anns.append({"image_id": img["id"], "file_name": png_name, "segments_info": segs})
                        n_objects += len(segs)
                    continue
                for a in _annotations(row, img["id"], ids, used_ann, len(used_ann) + 1):
                    anns.append(a)
                    n_objects += 1
            doc: dict[str, Any] = {}
            src_info = (ctx.info.get("source", {}).get("info", {}).get("coco", {}) or {}).get(split, {})
            doc.update({k: v for k, v in src_info.items() if k in ("info", "licenses", "license")})
            doc.update({"images": images, "annotations": anns, "categories": cats})
            prefix = "panoptic" if task == "panoptic" else "instances"
            p = ctx.staging / "annotations" / f"{prefix}_{d}.json"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    except BaseException:
        ctx.abort()
        raise
    return ctx.finish({"format": "coco", "images": n_images, "objects": n_objects})


def _annotations(row: dict, image_id, ids: list[int], used: set, next_id: int):
    o = row["objects"]
    for i, bbox in enumerate(o["bbox"]):
        attrs = dict(row["object_attributes"][i] or {})
        coco = dict(attrs.pop("coco", None) or {})
        keypoints = attrs.pop("keypoints", None)
        aid = coco.pop("id", None)
        if aid is None or aid in used:
            aid = next_id
            while aid in used:
                aid += 1
        used.add(aid)
        next_id = aid + 1
        s = o["segmentation"][i]
        if s["polygons"]:
            seg: Any = [list(p) for p in s["polygons"]]
        elif s["rle"] is not None:
            rle = {"size": list(s["rle"]["size"]), "counts": s["rle"]["counts"]}
            seg = {"size": rle["size"], "counts": masks.to_uncompressed_counts(rle)} if o["iscrowd"][i] else rle
        else:
            seg = []
        ann = {"id": aid, "image_id": image_id, "category_id": ids[o["category"][i]], "segmentation": seg,
               "area": o["area"][i], "bbox": [float(v) for v in bbox], "iscrowd": int(o["iscrowd"][i])}
        if keypoints:
            ann["keypoints"] = keypoints
            ann["num_keypoints"] = coco.pop("num_keypoints", sum(1 for v in keypoints[2::3] if v > 0))
        ann.update(coco)
        if attrs:
            ann["attributes"] = attrs
        yield ann
