"""Semantic segmentation with torchvision's segmenters (DeepLabV3, LR-ASPP, FCN), in the
classifier's loop (:func:`cvft_train.classify.fit_torch`: checkpoints, resume, DDP, AMP, EMA, W&B).

Images and masks are augmented together with torchvision v2 (``tv_tensors.Mask``: a mask is
resized with nearest neighbour and never colour-jittered); the loss ignores the dataset's ignore
index; validation reports mIoU (the primary metric), per-class IoU and pixel accuracy, counted over
pixels at the training size.

Example:
    >>> import torch
    >>> m = confusion_metrics(torch.tensor([[3, 1], [0, 4]]), ["soil", "weed"])
    >>> round(m["miou"], 3), m["per_class"]["weed"]["iou"], m["pixel_accuracy"]
    (0.775, 0.8, 0.875)
"""

from __future__ import annotations

import io
import logging
from typing import Any

from cvft_data.errors import UsageError

from .augment import MEAN, STD
from .config import TrainConfig

log = logging.getLogger(__name__)

#: torchvision segmentation models and the backbone whose ImageNet weights they can start from
SEGMENTERS = {
    "deeplabv3_mobilenet_v3_large": "mobilenet_v3_large",
    "deeplabv3_resnet50": "resnet50",
    "deeplabv3_resnet101": "resnet101",
    "lraspp_mobilenet_v3_large": "mobilenet_v3_large",
    "fcn_resnet50": "resnet50",
    "fcn_resnet101": "resnet101",
}
DEFAULT_SEGMENTER = "deeplabv3_mobilenet_v3_large"


def is_segmenter(name: str | None) -> bool:
    return bool(name) and name in SEGMENTERS


class SegmentationDataset:
    """(image, mask) pairs of a split's labelled rows: ``float32 [3, S, S]`` normalised and
    ``int64 [S, S]`` class indices (the ignore index kept)."""

    def __init__(self, ds, transform, *, imgsz: int, full_masks: bool = False):
        from cvft_data.store import bytes_view, present

        statuses, has_mask = ds["label_status"], present(ds, "mask")
        self.index = [i for i, (st, m) in enumerate(zip(statuses, has_mask)) if m and st in ("labeled", "predicted")]
        self.ds = bytes_view(ds.select_columns(["image", "mask"]))
        self.transform = transform
        self.imgsz = imgsz
        #: evaluation at the original resolution: the image goes through ``transform``, the mask
        #: comes back as stored (batch with :func:`collate_full`)
        self.full_masks = full_masks

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int):
        import numpy as np
        import torch
        from PIL import Image
        from torchvision import tv_tensors

        from .data import decode

        row = self.ds[self.index[k]]
        image = decode(row["image"], 2 * self.imgsz)   # JPEG draft decode when the image is far larger
        with Image.open(io.BytesIO(row["mask"]["bytes"])) as m:
            mask = np.asarray(m).astype(np.int64)
        if self.full_masks:
            img_t = tv_tensors.Image(torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1))
            return self.transform(img_t), torch.from_numpy(mask)
        if image.size != (mask.shape[1], mask.shape[0]):   # decoded at reduced size: the mask follows
            mask = np.asarray(Image.fromarray(mask.astype(np.uint8)).resize(image.size, Image.Resampling.NEAREST))
        img_t = tv_tensors.Image(torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1))
        mask_t = tv_tensors.Mask(torch.from_numpy(np.asarray(mask, dtype=np.int64).copy()))
        img_t, mask_t = self.transform(img_t, mask_t)
        return img_t, mask_t.long()


def collate_full(batch):
    """Images stacked, masks of their own sizes in a list (evaluation at the original resolution)."""
    import torch

    return torch.stack([x for x, _ in batch]), [y for _, y in batch]


def transforms(cfg: TrainConfig, train: bool, ignore: int):
    """Joint image/mask transforms (torchvision v2). Validation: resize to ``imgsz`` x ``imgsz``."""
    import torch
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    s = cfg.imgsz
    tail = [v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
            v2.Normalize(mean=list(MEAN), std=list(STD))]
    if not train:
        return v2.Compose([v2.Resize((s, s), antialias=True), *tail])
    steps = [v2.RandomResizedCrop((s, s), scale=(cfg.crop_scale, 1.0), antialias=True)]
    hflip = 0.5 if cfg.hflip is None else cfg.hflip
    if hflip > 0:
        steps.append(v2.RandomHorizontalFlip(hflip))
    if cfg.vflip:
        steps.append(v2.RandomVerticalFlip(cfg.vflip))
    if cfg.color_jitter > 0:   # v2 jitters the image only, never the mask
        j = cfg.color_jitter
        steps.append(v2.ColorJitter(brightness=j, contrast=j, saturation=j))
    return v2.Compose([*steps, *tail])


