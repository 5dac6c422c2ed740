"""Dataset checks: balance, null images, unlabeled, corrupt files, duplicates, leakage, geometry.

``check(path)`` never raises for data problems: it returns a :class:`CheckReport` whose findings
each name the check, a severity, a sentence and the ``image_id`` rows concerned.

Example:
    >>> import pathlib, tempfile, cvft_data
    >>> from cvft_data.sample import write_coco_sample
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = cvft_data.ingest(write_coco_sample(tmp / "src", n_images=20), tmp / "ds")
    >>> report = check(tmp / "ds", CheckOptions(min_images_per_class=2))
    >>> [f.check for f in report.findings if f.severity == "error"]
    []
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from .check_facts import Finding  # noqa: F401 (re-exported: cvft_data.checks.Finding)
from .store import column  # noqa: F401 (re-exported: cvft_data.checks.column)

SEVERITIES = ("error", "warning", "info")
#: Every check this module runs, with what it looks for.
CHECKS = {
    "class_balance": "classes with fewer images than the advice (about 1,000 per class), and the imbalance ratio",
    "null_images": "no null (empty) images in a split, or null shares far apart across splits or groups",
    "unlabeled": "images with no annotation at all",
    "corrupt_image": "images that do not fully decode (truncated or corrupt files)",
    "duplicate": "byte-identical images (content hash), within a split",
    "near_duplicate": "pairs of visually identical images (perceptual hash), e.g. one re-encoded at another quality",
    "leakage": "the same image, a duplicate or a group in more than one split",
    "box_degenerate": "boxes with zero or negative width or height",
    "box_tiny": "boxes smaller than the minimum side",
    "box_out_of_bounds": "boxes leaving the image",
    "empty_mask": "segmentation masks or polygons with no area",
    "unused_class": "classes declared but never used",
    "mask_size": "semantic masks whose size is not their image's",
    "mask_unknown_index": "semantic masks with indices beyond the classes (other than the ignore index)",
    "class_pixel_balance": "semantic segmentation: a class covering far fewer pixels than the largest",
    "class_missing_from_split": "a class the dataset uses that a split has no image of",
    "camera_gap": "camera-trap deployments with days-long gaps between triggers (battery, card, theft)",
    "camera_abnormal_days": "days with far more triggers than the deployment's usual day (vegetation)",
    "camera_dark_frames": "deployments with many near-black frames (night without infrared)",
    "day_night": "deployments in colour at night and grey by day (clock 12 hours or a zone off)",
}


@dataclass
class CheckOptions:
    """Thresholds. ``decode=False`` skips the full decode (corrupt and near-duplicate checks)."""

    min_images_per_class: int = 1000
    max_imbalance_ratio: float = 10.0
    null_share_tolerance: float = 0.15
    near_duplicate_distance: int = 4
    min_box_side: float = 2.0
    bounds_tolerance: float = 1.0
    decode: bool = True
    workers: int = 0
    camera_gap_days: float = 7.0
    max_dark_share: float = 0.2
    independence_minutes: float = 30.0   # camera traps: detections further apart are independent


@dataclass
class CheckReport:
    """Findings plus the statistics they came from (used by the HTML report)."""

    path: str
    findings: list[Finding]
    stats: dict[str, Any]

    def by_severity(self, severity: str) -> list[Finding]:
        return [f for f in self.findings if f.severity == severity]

    def failed(self, fail_on: list[str]) -> list[Finding]:
        """Findings that match ``fail_on`` (check names or severities)."""
        return [f for f in self.findings if f.check in fail_on or f.severity in fail_on]

    def to_dict(self) -> dict:
        return {"path": self.path, "findings": [f.to_dict() for f in self.findings], "stats": self.stats}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    def __str__(self) -> str:
        if not self.findings:
            return f"{self.path}: no findings"
        lines = [f"{self.path}: {len(self.findings)} findings "
                 f"({len(self.by_severity('error'))} errors, {len(self.by_severity('warning'))} warnings)"]
        for f in self.findings:
            ids = ", ".join(f.image_ids[:3]) + (f" (+{len(f.image_ids) - 3} more)" if len(f.image_ids) > 3 else "")
            lines.append(f"  [{f.severity}] {f.check}: {f.message}" + (f"\n      rows: {ids}" if ids else ""))
        return "\n".join(lines)


def check(path: str | os.PathLike, options: CheckOptions | None = None) -> CheckReport:
    """Run every check (:data:`cvft_data.check_rules.RULES`) on the cvft dataset at ``path``."""
    from .check_facts import gather
    from .check_rules import RULES
    from .store import open_dataset, read_info

    opts = options or CheckOptions()
    info = read_info(path)
    facts = gather(str(path), open_dataset(path), info["task"], info["classes"], min_box_side=opts.min_box_side,
                   bounds_tolerance=opts.bounds_tolerance)
    if info["task"] == "semantic_segmentation":
        facts.stats["ignore_index"] = info.get("ignore_index", 255)
    findings = [f for run in RULES for f in run(facts, opts)]
    order = {s: i for i, s in enumerate(SEVERITIES)}
    findings.sort(key=lambda f: (order[f.severity], f.check))
    return CheckReport(str(path), findings, facts.stats)
