"""A trained model found from what the user has: a checkpoint file or a run folder.

``WEIGHTS`` may be a cvft run folder (``metrics.json`` names its best weights), a cvft classifier
checkpoint (``best.pt``/``last.pt``: a dict of tensors with ``model_name``, ``classes``, ``imgsz``,
``mean``, ``std``) or an Ultralytics ``.pt``. Every file is read with ``weights_only=True``
(Ultralytics' through its safe-load mode).

Example:
    >>> import tempfile, pathlib, torch
    >>> from cvft_train.models import build_model
    >>> net, _ = build_model("squeezenet1_1", 2, imgsz=64, pretrained=False)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "best.pt"
    >>> torch.save({"model": net.state_dict(), "model_name": "squeezenet1_1", "classes": ["cat", "dog"],
    ...             "imgsz": 64, "task": "classification"}, path)
    >>> trained = load_trained(path)
    >>> trained.kind, trained.classes, trained.imgsz
    ('classifier', ['cat', 'dog'], 64)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvft_data.errors import CheckpointError, UsageError

from .augment import MEAN, STD


@dataclass
class Trained:
    """What predict, evaluate and export need of a trained model."""

    kind: str                       # classifier | yolo | segmenter | mask2former
    task: str                       # classification | multilabel | detection | instance_segmentation | ...
    classes: list[str]
    imgsz: int
    path: Path
    model: Any                      # a torch.nn.Module (classifier, eval mode) or an ultralytics.YOLO
    model_name: str = ""
    mean: list[float] = field(default_factory=lambda: list(MEAN))
    std: list[float] = field(default_factory=lambda: list(STD))
    metrics: dict = field(default_factory=dict)   # the run's metrics.json, when WEIGHTS was a run folder
    ignore_index: int = 255                       # segmenters: the label of "not labelled"
    extra: dict = field(default_factory=dict)     # what one kind needs besides (Mask2Former's processor)


def resolve_weights(weights: str | os.PathLike) -> tuple[Path, dict]:
    """The weights file of ``weights`` (a file, or a run folder's best weights) and the run's metrics."""
    p = Path(weights)
    if p.is_dir():
        metrics = {}
        if (p / "metrics.json").is_file():
            try:
                metrics = json.loads((p / "metrics.json").read_text(encoding="utf-8"))
            except ValueError:
                raise UsageError(f"{p / 'metrics.json'} is not valid JSON") from None
        for candidate in (p / "checkpoints" / "best.pt", p / "yolo" / "weights" / "best.pt",
                          p / "checkpoints" / "last.pt", p / "yolo" / "weights" / "last.pt"):
            # the run folder's own layout, never a path taken from metrics.json (which may be edited)
            if candidate.is_file():
                return candidate, metrics
        raise UsageError(f"{p} is a folder without checkpoints/best.pt or yolo/weights/best.pt: not a cvft run")
    if not p.is_file():
        raise UsageError(f"weights {p} do not exist (a checkpoint file or a cvft run folder)")
    return p, {}


def load_trained(weights: str | os.PathLike, *, device: str = "cpu") -> Trained:
    """Open the trained model at ``weights`` (see the module docstring) on ``device``."""
    import torch

    path, metrics = resolve_weights(weights)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # an Ultralytics checkpoint pickles its model classes: its own safe loader reads it
        ckpt = None
    if isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict) and "model_name" in ckpt:
        if ckpt.get("task") == "semantic_segmentation":
            return _segmenter(path, ckpt, metrics, device)
        if ckpt.get("task") == "panoptic":
            return _mask2former(path, ckpt, metrics, device)
        return _classifier(path, ckpt, metrics, device)
    return _yolo(path, metrics)


def _classifier(path: Path, ckpt: dict, metrics: dict, device: str) -> Trained:
    from .models import build_model

    classes = ckpt.get("classes")
    if not isinstance(classes, list) or not classes:
        raise CheckpointError(f"{path} names no classes; expected a cvft checkpoint (best.pt or last.pt of a run)")
    imgsz = int(ckpt.get("imgsz") or 224)
    model, _ = build_model(str(ckpt["model_name"]), len(classes), imgsz=imgsz, pretrained=False)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit {ckpt['model_name']}: {str(exc).splitlines()[0]}") from None
    model.eval().to(device)
    return Trained(kind="classifier", task=str(ckpt.get("task") or "classification"), classes=[str(c) for c in classes],
                   imgsz=imgsz, path=path, model=model, model_name=str(ckpt["model_name"]),
                   mean=list(ckpt.get("mean") or MEAN), std=list(ckpt.get("std") or STD), metrics=metrics)


def _segmenter(path: Path, ckpt: dict, metrics: dict, device: str) -> Trained:
    from .config import TrainConfig
    from .segment import build_segmenter

    classes = [str(c) for c in ckpt.get("classes") or []]
    if not classes:
        raise CheckpointError(f"{path} names no classes; expected a cvft checkpoint (best.pt or last.pt of a run)")
    model, _ = build_segmenter(TrainConfig(model=str(ckpt["model_name"]), pretrained=False), classes, training=False)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit {ckpt['model_name']}: {str(exc).splitlines()[0]}") from None
    model.eval().to(device)
    return Trained(kind="segmenter", task="semantic_segmentation", classes=classes, imgsz=int(ckpt.get("imgsz") or 512),
                   path=path, model=model, model_name=str(ckpt["model_name"]), mean=list(ckpt.get("mean") or MEAN),
                   std=list(ckpt.get("std") or STD), metrics=metrics, ignore_index=int(ckpt.get("ignore_index", 255)))


def _mask2former(path: Path, ckpt: dict, metrics: dict, device: str) -> Trained:
    from .panoptic import load_mask2former

    classes = [str(c) for c in ckpt.get("classes") or []]
    if not classes:
        raise CheckpointError(f"{path} names no classes; expected a cvft checkpoint (best.pt or last.pt of a run)")
    return Trained(kind="mask2former", task="panoptic", classes=classes, imgsz=int(ckpt.get("imgsz") or 384),
                   path=path, model=load_mask2former(path, ckpt, device), model_name="mask2former", metrics=metrics,
                   extra={"isthing": [bool(t) for t in ckpt.get("isthing") or [True] * len(classes)]})


def _yolo(path: Path, metrics: dict) -> Trained:
    from .yolo import safe_ultralytics

    safe_ultralytics()
    from ultralytics import YOLO

    try:
        model = YOLO(str(path))
    except Exception as exc:  # Ultralytics raises TypeError for refused or damaged files
        raise CheckpointError(f"{path} is neither a cvft classifier checkpoint nor a YOLO checkpoint that loads "
                              f"safely: {str(exc).strip()[:300]}") from None
    names = model.names
    classes = [str(names[i]) for i in sorted(names)] if isinstance(names, dict) else [str(n) for n in names]
    task = {"detect": "detection", "segment": "instance_segmentation"}.get(model.task, model.task)
    imgsz = int((getattr(model, "overrides", {}) or {}).get("imgsz") or 640)
    return Trained(kind="yolo", task=task, classes=classes, imgsz=imgsz, path=path, model=model,
                   model_name=path.name, metrics=metrics)