def build_segmenter(cfg: TrainConfig, names: list[str], *, training: bool = True):
    """A torchvision segmenter with a head for ``names``: from ``--weights`` (a cvft or plain
    checkpoint), else the backbone's ImageNet weights (``--pretrained``, downloaded once), else
    random weights (``training=False``: a shell for a checkpoint the caller loads)."""
    import torchvision

    from .checkpoints import fit_state_dict, read_checkpoint
    from .models import pretrained_state

    name = cfg.model
    if name not in SEGMENTERS:
        raise UsageError(f"{name!r} is not a torchvision segmentation model; choose one of {', '.join(SEGMENTERS)}")
    model = wrap_segmenter(torchvision.models.get_model(name, weights=None, weights_backbone=None,
                                                        num_classes=len(names), aux_loss=False))
    report = None
    if cfg.weights:
        state, meta = read_checkpoint(cfg.weights)
        keep = meta.get("classes") in (None, list(names))
        report = fit_state_dict(model, state, head=("net.classifier.", "net.aux_classifier."), source=str(cfg.weights),
                                keep_head=keep)
    elif cfg.pretrained:   # ImageNet backbone: the segmentation heads start new for these classes
        state, url = pretrained_state(SEGMENTERS[name])
        backbone = model.net.backbone
        report = fit_state_dict(backbone, _backbone_keys(backbone, state), head=("__none__",), source=url)
    if report is not None:
        log.info("%s", report)
    elif training:
        settle_batch_norm(model)
    return model, report


def settle_batch_norm(model, momentum: float = 0.1) -> int:
    """From random weights, let batch-norm statistics follow the data at ``momentum`` (MobileNetV3's
    own 0.01 needs thousands of steps to leave its initial values: until then a model that
    segments well in training predicts one class in eval mode). Returns how many layers changed."""
    import torch

    changed = 0
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.momentum is not None and m.momentum < momentum:
            m.momentum = momentum
            changed += 1
    if changed:
        log.info("random weights: %d batch-norm layers follow the data at momentum %s", changed, momentum)
    return changed


def _backbone_keys(backbone, state: dict) -> dict:
    """An ImageNet classifier's state dict keyed as the segmenter's backbone (``features.N`` ->
    ``N`` for MobileNet; ResNet keys as they are)."""
    mine = set(backbone.state_dict())
    out = {}
    for k, v in state.items():
        key = k[len("features."):] if k.startswith("features.") and k[len("features."):] in mine else k
        if key in mine:
            out[key] = v
    return out


def _segmentation_model_class():
    import torch

    class _SegmentationModel(torch.nn.Module):
        """A torchvision segmenter that returns its ``out`` logits (the loop's ``model(x)``)."""

        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x)["out"]

    return _SegmentationModel


def wrap_segmenter(net):
    """``net`` (a torchvision segmenter) as a module whose output is its ``out`` logits."""
    return _segmentation_model_class()(net)


def confusion_metrics(conf, names: list[str]) -> dict[str, Any]:
    """mIoU (over classes seen in the labels or the predictions), per-class IoU, pixel accuracy from a
    pixel confusion matrix (rows: truth, columns: prediction)."""
    conf = conf.double()
    tp = conf.diag()
    union = conf.sum(0) + conf.sum(1) - tp
    seen = union > 0
    iou = tp / union.clamp(min=1)   # 0 where the union is empty: a class neither true nor predicted
    total = conf.sum()
    return {"miou": float(iou[seen].mean()) if bool(seen.any()) else 0.0,
            "pixel_accuracy": float(tp.sum() / total) if float(total) else 0.0,
            "per_class": {n: {"iou": round(float(iou[c]), 6), "pixels": int(conf[c].sum())}
                          for c, n in enumerate(names)},
            "confusion_matrix": conf.long().tolist()}


