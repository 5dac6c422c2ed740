"""makesense.ai exports: rect CSV, YOLO zip, VOC zip, COCO JSON (SkalskiP/make-sense).

makesense exports annotations only; the images are the ones the user loaded in the browser, so the
source is the export file plus a folder of images (by default the export's own folder).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Iterator

from cvft_data.errors import (
    AnnotationError,
    MalformedFileError,
    MissingImageError,
    SourceError,
    UnknownClassError,
    UsageError,
)
from cvft_data.paths import relpath_posix, safe_relative

from ._csv import read_rows
from ._json import load_json
from ._source import ZipSource
from ._xml import parse_xml
from .base import (
    Confidence,
    Connector,
    ImageRecord,
    ObjectRecord,
    Score,
    find_case_insensitive,
    is_image_name,
    label_status_of,
    register,
    walk_files,
)
from .coco_parse import is_id, parse_annotation, parse_categories, sanitize_ids
from .voc import parse_object
from .yolo import parse_label_line

#: labels_<project>_<YYYY-MM-DD-hh-mm-ss>.{csv,json,zip}
EXPORT_NAME = re.compile(r"^labels_.+_\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}\.(csv|json|zip)$", re.IGNORECASE)
RECT_HEADER = ["label_name", "bbox_x", "bbox_y", "bbox_width", "bbox_height", "image_name", "image_width",
               "image_height"]


def parse_rect_csv(rows: list[list[str]], *, file: str) -> list[tuple[str, tuple[int, int], ObjectRecord]]:
    """Rect CSV rows (header optional: exports before 2022-06 have none) -> (image, size, object).
    ``bbox_x``/``bbox_y`` are the TOP-LEFT corner."""
    if rows and [c.lower() for c in rows[0]] == RECT_HEADER:
        rows = rows[1:]
    out = []
    for i, r in enumerate(rows, start=1):
        if len(r) != 8:
            raise AnnotationError(f"row {i} has {len(r)} cells", file=file, item=f"row {i}",
                                  expected="label_name,bbox_x,bbox_y,bbox_width,bbox_height,image_name,"
                                           "image_width,image_height")
        try:
            x, y, w, h = (float(v) for v in r[1:5])
            size = (int(float(r[6])), int(float(r[7])))
        except ValueError:
            raise AnnotationError(f"row {i} has non-numeric coordinates", file=file, item=f"row {i}",
                                  expected="numbers in bbox_* and image_* columns") from None
        out.append((r[5], size, ObjectRecord(r[0], bbox=(x, y, w, h), ref=f"row {i}")))
    return out


@register
class MakesenseConnector(Connector):
    """makesense.ai exports, read beside the images they describe.

    ::

        root/
        ├── labels_my-project_2025-04-03-08-39-57.csv    rect CSV (with or without header)
        │   (or .json: COCO polygons; or .zip: YOLO txt or VOC xml per image)
        └── *.jpg                                        the images loaded into makesense

    The YOLO zip has no class list: pass ``--option classes=a,b,c`` or ``--option labels=labels.txt``.
    Images of the folder that the export does not mention are ``unlabeled`` (makesense leaves out
    images without annotations, so they may or may not be empty; ``--option unlisted=empty`` says they
    are).
    """

    name = "makesense"
    accepts_file = True
    summary = "makesense.ai export (rect CSV, YOLO zip, VOC zip, COCO JSON) beside its images"
    options_help = {"images": "folder holding the images (default: the export's folder)",
                    "classes": "comma-separated class names, in makesense's label order (YOLO zip)",
                    "labels": "a labels.txt with one class per line (YOLO zip)",
                    "unlisted": "unlabeled (default) or empty: status of images the export does not mention"}

    def __init__(self, root, **kwargs):
        root = Path(root)
        export = root if root.is_file() else None
        super().__init__(root, **kwargs)
        self.export = export or self._find_export(self.root)
        self.images_dir = Path(self.options["images"]) if "images" in self.options else self.root
        self._parsed: tuple[list[str], dict[str, tuple]] | None = None
        self._task: str | None = None
        self._index: dict[str, list[Path]] | None = None   # image base name (lower case) -> files

    @staticmethod
    def _find_export(root: Path) -> Path:
        found = sorted(p for p in root.iterdir() if p.is_file() and EXPORT_NAME.match(p.name)) if root.is_dir() else []
        if not found:
            raise UsageError(f"no makesense export (labels_<project>_<date>.csv/json/zip) in {root}")
        return found[-1]  # the newest: makesense names carry the export time

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        if root.is_file():
            ok = bool(EXPORT_NAME.match(root.name))
            return Confidence(Score.SPECIFIC if ok else Score.NO, f"{root.name} is a makesense export name" if ok else
                              "file name is not labels_<project>_<date>.csv/json/zip")
        if root.is_dir():
            for p in sorted(root.iterdir()):
                if EXPORT_NAME.match(p.name):
                    return Confidence(Score.SPECIFIC, f"{p.name} is a makesense export")
        return Confidence(Score.NO, "no labels_<project>_<YYYY-MM-DD-hh-mm-ss>.csv/json/zip")

    # -- parsing --------------------------------------------------------------------------------------
    def _classes_option(self) -> list[str] | None:
        if "classes" in self.options:
            return [c.strip() for c in str(self.options["classes"]).split(",") if c.strip()]
        if "labels" in self.options:
            return [ln.strip() for ln in Path(self.options["labels"]).read_text(encoding="utf-8").splitlines()
                    if ln.strip()]
        return None

    def _parse(self) -> tuple[list[str], dict[str, tuple]]:
        """(class names, {image name: (declared size or None, [objects])})."""
        if self._parsed is not None:
            return self._parsed
        fname = self.export.name
        ext = self.export.suffix.lower()
        by_image: dict[str, tuple] = {}
        given = self._given = Counter()   # annotations each image had before any was dropped
        names: list[str] = self._classes_option() or []
        if ext == ".csv":
            self._task = "detection"
            for image, size, obj in parse_rect_csv(read_rows(self.export.read_text(encoding="utf-8-sig"), file=fname),
                                                   file=fname):
                by_image.setdefault(image, (size, []))[1].append(obj)
                given[image] += 1
                if obj.category not in names and "classes" not in self.options:
                    names.append(obj.category)
        elif ext == ".json":
            self._task = "instance_segmentation"
            doc = load_json(self.export)
            if not isinstance(doc, dict):
                raise MalformedFileError("not a COCO document", file=fname, item=fname, expected="a JSON object")
            doc = sanitize_ids(doc, file=fname, policy=self.policy)
            cats = {c["id"]: str(c["name"]) for c in parse_categories({"categories": doc.get("categories") or []}, fname)}
            names = names or list(cats.values())
            images = {}
            for img in doc.get("images") or []:
                if not isinstance(img, dict) or not isinstance(img.get("file_name"), str) or "id" not in img:
                    self.policy.handle(MalformedFileError("image entry without id or file_name", file=fname,
                                                          item=str(img)[:80], expected='{"id", "file_name"}'),
                                       action="dropped_image")
                    continue
                images[img["id"]] = img
                by_image.setdefault(img["file_name"], ((img.get("width"), img.get("height")), []))
            for ann in doc.get("annotations") or []:
                img = images.get(ann.get("image_id")) if isinstance(ann, dict) and is_id(ann.get("image_id")) else None
                if img is None:
                    ref = str(ann.get("id"))[:40] if isinstance(ann, dict) else "?"
                    self.policy.handle(AnnotationError("the annotation's image_id is not a declared image", file=fname,
                                                       item=f"annotation {ref}", expected="a declared image"),
                                       action="dropped_annotation")
                    continue
                given[img["file_name"]] += 1
                try:
                    obj, _ = parse_annotation(ann, cats, file=fname, image_size=None)
                except SourceError as exc:
                    exc.item = f"{img['file_name']}#{exc.item}"
                    if "category_id" in exc.message and not cats:
                        exc.message += " (the export's categories list is empty: label the polygons in makesense)"
                    self.policy.handle(exc, action="dropped_annotation")
                    continue
                by_image[img["file_name"]][1].append(obj)
        elif ext == ".zip":
            src = ZipSource(self.export)
            members = src.files()
            if any(m.lower().endswith(".xml") for m in members):
                self._task = "detection"
                for m in members:
                    if not m.lower().endswith(".xml"):
                        continue
                    try:
                        root = parse_xml(src.read_bytes(m), file=src.describe(m), item=m, expected="a VOC <annotation>")
                    except MalformedFileError as exc:   # the image itself is still read, as unlabeled
                        self.policy.handle(exc, action="unlabeled")
                        continue
                    image = (root.findtext("filename") or PurePosixPath(m).stem).strip()
                    objs = []
                    for k, o in enumerate(root.findall("object")):
                        given[image] += 1
                        try:
                            obj = parse_object(o, file=src.describe(m), item=f"{image}#object {k}")
                            obj.ref = f"object {k}"
                            objs.append(obj)
                            if obj.category not in names and "classes" not in self.options:
                                names.append(obj.category)
                        except SourceError as exc:
                            self.policy.handle(exc, action="dropped_annotation")
                    by_image[image] = (None, objs)
            else:
                self._task = "detection"
                if not names:
                    raise UsageError(f"{fname} is a makesense YOLO zip, which carries no class list; pass "
                                     "--option classes=name0,name1,... (makesense's label order) or "
                                     "--option labels=labels.txt")
                for m in members:
                    if not m.lower().endswith(".txt"):
                        continue
                    stem = PurePosixPath(m).stem
                    objs = []
                    for i, line in enumerate(src.read_text(m).splitlines()):
                        if not line.strip():
                            continue
                        given["\0stem:" + stem] += 1
                        try:
                            obj = parse_label_line(line, len(names), file=src.describe(m), item=f"{stem}#line {i + 1}")
                        except SourceError as exc:
                            self.policy.handle(exc, action="dropped_annotation")
                            continue
                        obj.category, obj.ref = names[int(obj.category)], f"line {i + 1}"
                        objs.append(obj)
                    by_image["\0stem:" + stem] = (None, objs)
        else:
            raise UsageError(f"{fname}: makesense exports are .csv, .json or .zip")
        self._parsed = (names, by_image)
        return self._parsed

    @property
    def task(self) -> str:
        self._parse()
        return self._task or "detection"

    def categories(self) -> list[str]:
        return list(self._parse()[0])

    def _image_path(self, name: str) -> Path | None:
        if name.startswith("\0stem:"):  # YOLO: only the stem is known; makesense keeps multi-dot names
            stem = name[len("\0stem:"):]
            found = sorted((p for paths in self._by_name().values() for p in paths if p.name.rsplit(".", 1)[0] == stem),
                           key=lambda p: (len(p.parts), p))
            return found[0] if found else None   # the shallowest: the images folder itself first
        rel = safe_relative(name, file=self.export.name, item=name)
        hit = find_case_insensitive(self.images_dir / rel.parent, rel.name)
        if hit is not None:
            return hit
        # makesense keeps only the base name: the image may sit in a sub-folder of the source
        found = self._by_name().get(rel.name.lower(), [])
        if len(found) > 1:
            raise MissingImageError(f"image {name!r} is ambiguous: {len(found)} files in sub-folders have that name",
                                    file=self.export.name, item=name,
                                    expected="one file of that name; point --option images=DIR at the folder "
                                             "that holds the images: " + ", ".join(relpath_posix(p, self.images_dir)
                                                                                   for p in found[:3]))
        return found[0] if found else None

    def _by_name(self) -> dict[str, list[Path]]:
        if self._index is None:
            self._index = {}
            if self.images_dir.is_dir():
                for p in walk_files(self.images_dir):
                    if is_image_name(p.name):
                        self._index.setdefault(p.name.lower(), []).append(p)
        return self._index

    def records(self) -> Iterator[ImageRecord]:
        names, by_image = self._parse()
        fname = self.export.name
        seen: set[Path] = set()
        for name in sorted(by_image):
            size, objs = by_image[name]
            shown = name.replace("\0stem:", "")
            try:
                path = self._image_path(name)
                if path is None:
                    raise MissingImageError(f"image {shown!r} not found", file=fname, item=shown,
                                            expected=f"the image in {self.images_dir} or one of its sub-folders; "
                                                     "point --option images=DIR at the folder that holds them")
            except SourceError as exc:
                self.policy.handle(exc, action="dropped_image", annotations=len(objs))
                continue
            seen.add(path)
            given = max(len(objs), self._given[name])
            for o in objs:
                if o.category not in names:
                    self.policy.handle(UnknownClassError(f"class {o.category!r} is not in the class list", file=fname,
                                                         item=f"{shown}#{o.ref}", expected=f"one of {names}"),
                                       action="dropped_annotation")
            objs = [o for o in objs if o.category in names]
            declared = size if size and all(size) else None
            yield ImageRecord(image_id=relpath_posix(path, self.images_dir), path=path, split="train", objects=objs,
                              declared_size=declared, source_file=fname,
                              label_status=label_status_of(len(objs), given))
        unlisted = "empty" if self.options.get("unlisted") == "empty" else "unlabeled"
        if self.images_dir.is_dir():
            for p in walk_files(self.images_dir):
                if is_image_name(p.name) and p not in seen:
                    yield ImageRecord(image_id=relpath_posix(p, self.images_dir), path=p, split="train",
                                      label_status=unlisted, source_file=fname)

    def source_info(self) -> dict:
        return {"makesense": {"export": self.export.name}}
