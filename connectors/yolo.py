"""Ultralytics YOLO (``data.yaml``) and darknet YOLO (``obj.data``/``obj.names``) layouts.

Pure parsing: :func:`parse_label_line`, :func:`parse_names`, :func:`parse_obj_data`.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import yaml

from cvft_data.errors import (
    AnnotationError,
    MalformedFileError,
    MissingImageError,
    SourceError,
    UnknownClassError,
    UnsafePathError,
)
from cvft_data.paths import inside, relpath_posix
from cvft_data.vocabulary import canonical_split, is_split_name

from .base import Confidence, Connector, ImageRecord, ObjectRecord, Score, is_image_name, register, walk_files

_SPLIT_KEYS = ("train", "val", "validation", "valid", "test")


def parse_names(names: Any, file: str) -> list[str]:
    """``names`` as a list or an ``{index: name}`` dict -> list indexed by class id."""
    if isinstance(names, list):
        return [str(n) for n in names]
    if isinstance(names, dict):
        try:
            idx = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise MalformedFileError("names keys are not integers", file=file, item="names",
                                     expected="a list or {0: name, 1: name, ...}") from None
        if sorted(idx) != list(range(len(idx))):
            raise MalformedFileError(f"names ids {sorted(idx)} are not 0..{len(idx) - 1}", file=file, item="names",
                                     expected="contiguous class ids from 0")
        return [idx[i] for i in range(len(idx))]
    raise MalformedFileError("no names list", file=file, item="names", expected="a names list or dict")


def parse_obj_data(text: str) -> dict[str, str]:
    """darknet ``obj.data`` (``key = value`` lines)."""
    out = {}
    for line in text.splitlines():
        if "=" in line and not line.strip().startswith("#"):
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def parse_label_line(line: str, n_classes: int, *, kpt_dims: int | None = None, file: str = "", item: str = ""
                     ) -> ObjectRecord:
    """One YOLO label line -> a normalised :class:`ObjectRecord`.

    ``cls cx cy w h`` is a box, ``cls cx cy w h track`` a box with a track id, ``cls x1 y1 ... xn yn``
    (n >= 3) a polygon (Ultralytics OBB lines are 4-point polygons), and with ``kpt_dims`` set,
    ``cls cx cy w h`` followed by keypoints.
    """
    parts = line.split()
    try:
        cls_id = int(float(parts[0]))
        values = [float(v) for v in parts[1:]]
    except (ValueError, IndexError):
        raise AnnotationError(f"line {line!r} is not numeric", file=file, item=item,
                              expected="class id followed by coordinates") from None
    if not 0 <= cls_id < n_classes:
        raise UnknownClassError(f"class id {cls_id} is outside names (0..{n_classes - 1})", file=file, item=item,
                                expected=f"a class id below {n_classes}")
    if kpt_dims and len(values) > 4 and (len(values) - 4) % kpt_dims == 0:
        kp = values[4:]
        if kpt_dims == 2:
            kp3 = []
            for x, y in zip(kp[0::2], kp[1::2]):
                kp3 += [x, y, 0.0 if (x == 0 and y == 0) else 2.0]
            kp = kp3
        return ObjectRecord(category=str(cls_id), bbox=_centre_box(values[:4]), keypoints=kp, normalized=True, centre=True,
                            ref=item)
    if len(values) == 4:
        return ObjectRecord(category=str(cls_id), bbox=_centre_box(values), normalized=True, centre=True, ref=item)
    if len(values) == 5:
        return ObjectRecord(category=str(cls_id), bbox=_centre_box(values[:4]), normalized=True, centre=True, ref=item,
                            attributes={"track_id": int(values[4])})
    if len(values) >= 6 and len(values) % 2 == 0:
        return ObjectRecord(category=str(cls_id), polygons=[values], normalized=True, ref=item)
    raise AnnotationError(f"line has {len(values)} coordinates", file=file, item=item,
                          expected="4 (box), 5 (box + track id) or an even number >= 6 (polygon)")


def _centre_box(v: list[float]) -> tuple[float, float, float, float]:
    # kept as normalised centre box; the builder converts with cvft_data.boxes.yolo_to_xywh
    return (v[0], v[1], v[2], v[3])


def label_path_for(image: Path) -> list[Path]:
    """Ultralytics' rule (last ``/images/`` -> ``/labels/``, extension -> ``.txt``), then darknet's
    label next to the image."""
    s = image.as_posix()
    out = []
    i = s.rfind("/images/")
    if i >= 0:
        out.append(Path(s[:i] + "/labels/" + s[i + len("/images/"):]).with_suffix(".txt"))
    out.append(image.with_suffix(".txt"))
    return out


@register
class YoloConnector(Connector):
    """Ultralytics YOLO detect/segment/pose/OBB datasets and darknet YOLO 1.1 exports.

    ::

        root/                              root/ (darknet, CVAT "YOLO 1.1")
        ├── data.yaml   names, train, val  ├── obj.data    classes, train = data/train.txt
        ├── images/{train,val}/*.jpg       ├── obj.names   one class per line
        └── labels/{train,val}/*.txt       ├── train.txt   data/obj_train_data/1.jpg
                                           └── obj_train_data/{1.jpg,1.txt}

    Split entries may be folders, ``.txt`` lists or lists; ``names`` a list or a dict. Paths from
    another machine (Roboflow's absolute ``train:``) and ``../train/images`` are resolved inside the
    root by their trailing components. A missing label file means a null (empty) image. Label files
    that mix boxes and polygons keep both; a box-only object in a segmentation dataset is ledgered.
    Keypoints (``kpt_shape``) are kept in ``attributes.keypoints``.
    """

    name = "yolo"
    summary = "Ultralytics YOLO data.yaml (detect, segment, pose, OBB) or darknet obj.data"
    options_help = {"yaml": "the dataset YAML to read when the root holds several"}

    def __init__(self, root, **kwargs):
        root = Path(root)
        self._yaml: Path | None = None
        if root.is_file():
            self._yaml, root = root, root.parent
        super().__init__(root, **kwargs)
        if "yaml" in self.options:
            self._yaml = Path(self.root, self.options["yaml"])
        self._config: tuple[list[str], list[tuple[str, list[Path]]], int | None] | None = None
        self._task: str | None = None
        #: (images folder, labels folder) pairs of a discovered layout (``Images/`` + ``Annotations/``)
        self._label_roots: list[tuple[Path, Path]] = []

    # -- detection --------------------------------------------------------------------------------
    @staticmethod
    def _yaml_files(root: Path) -> list[Path]:
        if root.is_file():
            return [root] if root.suffix.lower() in (".yaml", ".yml") else []
        return sorted(p for p in list(root.glob("*.yaml")) + list(root.glob("*.yml")) if p.is_file())

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        for y in cls._yaml_files(root):
            try:
                doc = yaml.safe_load(y.read_text(encoding="utf-8", errors="replace"))
            except yaml.YAMLError:
                continue
            if isinstance(doc, dict) and "names" in doc and any(k in doc for k in _SPLIT_KEYS):
                return Confidence(Score.LIKELY, f"{y.name} has names and split entries")
        if root.is_dir() and (root / "obj.data").is_file() or (root.is_dir() and (root / "obj.names").is_file()):
            return Confidence(Score.LIKELY, "darknet obj.data / obj.names")
        return Confidence(Score.NO, "no data.yaml with names and train/val, no obj.data or obj.names")

    # -- configuration -------------------------------------------------------------------------------
    def _resolve_entry(self, base: Path, entry: str, file: str) -> Path:
        """A split entry from the yaml or a list file, resolved inside the root."""
        e = entry.replace("\\", "/").strip()
        p = Path(e)
        cands = [p] if p.is_absolute() else [base / e, self.root / e]
        parts = [q for q in PurePosixPath(e).parts if q not in ("/", "..", ".")]
        # foreign absolute paths, "../train/images", "data/obj_train_data/1.jpg": try trailing parts
        for i in range(len(parts)):
            c = Path(self.root, *parts[i:])
            # a folder needs two trailing parts: "images" alone would be every split's parent folder
            if i == 0 or i < len(parts) - 1 or not c.is_dir():
                cands.append(c)
        for c in cands:
            if c.exists() and inside(self.root, c):
                return c
            if c.exists() and not inside(self.root, c):
                raise UnsafePathError(f"split entry {entry!r} points outside the dataset root {self.root}", file=file,
                                      item=entry, expected="a path inside the source; run cvft-ingest on a folder "
                                                           "that holds the images")
        raise MalformedFileError(f"split entry {entry!r} not found", file=file, item=entry,
                                 expected=f"a folder, list file or image under {self.root}")

    def _images_of(self, base: Path, entry: Any, file: str) -> list[Path]:
        entries = entry if isinstance(entry, list) else [entry]
        out: list[Path] = []
        for e in entries:
            p = self._resolve_entry(base, str(e), file)
            if p.is_dir():
                out += [f for f in walk_files(p) if is_image_name(f.name)]
            elif p.suffix.lower() == ".txt":
                for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
                    if line.strip():
                        try:
                            out.append(self._resolve_entry(p.parent, line.strip(), relpath_posix(p, self.root)))
                        except MalformedFileError as exc:   # its label lines, when they are there, go with it
                            guess = p.parent / line.strip().replace("\\", "/")
                            lost = self._label_lines(guess)[1] if inside(self.root, guess) else []
                            self.policy.handle(exc, action="dropped_image", annotations=len(lost))
            else:
                out.append(p)
        return out

    def _configure(self) -> tuple[list[str], list[tuple[str, list[Path]]], int | None]:
        if self._config is not None:
            return self._config
        ymls = [self._yaml] if self._yaml else [y for y in self._yaml_files(self.root)]
        for y in ymls:
            try:
                doc = yaml.safe_load(y.read_text(encoding="utf-8"))
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                raise MalformedFileError(f"invalid YAML: {exc}", file=str(y), item=y.name,
                                         expected="a YOLO data.yaml") from None
            if not (isinstance(doc, dict) and "names" in doc):
                continue
            names = parse_names(doc["names"], str(y))
            if "nc" in doc and int(doc["nc"]) != len(names):
                raise MalformedFileError(f"nc is {doc['nc']} but names has {len(names)} entries", file=str(y),
                                         item="nc", expected="nc equal to the number of names")
            base = self.root
            if doc.get("path") not in (None, "", ".", "./"):
                cand = Path(str(doc["path"]))
                cand = cand if cand.is_absolute() else self.root / cand
                base = cand if cand.is_dir() and inside(self.root, cand) else self.root
            kpt = doc.get("kpt_shape")
            kpt_dims = int(kpt[1]) if isinstance(kpt, list) and len(kpt) == 2 else None
            splits = []
            for key in _SPLIT_KEYS:
                if doc.get(key):
                    images = self._split_images(base, key, doc[key], relpath_posix(y, self.root))
                    twin = next((s for s, imgs in splits if imgs == images), None)
                    if twin is not None:  # "val: images/train" is common when there is no validation set
                        self.policy.note(relpath_posix(y, self.root), "split_repeats_another", "kept",
                                         f"{key}: lists the same images as {twin}; they are read once, in {twin}")
                        continue
                    splits.append((canonical_split(key), images))
            extra = doc.get("cvft_extra_splits") or []   # splits cvft exported beyond train/val/test
            for key in extra if isinstance(extra, list) else []:
                if isinstance(key, str) and key not in _SPLIT_KEYS and doc.get(key):
                    splits.append((canonical_split(key), self._split_images(base, key, doc[key], relpath_posix(y, self.root))))
            self._config = (names, splits, kpt_dims)
            return self._config
        # darknet
        data = parse_obj_data((self.root / "obj.data").read_text(encoding="utf-8")) if (self.root / "obj.data").is_file() else {}
        names_file = self._resolve_entry(self.root, data.get("names", "obj.names"), "obj.data")
        names = [n.strip() for n in names_file.read_text(encoding="utf-8").splitlines() if n.strip()]
        splits = []
        for key in ("train", "valid", "test"):
            if key in data:
                splits.append((canonical_split(key), self._split_images(self.root, key, data[key], "obj.data")))
        if not splits:
            for sub in sorted(self.root.glob("obj_*_data")):
                splits.append((canonical_split(sub.name[4:-5]), [f for f in walk_files(sub) if is_image_name(f.name)]))
        if not splits:   # obj.names alone: images/<split> + labels/<split>, or Images/ + Annotations/
            splits = self._discover_splits()
        self._config = (names, splits, None)
        return self._config

    def _split_images(self, base: Path, key: str, entry: Any, file: str) -> list[Path]:
        """The images of one split entry; an entry that does not exist is raised, or under skip
        ledgered and replaced by the split's folder when the layout has one."""
        try:
            return self._images_of(base, entry, file)
        except MalformedFileError as exc:
            self.policy.handle(exc, action="ignored_file")
        found = [imgs for split, imgs in self._discover_splits() if split == canonical_split(key)]
        if found:
            self.policy.note(file, "split_folder_discovered", "kept",
                             f"{key}: {entry!r} does not exist; read the {key} split's folder found in the layout")
        return found[0] if found else []

    def _discover_splits(self) -> list[tuple[str, list[Path]]]:
        """Split folders of a layout without a usable list: ``images/<split>/`` (labels beside in
        ``labels/<split>/``), ``<split>/images/``, or one ``images/`` / ``Images/`` folder (labels
        in ``labels/`` or ``Annotations/``)."""
        found: list[tuple[str, list[Path]]] = []
        for images_name, labels_name in (("images", "labels"), ("Images", "Annotations"), ("JPEGImages", "labels")):
            top = self.root / images_name
            if not top.is_dir():
                continue
            if images_name != "images":
                self._label_roots.append((top, self.root / labels_name))
            subs = [d for d in sorted(top.iterdir()) if d.is_dir() and is_split_name(d.name)]
            for d in subs:
                found.append((canonical_split(d.name), [f for f in walk_files(d) if is_image_name(f.name)]))
            if not subs:
                found.append(("train", [f for f in walk_files(top) if is_image_name(f.name)]))
            return found
        for d in sorted(self.root.iterdir()) if self.root.is_dir() else []:
            if d.is_dir() and is_split_name(d.name) and (d / "images").is_dir():
                found.append((canonical_split(d.name), [f for f in walk_files(d / "images") if is_image_name(f.name)]))
        return found

    def categories(self) -> list[str]:
        self._refuse_dota()
        return list(self._configure()[0])

    def _refuse_dota(self) -> None:
        """DOTA's ``labelTxt/`` (oriented boxes in pixels, class names) is not YOLO: read as YOLO,
        every image would look like a background image."""
        for d in (self.root, *(p for p in self.root.iterdir() if p.is_dir())):
            if (d / "labelTxt").is_dir() and not (d / "labels").is_dir():
                raise MalformedFileError(
                    "DOTA-style labelTxt/ labels are not read by cvft", file=relpath_posix(d / "labelTxt", self.root),
                    item="labelTxt", expected="YOLO labels/ (convert DOTA with Ultralytics' "
                    "ultralytics.data.converter.convert_dota_to_yolo_obb, then ingest the result)")

    def source_info(self) -> dict:
        kpt_dims = self._configure()[2]
        return {"yolo": {"kpt_dims": kpt_dims}} if kpt_dims else {}

    def _label_lines(self, image: Path) -> tuple[Path | None, list[str]]:
        mapped = [labels / image.relative_to(images).with_suffix(".txt")
                  for images, labels in self._label_roots if image.is_relative_to(images)]
        for lp in mapped + label_path_for(image):
            if lp.is_file():
                return lp, [ln for ln in lp.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
        return None, []

    @property
    def task(self) -> str:
        if self._task is None:
            _, splits, kpt_dims = self._configure()
            self._task = "detection"
            if not kpt_dims:
                for _, images in splits:
                    for img in images:
                        if any(len(ln.split()) >= 7 for ln in self._label_lines(img)[1]):
                            self._task = "instance_segmentation"
                            return self._task
        return self._task

    def records(self) -> Iterator[ImageRecord]:
        names, splits, kpt_dims = self._configure()
        task = self.task
        for split, images in splits:
            used: set[Path] = set()
            for img in images:
                image_id = relpath_posix(img, self.root)
                rec = ImageRecord(image_id=image_id, path=img, split=split)
                lp, lines = self._label_lines(img)
                if lp is not None:
                    used.add(lp)
                rec.source_file = relpath_posix(lp, self.root) if lp else None
                for i, line in enumerate(lines):
                    try:
                        obj = parse_label_line(line, len(names), kpt_dims=kpt_dims, file=rec.source_file or "",
                                               item=f"{image_id}#line {i + 1}")
                    except SourceError as exc:
                        self.policy.handle(exc, action="dropped_annotation")
                        continue
                    obj.category, obj.ref = names[int(obj.category)], f"line {i + 1}"
                    if task == "instance_segmentation" and not obj.polygons:
                        rec.note("box_without_mask", "kept",
                                 f"line {i + 1} is a box in a segmentation dataset: kept as a box with no mask")
                    rec.objects.append(obj)
                if rec.objects:
                    rec.label_status = "labeled"
                elif lines:
                    rec.label_status = "unlabeled"
                    rec.note("all_annotations_dropped", "unlabeled",
                             f"all {len(lines)} label lines were dropped; the image is kept as unlabeled")
                else:
                    rec.label_status = "empty"   # no label file, or an empty one: a background image
                yield rec
            self._orphan_labels(images, used)
        self._unlisted_images({img for _, images in splits for img in images})

    def _unlisted_images(self, listed: set[Path]) -> None:
        """Images of the source that no split lists (a folder the YAML does not name, a misspelt
        key): left out on purpose or not, they are ledgered per folder with their label lines."""
        per_folder: dict[Path, list[int]] = {}
        for p in walk_files(self.root):
            if is_image_name(p.name) and p not in listed:
                count = per_folder.setdefault(p.parent, [0, 0])
                count[0] += 1
                count[1] += len(self._label_lines(p)[1])
        for folder, (n, lines) in sorted(per_folder.items()):
            self.policy.note(relpath_posix(folder, self.root), "not_in_any_split", "ignored_file",
                             f"{n} images ({lines} label lines) in this folder are in no split of the dataset YAML",
                             annotations=lines)

    def _orphan_labels(self, images: list[Path], used: set[Path]) -> None:
        """Label files in a split's ``labels/`` folders whose image is missing: their annotations
        would be lost without a word, so they are a missing image (raised, or ledgered under skip)."""
        dirs = {label_path_for(img)[0].parent for img in images if "/images/" in img.as_posix()}
        dirs |= {(labels / img.relative_to(top)).parent for top, labels in self._label_roots
                 for img in images if img.is_relative_to(top)}
        for d in sorted(dirs):
            for lp in sorted(d.glob("*.txt")):
                if lp in used or lp.name.lower() in ("classes.txt", "labels.txt"):
                    continue
                lines = [ln for ln in lp.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
                rel = relpath_posix(lp, self.root)
                images_dir = rel.replace("labels/", "images/", 1).rsplit("/", 1)[0]
                self.policy.handle(MissingImageError(f"label file {rel} has no image", file=rel, item=lp.stem,
                                                     expected=f"an image named {lp.stem}.<jpg|png|...> in {images_dir}"),
                                   action="dropped_image", annotations=len(lines))