def evaluate_segmenter(model, loader, criterion, *, device, dtype, names, multilabel=False, channels_last=False,
                       world=1, ignore: int = 255) -> dict:
    """Validation pass: loss and the pixel confusion matrix (all-reduced under DDP)."""
    import torch

    from cvft_data import progress

    k = len(names)
    model.eval()
    conf = torch.zeros((k, k), dtype=torch.int64, device=device)
    scalars = torch.zeros(2, dtype=torch.float64, device=device)
    with torch.no_grad():
        for x, y in progress.bar(loader, total=len(loader), desc="validate", unit="batch", leave=False):
            x = x.to(device, non_blocking=True)
            y = [m.to(device) for m in y] if isinstance(y, list) else y.to(device, non_blocking=True)
            if channels_last:
                x = x.to(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype is not None):
                logits = model(x).float()
            # masks of their own sizes (evaluation at the original resolution): logits enlarged to each
            pairs = [(torch.nn.functional.interpolate(logits[i:i + 1], size=tuple(m.shape), mode="bilinear",
                                                      align_corners=False), m[None]) for i, m in enumerate(y)] \
                if isinstance(y, list) else [(logits, y)]
            for lg, yy in pairs:
                scalars[0] += criterion(lg, yy).double() * len(lg)
                pred = lg.argmax(1)
                valid = (yy != ignore) & (yy >= 0) & (yy < k)
                conf += torch.bincount(yy[valid] * k + pred[valid], minlength=k * k).reshape(k, k)
            scalars[1] += len(x)
    if world > 1:
        torch.distributed.all_reduce(conf)
        torch.distributed.all_reduce(scalars)
    model.train()
    return {"val_loss": float(scalars[0] / max(float(scalars[1]), 1.0)), "images": int(scalars[1]),
            **confusion_metrics(conf.cpu(), names)}


def _ignore(data) -> int:
    return int(data.info.get("ignore_index", 255))


def _loaders(cfg: TrainConfig, data, world: int, rank: int):
    from torch.utils.data import DistributedSampler

    from .data import loaders

    dsd, ignore = data.splits, _ignore(data)
    if cfg.train_split not in dsd:
        raise UsageError(f"the dataset has no {cfg.train_split!r} split; make one with cvft split")
    train_ds = SegmentationDataset(dsd[cfg.train_split], transforms(cfg, True, ignore), imgsz=cfg.imgsz)
    if not len(train_ds):
        raise UsageError(f"split {cfg.train_split!r} has no image with a mask to train on")
    if cfg.balance == "sampler":
        raise UsageError("--balance sampler draws images by class; a segmenter's classes share images: "
                         "use --balance weights (a pixel-class-weighted loss)")
    val_ds = SegmentationDataset(dsd[cfg.val_split], transforms(cfg, False, ignore), imgsz=cfg.imgsz) \
        if cfg.val_split in dsd else None
    sampler = DistributedSampler(train_ds, num_replicas=world, rank=rank, seed=cfg.seed) if world > 1 else None
    # a last batch of one image would break batch norm: dropped when there is more than one batch
    return (train_ds, *loaders(cfg, train_ds, val_ds, sampler=sampler, world=world, rank=rank,
                               drop_last=len(train_ds) > cfg.batch))


def _criteria(cfg: TrainConfig, data, multilabel: bool, device: str):
    import torch

    weight = None
    if cfg.balance == "weights":   # images per class as the frequency: cheap, and rare classes count
        from cvft_data.balance import class_weights
        weight = torch.tensor(class_weights(data.splits[cfg.train_split]), dtype=torch.float32, device=device)
        weight = torch.where(weight > 0, weight, torch.ones_like(weight))
    ignore = _ignore(data)
    return (torch.nn.CrossEntropyLoss(weight=weight, ignore_index=ignore, label_smoothing=cfg.label_smoothing),
            torch.nn.CrossEntropyLoss(ignore_index=ignore))


def recipe(ignore: int = 255):
    """The :class:`cvft_train.classify.Recipe` of semantic segmentation."""
    from .classify import Recipe

    return Recipe(
        loaders=_loaders, build=build_segmenter, criteria=_criteria,
        evaluate=lambda model, loader, criterion, **kw: evaluate_segmenter(model, loader, criterion, ignore=ignore,
                                                                          **kw),
        task=lambda multilabel: "semantic_segmentation", primary=lambda multilabel: "miou",
        meta=lambda cfg, data: {"ignore_index": _ignore(data)})


def fit_segmenter(cfg: TrainConfig, data, run, logger=None) -> dict:
    from cvft_data.store import OpenedDataset

    from .classify import fit_torch

    data = OpenedDataset.of(data)
    return fit_torch(cfg, data, run, logger, recipe(_ignore(data)))
