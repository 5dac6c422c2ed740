"""COCO Camera Traps (LILA's camera-trap JSON): images with locations, sequences and capture times,
species per image and optional boxes.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from cvft_data.errors import (
    MalformedFileError,
    UnknownClassError,
)

from ._json import load_json
from .base import Confidence, Connector, ImageRecord, ObjectRecord, Score, read_prefix, register
from .coco import CocoConnector, _numbers, annotations_by_image
from .coco_parse import is_id, parse_categories, sanitize_ids
from .megadetector import DEFAULT_THRESHOLD, threshold_of


@register
class CocoCameraTrapsConnector(Connector):
    """COCO Camera Traps JSON (LILA): string ids, ``location``, ``datetime``, ``seq_id``, category 0
    ``empty``, image-level or box annotations, ``sequence_level_annotation``.

    ::

        root/
        ├── dataset.json        {"images": [{"id": "...", "file_name", "location", "datetime", "seq_id"}],
        └── <file_name>...       "annotations": [{"image_id", "category_id", "bbox"?}], "categories"}

    ``location`` is the ``group`` (a split never mixes one location into train and test). With boxes
    the dataset is a detection dataset; with image-level labels only, classification (multi-label
    when an image has several). Labels that came from the sequence are listed in
    ``meta.sequence_level`` so they can be told from image-level ones.
    """

    name = "coco_camera_traps"
    accepts_file = True
    summary = "COCO Camera Traps JSON (LILA: location, datetime, seq_id, empty category)"
    options_help = {"images": "folder holding the images (default: the JSON's folder)",
                    "threshold": "confidence cut for annotations that carry a detection confidence (MegaDetector "
                                 f"boxes converted to COCO); default: the file's typical threshold, else {DEFAULT_THRESHOLD}"}

    @classmethod
    def _json(cls, root: Path) -> Path | None:
        cands = [root] if root.is_file() else sorted(root.glob("*.json")) if root.is_dir() else []
        for c in cands:
            head = read_prefix(c, 65536)
            if '"images"' in head and ('"seq_id"' in head or '"location"' in head or '"isempty"' in head
                                       or '"seq_num_frames"' in head):
                return c
        return None

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        j = cls._json(root)
        return Confidence(Score.STRUCTURE, f"{j.name} has COCO Camera Traps keys") if j else \
            Confidence(Score.NO, "no JSON with images carrying location/seq_id")

    def __init__(self, root, **kwargs):
        root = Path(root)
        super().__init__(root, **kwargs)
        self.file = self._json(root) if not root.is_file() else root
        if self.file is None:
            raise MalformedFileError("no COCO Camera Traps JSON", file=str(root), item=str(root),
                                     expected="a JSON whose images have location/seq_id")
        self.images_dir = Path(self.options.get("images", self.root))
        self._doc = None

    def _load(self) -> dict:
        if self._doc is None:
            doc = load_json(self.file)
            if not isinstance(doc, dict):
                raise MalformedFileError("not a COCO Camera Traps document", file=str(self.file), item=self.file.name,
                                         expected="a JSON object with images, annotations and categories")
            doc = sanitize_ids(doc, file=self.file.name, policy=self.policy)
            parse_categories(doc, self.file.name)
            self._doc = doc
        return self._doc

    def _cats(self) -> dict:
        return {c["id"]: c["name"] for c in self._load().get("categories", [])}

    def _threshold(self) -> float:
        return threshold_of(self._load(), self.options.get("threshold"))

    @property
    def task(self) -> str:
        anns = self._load().get("annotations") or []
        if any(a.get("bbox") or a.get("bbox_relative") for a in anns):
            return "detection"
        per: dict = defaultdict(set)
        empty_ids = {k for k, v in self._cats().items() if str(v).lower() == "empty"}
        for a in anns:
            if a.get("category_id") not in empty_ids:
                per[a.get("image_id")].add(a.get("category_id"))
        return "multilabel" if any(len(v) > 1 for v in per.values()) else "classification"

    def categories(self) -> list[str]:
        cats = self._load().get("categories", [])
        return [str(c["name"]) for c in sorted(cats, key=lambda c: (isinstance(c["id"], str), c["id"]))
                if str(c["name"]).lower() != "empty"]

    def records(self) -> Iterator[ImageRecord]:
        doc = self._load()
        cats = self._cats()
        names = set(self.categories())
        fname = self.file.name
        by_image = annotations_by_image(doc, file=fname, policy=self.policy)
        task, threshold = self.task, self._threshold()
        for img in doc.get("images", []):
            fn = str(img.get("file_name", "")).replace("\\", "/")
            anns = by_image.get(img.get("id"), [])
            path = self.find_image(fn, self.images_dir, file=fname, annotations=len(anns),
                                   expected=f"the file under {self.images_dir}", within=self.images_dir)
            if path is None:
                continue
            if img.get("corrupt"):
                self.policy.handle(MalformedFileError("marked corrupt in the JSON", file=fname, item=fn,
                                                      expected="an image without corrupt: true"),
                                   action="dropped_image", annotations=len(anns))
                continue
            meta: dict[str, Any] = {"cct": {k: v for k, v in img.items() if k not in ("file_name", "width", "height")}}
            if img.get("location") is not None:
                meta["site"] = str(img["location"])
            if img.get("datetime"):
                meta["datetime"] = _iso(img["datetime"])
            if img.get("seq_id") is not None:
                meta["sequence"] = str(img["seq_id"])
            rec = ImageRecord(image_id=fn, path=path, group=meta.get("site"), meta=meta, source_file=fname,
                              declared_size=CocoConnector._declared_size(img))
            labels: list[str] = []
            seq_level: list[str] = []
            rejected = 0   # annotations dropped here: an image left with none of its labels is unlabeled, not empty
            for a in anns:
                cat = cats.get(a.get("category_id")) if is_id(a.get("category_id")) else None
                conf = a.get("confidence", a.get("conf"))
                if isinstance(conf, (int, float)) and not isinstance(conf, bool) and conf < threshold:
                    self.policy.note(f"{fn}#annotation {str(a.get('id'))[:40]}", "below_threshold", "filtered",
                                     f"detection confidence {conf} is under the threshold {threshold} "
                                     "(--option threshold=...)", file=fname)
                    continue
                if cat is None:
                    rejected += 1
                    self.policy.handle(UnknownClassError(f"category_id {a.get('category_id')} is not declared",
                                                         file=fname, item=f"{fn}#annotation {str(a.get('id'))[:40]}",
                                                         expected="a declared category"), action="dropped_annotation")
                    continue
                if str(cat).lower() == "empty":
                    continue
                if a.get("sequence_level_annotation"):
                    seq_level.append(cat)
                bbox = _numbers(a.get("bbox"), 4)
                rel_box = _numbers(a.get("bbox_relative"), 4)
                if task == "detection":
                    if bbox or rel_box:
                        rec.objects.append(ObjectRecord(cat, bbox=tuple(bbox or rel_box), normalized=bbox is None,
                                                        attributes={k: a[k] for k in ("count", "confidence")
                                                                    if k in a}, ref=f"annotation {a.get('id')}"))
                    else:
                        rec.note("label_without_box", "kept", f"image-level {cat!r} in a detection dataset: in meta.labels")
                        meta.setdefault("labels", []).append(cat)
                elif cat not in labels:
                    labels.append(cat)
            if seq_level:
                meta["sequence_level"] = sorted(set(seq_level))
            has_empty = any(str(cats.get(a.get("category_id"), "")).lower() == "empty" for a in anns)
            if task == "detection":
                rec.label_status = "labeled" if rec.objects else \
                    ("empty" if has_empty or (anns and not rejected and not meta.get("labels")) else "unlabeled")
            else:
                labels = [x for x in labels if x in names]
                if task == "classification":
                    rec.label = labels[0] if labels else None
                else:
                    rec.labels = labels
                rec.label_status = "labeled" if labels else ("empty" if has_empty and not rejected else "unlabeled")
            yield rec


def _iso(value: Any) -> str | None:
    s = str(value).strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y:%m:%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f",
                "%d/%m/%Y %H:%M:%S", "%m/%d/%Y %H:%M"):
        try:
            return datetime.strptime(s[:26], fmt).isoformat()
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(s).isoformat()
    except ValueError:
        return s
