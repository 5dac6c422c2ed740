"""Roboflow's createml export: :class:`RoboflowCreateMLConnector` (see its docstring)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from cvft_data.boxes import centre_to_xywh
from cvft_data.errors import AnnotationError, MalformedFileError, SourceError
from cvft_data.paths import relpath_posix
from cvft_data.vocabulary import canonical_split

from ._json import load_json
from .base import (
    Confidence,
    Connector,
    ImageRecord,
    ObjectRecord,
    Score,
    register,
)


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
