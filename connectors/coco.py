"""COCO instances (boxes, polygons, RLE, keypoints) and COCO panoptic.

Pure parsing lives in :func:`parse_categories` and :func:`parse_annotation`; the connectors only
find files and loop.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from cvft_data import masks
from cvft_data.boxes import polygon_area, polygons_bbox
from cvft_data.errors import (
    AnnotationError,
    GeometryError,
    MalformedFileError,
    MissingImageError,
    SourceError,
    UnknownClassError,
)
from cvft_data.paths import inside, is_absolute_name, relpath_posix, safe_relative
from cvft_data.vocabulary import canonical_split, is_split_name

from ._json import load_json
from .base import Confidence, Connector, ImageRecord, ObjectRecord, Score, SegmentRecord, read_prefix, register

_STANDARD_ANN_KEYS = {"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation", "attributes",
                      "keypoints", "num_keypoints"}
_STANDARD_IMG_KEYS = {"file_name", "width", "height"}
# Which annotation file wins when several describe the same split (instances carry the most).
_PREFIX_PRIORITY = ("instances", "person_keypoints", "stuff")


def split_of_file(path: Path) -> str:
    """``instances_val2017.json`` -> ``validation``; ``train/_annotations.coco.json`` -> ``train``;
    a file with no split in its name -> ``train``."""
    if path.name.startswith("_annotations") and is_split_name(path.parent.name):
        return canonical_split(path.parent.name)
    token = path.stem.split("_")[-1]
    m = re.fullmatch(r"(train|val|valid|validation|test|dev)(\d*)", token.lower())
    if m:
        return canonical_split(m.group(1))
    return "train"


def _split_token(path: Path) -> str:
    if path.name.startswith("_annotations"):
        return path.parent.name
    return path.stem.split("_")[-1]


def parse_categories(data: dict, file: str) -> list[dict]:
    cats = data.get("categories")
    if cats is None:
        raise MalformedFileError("no 'categories' list", file=file, item="categories",
                                 expected="a COCO document with images, annotations and categories")
    out = []
    for i, c in enumerate(cats):
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            raise MalformedFileError(f"category #{i} has no id or name", file=file, item=f"categories[{i}]",
                                     expected='{"id": int, "name": str}')
        out.append(c)
    return out


def _numbers(values: Any, n: int | None = None) -> list[float] | None:
    if not isinstance(values, (list, tuple)) or (n is not None and len(values) != n):
        return None
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        return None


def parse_annotation(ann: dict, id_to_name: dict[Any, str], *, file: str, image_size: tuple[int, int] | None
                     ) -> tuple[ObjectRecord, list[str]]:
    """One COCO annotation -> :class:`ObjectRecord`, plus the names of fields it had to derive.

    Raises :class:`AnnotationError` (or a subclass) when the annotation cannot be used.
    """
    ref = f"annotation {ann.get('id', '?')}"
    if "category_id" not in ann or ann["category_id"] is None:
        raise AnnotationError("annotation has no category_id", file=file, item=ref,
                              expected="a category_id from the categories list")
    cid = ann["category_id"]
    if cid not in id_to_name:
        raise UnknownClassError(f"category_id {cid} is not declared", file=file, item=ref,
                                expected=f"one of the declared ids {sorted(id_to_name, key=str)}")
    derived: list[str] = []
    polygons: list[list[float]] = []
    rle = None
    seg = ann.get("segmentation")
    if isinstance(seg, dict):
        if "counts" not in seg or "size" not in seg:
            raise GeometryError("RLE segmentation without counts/size", file=file, item=ref,
                                expected='{"size": [h, w], "counts": ...}')
        if image_size and [int(v) for v in seg["size"]] != [image_size[1], image_size[0]]:
            raise GeometryError(f"RLE size {seg['size']} differs from the image size (h, w) "
                                f"{[image_size[1], image_size[0]]}", file=file, item=ref,
                                expected="an RLE over the whole image")
        try:
            rle = masks.to_compressed(seg)
        except Exception as exc:
            raise GeometryError(f"RLE does not decode: {exc}", file=file, item=ref,
                                expected="a valid COCO RLE") from None
    elif isinstance(seg, list):
        for part in seg:
            if part in ([], None):
                continue  # "[[]]" and "[]" mean "box only"
            nums = _numbers(part)
            if nums is None or len(nums) < 6 or len(nums) % 2:
                raise GeometryError(f"polygon with {len(part) if isinstance(part, list) else '?'} values",
                                    file=file, item=ref, expected="at least 3 (x, y) pairs")
            polygons.append(nums)
    elif seg is not None:
        raise GeometryError(f"segmentation of type {type(seg).__name__}", file=file, item=ref,
                            expected="a list of polygons or an RLE dict")
    bbox = _numbers(ann.get("bbox"), 4) if ann.get("bbox") not in (None, []) else None
    if ann.get("bbox") not in (None, []) and bbox is None:
        raise GeometryError(f"bbox {ann.get('bbox')!r} is not 4 numbers", file=file, item=ref,
                            expected="[x, y, width, height]")
    if bbox is None:
        if polygons:
            bbox = list(polygons_bbox(polygons))
        elif rle is not None:
            bbox = list(masks.bbox(rle))
        else:
            raise GeometryError("annotation has neither bbox nor segmentation", file=file, item=ref,
                                expected="a bbox or a segmentation")
        derived.append("bbox")
    if bbox[2] <= 0 or bbox[3] <= 0:
        raise GeometryError(f"degenerate box {bbox} (width or height <= 0)", file=file, item=ref,
                            expected="a box with positive width and height")
    area = ann.get("area")
    if area is None:
        area = masks.area(rle) if rle else (sum(polygon_area(p) for p in polygons) if polygons
                                            else bbox[2] * bbox[3])
        derived.append("area")
    attributes: dict[str, Any] = dict(ann["attributes"]) if isinstance(ann.get("attributes"), dict) else {}
    extras = {k: v for k, v in ann.items() if k not in _STANDARD_ANN_KEYS}
    coco = {"id": ann.get("id"), **extras}
    if "num_keypoints" in ann:
        coco["num_keypoints"] = ann["num_keypoints"]
    attributes["coco"] = coco
    keypoints = _numbers(ann.get("keypoints")) if ann.get("keypoints") else None
    obj = ObjectRecord(category=id_to_name[cid], bbox=tuple(bbox), polygons=polygons, rle=rle,
                       iscrowd=bool(ann.get("iscrowd", 0)), area=float(area), attributes=attributes,
                       keypoints=keypoints, ref=ref)
    return obj, derived


def annotations_by_image(doc: dict, *, file: str, policy) -> dict[Any, list[dict]]:
    """COCO-family annotations grouped by ``image_id``; one whose image is not declared goes to
    ``policy`` (dropped)."""
    image_ids = {img.get("id") for img in doc.get("images") or [] if isinstance(img, dict)}
    by_image: dict[Any, list[dict]] = defaultdict(list)
    for ann in doc.get("annotations") or ():
        iid = ann.get("image_id") if isinstance(ann, dict) else None
        if iid not in image_ids:
            ref = ann.get("id", "?") if isinstance(ann, dict) else "?"
            policy.handle(AnnotationError(f"image_id {iid!r} is not in the images list", file=file,
                                          item=f"annotation {ref}", expected="an image_id of a declared image"),
                          action="dropped_annotation")
            continue
        by_image[iid].append(ann)
    return by_image


def add_annotations(rec: ImageRecord, anns: list[dict], id_to_name: dict[Any, str], *, file: str,
                    policy) -> None:
    """Parse ``anns`` into ``rec.objects`` (bad ones to ``policy``) and set ``rec.label_status``:
    labeled, empty (no annotations: COCO's null image) or unlabeled (all of them dropped)."""
    for ann in anns:
        try:
            obj, derived = parse_annotation(ann, id_to_name, file=file, image_size=rec.declared_size)
        except SourceError as exc:
            exc.item = f"{rec.image_id}#{exc.item}"
            policy.handle(exc, action="dropped_annotation")
            continue
        if "bbox" in derived:
            rec.note("bbox_derived", "derived", f"annotation {ann.get('id')}: bbox computed from its segmentation")
        rec.objects.append(obj)
    if rec.objects:
        rec.label_status = "labeled"
    elif anns:
        rec.label_status = "unlabeled"  # it had annotations, none usable
        rec.note("all_annotations_dropped", "unlabeled",
                 f"all {len(anns)} annotations were dropped; the image is kept as unlabeled")
    else:
        rec.label_status = "empty"


class _CocoBase(Connector):
    """Finding annotation files and images, shared by instances and panoptic."""

    file_prefixes: tuple[str, ...] = ()
    options_help = {"annotation_file": "read only this JSON file (path relative to the root, or absolute)"}

    def __init__(self, root, **kwargs):
        root = Path(root)
        self._single_file: Path | None = None
        if root.is_file():
            self._single_file, root = root, root.parent
        super().__init__(root, **kwargs)
        if "annotation_file" in self.options:
            self._single_file = Path(self.root, self.options["annotation_file"])
        self._loaded: list[tuple[str, Path, dict]] | None = None
        self._real_dirs: dict[str, str] = {}  # folder -> its real path, for the inside-the-root check
        self._bases: dict[Path, list[str]] = {}
        self._names: list[str] = []
        self._cat_info: list[dict] = []

    @classmethod
    def candidate_files(cls, root: Path) -> list[Path]:
        if root.is_file():
            return [root] if root.suffix.lower() == ".json" else []
        found = sorted(root.glob("*.json")) + sorted((root / "annotations").glob("*.json"))
        found += sorted(p for p in root.glob("*/_annotations.coco.json"))
        return [p for p in found if p.is_file()]

    @classmethod
    def _looks_like(cls, path: Path) -> bool:
        head = read_prefix(path, 65536)
        return '"images"' in head and ('"file_name"' in head or '"categories"' in head or '"annotations"' in head)

    def annotation_files(self) -> list[tuple[str, Path]]:
        if self._single_file is not None:
            return [(split_of_file(self._single_file), self._single_file)]
        chosen: dict[str, tuple[int, Path]] = {}
        for path in self.candidate_files(self.root):
            if not (self._named_like_ours(path) or self._wants(path)):
                if path.parent.name == "annotations":
                    self.policy.note(relpath_posix(path, self.root), "not_coco_json", "ignored_file",
                                     f"{path.name} has no COCO images list at its start; not read as {self.name}")
                continue
            split = split_of_file(path)
            prio = next((i for i, p in enumerate(self.file_prefixes) if path.name.startswith(p)),
                        len(self.file_prefixes))
            if split in chosen:
                keep, drop = (chosen[split], (prio, path)) if chosen[split][0] <= prio else ((prio, path), chosen[split])
                self.policy.note(relpath_posix(drop[1], self.root), "duplicate_split_file", "ignored_file",
                                 f"{drop[1].name} describes split {split!r} too; {keep[1].name} was read")
                chosen[split] = keep
            else:
                chosen[split] = (prio, path)
        return [(s, p) for s, (_, p) in sorted(chosen.items())]

    def _wants(self, path: Path) -> bool:
        return self._looks_like(path)

    def _named_like_ours(self, path: Path) -> bool:
        """A file whose name says it belongs to this format is read (and fails loudly if broken)."""
        return path.name == "_annotations.coco.json" or any(path.name.startswith(p + "_") for p in self.file_prefixes)

    def _load(self) -> list[tuple[str, Path, dict]]:
        if self._loaded is None:
            self._loaded = []
            for split, path in self.annotation_files():
                try:
                    data = load_json(path)
                    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
                        raise MalformedFileError("no 'images' list at the top level", file=str(path),
                                                 item=path.name, expected="a COCO document")
                    cats = parse_categories(data, str(path))
                except SourceError as exc:
                    self.policy.handle(exc, action="ignored_file")
                    continue
                self._loaded.append((split, path, data))
                for c in cats:
                    if c["name"] not in self._names:
                        self._names.append(c["name"])
                        info = {k: v for k, v in c.items() if k != "name"}
                        self._cat_info.append({"name": c["name"], "source_id": c["id"], **info})
        return self._loaded

    def categories(self) -> list[str]:
        self._load()
        return list(self._names)

    def category_info(self) -> list[dict]:
        self._load()
        return [dict(c) for c in self._cat_info]

    def source_info(self) -> dict:
        out = {}
        for split, _path, data in self._load():
            extra = {k: data[k] for k in ("info", "licenses", "license") if k in data}
            if extra:
                out[split] = extra
        return {"coco": out} if out else {}

    def _image_candidates(self, json_path: Path, file_name: str, item: str) -> Iterator[str]:
        """Where the image may be, most likely first (lazily: the first one is usually right)."""
        if is_absolute_name(file_name):
            # another machine's absolute path: never read it, look for the file by name inside the root
            rel = PurePosixPath(file_name.replace("\\", "/").rsplit("/", 1)[-1])
        else:
            rel = safe_relative(file_name, file=str(json_path), item=item)
        seen: set[str] = set()
        for base in self._image_bases(json_path):
            for r in (str(rel), rel.name):
                p = os.path.join(base, r)
                if p not in seen:
                    seen.add(p)
                    yield p

    def _image_bases(self, json_path: Path) -> list[str]:
        """Folders an annotation file's images may be relative to, most likely first."""
        bases = self._bases.get(json_path)
        if bases is None:
            token = _split_token(json_path)
            root = str(self.root)
            bases = [str(json_path.parent), os.path.join(root, "images", token), os.path.join(root, "images"),
                     os.path.join(root, token), root]
            if json_path.parent.name == "annotations":
                bases.insert(1, os.path.join(str(json_path.parent.parent), "images", token))
            self._bases[json_path] = bases
        return bases

    def _resolve_image(self, json_path: Path, img: dict) -> Path:
        fn = img.get("file_name")
        item = f"image {img.get('id', '?')}"
        if not isinstance(fn, str) or not fn:
            raise MalformedFileError("image entry has no file_name", file=str(json_path), item=item,
                                     expected="a file_name string")
        cands = self._image_candidates(json_path, fn, f"{item} ({fn})")
        tried = []
        for p in cands:
            if os.path.isfile(p) and inside(self.root, p, self._real_dirs):
                return Path(p)
            tried.append(p)
        raise MissingImageError(f"image file {fn!r} not found", file=str(json_path), item=f"{item} ({fn})",
                                expected="the file at one of: " + ", ".join(relpath_posix(Path(p), self.root)
                                                                            for p in tried[:4]))

    def _images(self, split: str, path: Path, data: dict) -> Iterator[tuple[dict, Path]]:
        """(image entry, resolved file) for each image of one file, in file order; bad entries go
        to the policy."""
        seen: set[Path] = set()
        for img in data["images"]:
            n_anns = len(self._anns_by_image.get(img.get("id"), ())) if hasattr(self, "_anns_by_image") else 0
            try:
                if not isinstance(img, dict) or "id" not in img:
                    raise MalformedFileError("image entry without id", file=str(path), item=str(img)[:80],
                                             expected='{"id": ..., "file_name": ...}')
                file = self._resolve_image(path, img)
                if file in seen:
                    raise MalformedFileError(f"a second image entry for {img.get('file_name')!r}",
                                             file=str(path), item=f"image {img['id']}",
                                             expected="one entry per image file")
                seen.add(file)
            except SourceError as exc:
                self.policy.handle(exc, action="dropped_image", annotations=n_anns)
                continue
            yield img, file

    @staticmethod
    def _declared_size(img: dict) -> tuple[int, int] | None:
        try:
            w, h = int(img["width"]), int(img["height"])
            return (w, h) if w > 0 and h > 0 else None
        except (KeyError, TypeError, ValueError):
            return None

    @staticmethod
    def _image_meta(img: dict) -> dict:
        return {"coco": {"id": img.get("id"), **{k: v for k, v in img.items() if k not in _STANDARD_IMG_KEYS and k != "id"}}}


@register
class CocoConnector(_CocoBase):
    """COCO object detection / instance segmentation JSON.

    ::

        root/                               root/                      root/
        ├── annotations/                    ├── train/                 ├── coco.json
        │   ├── instances_train.json        │   ├── _annotations.coco.json   └── images/...
        │   └── instances_val.json          │   └── *.jpg
        └── images/{train,val}/*.jpg        └── valid/...

    Boxes, polygons (several parts per object), RLE in list and compressed-string form,
    ``iscrowd``, keypoints (kept in ``attributes.coco``). Images without annotations become null
    (``empty``) images. The split comes from the file name (``instances_val2017`` -> ``validation``).
    """

    name = "coco"
    summary = "COCO instances JSON (boxes, polygons, RLE, keypoints)"
    file_prefixes = _PREFIX_PRIORITY

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        files = [p for p in cls.candidate_files(root) if not p.name.startswith("panoptic")]
        for p in files:
            if cls._looks_like(p):
                head = read_prefix(p, 65536)
                if '"segments_info"' in head:
                    continue
                return Confidence(Score.LIKELY, f"{p.name} has COCO images/annotations keys")
        if files:
            return Confidence(Score.NO, f"{', '.join(p.name for p in files[:3])}: no COCO 'images' key at the top")
        return Confidence(Score.NO, "no *.json, annotations/*.json or */_annotations.coco.json")

    def _wants(self, path: Path) -> bool:
        return not path.name.startswith("panoptic") and self._looks_like(path) and \
            '"segments_info"' not in read_prefix(path)

    @property
    def task(self) -> str:
        for _, _, data in self._load():
            for ann in data.get("annotations") or ():
                seg = ann.get("segmentation") if isinstance(ann, dict) else None
                if isinstance(seg, dict) or (isinstance(seg, list) and any(p not in ([], None) for p in seg)):
                    return "instance_segmentation"
        return "detection"

    def records(self) -> Iterator[ImageRecord]:
        for split, path, data in self._load():
            fname = relpath_posix(path, self.root)
            id_to_name = {c["id"]: c["name"] for c in data.get("categories", [])}
            by_image = annotations_by_image(data, file=fname, policy=self.policy)
            self._anns_by_image = by_image
            for img, file in self._images(split, path, data):
                declared = self._declared_size(img)
                rec = ImageRecord(image_id=relpath_posix(file, self.root), path=file, split=split,
                                  meta=self._image_meta(img), declared_size=declared, source_file=fname)
                add_annotations(rec, by_image.get(img["id"], []), id_to_name, file=fname, policy=self.policy)
                yield rec


@register
class CocoPanopticConnector(_CocoBase):
    """COCO panoptic: a JSON with ``segments_info`` per image and one PNG per image.

    ::

        root/
        ├── annotations/
        │   ├── panoptic_train.json
        │   └── panoptic_train/<stem>.png     segment id = R + 256 G + 256^2 B, 0 = void
        └── images/train/*.jpg

    Images with an entry but no segments are null images; images without an entry are unlabeled.
    """

    name = "coco_panoptic"
    summary = "COCO panoptic JSON + PNG segment maps"
    file_prefixes = ("panoptic",)

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        for p in cls.candidate_files(root):
            head = read_prefix(p, 65536)
            if p.name.startswith("panoptic") and '"images"' in head:
                return Confidence(Score.STRUCTURE, f"{p.name} is a panoptic annotation file")
            if '"segments_info"' in head:
                return Confidence(Score.STRUCTURE, f"{p.name} has segments_info")
        return Confidence(Score.NO, "no panoptic_*.json and no 'segments_info' in the JSON files")

    def _wants(self, path: Path) -> bool:
        return self._looks_like(path) and (path.name.startswith("panoptic") or '"segments_info"' in read_prefix(path))

    def _named_like_ours(self, path: Path) -> bool:
        return path.name.startswith("panoptic_")

    @property
    def task(self) -> str:
        return "panoptic"

    def _png_dir(self, path: Path) -> Path:
        return path.parent / path.stem

    def records(self) -> Iterator[ImageRecord]:
        for split, path, data in self._load():
            fname = relpath_posix(path, self.root)
            id_to_name = {c["id"]: c["name"] for c in data.get("categories", [])}
            entries = {a.get("image_id"): a for a in data.get("annotations") or () if isinstance(a, dict)}
            self._anns_by_image = {k: v.get("segments_info") or [] for k, v in entries.items()}
            for img, file in self._images(split, path, data):
                rec = ImageRecord(image_id=relpath_posix(file, self.root), path=file, split=split,
                                  meta=self._image_meta(img), declared_size=self._declared_size(img), source_file=fname)
                entry = entries.get(img["id"])
                if entry is None:
                    rec.label_status = "unlabeled"
                    yield rec
                    continue
                try:
                    png_rel = safe_relative(str(entry.get("file_name") or ""), file=fname, item=rec.image_id)
                    png = Path(self._png_dir(path), *png_rel.parts)
                    if not png.is_file():
                        raise MissingImageError(f"panoptic PNG {png_rel} not found", file=fname, item=rec.image_id,
                                                expected=f"the file {relpath_posix(png, self.root)}")
                    segs = []
                    for s in entry.get("segments_info") or []:
                        if s.get("category_id") not in id_to_name:
                            raise UnknownClassError(f"segment {s.get('id')} has category_id {s.get('category_id')}",
                                                    file=fname, item=rec.image_id, expected="a declared category id")
                        bbox = _numbers(s.get("bbox"), 4) or [0.0, 0.0, 0.0, 0.0]
                        segs.append(SegmentRecord(int(s["id"]), id_to_name[s["category_id"]], float(s.get("area", 0)),
                                                  tuple(bbox), bool(s.get("iscrowd", 0))))
                except SourceError as exc:
                    self.policy.handle(exc, action="dropped_annotation")
                    rec.label_status = "unlabeled"
                    yield rec
                    continue
                rec.panoptic_path, rec.segments = png, segs
                rec.label_status = "labeled" if segs else "empty"
                yield rec
