"""Roboflow exports: COCO, YOLO (v5/v8/v9/v11), Pascal VOC, CreateML, classification folders,
multi-label ``_classes.csv``, and the object-detection CSV. Each is a thin declaration over the
generic reader; only what Roboflow does differently lives here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from cvft_data.boxes import centre_to_xywh, xyxy_to_xywh
from cvft_data.errors import AnnotationError, MalformedFileError, MissingImageError, SourceError
from cvft_data.paths import relpath_posix, safe_relative
from cvft_data.vocabulary import canonical_split, is_split_name

from ._csv import column_index, read_rows
from ._json import load_json
from .base import (
    Confidence,
    Connector,
    ImageRecord,
    ObjectRecord,
    Score,
    find_case_insensitive,
    read_prefix,
    register,
)
from .coco import CocoConnector
from .folder import FolderConnector
from .voc import VocConnector
from .yolo import YoloConnector

_README = ("README.roboflow.txt", "README.dataset.txt")


def _has_readme(root: Path) -> bool:
    return root.is_dir() and any((root / r).is_file() for r in _README)


def _split_dirs(root: Path) -> list[Path]:
    return [p for p in sorted(root.iterdir()) if p.is_dir() and is_split_name(p.name)] if root.is_dir() else []


def _roboflow_info(root: Path) -> dict:
    out = {}
    for r in _README:
        if (root / r).is_file():
            out[r] = (root / r).read_text(encoding="utf-8", errors="replace")[:2000]
    return {"roboflow": out} if out else {}


@register
class RoboflowCocoConnector(CocoConnector):
    """Roboflow COCO: ``<split>/_annotations.coco.json`` next to the images.

    ::

        root/
        ├── README.roboflow.txt
        ├── train/{_annotations.coco.json, *.jpg}
        ├── valid/...                           -> split "validation"
        └── test/...

    Roboflow adds a synthetic root category (id 0, named after the project, supercategory
    ``none``, parent of every real class, no annotations): it is removed and ledgered, so the class
    list matches the same project's YOLO export.
    """

    name = "roboflow_coco"
    summary = "Roboflow COCO (<split>/_annotations.coco.json; synthetic root category removed)"

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        found = sorted(root.glob("*/_annotations.coco.json")) if root.is_dir() else []
        if found:
            return Confidence(Score.TOOL_STRUCTURE, f"{relpath_posix(found[0], root)}: Roboflow's COCO layout")
        return Confidence(Score.NO, "no <split>/_annotations.coco.json")

    def _load(self):
        first = self._loaded is None
        loaded = super()._load()
        if first:
            used = {a.get("category_id") for _, _, d in loaded for a in d.get("annotations") or () if isinstance(a, dict)}
            supers = {c.get("supercategory") for _, _, d in loaded for c in d.get("categories", [])}
            roots = [c for c in self._cat_info if c.get("supercategory") in ("none", None, "")
                     and c["name"] in supers and c["source_id"] not in used]
            for c in roots:
                self._names.remove(c["name"])
                self._cat_info.remove(c)
                self.policy.note(f"category {c['source_id']} ({c['name']})", "synthetic_root_category",
                                 "dropped_class", "Roboflow's project-level root category has no annotations; "
                                 "it is not a class")
        return loaded

    def source_info(self) -> dict:
        return {**super().source_info(), **_roboflow_info(self.root)}


@register
class RoboflowYoloConnector(YoloConnector):
    """Roboflow YOLOv5/v8/v9/v11: ``data.yaml`` with a ``roboflow:`` block and another machine's paths.

    ::

        root/
        ├── data.yaml        train: /Users/x/proj/train/images, val: ../valid/images, names: [...]
        ├── train/{images,labels}/
        ├── valid/{images,labels}/
        └── test/{images,labels}/

    The split paths are resolved inside the root by their trailing components; label files may mix
    box and polygon lines.
    """

    name = "roboflow_yolo"
    summary = "Roboflow YOLOv5/v8/v9/v11 (data.yaml with a roboflow: block)"

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        base = super().sniff(root)
        if not base:
            return Confidence(Score.NO, "no data.yaml with names and split entries")
        for y in cls._yaml_files(root):
            if "roboflow:" in read_prefix(y, 8192):
                return Confidence(Score.STRUCTURE, f"{y.name} has a roboflow: block")
        if _has_readme(root if root.is_dir() else root.parent):
            return Confidence(Score.STRUCTURE, "data.yaml beside README.roboflow.txt")
        return Confidence(Score.NO, "data.yaml without a roboflow: block or Roboflow README")

    def source_info(self) -> dict:
        return {**super().source_info(), **_roboflow_info(self.root)}


@register
class RoboflowVocConnector(VocConnector):
    """Roboflow Pascal VOC: one XML next to each image, in split folders.

    ::

        root/
        ├── README.roboflow.txt
        ├── train/{a.jpg, a.xml, ...}
        └── valid/{b.jpg, b.xml, ...}
    """

    name = "roboflow_voc"
    summary = "Roboflow Pascal VOC (XML next to images in split folders)"

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        if not _has_readme(root):
            return Confidence(Score.NO, "no Roboflow README")
        for d in _split_dirs(root):
            for x in sorted(d.glob("*.xml"))[:2]:
                if "<annotation" in read_prefix(x, 4096):
                    return Confidence(Score.STRUCTURE, f"{relpath_posix(x, root)} is VOC XML beside a Roboflow README")
        return Confidence(Score.NO, "no VOC XML in split folders")


@register
class RoboflowFolderConnector(FolderConnector):
    """Roboflow single-label classification: ``<split>/<class>/<image>``.

    ::

        root/
        ├── README.dataset.txt
        ├── train/{Corrosion,no-corrosion}/*.jpg
        └── valid/...
    """

    name = "roboflow_folder"
    summary = "Roboflow classification folders (<split>/<class>/*.jpg)"

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        if not _has_readme(root):
            return Confidence(Score.NO, "no Roboflow README")
        splits = _split_dirs(root)
        if splits and any(p.is_dir() for s in splits for p in s.iterdir()) and \
                not any((s / "_classes.csv").is_file() for s in splits):
            return Confidence(Score.HINT, "split folders of class folders beside a Roboflow README")
        return Confidence(Score.NO, "no split folders of class folders")

    def source_info(self) -> dict:
        return _roboflow_info(self.root)


def parse_createml(doc, *, file: str) -> list[tuple[str, list[ObjectRecord]]]:
    """CreateML JSON -> (image name, objects). ``coordinates.x/y`` are the box CENTRE."""
    if not isinstance(doc, list):
        raise MalformedFileError("the top level is not a list", file=file, item=file,
                                 expected='[{"image": ..., "annotations": [...]}]')
    out = []
    for i, entry in enumerate(doc):
        if not isinstance(entry, dict) or "image" not in entry:
            raise MalformedFileError(f"entry {i} has no image", file=file, item=f"entry {i}",
                                     expected='{"image": name, "annotations": [...]}')
        objs = []
        for k, a in enumerate(entry.get("annotations") or []):
            c = a.get("coordinates") or {}
            try:
                box = centre_to_xywh(float(c["x"]), float(c["y"]), float(c["width"]), float(c["height"]))
            except (KeyError, TypeError, ValueError):
                raise AnnotationError(f"annotation {k} has no x/y/width/height", file=file,
                                      item=f"{entry['image']}#annotation {k}",
                                      expected='"coordinates": {"x", "y", "width", "height"}') from None
            objs.append(ObjectRecord(str(a.get("label", "")), bbox=box, ref=f"annotation {k}"))
        out.append((str(entry["image"]), objs))
    return out


@register
class RoboflowCreateMLConnector(Connector):
    """Roboflow CreateML: ``<split>/_annotations.createml.json`` (box ``x``, ``y`` = CENTRE).

    ::

        root/
        ├── train/{_annotations.createml.json, *.jpg}
        └── valid/...

    One class list for the whole dataset (the sorted union of every split's labels), so a class id
    means the same class in every split.
    """

    name = "roboflow_createml"
    summary = "Roboflow CreateML JSON (<split>/_annotations.createml.json, centre boxes)"

    def __init__(self, root, **kwargs):
        super().__init__(root, **kwargs)
        self._parsed: list[tuple[str, Path, list]] | None = None

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        found = sorted(root.glob("*/_annotations.createml.json")) if root.is_dir() else []
        if found:
            return Confidence(Score.TOOL_STRUCTURE, f"{relpath_posix(found[0], root)}: Roboflow CreateML")
        return Confidence(Score.NO, "no <split>/_annotations.createml.json")

    @property
    def task(self) -> str:
        return "detection"

    def _parse(self):
        if self._parsed is None:
            self._parsed = []
            for f in sorted(self.root.glob("*/_annotations.createml.json")):
                try:
                    entries = parse_createml(load_json(f), file=relpath_posix(f, self.root))
                except SourceError as exc:
                    self.policy.handle(exc, action="ignored_file")
                    continue
                self._parsed.append((canonical_split(f.parent.name), f, entries))
        return self._parsed

    def categories(self) -> list[str]:
        return sorted({o.category for _, _, entries in self._parse() for _, objs in entries for o in objs})

    def records(self) -> Iterator[ImageRecord]:
        for split, f, entries in self._parse():
            fname = relpath_posix(f, self.root)
            for name, objs in entries:
                path = self.find_image(name, f.parent, file=fname, annotations=len(objs),
                                       expected=f"{relpath_posix(f.parent, self.root)}/{name}")
                if path is None:
                    continue
                rec = ImageRecord(image_id=relpath_posix(path, self.root), path=path, split=split, source_file=fname,
                                  objects=objs, label_status="labeled" if objs else "empty")
                yield rec


