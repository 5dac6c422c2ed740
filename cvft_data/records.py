"""The records a connector yields and the builder consumes: plain data, no Arrow, no ``datasets``.

Part of the kernel (see ARCHITECTURE.md): connectors, the builder and the trainer's prediction
dataset all speak these types.

Example:
    >>> rec = ImageRecord("images/a.jpg", None, label_status="labeled", objects=[ObjectRecord("cat", (1, 2, 3, 4))])
    >>> rec.annotation_count, rec.split
    (1, 'train')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .vocabulary import LabelStatus


def label_status_of(kept: int, given: int) -> LabelStatus:
    """The status of an image from what survived: ``labeled`` with annotations left, ``unlabeled``
    when it had annotations and every one was dropped (nobody said it is empty), else ``empty``.

    >>> label_status_of(2, 3), label_status_of(0, 3), label_status_of(0, 0)
    ('labeled', 'unlabeled', 'empty')
    """
    return "labeled" if kept else ("unlabeled" if given else "empty")


@dataclass
class ObjectRecord:
    """One annotated object. Coordinates are absolute pixels of the displayed image unless
    ``normalized`` is true (YOLO), in which case the builder scales them by the real image size."""

    category: str
    bbox: tuple[float, float, float, float] | None = None   # COCO [x, y, w, h]
    polygons: list[list[float]] = field(default_factory=list)
    rle: dict | None = None                                 # COCO RLE (list or string counts)
    iscrowd: bool = False
    area: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    keypoints: list[float] | None = None   # COCO-style [x, y, v, ...], same frame as the box
    normalized: bool = False               # coordinates are fractions of the image size
    centre: bool = False                   # bbox is (cx, cy, w, h) rather than (x, y, w, h)
    ref: str = ""            # where it came from, for error messages: "file.json#annotation 12"


@dataclass
class SegmentRecord:
    """One segment of a panoptic annotation (COCO ``segments_info`` with a category name)."""

    id: int
    category: str
    area: float
    bbox: tuple[float, float, float, float]
    iscrowd: bool = False


@dataclass
class LedgerNote:
    """A change a connector made while parsing one image's annotations (kept with the record so a
    resumed ingest rebuilds the same ledger)."""

    reason: str
    action: str
    detail: str
    file: str | None = None


@dataclass
class ImageRecord:
    """One image and its annotations, as a connector yields it.

    ``image_id`` is the path relative to the source root (posix); ``path`` the file to read (None
    when ``data`` holds the bytes, as for zip members). ``declared_size`` is the (width, height) the
    annotation file claims, checked against the real image by the builder. ``header`` holds the
    facts a connector already read from the image's header (see
    :data:`cvft_data.imageinfo.HeaderFacts`), so the builder does not parse it a second time.
    """

    image_id: str
    path: Path | None
    split: str = "train"
    label_status: LabelStatus = "unlabeled"
    label: str | None = None
    labels: list[str] | None = None
    objects: list[ObjectRecord] = field(default_factory=list)
    segments: list[SegmentRecord] = field(default_factory=list)
    panoptic_path: Path | None = None
    mask_path: Path | None = None                  # semantic segmentation: the mask PNG
    mask_colours: dict[tuple, int] | None = None   # an RGB mask's colour -> class index
    group: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    declared_size: tuple[int, int] | None = None
    data: bytes | None = None
    member: str | None = None          # a member of the zip archive at ``path``
    source_file: str | None = None   # the annotation file this record came from
    notes: list[LedgerNote] = field(default_factory=list)
    header: tuple[int, int, int, str] | None = None

    def note(self, reason: str, action: str, detail: str, file: str | None = None) -> None:
        self.notes.append(LedgerNote(reason, action, detail, file or self.source_file))

    @property
    def annotation_count(self) -> int:
        if self.label is not None:
            return 1
        return len(self.labels or ()) + len(self.objects) + len(self.segments)
