"""Training configuration: one dataclass, loadable from YAML, overridable from the command line."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml


@dataclass
class TrainConfig:
    """Everything a run needs. ``model`` is a torchvision classification model name (``resnet18``,
    ``resnet50``, ``vit_b_16``, ...) or an Ultralytics model (``yolo11n.pt``, ``yolov8s-seg.yaml``)."""

    model: str = "resnet18"
    task: str | None = None            # taken from the dataset when None
    epochs: int = 10
    imgsz: int = 224
    batch: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    optimizer: str = "adamw"           # adamw | sgd
    label_smoothing: float = 0.0
    device: str = "auto"               # auto | cpu | cuda | cuda:0 | mps | 0,1 (YOLO multi-GPU)
    workers: int = 2
    weights: str | None = None         # a local checkpoint; None: pretrained when `pretrained`, else random
    pretrained: bool = False           # torchvision/Ultralytics pretrained weights (needs internet once)
    amp: str = "auto"                  # auto (bf16/fp16 on CUDA) | off | bf16 | fp16
    channels_last: bool = True
    balance: str = "none"              # none | weights (class-weighted loss) | sampler (weighted sampler)
    patience: int = 0                  # early stopping after this many epochs without improvement (0: off)
    seed: int = 0
    train_split: str = "train"
    val_split: str = "validation"
    resume: bool = False
    out: str = "runs/cvft"
    wandb: bool = False
    wandb_project: str = "cvft"
    yolo_args: dict[str, Any] = field(default_factory=dict)   # passed to Ultralytics' train() as they are

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        return cls().updated(doc)

    def updated(self, values: dict[str, Any]) -> TrainConfig:
        """A copy with ``values`` applied (unknown keys are an error, None values are ignored)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            from cvft_data.errors import UsageError
            raise UsageError(f"unknown training option(s) {unknown}; known: {sorted(known)}")
        return TrainConfig(**{**asdict(self), **{k: v for k, v in values.items() if v is not None}})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def is_yolo(self) -> bool:
        m = Path(self.model).name.lower()
        return m.startswith(("yolo", "rtdetr")) or m.endswith((".pt", ".yaml")) and "yolo" in m
