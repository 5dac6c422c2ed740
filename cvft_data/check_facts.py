"""The one statistics pass the checks share: per split and class, per group, the images no one
labelled, the boxes and masks whose geometry is off. Reads the metadata columns only (no image is
decoded here; the decode pass lives in :mod:`cvft_data.check_rules`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from . import boxes, masks, progress
from .camera_health import Capture, by_deployment, parse_time
from .stats import classes_of
from .store import rows


@dataclass
class Finding:
    """One finding: which check, how bad, a sentence, the rows concerned and details."""

    check: str
    severity: str
    message: str
    image_ids: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)



COLUMNS = ["image_id", "width", "height", "label_status", "group", "label", "labels", "objects", "segments_info",
           "mask_classes"]


@dataclass
class Facts:
    """What the checks look at, gathered in one pass over the rows."""

    path: str
    dataset: Any                  # the DatasetDict (for the decode pass)
    task: str
    names: list[str]
    stats: dict[str, Any]         # also what the HTML report plots
    class_images: dict[str, Counter] = field(default_factory=dict)    # split -> class id -> images
    class_objects: dict[str, Counter] = field(default_factory=dict)   # split -> class id -> objects
    image_splits: dict[str, set] = field(default_factory=lambda: defaultdict(set))
    group_splits: dict[str, set] = field(default_factory=lambda: defaultdict(set))
    group_null: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    unlabeled: list[str] = field(default_factory=list)
    degenerate: list[str] = field(default_factory=list)
    tiny: list[str] = field(default_factory=list)
    out_of_bounds: list[str] = field(default_factory=list)
    empty_masks: list[str] = field(default_factory=list)
    #: camera-trap datasets: deployment (or camera folder) -> its captures; (split, row) -> capture,
    #: for the decode pass to add brightness and colour
    captures: dict[str, list] = field(default_factory=dict)
    capture_rows: dict[tuple[str, int], Any] = field(default_factory=dict)
    scans: dict[str, list] | None = None


def gather(path: str, dsd, task: str, names: list[str], *, min_box_side: float, bounds_tolerance: float) -> Facts:
    facts = Facts(str(path), dsd, task, names, {"task": task, "classes": names, "splits": {}, "groups": {}})
    box_sizes: list[tuple[float, float]] = []
    boxes_per_image: Counter = Counter()
    cameras = []
    for split in dsd:
        img_counter, obj_counter = Counter(), Counter()
        n = n_null = 0
        for row in progress.bar(rows(dsd[split], COLUMNS + ["meta"]), total=len(dsd[split]), desc=f"check {split}"):
            n += 1
            meta = row.get("meta") or {}
            dep = meta.get("deployment") or meta.get("camera")
            if dep:
                cap = Capture(row["image_id"], parse_time(meta), row["label_status"],
                              [names[c] for c in classes_of(row, task)])
                cameras.append((dep, cap))
                facts.capture_rows[(split, n - 1)] = cap
            iid = row["image_id"]
            facts.image_splits[iid].add(split)
            status = row["label_status"]
            n_null += status == "empty"
            if status == "unlabeled":
                facts.unlabeled.append(iid)
            g = row.get("group")
            if g:
                facts.group_splits[g].add(split)
                facts.group_null[g][status] += 1
            classes = classes_of(row, task)
            img_counter.update(set(classes))
            obj_counter.update(classes)
            objs = row.get("objects")
            if objs:
                boxes_per_image[len(objs["bbox"])] += 1
                for k, b in enumerate(objs["bbox"]):
                    _geometry(facts, f"{iid}#object {k}", b, objs["segmentation"][k], row, min_box_side,
                              bounds_tolerance)
                    box_sizes.append((float(b[2]), float(b[3])))
            elif task in ("detection", "instance_segmentation"):
                boxes_per_image[0] += 1
        facts.class_images[split], facts.class_objects[split] = img_counter, obj_counter
        facts.stats["splits"][split] = {"images": n, "null": n_null, "null_share": n_null / n if n else 0.0,
                                        "class_images": {names[c]: img_counter[c] for c in range(len(names))},
                                        "class_objects": {names[c]: obj_counter[c] for c in range(len(names))}}
    facts.captures = by_deployment(cameras)
    facts.stats["boxes_per_image"] = dict(sorted(boxes_per_image.items()))
    facts.stats["box_sizes"] = box_sizes[:20000]
    facts.stats["groups"] = {g: dict(c) for g, c in list(facts.group_null.items())[:500]}
    return facts


def _geometry(facts: Facts, ref: str, b, seg: dict, row: dict, min_box_side: float, tolerance: float) -> None:
    if b[2] <= 0 or b[3] <= 0:
        facts.degenerate.append(ref)
    elif min(b[2], b[3]) < min_box_side:
        facts.tiny.append(ref)
    if boxes.out_of_bounds(tuple(b), row["width"], row["height"], tolerance):
        facts.out_of_bounds.append(ref)
    if seg["rle"] is not None and masks.area(seg["rle"]) == 0:
        facts.empty_masks.append(ref)
    elif seg["polygons"] and sum(boxes.polygon_area(p) for p in seg["polygons"]) <= 0:
        facts.empty_masks.append(ref)
