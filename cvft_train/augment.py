"""Classifier transforms (torchvision v2) built from a :class:`~cvft_train.config.TrainConfig`.

Training: random resized crop (``crop_scale``), flips (``hflip``, ``vflip``: set them to 0 for text,
digits or objects whose left and right differ), optional colour jitter and an auto-augment policy,
then normalisation and optional random erasing. Evaluation: resize the short side, centre crop.

Example:
    >>> from cvft_train.config import TrainConfig
    >>> t = transforms_for(TrainConfig(imgsz=32, hflip=0.0, auto_augment="trivialaugment"), train=True)
    >>> [type(s).__name__ for s in t.transforms][:4]
    ['PILToTensor', 'RandomResizedCrop', 'TrivialAugmentWide', 'ToDtype']
"""

from __future__ import annotations

from .config import TrainConfig

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)   # ImageNet's, as torchvision's weights expect


def eval_transform(imgsz: int, mean=MEAN, std=STD):
    """Validation, evaluation and prediction: resize the shorter side, centre crop, normalise
    (what ``cvft export-model`` writes beside a model for other runtimes)."""
    import torch
    from torchvision.transforms import v2

    return v2.Compose([v2.PILToTensor(), v2.Resize(imgsz, antialias=True), v2.CenterCrop(imgsz),
                       v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(mean), std=list(std))])


def transforms_for(cfg: TrainConfig, train: bool):
    import torch
    from torchvision.transforms import v2

    if not train:
        return eval_transform(cfg.imgsz)
    tail = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(MEAN), std=list(STD))]
    steps = [v2.PILToTensor(), v2.RandomResizedCrop(cfg.imgsz, scale=(cfg.crop_scale, 1.0), antialias=True)]
    hflip = 0.5 if cfg.hflip is None else cfg.hflip
    if hflip > 0:
        steps.append(v2.RandomHorizontalFlip(hflip))
    if cfg.vflip:
        steps.append(v2.RandomVerticalFlip(cfg.vflip))
    if cfg.color_jitter > 0:
        j = cfg.color_jitter
        steps.append(v2.ColorJitter(brightness=j, contrast=j, saturation=j))
    policy = {"trivialaugment": v2.TrivialAugmentWide, "randaugment": v2.RandAugment,
              "autoaugment": v2.AutoAugment}.get(cfg.auto_augment)
    if policy is not None:
        steps.append(policy())
    steps += tail
    if cfg.random_erasing > 0:
        steps.append(v2.RandomErasing(p=cfg.random_erasing))
    return v2.Compose(steps)
