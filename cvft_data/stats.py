"""Per-split statistics, computed one way for ``cvft.json`` (the builder), ``cvft split``, the
checks and the CLI: images, objects, label statuses and images (or objects) per class.

Example:
    >>> s = SplitStats("detection")
    >>> s.add({"label_status": "labeled", "objects": {"category": [0, 0, 1]}})
    >>> s.add({"label_status": "empty", "objects": {"category": []}})
    >>> s.as_info(["cat", "dog"])
    {'images': 2, 'objects': 3, 'labeled': 1, 'empty': 1, 'unlabeled': 0, 'class_counts': {'cat': 2, 'dog': 1}}
"""

from __future__ import annotations

from collections import Counter

from .vocabulary import LABEL_STATUSES

#: Row columns :meth:`SplitStats.add` reads.
STATS_COLUMNS = ["label_status", "label", "labels", "objects", "segments_info", "mask_classes"]


def classes_of(row: dict, task: str) -> list[int]:
    """The class ids a row carries: its label, labels, object or segment categories."""
    if task == "classification":
        return [row["label"]] if row.get("label") is not None else []
    if task == "multilabel":
        return list(row.get("labels") or [])
    if task == "panoptic":
        return [s["category"] for s in row.get("segments_info") or []]
    if task == "semantic_segmentation":
        return list(row.get("mask_classes") or [])
    return list((row.get("objects") or {}).get("category") or [])


class SplitStats:
    """Counts of one split, added row by row and merged across shards. Class counts are images per
    class for (multi-label) classification, objects or segments per class otherwise; rows may name
    classes by id (read from a dataset) or by name (the builder's rows)."""

    def __init__(self, task: str):
        self.task = task
        self.counts: Counter = Counter()
        self.classes: Counter = Counter()

    def add(self, row: dict) -> None:
        self.counts["images"] += 1
        self.counts[row["label_status"]] += 1
        ids = classes_of(row, self.task)
        if self.task in ("classification", "multilabel", "semantic_segmentation"):   # images per class
            self.classes.update(set(ids))
        else:
            self.counts["objects"] += len(ids)
            self.classes.update(ids)

    def merge(self, counts: dict, classes: dict) -> None:
        """Add a shard's :meth:`to_manifest` halves."""
        self.counts.update(counts)
        self.classes.update(classes)

    def to_manifest(self) -> tuple[dict, dict]:
        return dict(self.counts), dict(self.classes)

    def as_info(self, class_names: list[str]) -> dict:
        """The split's entry in ``cvft.json`` (``predicted`` only when there are machine labels)."""
        out = {"images": self.counts["images"], "objects": self.counts["objects"]}
        for status in LABEL_STATUSES:
            if status != "predicted" or self.counts[status]:
                out[status] = self.counts[status]
        # rows read from Arrow carry class ids, the builder's rows class names: either counts
        out["class_counts"] = {n: self.classes[i] + self.classes[n] for i, n in enumerate(class_names)}
        return out


def empty_info(class_names: list[str]) -> dict:
    return SplitStats("classification").as_info(class_names)