@register
class RoboflowMultilabelConnector(Connector):
    """Roboflow multi-label classification: ``<split>/_classes.csv`` with one-hot columns.

    ::

        root/
        ├── train/{_classes.csv, *.jpg}      filename, Acne, Blackheads, ...   (", " separated)
        └── valid/...
    """

    name = "roboflow_multilabel"
    summary = "Roboflow multi-label classification (<split>/_classes.csv)"

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        found = sorted(root.glob("*/_classes.csv")) if root.is_dir() else []
        if found:
            return Confidence(Score.TOOL_STRUCTURE, f"{relpath_posix(found[0], root)}: one-hot class columns")
        return Confidence(Score.NO, "no <split>/_classes.csv")

    @property
    def task(self) -> str:
        return "multilabel"

    def _files(self) -> list[Path]:
        return sorted(self.root.glob("*/_classes.csv"))

    def categories(self) -> list[str]:
        names: list[str] = []
        for f in self._files():
            rows = read_rows(f.read_text(encoding="utf-8-sig"), file=relpath_posix(f, self.root))
            for n in rows[0][1:] if rows else []:
                if n not in names:
                    names.append(n)
        return names

    def records(self) -> Iterator[ImageRecord]:
        for f in self._files():
            fname = relpath_posix(f, self.root)
            rows = read_rows(f.read_text(encoding="utf-8-sig"), file=fname)
            header, split = rows[0], canonical_split(f.parent.name)
            for i, row in enumerate(rows[1:], start=2):
                try:
                    if len(row) != len(header):
                        raise AnnotationError(f"line {i} has {len(row)} cells, the header {len(header)}", file=fname,
                                              item=f"line {i}", expected="one cell per header column")
                    rel = safe_relative(row[0], file=fname, item=row[0])
                    path = find_case_insensitive(f.parent / rel.parent, rel.name)
                    if path is None:
                        raise MissingImageError(f"image {row[0]!r} not found", file=fname, item=row[0],
                                                expected=f"{relpath_posix(f.parent, self.root)}/{row[0]}")
                    labels = [h for h, v in zip(header[1:], row[1:]) if v not in ("0", "", "0.0")]
                except SourceError as exc:
                    self.policy.handle(exc, action="dropped_image")
                    continue
                yield ImageRecord(image_id=relpath_posix(path, self.root), path=path, split=split, labels=labels,
                                  label_status="labeled" if labels else "empty", source_file=fname)


