"""Optimizer, learning-rate schedule and weight averaging for the classifier loop.

- parameter groups: no weight decay on normalisation layers and biases (``decay_norm_bias`` puts
  it back), as in torchvision's reference recipes;
- schedule: a linear warm-up then cosine decay (or constant), a pure function of the optimizer
  step, so extending a finished run (more epochs on resume) simply recomputes it, and any number
  of steps per epoch works (one step on a small dataset split across DDP ranks included);
- EMA: :class:`torch.optim.swa_utils.AveragedModel` with an exponential average, evaluated and
  saved instead of the raw weights when ``ema_decay`` is set.

Example:
    >>> lr_factor(0, total=100, warmup=10), lr_factor(10, total=100, warmup=10), round(lr_factor(99, 100, 10), 4)
    (0.1, 1.0, 0.0003)
"""

from __future__ import annotations

import math

from .config import TrainConfig


def param_groups(model, weight_decay: float, decay_norm_bias: bool) -> list[dict]:
    """Two groups: weights that decay, and norm-layer parameters and biases that do not."""
    import torch

    norm_types = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.LayerNorm, torch.nn.GroupNorm,
                  torch.nn.modules.instancenorm._InstanceNorm, torch.nn.LocalResponseNorm)
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if not decay_norm_bias and (isinstance(module, norm_types) or name == "bias" or p.ndim <= 1):
                no_decay.append(p)
            else:
                decay.append(p)
    return [g for g in ({"params": decay, "weight_decay": weight_decay},
                        {"params": no_decay, "weight_decay": 0.0}) if g["params"]]


def build_optimizer(model, cfg: TrainConfig):
    import torch

    optimizer = cfg.optimizer or "adamw"
    lr = cfg.lr if cfg.lr is not None else (1e-3 if optimizer == "adamw" else 1e-2)
    wd = cfg.weight_decay if cfg.weight_decay is not None else (0.05 if optimizer == "adamw" else 1e-4)
    groups = param_groups(model, wd, cfg.decay_norm_bias)
    if optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=lr)


def lr_factor(step: int, total: int, warmup: int, schedule: str = "cosine") -> float:
    """The learning-rate multiplier at optimizer ``step`` (0-based) of ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """A ``LambdaLR`` over optimizer steps: ``warmup_epochs`` (default 1, at most a third of the run)
    then cosine to zero at ``epochs``."""
    import torch

    total = max(1, cfg.epochs * steps_per_epoch)
    warmup_epochs = 1.0 if cfg.warmup_epochs is None else cfg.warmup_epochs
    warmup = min(int(round(warmup_epochs * steps_per_epoch)), total // 3)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, warmup, cfg.scheduler))


def build_ema(model, decay: float):
    """An exponential moving average of ``model``'s parameters and buffers, or None when ``decay`` is 0."""
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
