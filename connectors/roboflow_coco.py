"""Roboflow's coco export: :class:`RoboflowCocoConnector` (see its docstring)."""

from __future__ import annotations

from pathlib import Path

from cvft_data.paths import relpath_posix

from ._roboflow import _roboflow_info
from .base import (
    Confidence,
    Score,
    register,
)
from .coco import CocoConnector


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
