"""MegaDetector batch output (format 1.1 to 1.6): pure parsing, and a connector for MD-only datasets.

Boxes are ``[x, y, w, h]`` normalised to the image; category keys are strings (``"1"`` animal,
``"2"`` person, ``"3"`` vehicle); ``detections: []`` means nothing was found (a null image);
``failure`` means the image could not be processed. The output keeps very low-confidence boxes,
so a threshold is applied: by default the file's own ``typical_detection_threshold``
(MDv5: 0.2), else :data:`DEFAULT_THRESHOLD`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterator

from cvft_data.errors import CorruptImageError, MalformedFileError, MissingImageError
from cvft_data.paths import relpath_posix

from ._json import load_json
from .base import (
    Confidence,
    Connector,
    ImageRecord,
    ObjectRecord,
    Score,
    is_image_name,
    read_prefix,
    register,
    walk_files,
)

DEFAULT_THRESHOLD = 0.2


@dataclass
class MdImage:
    file: str
    detections: list[tuple[str, float, tuple[float, float, float, float]]] = field(default_factory=list)
    below: int = 0                  # detections under the threshold
    failure: str | None = None


def threshold_of(doc: dict, requested: float | None) -> float:
    if requested is not None:
        return float(requested)
    meta = (doc.get("info") or {}).get("detector_metadata") or {}
    return float(meta.get("typical_detection_threshold", DEFAULT_THRESHOLD))


def parse_megadetector(doc, threshold: float, *, file: str = "") -> tuple[dict[str, str], list[MdImage]]:
    """(category names by key, images) with detections at or above ``threshold``."""
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list) or "detection_categories" not in doc:
        raise MalformedFileError("not a MegaDetector batch output", file=file, item=file,
                                 expected='{"info", "detection_categories", "images": [...]}')
    cats = {str(k): str(v) for k, v in doc["detection_categories"].items()}
    out = []
    for i, img in enumerate(doc["images"]):
        if not isinstance(img, dict) or "file" not in img:
            raise MalformedFileError(f"images[{i}] has no file", file=file, item=f"images[{i}]",
                                     expected='{"file": ..., "detections": [...]}')
        m = MdImage(str(img["file"]).replace("\\", "/"))
        if img.get("failure"):
            m.failure = str(img["failure"])
        for d in img.get("detections") or []:
            try:
                conf = float(d["conf"])
                bbox = tuple(float(v) for v in d["bbox"])
                cat = cats[str(d["category"])]
            except (KeyError, TypeError, ValueError):
                raise MalformedFileError(f"a detection of {m.file} lacks category/conf/bbox", file=file, item=m.file,
                                         expected='{"category": "1", "conf": 0.9, "bbox": [x, y, w, h]}') from None
            if conf >= threshold:
                m.detections.append((cat, conf, bbox))  # type: ignore[arg-type]
            else:
                m.below += 1
        out.append(m)
    return cats, out


class MdIndex:
    r"""Find the MegaDetector entry of an image by its relative path, although MD may have run on
    another machine (absolute paths) or from another folder (paths relative to a sub-folder):
    entries are indexed by every trailing part of their path, case-insensitively; a trailing part
    shared by two entries is ambiguous and never matches.

    >>> idx = MdIndex(["/data/2019/s1/siteA/cam1/IMG_1.JPG", "siteA\\cam2\\IMG_1.JPG"])
    >>> idx.lookup("2019/s1/siteA/cam1/IMG_1.JPG"), idx.lookup("2020/s1/siteA/cam2/img_1.jpg")
    ('/data/2019/s1/siteA/cam1/IMG_1.JPG', 'siteA/cam2/IMG_1.JPG')
    >>> idx.lookup("x/IMG_1.JPG") is None    # only the file name in common: ambiguous
    True
    """

    def __init__(self, files):
        self._by_tail: dict[str, str | None] = {}
        for f in files:
            parts = [p.lower() for p in PurePosixPath(f.replace("\\", "/")).parts if p not in ("/", "")]
            for i in range(len(parts)):
                key = "/".join(parts[i:])
                self._by_tail[key] = f.replace("\\", "/") if key not in self._by_tail else None

    def lookup(self, rel: str) -> str | None:
        parts = rel.lower().split("/")
        for i in range(len(parts)):
            key = "/".join(parts[i:])
            if key in self._by_tail:
                return self._by_tail[key]
        return None


@register
class MegaDetectorConnector(Connector):
    """A folder of camera-trap images with a MegaDetector batch output: an animal/person/vehicle
    detection dataset.

    ::

        root/
        ├── md_output.json          {"info": {"format_version": "1.4", ...}, "detection_categories": ...}
        └── site01/cam1/IMG_0001.JPG

    Pass ``--option megadetector=md.json`` when the JSON is elsewhere and ``--option threshold=0.2``
    to choose the confidence cut. Images the output does not list are unlabeled; ``failure`` images
    are ledgered and left out.
    """

    name = "megadetector"
    accepts_file = True
    summary = "images + MegaDetector batch output (animal/person/vehicle boxes)"
    options_help = {"megadetector": "the MD output JSON (default: the one JSON in the root)",
                    "threshold": f"detection confidence cut (default: the file's typical threshold, else {DEFAULT_THRESHOLD})",
                    "images": "folder holding the images (default: the root)"}

    @classmethod
    def _json(cls, root: Path) -> Path | None:
        cands = [root] if root.is_file() else sorted(root.glob("*.json")) if root.is_dir() else []
        for c in cands:
            head = read_prefix(c, 8192)
            if '"detection_categories"' in head or ('"detector"' in head and '"images"' in head):
                return c
        return None

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        j = cls._json(root)
        if j is not None:
            return Confidence(Score.MARKED, f"{j.name} is a MegaDetector batch output")
        return Confidence(Score.NO, "no JSON with detection_categories")

    def __init__(self, root, **kwargs):
        root = Path(root)
        super().__init__(root, **kwargs)
        self.md_file = Path(self.options["megadetector"]) if "megadetector" in self.options else self._json(root)
        if self.md_file is None:
            raise MalformedFileError("no MegaDetector output found", file=str(root), item=str(root),
                                     expected="a JSON with detection_categories (or --option megadetector=...)")
        self.images_dir = Path(self.options.get("images", self.root))
        self._parsed = None

    def _parse(self):
        if self._parsed is None:
            doc = load_json(self.md_file)
            thr = threshold_of(doc, self.options.get("threshold"))
            cats, images = parse_megadetector(doc, thr, file=self.md_file.name)
            self._parsed = (cats, images, thr, doc.get("info") or {})
            below = sum(m.below for m in images)
            if below:
                self.policy.note(self.md_file.name, "md_below_threshold", "filtered",
                                 f"{below} detections under the confidence threshold {thr} were not used")
        return self._parsed

    @property
    def task(self) -> str:
        return "detection"

    def categories(self) -> list[str]:
        cats = self._parse()[0]
        return [cats[k] for k in sorted(cats, key=lambda k: int(k) if k.isdigit() else k)]

    def source_info(self) -> dict:
        cats, _, thr, info = self._parse()
        return {"megadetector": {"file": self.md_file.name, "threshold": thr, "info": info}}

    def records(self) -> Iterator[ImageRecord]:
        _, images, thr, _ = self._parse()
        index = MdIndex([m.file for m in images])
        by_file = {m.file: m for m in images}
        used: set[str] = set()
        for p in walk_files(self.images_dir):
            if not is_image_name(p.name):
                continue
            r = relpath_posix(p, self.images_dir)
            hit = index.lookup(r)
            m = by_file.get(hit) if hit else None
            if hit:
                used.add(hit)
            rec = ImageRecord(image_id=r, path=self.images_dir / r, source_file=self.md_file.name)
            if m is None:
                rec.label_status = "unlabeled"
            elif m.failure:
                self.policy.handle(CorruptImageError(f"MegaDetector failed on it: {m.failure}",
                                                     file=self.md_file.name, item=r,
                                                     expected="an image MegaDetector could process"),
                                   action="dropped_image")
                continue
            else:
                rec.objects = [ObjectRecord(cat, bbox=bbox, normalized=True, attributes={"confidence": conf},
                                            ref=f"detection {k}") for k, (cat, conf, bbox) in enumerate(m.detections)]
                rec.label_status = "labeled" if rec.objects else "empty"
                rec.meta = {"megadetector": {"threshold": thr, "below_threshold": m.below}}
            yield rec
        for m in images:
            if m.file not in used:
                self.policy.handle(MissingImageError(f"image {m.file!r} not found", file=self.md_file.name,
                                                     item=m.file, expected=f"the image under {self.images_dir}"),
                                   action="dropped_image", annotations=len(m.detections))
