"""Roboflow's yolo export: :class:`RoboflowYoloConnector` (see its docstring)."""

from __future__ import annotations

from pathlib import Path

from ._roboflow import _has_readme, _roboflow_info
from .base import (
    Confidence,
    Score,
    read_prefix,
    register,
)
from .yolo import YoloConnector


@register
class RoboflowYoloConnector(YoloConnector):
    """Roboflow YOLOv5/v8/v9/v11: ``data.yaml`` with a ``roboflow:`` block and another machine's paths.

    ::

        root/
        ├── data.yaml        train: /Users/x/proj/train/images, val: ../valid/images, names: [...]
        ├── train/{images,labels}/
        ├── valid/{images,labels}/
        └── test/{images,labels}/

    The split paths are resolved inside the root by their trailing components; label files may mix
    box and polygon lines.
    """

    name = "roboflow_yolo"
    summary = "Roboflow YOLOv5/v8/v9/v11 (data.yaml with a roboflow: block)"

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        base = super().sniff(root)
        if not base:
            return Confidence(Score.NO, "no data.yaml with names and split entries")
        for y in cls._yaml_files(root):
            if "roboflow:" in read_prefix(y, 8192):
                return Confidence(Score.STRUCTURE, f"{y.name} has a roboflow: block")
        if _has_readme(root if root.is_dir() else root.parent):
            return Confidence(Score.STRUCTURE, "data.yaml beside README.roboflow.txt")
        return Confidence(Score.NO, "data.yaml without a roboflow: block or Roboflow README")

    def source_info(self) -> dict:
        return {**super().source_info(), **_roboflow_info(self.root)}
