"""What ``cvft view`` filters and shows, gathered once from the dataset's metadata columns (no image
is decoded here): per row its split, id, label status, group and classes; per image the check
findings, ledger entries and predictions that name it.

Example:
    >>> import pathlib, tempfile, cvft_data
    >>> from cvft_data.sample import write_coco_sample
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = cvft_data.ingest(write_coco_sample(tmp / "src", n_images=8), tmp / "ds")
    >>> index = ViewIndex.build(tmp / "ds", findings=[])
    >>> len(index.select()), index.select(status="empty") == [e for e in index.entries if e.status == "empty"]
    (8, True)
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..stats import classes_of
from ..store import open_dataset, read_info, read_ledger, rows

#: the columns the index reads (never ``image``)
COLUMNS = ["image_id", "label_status", "group", "label", "labels", "objects", "segments_info", "mask_classes", "meta"]


@dataclass
class Entry:
    split: str
    index: int
    image_id: str
    status: str
    group: str | None
    classes: frozenset[int]
    findings: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.split}/{self.index}"


def image_of(item: str) -> str:
    """The image an item names: ``img.jpg#object 2`` -> ``img.jpg``."""
    return item.split("#", 1)[0]


def suffix_map(image_ids) -> dict[str, str]:
    """Each image id under every path suffix it ends with, where that suffix is unique: predictions
    made on ``src/images`` (ids ``train/a.jpg``) join a dataset ingested from ``src``
    (``images/train/a.jpg``).

    >>> suffix_map(["images/train/a.jpg", "images/val/a.jpg"])["train/a.jpg"]
    'images/train/a.jpg'
    >>> "a.jpg" in suffix_map(["images/train/a.jpg", "images/val/a.jpg"])
    False
    """
    found: dict[str, str | None] = {}
    for iid in image_ids:
        parts = iid.split("/")
        for k in range(1, len(parts)):
            key = "/".join(parts[k:])
            found[key] = None if key in found and found[key] != iid else iid
    return {k: v for k, v in found.items() if v is not None}


@dataclass
class ViewIndex:
    path: Path
    task: str
    classes: list[str]
    splits: list[str]
    entries: list[Entry]
    findings: list = field(default_factory=list)          # the check's Finding objects
    ledger: dict[str, list[dict]] = field(default_factory=dict)   # image_id -> its ledger entries
    predictions: dict[str, tuple[str, int]] = field(default_factory=dict)   # image_id -> (split, row) there
    prediction_classes: list[str] = field(default_factory=list)
    predictions_path: Path | None = None
    by_id: dict[str, list[Entry]] = field(default_factory=dict)

    @classmethod
    def build(cls, path: str | os.PathLike, *, findings: list, predictions: str | os.PathLike | None = None
              ) -> ViewIndex:
        from .. import progress

        path = Path(path)
        info = read_info(path)
        dsd = open_dataset(path)
        flagged: dict[str, set[str]] = defaultdict(set)
        for f in findings:
            for iid in f.image_ids:
                flagged[image_of(iid)].add(f.check)
        entries, by_id = [], defaultdict(list)
        for split in dsd:
            for i, row in enumerate(progress.bar(rows(dsd[split], COLUMNS), total=len(dsd[split]),
                                                 desc=f"view: index {split}")):
                e = Entry(split, i, row["image_id"], row["label_status"], row.get("group"),
                          frozenset(classes_of(row, info["task"])), tuple(sorted(flagged.get(row["image_id"], ()))))
                entries.append(e)
                by_id[e.image_id].append(e)
        ledger: dict[str, list[dict]] = defaultdict(list)
        for entry in read_ledger(path):
            ledger[image_of(entry.item)].append(entry.to_dict())
        index = cls(path, info["task"], list(info["classes"]), list(dsd), entries, list(findings), dict(ledger),
                    by_id=dict(by_id))
        if predictions is not None:
            index.add_predictions(Path(predictions))
        return index

    def add_predictions(self, path: Path) -> None:
        """Join a ``cvft predict --format dataset`` output by image id."""
        from ..errors import UsageError

        info = read_info(path)
        if info["task"] != self.task and {info["task"], self.task} - {"detection", "instance_segmentation"}:
            raise UsageError(f"--predictions {path} holds {info['task']} predictions; this dataset is {self.task}")
        self.prediction_classes = list(info["classes"])
        self.predictions_path = path
        ours = suffix_map(self.by_id)
        seen = 0
        for split, ds in open_dataset(path).items():
            for i, iid in enumerate(ds["image_id"]):
                seen += 1
                mine = iid if iid in self.by_id else ours.get(iid)
                if mine is not None:
                    self.predictions[mine] = (split, i)
        if seen and not self.predictions:
            raise UsageError(f"--predictions {path}: none of its {seen} image ids is in this dataset; "
                             "predict on the same source the dataset was ingested from")

    def select(self, *, split: str | None = None, cls: int | None = None, status: str | None = None,
               group: str | None = None, finding: str | None = None) -> list[Entry]:
        """The entries that pass every filter given (None: no filter)."""
        return [e for e in self.entries
                if (split is None or e.split == split) and (cls is None or cls in e.classes)
                and (status is None or e.status == status) and (group is None or e.group == group)
                and (finding is None or finding in e.findings)]

    def facets(self) -> dict:
        """The values each filter offers, with counts."""
        def count(values):
            out: dict = defaultdict(int)
            for v in values:
                out[v] += 1
            return dict(sorted(out.items(), key=lambda kv: str(kv[0])))

        return {"split": count(e.split for e in self.entries),
                "class": {self.classes[c]: n for c, n in sorted(count(c for e in self.entries for c in e.classes).items())},
                "status": count(e.status for e in self.entries),
                "group": count(e.group for e in self.entries if e.group),
                "finding": count(f for e in self.entries for f in e.findings)}

    def related(self, image_id: str) -> list[dict]:
        """The findings that name ``image_id``, each with the other images to compare it with (its
        near-duplicate partners, its exact copies; at most 8)."""
        out = []
        for f in self.findings:
            members = {image_of(i) for i in f.image_ids}
            if image_id not in members:
                continue
            if f.details.get("pairs"):
                partners = [b if a == image_id else a for a, b, _ in f.details["pairs"] if image_id in (a, b)]
            elif f.check in ("duplicate", "leakage") and f.details.get("kind") != "group":
                partners = sorted(members - {image_id})
            else:
                partners = []
            out.append({"check": f.check, "severity": f.severity, "message": f.message,
                        "compare": [self.ref(p) for p in partners[:8] if self.ref(p)]})
        return out

    def ref(self, image_id: str) -> dict | None:
        """Where ``image_id`` is (its first row)."""
        found = self.by_id.get(image_id)
        return {"key": found[0].key, "image_id": image_id, "split": found[0].split} if found else None
