"""Roboflow's csv export: :class:`RoboflowCsvConnector` (see its docstring)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from cvft_data.boxes import xyxy_to_xywh
from cvft_data.errors import AnnotationError
from cvft_data.paths import relpath_posix, safe_relative
from cvft_data.vocabulary import canonical_split, is_split_name

from ._csv import column_index, read_rows
from .base import (
    Confidence,
    Connector,
    ImageRecord,
    ObjectRecord,
    Score,
    is_hidden,
    is_image_name,
    label_status_of,
    read_prefix,
    register,
)

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
            given: dict[str, int] = {}
            for i, r in enumerate(rows, start=2):
                name = r[cols["filename"]] if len(r) > cols["filename"] else None
                if name:
                    by_image.setdefault(name, [])
                    given[name] = given.get(name, 0) + 1
                try:
                    box = xyxy_to_xywh(*(float(r[cols[k]]) for k in ("xmin", "ymin", "xmax", "ymax")))
                    if not name or len(r) <= cols["class"]:
                        raise ValueError
                except (ValueError, IndexError):
                    self.policy.handle(AnnotationError(f"line {i} has no file name, class or numeric corners",
                                                       file=fname, item=f"{name}#line {i}" if name else f"line {i}",
                                                       expected="filename, class, xmin, ymin, xmax, ymax"),
                                       action="dropped_annotation")
                    continue
                by_image[name].append(ObjectRecord(r[cols["class"]], bbox=box, ref=f"line {i}"))
            listed: set[Path] = set()
            for name in sorted(by_image):
                objs = by_image[name]
                path = self.find_image(name, images_dir or f.parent, file=fname, annotations=len(objs), within=images_dir)
                if path is None:
                    continue
                listed.add(path)
                rel = safe_relative(name, file=fname, item=name)
                yield ImageRecord(image_id=relpath_posix(path, self.root) if not images_dir else rel.as_posix(),
                                  path=path, split=split, objects=objs, source_file=fname,
                                  label_status=label_status_of(len(objs), given[name]))
            # the CSV lists only images with boxes: the folder's other images are kept, as unlabeled
            # (a Roboflow null image and an image nobody labelled look the same here)
            folder = images_dir or f.parent
            mentioned = {n.replace("\\", "/").rsplit("/", 1)[-1].lower() for n in by_image}
            for path in sorted(folder.iterdir()) if folder.is_dir() else []:
                if path.is_file() and is_image_name(path.name) and not is_hidden(path.name) and path not in listed \
                        and path.name.lower() not in mentioned:   # a row named it: reported there already
                    yield ImageRecord(image_id=relpath_posix(path, self.root) if not images_dir else path.name,
                                      path=path, split=split, label_status="unlabeled", source_file=fname)
