"""Pascal VOC XML (devkit layout, and XML-next-to-image layouts such as Roboflow's)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator
from xml.etree.ElementTree import Element

from cvft_data.boxes import voc_to_xywh
from cvft_data.errors import AnnotationError, MalformedFileError, MissingImageError, SourceError, UnknownClassError
from cvft_data.imageinfo import IMAGE_EXTENSIONS
from cvft_data.paths import relpath_posix, safe_relative
from cvft_data.vocabulary import canonical_split, is_split_name

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
    read_prefix,
    register,
    walk_files,
)


def parse_voc_xml(path: Path) -> Element:
    return parse_xml(path.read_bytes(), file=str(path), item=path.name, expected="a Pascal VOC <annotation> document")


def _num(el: Element | None, tag: str, *, file: str, item: str) -> float:
    text = el.findtext(tag) if el is not None else None
    try:
        return float(str(text).strip())
    except (TypeError, ValueError):
        raise AnnotationError(f"<{tag}> is {text!r}", file=file, item=item, expected="a number") from None


def _flag(text: str | None) -> int | None:
    if text is None or not text.strip():
        return None
    try:
        return int(float(text))
    except ValueError:
        return None


def parse_object(obj: Element, *, file: str, item: str) -> ObjectRecord:
    """One ``<object>`` -> :class:`ObjectRecord` (1-based VOC pixels converted to COCO boxes)."""
    name = (obj.findtext("name") or "").strip()
    if not name:
        raise AnnotationError("<object> without <name>", file=file, item=item, expected="a class name")
    bnd = obj.find("bndbox")
    if bnd is None:
        raise AnnotationError(f"<object> {name!r} without <bndbox>", file=file, item=item, expected="a <bndbox>")
    xmin, ymin, xmax, ymax = (_num(bnd, t, file=file, item=item) for t in ("xmin", "ymin", "xmax", "ymax"))
    if xmax < xmin or ymax < ymin:
        raise AnnotationError(f"box xmin={xmin} xmax={xmax} ymin={ymin} ymax={ymax} is inverted", file=file,
                              item=item, expected="xmin <= xmax and ymin <= ymax")
    attrs: dict[str, Any] = {}
    for tag in ("difficult", "truncated", "occluded"):
        v = _flag(obj.findtext(tag))
        if v is not None:
            attrs[tag] = v
    pose = obj.findtext("pose")
    if pose is not None and pose.strip():
        attrs["pose"] = pose.strip()
    for a in obj.findall("attributes/attribute"):
        key = (a.findtext("name") or "").strip()
        if key:
            attrs[key] = (a.findtext("value") or "").strip()
    voc: dict[str, Any] = {}
    parts = []
    for part in obj.findall("part"):
        pb = part.find("bndbox")
        if pb is not None:
            parts.append({"name": (part.findtext("name") or "").strip(),
                          "bbox": list(voc_to_xywh(*(_num(pb, t, file=file, item=item) for t in ("xmin", "ymin", "xmax", "ymax"))))})
    if parts:
        voc["parts"] = parts
    actions = obj.find("actions")
    if actions is not None:
        voc["actions"] = {a.tag: _flag(a.text) for a in actions}
    if voc:
        attrs["voc"] = voc
    return ObjectRecord(category=name, bbox=voc_to_xywh(xmin, ymin, xmax, ymax), attributes=attrs, ref=item)


def parse_labelmap(text: str) -> list[str]:
    """CVAT/Datumaro ``labelmap.txt`` (``name:r,g,b:parts:actions``) -> names in order."""
    return [ln.split(":", 1)[0].strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def _objects_in_raw(xml: Path | None) -> int:
    """The ``<object>`` elements an XML that does not parse still shows: the annotations lost with it."""
    try:
        return xml.read_bytes().count(b"<object>") if xml is not None else 0
    except OSError:
        return 0


@register
class VocConnector(Connector):
    """Pascal VOC detection annotations.

    ::

        root/ (devkit)                       root/ (Roboflow, LabelImg)
        ├── Annotations/<id>.xml             ├── train/{a.jpg, a.xml}
        ├── JPEGImages/<id>.jpg              └── valid/{b.jpg, b.xml}
        ├── ImageSets/Main/{train,val,test}.txt
        └── labelmap.txt (optional: class order)

    Boxes are 1-based inclusive pixels (converted to COCO ``[x-1, y-1, w, h]``); floats are read as
    floats; the image is found by ``<filename>`` with case and missing-extension mismatches
    tolerated, then by the XML's stem. ``difficult``, ``truncated``, ``occluded``, ``pose`` and
    ``<attributes>`` are kept in ``attributes``; ``<part>`` and ``<actions>`` under
    ``attributes.voc``. An XML without objects is a null image; an image without XML is unlabeled.
    """

    name = "voc"
    summary = "Pascal VOC XML (Annotations/ + JPEGImages/, or XML next to images)"
    options_help = {"labelmap": "a labelmap.txt giving the class order"}

    def __init__(self, root, **kwargs):
        super().__init__(root, **kwargs)
        self._names: list[str] | None = None
        self._items: list[tuple[str, str, Path | None, Path | None]] | None = None

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        if not root.is_dir():
            return Confidence(Score.NO, "not a folder")
        ann = root / "Annotations"
        if ann.is_dir() and any(p.suffix.lower() == ".xml" for p in ann.iterdir()):
            return Confidence(Score.STRUCTURE, "Annotations/*.xml")
        for d in [root] + [p for p in sorted(root.iterdir()) if p.is_dir() and is_split_name(p.name)]:
            for x in sorted(d.glob("*.xml"))[:3]:
                if "<annotation" in read_prefix(x, 4096):
                    return Confidence(Score.PLAUSIBLE, f"{relpath_posix(x, root)} is a VOC <annotation>")
        return Confidence(Score.NO, "no Annotations/*.xml and no <annotation> XML next to images")

    @property
    def task(self) -> str:
        return "detection"

    @property
    def devkit(self) -> bool:
        return (self.root / "Annotations").is_dir()

    def _plan(self) -> list[tuple[str, str, Path | None, Path | None]]:
        """(split, id, xml, image-dir) per item, in a deterministic order."""
        if self._items is not None:
            return self._items
        items: list[tuple[str, str, Path | None, Path | None]] = []
        if self.devkit:
            ann_dir, img_dir = self.root / "Annotations", self.root / "JPEGImages"
            xml_by_stem = {p.stem: p for p in walk_files(ann_dir) if p.suffix.lower() == ".xml"}
            xml_lower = {k.lower(): v for k, v in xml_by_stem.items()}
            img_by_stem = {p.stem: p for p in walk_files(img_dir) if is_image_name(p.name)} if img_dir.is_dir() else {}
            sets_dir = self.root / "ImageSets" / "Main"
            lists = {p.stem: p for p in sorted(sets_dir.glob("*.txt")) if "_" not in p.stem} if sets_dir.is_dir() else {}
            if ("train" in lists or "val" in lists) and "trainval" in lists:
                self.policy.note("ImageSets/Main/trainval.txt", "redundant_split_list", "ignored_file",
                                 "trainval.txt repeats train.txt + val.txt; train and val were read")
                del lists["trainval"]
            listed: set[str] = set()
            for name, lst in sorted(lists.items()):
                for line in lst.read_text(encoding="utf-8", errors="replace").splitlines():
                    if line.split():
                        stem = line.split()[0]
                        listed.add(stem.lower())
                        items.append((canonical_split(name), stem, xml_lower.get(stem.lower()), img_dir))
            # VOC stems are matched ignoring case: 0AF.jpg belongs to 0af.xml
            stems = {s.lower(): s for s in img_by_stem} | {s.lower(): s for s in xml_by_stem}
            for low, stem in sorted(stems.items()):
                if low not in listed:
                    if lists:
                        self.policy.note(stem, "not_in_image_sets", "kept",
                                         "not listed in ImageSets/Main/*.txt; put in train")
                    items.append(("train", stem, xml_lower.get(low), img_dir))
        else:
            images, annotated = [], set()
            for p in walk_files(self.root):
                rel = relpath_posix(p, self.root).split("/")
                split = canonical_split(rel[0]) if len(rel) > 1 and is_split_name(rel[0]) else "train"
                if p.suffix.lower() == ".xml":
                    items.append((split, p.stem, p, p.parent))
                    annotated.add((p.parent, p.stem.lower()))
                elif is_image_name(p.name):
                    images.append((split, p))
            # images without an XML are kept as unlabeled, never left out (after the annotated ones,
            # so an XML naming an image of another stem claims it first)
            items += [(split, p.stem, None, p.parent) for split, p in images if (p.parent, p.stem.lower()) not in annotated]
        self._items = items
        return items

    def categories(self) -> list[str]:
        if self._names is None:
            lm = [Path(self.root, self.options["labelmap"])] if "labelmap" in self.options else \
                [self.root / "labelmap.txt", self.root / "Annotations" / "labelmap.txt"]
            for p in lm:
                if p.is_file():
                    self._names = parse_labelmap(p.read_text(encoding="utf-8"))
                    return self._names
            names: set[str] = set()
            for _, _, xml, _ in self._plan():
                if xml is None:
                    continue
                try:
                    root = parse_voc_xml(xml)
                except MalformedFileError:
                    continue  # reported when the record is read
                names.update((o.findtext("name") or "").strip() for o in root.findall("object"))
            names.discard("")
            self._names = sorted(names)
        return self._names

    def _find_image(self, xml: Path | None, stem: str, img_dir: Path | None, filename: str | None) -> Path | None:
        dirs = [d for d in (img_dir, xml.parent if xml else None, self.root) if d is not None]
        names = []
        if filename:
            rel = safe_relative(filename, file=str(xml), item=stem)
            names.append(rel.as_posix())
            if not os.path.splitext(rel.name)[1]:
                names += [rel.as_posix() + ext for ext in (".jpg", ".jpeg", ".png", ".JPG", ".bmp")]
        names += [stem + ext for ext in sorted(IMAGE_EXTENSIONS)]
        for d in dirs:
            for n in names:
                parent = (d / n).parent
                hit = find_case_insensitive(parent, Path(n).name)
                if hit is not None:
                    return hit
        return None

    def records(self) -> Iterator[ImageRecord]:
        names = set(self.categories())
        has_masks = (self.root / "SegmentationObject").is_dir()
        yielded: set[Path] = set()
        for split, stem, xml, img_dir in self._plan():
            xml_rel = relpath_posix(xml, self.root) if xml else None
            root = None
            try:
                root = parse_voc_xml(xml) if xml else None
                filename = root.findtext("filename") if root is not None else None
                image = self._find_image(xml, stem, img_dir, filename.strip() if filename else None)
                if image is None:
                    raise MissingImageError(f"no image for {stem!r}", file=xml_rel or stem, item=stem,
                                            expected=f"an image named {filename or stem + '.*'} in "
                                                     f"{relpath_posix(img_dir, self.root) if img_dir else 'the root'}")
            except SourceError as exc:
                n = len(root.findall("object")) if root is not None else _objects_in_raw(xml)
                self.policy.handle(exc, action="dropped_image", annotations=n)
                continue
            if xml is None and image in yielded:   # an image without its own XML, claimed by another XML
                continue
            yielded.add(image)
            rec = ImageRecord(image_id=relpath_posix(image, self.root), path=image, split=split, source_file=xml_rel)
            if root is None:
                rec.label_status = "unlabeled"
                yield rec
                continue
            size = root.find("size")
            if size is not None:
                w, h = _flag(size.findtext("width")), _flag(size.findtext("height"))
                if w and h:
                    rec.declared_size = (w, h)
            objects = root.findall("object")
            for i, obj in enumerate(objects):
                item = f"{rec.image_id}#object {i}"
                try:
                    o = parse_object(obj, file=xml_rel or "", item=item)
                    o.ref = f"object {i}"
                    if o.category not in names:
                        raise UnknownClassError(f"class {o.category!r} is not in the label map", file=xml_rel,
                                                item=item, expected=f"one of {sorted(names)}")
                except SourceError as exc:
                    self.policy.handle(exc, action="dropped_annotation")
                    continue
                rec.objects.append(o)
            if filename and Path(filename.strip()).name != image.name:
                rec.note("filename_mismatch", "kept", f"<filename> {filename.strip()!r} matched {image.name!r}")
            if has_masks and (self.root / "SegmentationObject" / f"{stem}.png").is_file():
                rec.note("voc_mask_not_read", "ignored_file",
                         "SegmentationObject/SegmentationClass PNG masks are not read with the boxes; --format voc_segmentation reads them")
            rec.label_status = label_status_of(len(rec.objects), len(objects))
            if objects and not rec.objects:
                rec.note("all_annotations_dropped", "unlabeled", f"all {len(objects)} objects were dropped")
            yield rec
