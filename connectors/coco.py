"""COCO instances (boxes, polygons, RLE, keypoints) and COCO panoptic.

Pure parsing lives in :mod:`connectors.coco_parse` (re-exported here); the connectors only find files
and loop.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Iterator

from cvft_data.errors import (
    MalformedFileError,
    MissingImageError,
    SourceError,
    UnknownClassError,
    UnsafePathError,
)
from cvft_data.paths import inside, is_absolute_name, relpath_posix, safe_relative

from ._json import load_json
from .base import Confidence, Connector, ImageRecord, Score, SegmentRecord, read_prefix, register
from .coco_parse import (  # noqa: F401 (re-exported: connectors.coco.parse_annotation...)
    _PREFIX_PRIORITY,
    _STANDARD_IMG_KEYS,
    _numbers,
    _split_token,
    add_annotations,
    annotations_by_image,
    parse_annotation,
    parse_categories,
    sanitize_ids,
    split_of_file,
)


def _annotations_in(path: Path) -> int:
    """How many annotations a COCO file that cvft refused still holds, when plain JSON can tell."""
    import json

    try:
        doc = json.loads(path.read_bytes())
        return len(doc["annotations"]) if isinstance(doc, dict) and isinstance(doc.get("annotations"), list) else 0
    except (ValueError, OSError, RecursionError):
        return 0


_KINDS: dict[tuple, str] = {}
_TOKEN = b'"segments_info"'


def json_kind(path: Path) -> str:
    """``panoptic`` when the COCO JSON at ``path`` holds ``segments_info`` anywhere (panoptic
    annotations), else ``instances``: decided by content, streamed in 1 MiB chunks (a byte scan,
    far cheaper than parsing), remembered per file version. A file without any annotation says
    nothing by content; then a ``panoptic`` name decides."""
    try:
        st = path.stat()
    except OSError:
        return "instances"
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _KINDS:
        kind, tail = "instances", b""
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                if _TOKEN in tail + chunk:
                    kind = "panoptic"
                    break
                tail = chunk[-len(_TOKEN):]
        if kind == "instances" and path.name.startswith("panoptic") and _without_annotations(path):
            kind = "panoptic"   # an empty panoptic file says nothing by content: its name decides
        _KINDS[key] = kind
    return _KINDS[key]


def _without_annotations(path: Path) -> bool:
    import json

    try:
        doc = json.loads(path.read_bytes())
    except (ValueError, OSError, RecursionError):
        return False
    return isinstance(doc, dict) and not doc.get("annotations")


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

    #: "panoptic" or "instances": which kind of COCO document this reader takes
    kind: str = "instances"

    def _content_is_ours(self, path: Path) -> bool:
        return json_kind(path) == self.kind

    @classmethod
    def _looks_like(cls, path: Path) -> bool:
        head = read_prefix(path, 65536)
        return '"images"' in head and ('"file_name"' in head or '"categories"' in head or '"annotations"' in head)

    def annotation_files(self) -> list[tuple[str, Path]]:
        if self._single_file is not None:
            return [(split_of_file(self._single_file), self._single_file)]
        chosen: dict[str, tuple[int, Path]] = {}
        for path in self.candidate_files(self.root):
            if not self._content_is_ours(path):   # decided by content, never by a file-name prefix
                if self._named_like_ours(path):
                    self.policy.note(relpath_posix(path, self.root), "other_coco_kind", "ignored_file",
                                     f"{path.name} is named like {self.name} but holds COCO {json_kind(path)} "
                                     "annotations; not read here")
                continue
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
                    data = sanitize_ids(data, file=relpath_posix(path, self.root), policy=self.policy)
                    cats = parse_categories(data, str(path))
                except SourceError as exc:   # the file's annotations are lost with it: counted where they can be
                    self.policy.handle(exc, action="ignored_file", annotations=_annotations_in(path))
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
        tried, outside = [], None
        for p in cands:
            if os.path.isfile(p):
                if inside(self.root, p, self._real_dirs):
                    return Path(p)
                outside = outside or p
            tried.append(p)
        if outside is not None:   # found, but it is a link out of the source: refused, by its own reason
            raise UnsafePathError(f"image {fn!r} is a link that leads out of the source", file=str(json_path),
                                  item=f"{item} ({fn})", expected="an image inside the source folder")
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
        files = cls.candidate_files(root)
        for p in files:
            if cls._looks_like(p) and json_kind(p) == "instances":
                return Confidence(Score.LIKELY, f"{p.name} has COCO images/annotations keys")
        if files:
            return Confidence(Score.NO, f"{', '.join(p.name for p in files[:3])}: no COCO 'images' key at the top")
        return Confidence(Score.NO, "no *.json, annotations/*.json or */_annotations.coco.json")

    def _wants(self, path: Path) -> bool:
        return self._looks_like(path)

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

    kind = "panoptic"

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        for p in cls.candidate_files(root):
            if cls._looks_like(p) and json_kind(p) == "panoptic":
                return Confidence(Score.STRUCTURE, f"{p.name} has segments_info (COCO panoptic)")
        return Confidence(Score.NO, "no COCO JSON with 'segments_info'")

    def _wants(self, path: Path) -> bool:
        return self._looks_like(path)

    def _named_like_ours(self, path: Path) -> bool:
        return path.name.startswith("panoptic_")

    @property
    def task(self) -> str:
        return "panoptic"

    def _png_dir(self, path: Path) -> Path:
        return path.parent / path.stem

    def _panoptic_entries(self, data: dict, fname: str) -> dict:
        """One panoptic entry per image id; an entry for an undeclared image, or a second one for
        the same image, is raised or ledgered with its segments (never one silently replacing another)."""
        by_image = annotations_by_image(data, file=fname, policy=self.policy)
        entries = {}
        for iid, anns in by_image.items():
            for extra in anns[1:]:
                self.policy.handle(MalformedFileError(f"a second panoptic entry for image {iid!r}", file=fname,
                                                      item=str(extra.get("file_name")), expected="one entry per image"),
                                   action="dropped_annotation")
            entries[iid] = anns[0]
        return entries

    def records(self) -> Iterator[ImageRecord]:
        for split, path, data in self._load():
            fname = relpath_posix(path, self.root)
            id_to_name = {c["id"]: c["name"] for c in data.get("categories", [])}
            entries = self._panoptic_entries(data, fname)
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
