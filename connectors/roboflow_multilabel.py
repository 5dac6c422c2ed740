"""Roboflow's multilabel export: :class:`RoboflowMultilabelConnector` (see its docstring)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from cvft_data.errors import AnnotationError
from cvft_data.paths import relpath_posix
from cvft_data.vocabulary import canonical_split

from ._csv import read_rows
from .base import (
    Confidence,
    Connector,
    ImageRecord,
    Score,
    register,
)


@register
class RoboflowMultilabelConnector(Connector):
    """Roboflow multi-label classification: ``<split>/_classes.csv`` with one-hot columns.

    ::

        root/
        ├── train/{_classes.csv, *.jpg}      filename, Acne, Blackheads, ...   (", " separated)
        └── valid/...
    """

    name = "roboflow_multilabel"
    summary = "Roboflow multi-label classification (<split>/_classes.csv)"

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        found = sorted(root.glob("*/_classes.csv")) if root.is_dir() else []
        if found:
            return Confidence(Score.TOOL_STRUCTURE, f"{relpath_posix(found[0], root)}: one-hot class columns")
        return Confidence(Score.NO, "no <split>/_classes.csv")

    @property
    def task(self) -> str:
        return "multilabel"

    def _files(self) -> list[Path]:
        return sorted(self.root.glob("*/_classes.csv"))

    def categories(self) -> list[str]:
        names: list[str] = []
        for f in self._files():
            rows = read_rows(f.read_text(encoding="utf-8-sig"), file=relpath_posix(f, self.root))
            for n in rows[0][1:] if rows else []:
                if n not in names:
                    names.append(n)
        return names

    def records(self) -> Iterator[ImageRecord]:
        for f in self._files():
            fname = relpath_posix(f, self.root)
            rows = read_rows(f.read_text(encoding="utf-8-sig"), file=fname)
            header, split = rows[0], canonical_split(f.parent.name)
            for i, row in enumerate(rows[1:], start=2):
                if len(row) != len(header):
                    self.policy.handle(AnnotationError(f"line {i} has {len(row)} cells, the header {len(header)}",
                                                       file=fname, item=f"line {i}",
                                                       expected="one cell per header column"), action="dropped_image")
                    continue
                labels = [h for h, v in zip(header[1:], row[1:]) if v not in ("0", "", "0.0")]
                path = self.find_image(row[0], f.parent, file=fname, annotations=len(labels),
                                       expected=f"{relpath_posix(f.parent, self.root)}/{row[0]}")
                if path is None:
                    continue
                yield ImageRecord(image_id=relpath_posix(path, self.root), path=path, split=split, labels=labels,
                                  label_status="labeled" if labels else "empty", source_file=fname)
