"""Roboflow's voc export: :class:`RoboflowVocConnector` (see its docstring)."""

from __future__ import annotations

from pathlib import Path

from cvft_data.paths import relpath_posix

from ._roboflow import _has_readme, _split_dirs
from .base import (
    Confidence,
    Score,
    read_prefix,
    register,
)
from .voc import VocConnector


@register
class RoboflowVocConnector(VocConnector):
    """Roboflow Pascal VOC: one XML next to each image, in split folders.

    ::

        root/
        ├── README.roboflow.txt
        ├── train/{a.jpg, a.xml, ...}
        └── valid/{b.jpg, b.xml, ...}
    """

    name = "roboflow_voc"
    summary = "Roboflow Pascal VOC (XML next to images in split folders)"

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        if not _has_readme(root):
            return Confidence(Score.NO, "no Roboflow README")
        for d in _split_dirs(root):
            for x in sorted(d.glob("*.xml"))[:2]:
                if "<annotation" in read_prefix(x, 4096):
                    return Confidence(Score.STRUCTURE, f"{relpath_posix(x, root)} is VOC XML beside a Roboflow README")
        return Confidence(Score.NO, "no VOC XML in split folders")
