"""Connectors: one module per source format, each yielding :class:`~connectors.base.ImageRecord`.

The registry is filled by the explicit import list below (no plugin magic), and :func:`detect`
ranks every connector's :meth:`~connectors.base.Connector.sniff` on a source.

Example:
    >>> import connectors
    >>> sorted(connectors.available())[:3]
    ['camera_trap', 'camtrap_dp', 'coco']
"""

from __future__ import annotations

from pathlib import Path

from cvft_data.errors import FormatDetectionError, UsageError

from . import (  # noqa: F401
    camera_traps,
    camtrap_dp,
    coco,
    coco_camera_traps,
    cvat,
    folder,
    makesense,
    mask_folder,
    megadetector,
    roboflow,
    voc,
    weedai,
    yolo,
)
from .base import Confidence, Connector, ImageRecord, LedgerNote, ObjectRecord, Score, SegmentRecord, register, registry

__all__ = ["Confidence", "Connector", "ImageRecord", "LedgerNote", "ObjectRecord", "SegmentRecord", "available",
           "detect", "get", "rank", "register"]


def available() -> dict[str, type[Connector]]:
    """Every registered connector by name."""
    return registry()


def get(name: str) -> type[Connector]:
    """A connector by name; ``camera-trap`` and ``camera_trap`` are the same name."""
    reg = registry()
    name = name.replace("-", "_")
    if name not in reg:
        raise UsageError(f"unknown format {name!r}; known formats: {', '.join(sorted(reg))}")
    return reg[name]


def rank(root: str | Path) -> list[tuple[type[Connector], Confidence]]:
    """Every connector with its confidence on ``root``, best first (equals listed by name;
    :func:`detect` refuses to choose between them)."""
    root = Path(root)
    scored = []
    for cls in registry().values():
        try:
            conf = cls.sniff(root)
        except OSError as exc:
            conf = Confidence(Score.NO, f"could not look: {exc}")
        scored.append((cls, conf))
    return sorted(scored, key=lambda t: (-t[1].score, t[0].name))


def detect(root: str | Path) -> type[Connector]:
    """The best connector for ``root``; raises :class:`FormatDetectionError` with every reason."""
    root = Path(root)
    if not root.exists():
        raise UsageError(f"source {root} does not exist")
    ranked = rank(root)
    best, conf = ranked[0]
    if conf.score <= 0:
        raise FormatDetectionError(str(root), {cls.name: c.reason for cls, c in ranked})
    tied = [(cls, c) for cls, c in ranked if c.score == conf.score]
    if len(tied) > 1:   # never settled by alphabetical order: the user names the format
        said = "; ".join(f"{cls.name}: {c.reason}" for cls, c in tied)
        raise UsageError(f"{len(tied)} formats read {root} equally well ({said}); name one with --format")
    return best