_CSV_COLUMNS = {
    "filename": ("filename", "img_fName", "image", "image_name", "file"),
    "class": ("class", "class_label", "label", "label_name"),
    "xmin": ("xmin", "bbx_xtl", "x1"),
    "ymin": ("ymin", "bbx_ytl", "y1"),
    "xmax": ("xmax", "bbx_xbr", "x2"),
    "ymax": ("ymax", "bbx_ybr", "y2"),
}


@register
class RoboflowCsvConnector(Connector):
    """Object-detection CSV (Roboflow's "TensorFlow Object Detection CSV" and its variants):
    one row per box, corner coordinates in pixels.

    ::

        root/
        ├── _annotations.csv   filename,width,height,class,xmin,ymin,xmax,ymax
        └── *.jpg              (or train/_annotations.csv per split)

    Column names are matched loosely (``img_fName``/``filename``, ``bbx_xtl``/``xmin``...).
    """

    name = "roboflow_csv"
    accepts_file = True
    summary = "object-detection CSV (filename, class, xmin, ymin, xmax, ymax)"
    options_help = {"images": "folder holding the images (default: the CSV's folder)"}

    @classmethod
    def _csvs(cls, root: Path) -> list[Path]:
        if root.is_file():
            return [root] if root.suffix.lower() == ".csv" else []
        return sorted(list(root.glob("*.csv")) + list(root.glob("*/_annotations.csv")))

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        for f in cls._csvs(root):
            head = read_prefix(f, 2048).splitlines()[0].lower() if read_prefix(f, 2048) else ""
            if any(a.lower() in head for a in _CSV_COLUMNS["xmin"]) and \
                    any(a.lower() in head for a in _CSV_COLUMNS["filename"]):
                return Confidence(Score.PLAUSIBLE, f"{f.name} has filename and corner columns")
        return Confidence(Score.NO, "no CSV with filename and xmin/ymin/xmax/ymax columns")

    def __init__(self, root, **kwargs):
        root = Path(root)
        self._files = self._csvs(root)
        super().__init__(root, **kwargs)
        self._rows: list | None = None

    @property
    def task(self) -> str:
        return "detection"

    def _read(self):
        if self._rows is None:
            self._rows = []
            for f in self._files:
                fname = relpath_posix(f, self.root)
                rows = read_rows(f.read_text(encoding="utf-8-sig"), file=fname)
                cols = column_index(rows[0], _CSV_COLUMNS, file=fname)
                split = canonical_split(f.parent.name) if f.parent != self.root and is_split_name(f.parent.name) \
                    else "train"
                self._rows.append((split, f, fname, cols, rows[1:]))
        return self._rows

    def categories(self) -> list[str]:
        names: list[str] = []
        for _, _, _, cols, rows in self._read():
            for r in rows:
                if len(r) > cols["class"] and r[cols["class"]] not in names:
                    names.append(r[cols["class"]])
        return names

    def records(self) -> Iterator[ImageRecord]:
        images_dir = Path(self.options["images"]) if "images" in self.options else None
        for split, f, fname, cols, rows in self._read():
            by_image: dict[str, list[ObjectRecord]] = {}
            for i, r in enumerate(rows, start=2):
                try:
                    box = xyxy_to_xywh(*(float(r[cols[k]]) for k in ("xmin", "ymin", "xmax", "ymax")))
                except (ValueError, IndexError):
                    self.policy.handle(AnnotationError(f"line {i} has no numeric corners", file=fname,
                                                       item=f"line {i}", expected="xmin, ymin, xmax, ymax numbers"),
                                       action="dropped_annotation")
                    continue
                by_image.setdefault(r[cols["filename"]], []).append(
                    ObjectRecord(r[cols["class"]], bbox=box, ref=f"line {i}"))
            for name in sorted(by_image):
                objs = by_image[name]
                path = self.find_image(name, images_dir or f.parent, file=fname, annotations=len(objs), within=images_dir)
                if path is None:
                    continue
                rel = safe_relative(name, file=fname, item=name)
                yield ImageRecord(image_id=relpath_posix(path, self.root) if not images_dir else rel.as_posix(),
                                  path=path, split=split, objects=objs, label_status="labeled", source_file=fname)

