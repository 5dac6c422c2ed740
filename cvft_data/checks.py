"""Dataset checks: balance, null images, unlabeled, corrupt files, duplicates, leakage, geometry.

``check(path)`` never raises for data problems: it returns a :class:`CheckReport` whose findings
each name the check, a severity, a sentence and the ``image_id`` rows concerned.

Example:
    >>> import pathlib, tempfile, cvft_data
    >>> from cvft_data.sample import write_coco_sample
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = cvft_data.ingest(write_coco_sample(tmp / "src", n_images=20), tmp / "ds")
    >>> report = check(tmp / "ds", CheckOptions(min_images_per_class=2))
    >>> [f.check for f in report.findings if f.severity == "error"]
    []
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from . import boxes, masks
from .stats import classes_of as _classes_of
from .store import column  # noqa: F401 (re-exported: cvft_data.checks.column)
from .store import rows as _rows

SEVERITIES = ("error", "warning", "info")
#: Every check this module runs, with what it looks for.
CHECKS = {
    "class_balance": "classes with fewer images than the advice (about 1,000 per class), and the imbalance ratio",
    "null_images": "no null (empty) images in a split, or null shares far apart across splits or groups",
    "unlabeled": "images with no annotation at all",
    "corrupt_image": "images that do not fully decode (truncated or corrupt files)",
    "duplicate": "byte-identical images (content hash), within a split",
    "near_duplicate": "visually identical images (perceptual hash), e.g. one re-encoded at another quality",
    "leakage": "the same image, a duplicate or a group in more than one split",
    "box_degenerate": "boxes with zero or negative width or height",
    "box_tiny": "boxes smaller than the minimum side",
    "box_out_of_bounds": "boxes leaving the image",
    "empty_mask": "segmentation masks or polygons with no area",
    "unused_class": "classes declared but never used",
}


@dataclass
class CheckOptions:
    """Thresholds. ``decode=False`` skips the full decode (corrupt and near-duplicate checks)."""

    min_images_per_class: int = 1000
    max_imbalance_ratio: float = 10.0
    null_share_tolerance: float = 0.15
    near_duplicate_distance: int = 4
    min_box_side: float = 2.0
    bounds_tolerance: float = 1.0
    decode: bool = True
    workers: int = 0


@dataclass
class Finding:
    check: str
    severity: str
    message: str
    image_ids: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CheckReport:
    """Findings plus the statistics they came from (used by the HTML report)."""

    path: str
    findings: list[Finding]
    stats: dict[str, Any]

    def by_severity(self, severity: str) -> list[Finding]:
        return [f for f in self.findings if f.severity == severity]

    def failed(self, fail_on: list[str]) -> list[Finding]:
        """Findings that match ``fail_on`` (check names or severities)."""
        return [f for f in self.findings if f.check in fail_on or f.severity in fail_on]

    def to_dict(self) -> dict:
        return {"path": self.path, "findings": [f.to_dict() for f in self.findings], "stats": self.stats}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    def __str__(self) -> str:
        if not self.findings:
            return f"{self.path}: no findings"
        lines = [f"{self.path}: {len(self.findings)} findings "
                 f"({len(self.by_severity('error'))} errors, {len(self.by_severity('warning'))} warnings)"]
        for f in self.findings:
            ids = ", ".join(f.image_ids[:3]) + (f" (+{len(f.image_ids) - 3} more)" if len(f.image_ids) > 3 else "")
            lines.append(f"  [{f.severity}] {f.check}: {f.message}" + (f"\n      rows: {ids}" if ids else ""))
        return "\n".join(lines)


def _hamming_groups(items: list[tuple[str, str, int]], max_distance: int) -> list[list[tuple[str, str, int]]]:
    """Clusters of (split, image_id, dhash) within ``max_distance`` bits, found through 8 bands of
    8 bits: two hashes within 7 bits share at least one band exactly (pigeonhole), so only
    band-mates are compared."""
    parent = list(range(len(items)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    for idx, (_, _, h) in enumerate(items):
        for band in range(8):
            buckets[(band, (h >> (8 * band)) & 0xFF)].append(idx)
    for members in buckets.values():
        if len(members) > 2000:  # a flat colour band: too common to mean anything
            continue
        for a_i, a in enumerate(members):
            for b in members[a_i + 1:]:
                if find(a) != find(b) and bin(items[a][2] ^ items[b][2]).count("1") <= max_distance:
                    parent[find(a)] = find(b)
    clusters: dict[int, list] = defaultdict(list)
    for idx in range(len(items)):
        clusters[find(idx)].append(items[idx])
    return [c for c in clusters.values() if len(c) > 1]


def check(path: str | os.PathLike, options: CheckOptions | None = None) -> CheckReport:
    """Run every check on the cvft dataset at ``path``."""
    from .imagescan import scan_dataset
    from .store import open_dataset as load
    from .store import read_info

    opts = options or CheckOptions()
    info = read_info(path)
    dsd = load(path)
    task, names = info["task"], info["classes"]
    findings: list[Finding] = []
    stats: dict[str, Any] = {"task": task, "classes": names, "splits": {}, "groups": {}}

    per_split_class_images: dict[str, Counter] = {}
    per_split_class_objects: dict[str, Counter] = {}
    image_splits: dict[str, set] = defaultdict(set)
    group_splits: dict[str, set] = defaultdict(set)
    group_null: dict[str, Counter] = defaultdict(Counter)
    unlabeled: list[str] = []
    degenerate, tiny, oob, empty_masks = [], [], [], []
    box_sizes: list[tuple[float, float]] = []
    boxes_per_image: Counter = Counter()
    cols = ["image_id", "width", "height", "label_status", "group", "label", "labels", "objects", "segments_info"]
    for split in dsd:
        img_counter, obj_counter = Counter(), Counter()
        n = n_null = 0
        for row in _rows(dsd[split], cols):
            n += 1
            iid = row["image_id"]
            image_splits[iid].add(split)
            status = row["label_status"]
            n_null += status == "empty"
            if status == "unlabeled":
                unlabeled.append(iid)
            g = row.get("group")
            if g:
                group_splits[g].add(split)
                group_null[g][status] += 1
            classes = _classes_of(row, task)
            img_counter.update(set(classes))
            obj_counter.update(classes)
            objs = row.get("objects")
            if objs:
                boxes_per_image[len(objs["bbox"])] += 1
                for k, b in enumerate(objs["bbox"]):
                    ref = f"{iid}#object {k}"
                    if b[2] <= 0 or b[3] <= 0:
                        degenerate.append(ref)
                    elif min(b[2], b[3]) < opts.min_box_side:
                        tiny.append(ref)
                    if boxes.out_of_bounds(tuple(b), row["width"], row["height"], opts.bounds_tolerance):
                        oob.append(ref)
                    box_sizes.append((float(b[2]), float(b[3])))
                    seg = objs["segmentation"][k]
                    if seg["rle"] is not None and masks.area(seg["rle"]) == 0:
                        empty_masks.append(ref)
                    elif seg["polygons"] and sum(boxes.polygon_area(p) for p in seg["polygons"]) <= 0:
                        empty_masks.append(ref)
            elif task in ("detection", "instance_segmentation"):
                boxes_per_image[0] += 1
        per_split_class_images[split], per_split_class_objects[split] = img_counter, obj_counter
        stats["splits"][split] = {"images": n, "null": n_null, "null_share": n_null / n if n else 0.0,
                                  "class_images": {names[c]: img_counter[c] for c in range(len(names))},
                                  "class_objects": {names[c]: obj_counter[c] for c in range(len(names))}}
    stats["boxes_per_image"] = dict(sorted(boxes_per_image.items()))
    stats["box_sizes"] = box_sizes[:20000]
    stats["groups"] = {g: dict(c) for g, c in list(group_null.items())[:500]}

    # class balance
    total_images: Counter = sum(per_split_class_images.values(), Counter())
    for split, counter in per_split_class_images.items():
        low = [names[c] for c in range(len(names)) if 0 < counter[c] < opts.min_images_per_class]
        if low:
            findings.append(Finding("class_balance", "warning",
                                    f"{split}: {len(low)} of {len(names)} classes have fewer than "
                                    f"{opts.min_images_per_class} images: " + ", ".join(
                                        f"{n} ({counter[names.index(n)]})" for n in low[:10]),
                                    details={"split": split, "classes": {n: counter[names.index(n)] for n in low}}))
    used = [c for c in range(len(names)) if total_images[c]]
    if len(used) > 1:
        ratio = max(total_images[c] for c in used) / min(total_images[c] for c in used)
        stats["imbalance_ratio"] = ratio
        if ratio > opts.max_imbalance_ratio:
            big = max(used, key=lambda c: total_images[c])
            small = min(used, key=lambda c: total_images[c])
            findings.append(Finding("class_balance", "warning",
                                    f"imbalance ratio {ratio:.1f}: {names[big]} has {total_images[big]} images, "
                                    f"{names[small]} {total_images[small]}; use class weights or a balanced sampler",
                                    details={"ratio": ratio}))
    unused = [names[c] for c in range(len(names)) if not total_images[c]]
    if unused:
        findings.append(Finding("unused_class", "warning", f"{len(unused)} declared classes are never used: "
                                + ", ".join(unused[:20]), details={"classes": unused}))

    # null images
    shares = {s: v["null_share"] for s, v in stats["splits"].items() if v["images"]}
    if task != "panoptic":
        for s, share in shares.items():
            if share == 0:
                findings.append(Finding("null_images", "warning",
                                        f"{s} has no null (empty) images: the model never sees the background alone",
                                        details={"split": s}))
        if len(shares) > 1 and max(shares.values()) - min(shares.values()) > opts.null_share_tolerance:
            findings.append(Finding("null_images", "warning", "null shares differ across splits: " + ", ".join(
                f"{s} {v:.0%}" for s, v in shares.items()), details={"shares": shares}))
    if unlabeled:
        findings.append(Finding("unlabeled", "warning", f"{len(unlabeled)} images have no annotation at all "
                                "(neither labelled nor verified empty)", image_ids=unlabeled))

    # leakage from ids and groups
    leaked = sorted(i for i, s in image_splits.items() if len(s) > 1)
    if leaked:
        findings.append(Finding("leakage", "error", f"{len(leaked)} images are in more than one split",
                                image_ids=leaked, details={"kind": "image_id"}))
    leaked_groups = {g: sorted(s) for g, s in group_splits.items() if len(s) > 1}
    if leaked_groups:
        findings.append(Finding("leakage", "error", f"{len(leaked_groups)} groups straddle splits: " + ", ".join(
            f"{g} ({'/'.join(s)})" for g, s in list(leaked_groups.items())[:10]),
            details={"kind": "group", "groups": leaked_groups}))

    # geometry
    for name, refs, sev, text in (("box_degenerate", degenerate, "error", "boxes with zero or negative size"),
                                  ("box_tiny", tiny, "warning", f"boxes with a side under {opts.min_box_side} px"),
                                  ("box_out_of_bounds", oob, "error", "boxes leave the image"),
                                  ("empty_mask", empty_masks, "warning", "masks or polygons with no area")):
        if refs:
            findings.append(Finding(name, sev, f"{len(refs)} {text}", image_ids=refs))

    # decode pass: corrupt files, exact and near duplicates
    if opts.decode:
        scans = scan_dataset(str(path), {s: len(dsd[s]) for s in dsd}, workers=opts.workers)
        ids = {s: column(dsd[s], "image_id") for s in dsd}
        corrupt = [(ids[s][i], r.error) for s in dsd for i, r in enumerate(scans[s]) if r.error]
        if corrupt:
            findings.append(Finding("corrupt_image", "error", f"{len(corrupt)} images do not decode: "
                                    + "; ".join(f"{i}: {e}" for i, e in corrupt[:3]),
                                    image_ids=[i for i, _ in corrupt], details={"errors": dict(corrupt)}))
        by_hash: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for s in dsd:
            for i, r in enumerate(scans[s]):
                by_hash[r.xxh3].append((s, ids[s][i]))
        exact_clusters = [v for v in by_hash.values() if len(v) > 1]
        for cluster in exact_clusters:
            splits = sorted({s for s, _ in cluster})
            findings.append(Finding("leakage" if len(splits) > 1 else "duplicate",
                                    "error" if len(splits) > 1 else "warning",
                                    f"{len(cluster)} byte-identical images" + (
                                        f" across {'/'.join(splits)}" if len(splits) > 1 else f" in {splits[0]}"),
                                    image_ids=[i for _, i in cluster],
                                    details={"kind": "exact_duplicate", "splits": splits}))
        exact_sets = [{i for _, i in c} for c in exact_clusters]
        items = [(s, ids[s][i], r.dhash) for s in dsd for i, r in enumerate(scans[s]) if r.dhash is not None]
        for cluster in _hamming_groups(items, opts.near_duplicate_distance):
            members = {i for _, i, _ in cluster}
            if any(members <= e for e in exact_sets):
                continue  # already reported as exact duplicates
            splits = sorted({s for s, _, _ in cluster})
            findings.append(Finding("near_duplicate", "error" if len(splits) > 1 else "warning",
                                    f"{len(cluster)} near-identical images (perceptual hash within "
                                    f"{opts.near_duplicate_distance} bits)" + (
                                        f" across {'/'.join(splits)}" if len(splits) > 1 else f" in {splits[0]}"),
                                    image_ids=sorted(members), details={"splits": splits}))
    order = {s: i for i, s in enumerate(SEVERITIES)}
    findings.sort(key=lambda f: (order[f.severity], f.check))
    return CheckReport(str(path), findings, stats)

