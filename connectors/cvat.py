"""CVAT for images 1.1 and CVAT for video 1.1 (task and project exports, zip or folder).

Pure parsing in :mod:`connectors.cvat_shapes` (re-exported here); the connector finds files and loops.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator
from xml.etree.ElementTree import Element

from cvft_data import boxes
from cvft_data.errors import (
    GeometryError,
    MalformedFileError,
    MissingImageError,
    SourceError,
    UnknownClassError,
)
from cvft_data.paths import safe_relative
from cvft_data.vocabulary import canonical_split, is_split_name

from ._source import Source, open_source
from ._xml import parse_xml
from .base import Confidence, Connector, ImageRecord, ObjectRecord, Score, is_image_name, label_status_of, register
from .cvat_shapes import (  # noqa: F401 (re-exported)
    _COMMON,
    _SHAPES,
    _hull,
    cvat_mask_to_rle,
    ellipse_polygon,
    parse_attribute_value,
    parse_points,
    rotated_box_polygon,
)


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
        self.source = self.open_source()
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
        rel = safe_relative(name, item=name)   # an UnsafePathError, like every connector
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
            rec.label_status = label_status_of(len(rec.objects), len(shapes))
            yield rec
