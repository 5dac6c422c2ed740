"""The words every layer shares: tasks, label statuses, split names. No ``datasets`` import: the
kernel (see ARCHITECTURE.md) that connectors build on.

Example:
    >>> canonical_split("Valid"), is_split_name("dev"), "predicted" in LABEL_STATUSES
    ('validation', True, True)
"""

from __future__ import annotations

from typing import Literal

Task = Literal["classification", "multilabel", "detection", "instance_segmentation", "semantic_segmentation",
               "panoptic"]
TASKS: tuple[str, ...] = ("classification", "multilabel", "detection", "instance_segmentation",
                          "semantic_segmentation", "panoptic")
#: the label a semantic mask gives pixels nobody labelled (Pascal VOC's boundaries, "void")
IGNORE_INDEX = 255
OBJECT_TASKS = ("detection", "instance_segmentation")
LabelStatus = Literal["labeled", "empty", "unlabeled", "predicted"]
LABEL_STATUSES = ("labeled", "empty", "unlabeled", "predicted")   # predicted: machine labels (cvft predict)
CANONICAL_SPLITS = ("train", "validation", "test")

_SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "validation", "valid": "validation", "validation": "validation", "dev": "validation",
    "test": "test", "testing": "test",
}


def canonical_split(name: str) -> str:
    """Map a source's split name to cvft's (``val``/``valid`` -> ``validation``); other names are
    lower-cased and kept (``datasets`` allows ``\\w+`` split names).

    >>> canonical_split("Valid"), canonical_split("minival")
    ('validation', 'minival')
    """
    low = name.strip().lower()
    if low in _SPLIT_ALIASES:
        return _SPLIT_ALIASES[low]
    cleaned = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in low).strip("_")
    return cleaned or "train"


def is_split_name(name: str) -> bool:
    return name.strip().lower() in _SPLIT_ALIASES
