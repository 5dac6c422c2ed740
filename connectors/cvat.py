"""CVAT for images 1.1 and CVAT for video 1.1 (task and project exports, zip or folder).

Pure parsing: :func:`parse_points`, :func:`rotated_box_polygon`, :func:`ellipse_polygon`,
:func:`cvat_mask_to_rle`, :func:`parse_attribute_value`; the connector finds files and loops.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Any, Iterator
from xml.etree.ElementTree import Element

import numpy as np

from cvft_data import boxes, masks
from cvft_data.errors import (
    AnnotationError,
    GeometryError,
    MalformedFileError,
    MissingImageError,
    SourceError,
    UnknownClassError,
)
from cvft_data.vocabulary import canonical_split, is_split_name

from ._source import Source, open_source
from ._xml import parse_xml
from .base import Confidence, Connector, ImageRecord, ObjectRecord, Score, is_image_name, register

_SHAPES = ("box", "polygon", "polyline", "points", "ellipse", "cuboid", "mask", "skeleton")
_COMMON = {"label", "occluded", "z_order", "group_id", "source", "rotation", "outside", "keyframe", "frame",
           "points", "xtl", "ytl", "xbr", "ybr", "rle", "left", "top", "width", "height", "cx", "cy", "rx", "ry"}


def parse_points(text: str, *, file: str = "", item: str = "") -> list[float]:
    """``"x0,y0;x1,y1"`` -> ``[x0, y0, x1, y1]``."""
    out: list[float] = []
    try:
        for pair in text.strip().split(";"):
            if pair.strip():
                x, y = pair.split(",")
                out += [float(x), float(y)]
    except ValueError:
        raise AnnotationError(f"points {text[:40]!r} are not x,y pairs", file=file, item=item,
                              expected='"x0,y0;x1,y1;..."') from None
    return out


def rotated_box_polygon(xtl: float, ytl: float, xbr: float, ybr: float, degrees: float) -> list[float]:
    """The four corners of a box rotated clockwise (in image coordinates, y down) about its centre."""
    cx, cy = (xtl + xbr) / 2, (ytl + ybr) / 2
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    out = []
    for x, y in ((xtl, ytl), (xbr, ytl), (xbr, ybr), (xtl, ybr)):
        dx, dy = x - cx, y - cy
        out += [cx + dx * c - dy * s, cy + dx * s + dy * c]
    return out


def ellipse_polygon(cx: float, cy: float, rx: float, ry: float, degrees: float = 0.0, n: int = 32) -> list[float]:
    t0 = math.radians(degrees)
    out = []
    for k in range(n):
        a = 2 * math.pi * k / n
        x, y = rx * math.cos(a), ry * math.sin(a)
        out += [cx + x * math.cos(t0) - y * math.sin(t0), cy + x * math.sin(t0) + y * math.cos(t0)]
    return out


def cvat_mask_to_rle(rle_text: str, left: int, top: int, width: int, height: int, image_w: int, image_h: int,
                     *, file: str = "", item: str = "") -> dict:
    """CVAT XML mask -> COCO RLE over the whole image.

    CVAT's XML ``rle`` is run lengths alternating 0 and 1, background first, ROW-major over the
    ``width`` x ``height`` crop placed at (``left``, ``top``) (unlike COCO's column-major RLE).
    """
    try:
        counts = [int(v) for v in rle_text.replace(" ", "").split(",") if v]
    except ValueError:
        raise GeometryError("mask rle is not a list of integers", file=file, item=item,
                            expected='"n0, n1, n2, ..."') from None
    if sum(counts) != width * height:
        raise GeometryError(f"mask rle covers {sum(counts)} pixels, its box {width}x{height} = {width * height}",
                            file=file, item=item, expected="run lengths summing to width*height")
    flat = np.zeros(width * height, np.uint8)
    pos = 0
    for i, n in enumerate(counts):
        if i % 2:
            flat[pos:pos + n] = 1
        pos += n
    crop = flat.reshape(height, width)
    full = np.zeros((image_h, image_w), np.uint8)
    y1, x1 = min(top + height, image_h), min(left + width, image_w)
    if top < 0 or left < 0 or y1 <= top or x1 <= left:
        raise GeometryError(f"mask box at ({left}, {top}) is outside the {image_w}x{image_h} image", file=file,
                            item=item, expected="a mask inside the image")
    full[top:y1, left:x1] = crop[: y1 - top, : x1 - left]
    return masks.encode(full)


def parse_attribute_value(value: str, input_type: str | None) -> Any:
    """Attribute text -> a typed value, by the label's attribute spec."""
    v = (value or "").strip()
    if input_type == "checkbox":
        return v.lower() == "true"
    if input_type == "number":
        try:
            f = float(v)
            return int(f) if f.is_integer() else f
        except ValueError:
            return v
    return v


def _xml(source: Source, name: str) -> Element:
    return parse_xml(source.read_bytes(name), file=source.describe(name), item=name,
                     expected="a CVAT <annotations> document")


@register
class CvatConnector(Connector):
    """CVAT "for images 1.1" and "for video 1.1" exports, as the zip CVAT serves or unpacked.

    ::

        export.zip or export/
        ├── annotations.xml          <annotations><version>1.1</version><meta><task>|<project>...
        └── images/                  (project exports: images/<subset>/...)
            ├── img0.jpg
            └── frame_000010.png     (video: one image per frame)

    Boxes (rotated boxes as polygons), polygons, polylines, points, ellipses, cuboids and skeletons
    are kept in ``objects`` (the shape type in ``attributes.shape``); masks become COCO RLE; tags
    make a classification (or multi-label) dataset when there are no shapes. Attributes are typed by
    the label spec; ``occluded``, ``z_order``, ``group_id``, ``source`` are kept. A project's
    ``subset`` is the split; video tracks are expanded to frames, ``outside="1"`` ends a track, and
    interpolated frames are kept with ``keyframe`` false.
    """

    name = "cvat"
    summary = "CVAT for images / for video 1.1 XML (zip or folder)"
    options_help = {"images": "folder holding the images when the export has none (annotations-only XML)"}

    def __init__(self, root, **kwargs):
        root = Path(root)
        self._xml_file: str | None = None
        if root.is_file() and root.suffix.lower() == ".xml":
            self._xml_file, root = root.name, root.parent
        super().__init__(root, **kwargs)
        self.source = open_source(self.root)
        for name in self.source.refused:
            self.policy.handle(MalformedFileError("zip member with an unsafe name refused", file=str(self.root),
                                                  item=name, expected="a relative name without '..'"),
                               action="ignored_file")
        self._docs: list[tuple[str, Element]] | None = None
        self._labels: list[str] = []
        self._label_info: list[dict] = []
        self._specs: dict[str, dict[str, str]] = {}
        self._sublabels: dict[str, list[str]] = defaultdict(list)

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        try:
            src = open_source(root.parent if root.suffix.lower() == ".xml" and root.is_file() else root)
        except MalformedFileError:
            return Confidence(Score.NO, "not a readable zip")
        if root.is_file() and root.suffix.lower() == ".xml":
            names = [root.name]
        else:
            names = [n for n in src.files() if "/" not in n and n.lower().endswith(".xml")]
        for n in names[:5]:
            head = src.read_bytes(n)[:4096].decode("utf-8", "replace")
            if "<annotations" in head and "<version>" in head:
                return Confidence(Score.MARKED, f"{n} is a CVAT <annotations> document")
        return Confidence(Score.NO, "no top-level XML with <annotations><version>")

    # -- reading the XML ----------------------------------------------------------------------------
    def _load(self) -> list[tuple[str, Element]]:
        if self._docs is not None:
            return self._docs
        names = [self._xml_file] if self._xml_file else \
            [n for n in self.source.files() if "/" not in n and n.lower().endswith(".xml")]
        self._docs = []
        for n in names:
            root = _xml(self.source, n)
            if root.tag != "annotations":
                continue
            self._docs.append((n, root))
            meta = root.find("meta")
            holder = meta.find("project") if meta is not None and meta.find("project") is not None else \
                (meta.find("task") if meta is not None else None)
            for lab in holder.findall("labels/label") if holder is not None else []:
                name = lab.findtext("name") or ""
                parent = lab.findtext("parent")
                if parent:
                    self._sublabels[parent].append(name)
                    continue
                if name not in self._labels:
                    self._labels.append(name)
                    self._label_info.append({"name": name, "type": lab.findtext("type") or "any",
                                             **({"color": lab.findtext("color")} if lab.findtext("color") else {})})
                    self._specs[name] = {a.findtext("name") or "": a.findtext("input_type") or "text"
                                         for a in lab.findall("attributes/attribute")}
        if not self._docs:
            raise MalformedFileError("no <annotations> XML found", file=str(self.root), item=self.root.name,
                                     expected="annotations.xml from a CVAT 1.1 export")
        return self._docs

    def categories(self) -> list[str]:
        self._load()
        return list(self._labels)

    def category_info(self) -> list[dict]:
        self._load()
        return [dict(c, **({"keypoints": self._sublabels[c["name"]]} if c["name"] in self._sublabels else {}))
                for c in self._label_info]

    @property
    def task(self) -> str:
        shapes = tags = 0
        multi = False
        for _, root in self._load():
            for img in root.iter("image"):
                n_tags = len(img.findall("tag"))
                tags += n_tags
                multi |= n_tags > 1
                shapes += sum(len(img.findall(s)) for s in _SHAPES)
            shapes += len(root.findall("track"))
        if shapes == 0 and tags:
            return "multilabel" if multi else "classification"
        kinds = {el.tag for _, root in self._load() for el in root.iter() if el.tag in ("polygon", "mask")}
        return "instance_segmentation" if kinds else "detection"

    # -- shapes -------------------------------------------------------------------------------------
    def _attributes(self, el: Element, label: str) -> dict[str, Any]:
        spec = self._specs.get(label, {})
        out: dict[str, Any] = {}
        for a in el.findall("attribute"):
            key = a.get("name") or ""
            out[key] = parse_attribute_value(a.text or "", spec.get(key))
        for k in ("occluded", "keyframe"):
            if el.get(k) is not None:
                out[k] = el.get(k) == "1"
        for k in ("z_order", "group_id"):
            if el.get(k) is not None:
                try:
                    out[k] = int(el.get(k))
                except ValueError:
                    out[k] = el.get(k)
        if el.get("source"):
            out["source"] = el.get("source")
        return out

    def _shape(self, el: Element, label: str, size: tuple[int, int] | None, file: str, item: str,
               rec: ImageRecord) -> ObjectRecord | None:
        """One CVAT shape element -> ObjectRecord (None for shapes this connector drops, ledgered)."""
        tag = el.tag
        attrs = self._attributes(el, label)
        attrs["shape"] = tag
        f = lambda k: float(el.get(k, "0"))  # noqa: E731
        if tag == "box":
            rot = float(el.get("rotation", "0") or 0)
            if rot % 360:
                poly = rotated_box_polygon(f("xtl"), f("ytl"), f("xbr"), f("ybr"), rot)
                attrs["rotation"] = rot
                rec.note("rotated_box", "converted", f"{item}: box rotated {rot} deg kept as a polygon; "
                         "its bbox is the axis-aligned hull", file)
                return ObjectRecord(label, bbox=boxes.polygons_bbox([poly]), polygons=[poly], attributes=attrs, ref=item)
            return ObjectRecord(label, bbox=boxes.xyxy_to_xywh(f("xtl"), f("ytl"), f("xbr"), f("ybr")),
                                attributes=attrs, ref=item)
        if tag == "polygon":
            pts = parse_points(el.get("points", ""), file=file, item=item)
            if len(pts) < 6:
                raise GeometryError(f"polygon with {len(pts) // 2} points", file=file, item=item,
                                    expected="at least 3 points")
            return ObjectRecord(label, polygons=[pts], attributes=attrs, ref=item)
        if tag in ("polyline", "points"):
            pts = parse_points(el.get("points", ""), file=file, item=item)
            attrs["points"] = pts
            return ObjectRecord(label, bbox=_hull(pts), attributes=attrs, ref=item)
        if tag == "ellipse":
            poly = ellipse_polygon(f("cx"), f("cy"), f("rx"), f("ry"), float(el.get("rotation", "0") or 0))
            attrs.update({k: f(k) for k in ("cx", "cy", "rx", "ry")})
            rec.note("ellipse_as_polygon", "converted", f"{item}: ellipse kept as a 32-point polygon", file)
            return ObjectRecord(label, bbox=boxes.polygons_bbox([poly]), polygons=[poly], attributes=attrs, ref=item)
        if tag == "cuboid":
            pts = [float(el.get(k, "0")) for k in ("xtl1", "ytl1", "xbl1", "ybl1", "xtr1", "ytr1", "xbr1", "ybr1",
                                                     "xtl2", "ytl2", "xbl2", "ybl2", "xtr2", "ytr2", "xbr2", "ybr2")]
            attrs["points"] = pts
            rec.note("cuboid_as_box", "converted", f"{item}: cuboid kept as its 2-D hull, corners in attributes", file)
            return ObjectRecord(label, bbox=_hull(pts), attributes=attrs, ref=item)
        if tag == "mask":
            if size is None:
                raise GeometryError("mask on an image of unknown size", file=file, item=item,
                                    expected="<image width height>")
            rle = cvat_mask_to_rle(el.get("rle", ""), int(f("left")), int(f("top")), int(f("width")),
                                   int(f("height")), size[0], size[1], file=file, item=item)
            return ObjectRecord(label, rle=rle, attributes=attrs, ref=item)
        if tag == "skeleton":
            nodes = self._sublabels.get(label, [])
            by_name = {p.get("label"): p for p in el.findall("points")}
            kp: list[float] = []
            flat_points = parse_points(el.get("points", ""), file=file, item=item) if el.get("points") else []
            for k, node in enumerate(nodes):
                p = by_name.get(node)
                if p is not None:
                    xy = parse_points(p.get("points", ""), file=file, item=item)[:2] or [0.0, 0.0]
                    vis = 0.0 if p.get("outside") == "1" else (1.0 if p.get("occluded") == "1" else 2.0)
                elif len(flat_points) >= 2 * (k + 1):  # video skeletons carry the node points inline
                    xy, vis = flat_points[2 * k: 2 * k + 2], 2.0
                else:
                    xy, vis = [0.0, 0.0], 0.0
                kp += [xy[0], xy[1], vis]
            visible = [v for i in range(0, len(kp), 3) if kp[i + 2] > 0 for v in kp[i:i + 2]]
            attrs["nodes"] = nodes
            return ObjectRecord(label, bbox=_hull(visible or kp[:2] or [0.0, 0.0]), keypoints=kp, attributes=attrs,
                                ref=item)
        return None

    def _checked_shape(self, el: Element, label: str, names: set[str], size, fname: str, item: str,
                       rec: ImageRecord) -> ObjectRecord | None:
        """:meth:`_shape` after the label check; a bad shape goes to the policy (None)."""
        try:
            if label not in names:
                raise UnknownClassError(f"label {label!r} is not declared in <meta>", file=fname,
                                        item=f"{rec.image_id}#{item}", expected=f"one of {sorted(names)}")
            return self._shape(el, label, size, fname, item, rec)
        except SourceError as exc:
            exc.item = exc.item if exc.item and "#" in exc.item else f"{rec.image_id}#{item}"
            self.policy.handle(exc, action="dropped_annotation")
            return None

    def _image_file(self, name: str, subset: str | None) -> str | None:
        rel = PurePosixPath(name.replace("\\", "/"))
        if rel.is_absolute() or ".." in rel.parts:
            raise SourceError(f"image name {name!r} escapes the dataset root", item=name,
                              expected="a relative image name")
        cands = ([f"images/{subset}/{rel}"] if subset else []) + [f"images/{rel}", str(rel)]
        for c in cands:
            hit = self.source.find(c)
            if hit:
                return hit
        if "images" in self.options:
            p = Path(self.options["images"]) / rel
            if p.is_file():
                return str(p)
        return None

    def _record_for(self, file_key: str, image_id: str, split: str, fname: str) -> ImageRecord:
        if Path(file_key).is_absolute():
            return ImageRecord(image_id=image_id, path=Path(file_key), split=split, source_file=fname)
        path, member = self.source.location(file_key)
        return ImageRecord(image_id=image_id, path=path, member=member, split=split, source_file=fname)

    def records(self) -> Iterator[ImageRecord]:
        names = set(self.categories())
        task = self.task
        for fname, root in self._load():
            stem = Path(fname).stem
            default_split = canonical_split(stem) if is_split_name(stem) else "train"
            if root.findall("track"):
                yield from self._video_records(root, fname, default_split, names)
                continue
            for img in root.findall("image"):
                name = img.get("name", "")
                subset = img.get("subset")
                split = canonical_split(subset) if subset else default_split
                n_shapes = sum(len(img.findall(s)) for s in _SHAPES) + len(img.findall("tag"))
                try:
                    key = self._image_file(name, subset)
                    if key is None:
                        raise MissingImageError(f"image {name!r} not in the export", file=fname, item=name,
                                                expected=f"images/{name}" + (f" or images/{subset}/{name}" if subset else ""))
                except SourceError as exc:
                    exc.file = exc.file or fname
                    self.policy.handle(exc, action="dropped_image", annotations=n_shapes)
                    continue
                image_id = key if not Path(key).is_absolute() else name
                rec = self._record_for(key, image_id, split, fname)
                rec.meta = {"cvat": {k: v for k, v in img.attrib.items() if k not in ("name", "width", "height")}}
                try:
                    size = (int(img.get("width")), int(img.get("height")))
                    rec.declared_size = size
                except (TypeError, ValueError):
                    size = None
                tags = [t.get("label", "") for t in img.findall("tag")]
                for k, el in enumerate(e for e in img if e.tag in _SHAPES):
                    obj = self._checked_shape(el, el.get("label", ""), names, size, fname, f"{el.tag} {k}", rec)
                    if obj is not None:
                        rec.objects.append(obj)
                self._apply_tags(rec, tags, task, names, fname)
                if task in ("classification", "multilabel"):
                    rec.label_status = "labeled" if (rec.label or rec.labels) else ("unlabeled" if tags else "empty")
                else:
                    rec.label_status = "labeled" if rec.objects else ("unlabeled" if n_shapes - len(tags) else "empty")
                yield rec

    def _apply_tags(self, rec: ImageRecord, tags: list[str], task: str, names: set[str], fname: str) -> None:
        good = []
        for t in tags:
            if t in names:
                good.append(t)
            else:
                self.policy.handle(UnknownClassError(f"tag {t!r} is not declared", file=fname,
                                                     item=f"{rec.image_id}#tag", expected="a declared label"),
                                   action="dropped_annotation")
        if task == "classification":
            rec.label = good[0] if good else None
        elif task == "multilabel":
            rec.labels = good
        elif good:
            rec.meta["tags"] = good  # image-level tags beside shapes: kept as metadata
            rec.note("tags_in_meta", "kept", f"{len(good)} image tag(s) kept in meta.tags (the dataset has shapes)")

    def _video_records(self, root: Element, fname: str, split: str, names: set[str]) -> Iterator[ImageRecord]:
        task = root.find("meta/task")
        try:
            size = (int(task.findtext("original_size/width")), int(task.findtext("original_size/height")))
        except (TypeError, ValueError, AttributeError):
            size = None
        frames: dict[int, list[tuple[Element, str, str]]] = defaultdict(list)
        for track in root.findall("track"):
            label = track.get("label", "")
            for el in track:
                if el.tag not in _SHAPES or el.get("outside") == "1":
                    continue  # outside="1" marks where the object left the frame: not an annotation
                frames[int(el.get("frame", "0"))].append((el, label, track.get("id", "?")))
        frame_files = {}
        for n in self.source.files():
            m = re.search(r"frame_(\d+)\.\w+$", n)
            if m and is_image_name(n):
                frame_files[int(m.group(1))] = n
        for frame in sorted(set(frames) | set(frame_files)):
            shapes = frames.get(frame, [])
            key = frame_files.get(frame)
            if key is None:
                self.policy.handle(MissingImageError(f"no image for frame {frame}", file=fname, item=f"frame {frame}",
                                                     expected=f"images/frame_{frame:06d}.png or .jpg"),
                                   action="dropped_image", annotations=len(shapes))
                continue
            rec = self._record_for(key, key, split, fname)
            rec.declared_size, rec.meta = size, {"cvat": {"frame": frame}}
            for el, label, track_id in shapes:
                obj = self._checked_shape(el, label, names, size, fname, f"track {track_id} {el.tag}", rec)
                if obj is not None:
                    obj.attributes["track_id"] = int(track_id) if track_id.isdigit() else track_id
                    rec.objects.append(obj)
            rec.label_status = "labeled" if rec.objects else ("unlabeled" if shapes else "empty")
            yield rec


def _hull(pts: list[float]) -> tuple[float, float, float, float]:
    """Axis-aligned hull of points, at least 1 px wide and high (a point or a straight line still
    needs a box the builder accepts; the exact points stay in ``attributes.points``)."""
    x, y, w, h = boxes.polygons_bbox([pts])
    if w < 1:
        x, w = x - (1 - w) / 2, 1.0
    if h < 1:
        y, h = y - (1 - h) / 2, 1.0
    return (x, y, w, h)
