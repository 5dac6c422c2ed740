"""Training configuration: one dataclass, loadable from YAML, overridable from the command line.

``None`` means "the backend's default": the torchvision loop and Ultralytics pick different learning
rates, optimizers and warm-ups, and :func:`cvft_train.yolo.ultralytics_args` refuses the options
that Ultralytics cannot honour instead of ignoring them.

Example:
    >>> cfg = TrainConfig(epochs=3).updated({"lr": 0.01, "hflip": 0.0})
    >>> cfg.lr, cfg.hflip, cfg.resolved_model("detection"), cfg.resolved_model("classification")
    (0.01, 0.0, 'yolo11n.pt', 'resnet18')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

#: Keys that ``config.yaml`` of a run carries besides the options (written by ``fit``).
RUN_KEYS = ("dataset", "dataset_content_hash")

CHOICES = {
    "optimizer": (None, "adamw", "sgd"),
    "scheduler": ("cosine", "constant"),
    "amp": ("auto", "off", "bf16", "fp16"),
    "balance": ("none", "weights", "sampler"),
    "auto_augment": ("none", "trivialaugment", "randaugment", "autoaugment"),
}


@dataclass
class TrainConfig:
    """Everything a run needs. ``model`` is a torchvision classification model name (``resnet18``,
    ``vit_b_16``, ...) or an Ultralytics model (``yolo11n.pt``, ``yolov8s-seg.yaml``); None picks
    ``resnet18`` for classification and, for detection and instance segmentation, the ``weights``
    checkpoint's own architecture or ``yolo11n.pt`` / ``yolo11n-seg.pt``."""

    model: str | None = None
    task: str | None = None            # taken from the dataset when None
    epochs: int = 10
    imgsz: int = 224
    batch: int = 32
    # weights: pretrained (torchvision DEFAULT / Ultralytics .pt) unless a local file or --no-pretrained
    pretrained: bool = True
    weights: str | None = None
    # optimisation (None: the backend's default)
    lr: float | None = None            # torchvision: 1e-3 AdamW / 1e-2 SGD
    optimizer: str | None = None       # adamw | sgd (Ultralytics: its "auto" when None)
    weight_decay: float | None = None  # torchvision: 0.05
    decay_norm_bias: bool = False      # weight decay on norm layers and biases too (off, as usual)
    scheduler: str = "cosine"          # cosine | constant, after a linear warm-up
    warmup_epochs: float | None = None  # torchvision: 1; Ultralytics: 3
    label_smoothing: float = 0.0
    clip_grad: float = 0.0             # max gradient norm (0: off)
    accumulate: int = 1                # batches per optimizer step
    ema_decay: float = 0.0             # exponential moving average of the weights (0: off, e.g. 0.9998)
    compile: bool = False              # torch.compile the model
    # augmentation (torchvision v2; flips off for text or asymmetric objects)
    hflip: float | None = None         # horizontal flip probability (default 0.5)
    vflip: float | None = None         # vertical flip probability (default 0)
    crop_scale: float = 0.6            # RandomResizedCrop's smallest area share (1: no crop)
    color_jitter: float = 0.0          # brightness/contrast/saturation strength
    auto_augment: str = "none"         # none | trivialaugment | randaugment | autoaugment
    random_erasing: float = 0.0        # probability
    # data and machine
    device: str = "auto"               # auto | cpu | cuda | cuda:0 | mps | 0,1 (YOLO multi-GPU)
    workers: int | None = None         # DataLoader workers (None: one per core of this process, at most 8)
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
    model_args: dict[str, Any] = field(default_factory=dict)  # Mask2Former: its config built offline (hidden_dim...)

    def __post_init__(self) -> None:
        from cvft_data.errors import UsageError

        for key, allowed in CHOICES.items():
            if getattr(self, key) not in allowed:
                raise UsageError(f"{key} must be one of {[a for a in allowed if a]}, not {getattr(self, key)!r}")
        for key in ("epochs", "imgsz", "batch", "accumulate"):
            if int(getattr(self, key)) < 1:
                raise UsageError(f"{key} must be at least 1, not {getattr(self, key)}")
        for key in ("hflip", "vflip", "random_erasing", "label_smoothing"):
            v = getattr(self, key)
            if v is not None and not 0.0 <= v <= 1.0:
                raise UsageError(f"{key} is a probability or share between 0 and 1, not {v}")
        if not 0.0 < self.crop_scale <= 1.0:
            raise UsageError(f"crop_scale must be in (0, 1], not {self.crop_scale}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise UsageError(f"ema_decay must be in [0, 1), not {self.ema_decay}")

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """The options in a YAML file (a run's ``config.yaml`` included: its run keys are skipped)."""
        return cls().updated(read_yaml(path))

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

    def resolved_model(self, task: str) -> str:
        """The model to train for ``task`` when none is named (see the class docstring)."""
        if self.model:
            return self.model
        if task in ("detection", "instance_segmentation"):
            if self.weights:
                return self.weights   # a YOLO checkpoint carries its architecture
            stem = "yolo11n-seg" if task == "instance_segmentation" else "yolo11n"
            return f"{stem}.pt" if self.pretrained and not self.weights else f"{stem}.yaml"
        if task == "semantic_segmentation":
            return "deeplabv3_mobilenet_v3_large"
        if task == "panoptic":
            return "mask2former"
        return "resnet18"

    @property
    def is_yolo(self) -> bool:
        return is_yolo_model(self.model or "")


def is_yolo_model(model: str) -> bool:
    """An Ultralytics model name or file (``yolo11n.pt``, ``yolov8s-seg.yaml``, ``rtdetr-l.pt``)."""
    m = Path(model).name.lower()
    return m.startswith(("yolo", "rtdetr")) or m.endswith((".pt", ".yaml", ".yml"))


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping of options; a run's own keys (dataset, hash, resolved values) are dropped."""
    from cvft_data.errors import UsageError

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read the training config {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{path} must hold a mapping of training options, not {type(doc).__name__}")
    return {k: v for k, v in doc.items() if k not in RUN_KEYS}


def explicit_values(config: TrainConfig | dict | None) -> dict[str, Any]:
    """The options a caller set: a dict as given, or a config's fields that differ from the defaults."""
    if config is None:
        return {}
    if isinstance(config, dict):
        return {k: v for k, v in config.items() if v is not None}
    default = TrainConfig().to_dict()
    return {k: v for k, v in config.to_dict().items() if v != default[k]}
