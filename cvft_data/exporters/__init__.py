"""Exporters: a cvft dataset out to the layouts training tools read.

Every exporter writes into a staging folder and renames it into place, writes the bytes it stored
(never re-encoding), and keeps an export ledger of what the target format could not carry.
"""

from __future__ import annotations

from .camtrap_dp import export_camtrap_dp
from .coco import export_coco
from .csv_labels import export_csv
from .imagefolder import export_imagefolder
from .masks import export_masks
from .yolo import export_yolo

EXPORTERS = {"yolo": export_yolo, "coco": export_coco, "imagefolder": export_imagefolder, "csv": export_csv,
             "camtrap-dp": export_camtrap_dp, "masks": export_masks}
#: exporters that take options (``cvft export --option KEY=VALUE``)
TAKES_OPTIONS = {"camtrap-dp", "masks"}

__all__ = ["EXPORTERS", "TAKES_OPTIONS", "export_camtrap_dp", "export_coco", "export_csv", "export_imagefolder", "export_masks",
           "export_yolo"]
