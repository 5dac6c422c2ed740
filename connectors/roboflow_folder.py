"""Roboflow's folder export: :class:`RoboflowFolderConnector` (see its docstring)."""

from __future__ import annotations

from pathlib import Path

from ._roboflow import _has_readme, _roboflow_info, _split_dirs
from .base import (
    Confidence,
    Score,
    register,
)
from .folder import FolderConnector


@register
class RoboflowFolderConnector(FolderConnector):
    """Roboflow single-label classification: ``<split>/<class>/<image>``.

    ::

        root/
        ├── README.dataset.txt
        ├── train/{Corrosion,no-corrosion}/*.jpg
        └── valid/...
    """

    name = "roboflow_folder"
    summary = "Roboflow classification folders (<split>/<class>/*.jpg)"

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        if not _has_readme(root):
            return Confidence(Score.NO, "no Roboflow README")
        splits = _split_dirs(root)
        if splits and any(p.is_dir() for s in splits for p in s.iterdir()) and \
                not any((s / "_classes.csv").is_file() for s in splits):
            return Confidence(Score.HINT, "split folders of class folders beside a Roboflow README")
        return Confidence(Score.NO, "no split folders of class folders")

    def source_info(self) -> dict:
        return _roboflow_info(self.root)
