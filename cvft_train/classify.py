"""The classification loop: torchvision models, read in one sitting.

``fit_classifier`` = build the model (pretrained or from a checkpoint) -> loaders -> for each epoch
``train_one_epoch`` then ``evaluate`` -> checkpoint (plain dict of tensors) -> keep the best ->
stop early when asked. DDP under ``torchrun``, AMP (bf16 where supported, else fp16) and
channels-last on CUDA, gradient accumulation and clipping, EMA, warm-up + cosine schedule.

Reproducibility: every epoch's order and augmentation depend on (seed, epoch) only — the samplers
and the loader's generator are re-seeded each epoch and worker processes are started per epoch —
so a run killed and resumed gives the same losses as one that was not.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from cvft_data.errors import UsageError
from cvft_data.store import OpenedDataset

from .augment import MEAN, STD, transforms_for
from .classify_metrics import evaluate
from .config import TrainConfig
from .data import ClassificationDataset, loaders
from .devices import amp_dtype, distributed, pick_device
from .metrics import metrics_doc, write_metrics
from .models import build_model
from .optim import build_ema, build_optimizer, build_scheduler
from .samplers import WeightedDistributedSampler

log = logging.getLogger(__name__)


def train_one_epoch(model, loader, criterion, optimizer, scheduler, *, device, dtype, scaler, channels_last,
                    accumulate: int = 1, clip_grad: float = 0.0, ema=None, bare=None, desc: str | None = "train") -> dict:
    """One pass over ``loader``; an optimizer step every ``accumulate`` batches (and at the end).
    ``desc`` labels the batch bar (a terminal only, see :mod:`cvft_data.progress`; None: no bar)."""
    import torch

    from cvft_data import progress

    model.train()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)  # on the device: no host sync per step
    seen = steps = 0
    t0 = time.perf_counter()
    n_batches = len(loader)
    for i, (x, y) in enumerate(progress.bar(loader, total=n_batches, desc=desc or "", unit="batch", leave=False,
                                                    hide=desc is None)):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.to(memory_format=torch.channels_last)
        last_micro = (i + 1) % accumulate == 0 or i + 1 == n_batches
        # DDP: reduce gradients only on the micro-batch that steps
        sync = model.no_sync() if accumulate > 1 and not last_micro and hasattr(model, "no_sync") \
            else contextlib.nullcontext()
        with sync:
            with torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype is not None):
                loss = criterion(model(x), y)
            scaler.scale(loss / accumulate).backward()
        loss_sum += loss.detach().double() * len(x)
        seen += len(x)
        if last_micro:
            if clip_grad:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            steps += 1
            if ema is not None:
                ema.update_parameters(bare)
    dt = time.perf_counter() - t0
    return {"loss_sum": loss_sum, "seen": seen, "steps": steps, "images_per_s": seen / dt if dt else 0.0}


def _loaders(cfg: TrainConfig, dsd, world: int, rank: int):
    from torch.utils.data import DistributedSampler

    from cvft_data.balance import sample_weights

    train_ds = ClassificationDataset(dsd[cfg.train_split], transforms_for(cfg, True), imgsz=cfg.imgsz)
    if not len(train_ds):
        raise UsageError(f"split {cfg.train_split!r} has no labelled image to train on")
    val_ds = ClassificationDataset(dsd[cfg.val_split], transforms_for(cfg, False), imgsz=cfg.imgsz) \
        if cfg.val_split in dsd else None
    sampler = None
    if cfg.balance == "sampler":
        w = sample_weights(dsd[cfg.train_split])
        sampler = WeightedDistributedSampler([w[i] for i in train_ds.index], len(train_ds), rank, world, cfg.seed)
    elif world > 1:
        sampler = DistributedSampler(train_ds, num_replicas=world, rank=rank, seed=cfg.seed)
    return (train_ds, *loaders(cfg, train_ds, val_ds, sampler=sampler, world=world, rank=rank))


def _criteria(cfg: TrainConfig, dsd, multilabel: bool, device: str):
    import torch

    weight = None
    if cfg.balance == "weights":
        from cvft_data.balance import class_weights
        weight = torch.tensor(class_weights(dsd[cfg.train_split]), dtype=torch.float32, device=device)
    if multilabel:
        ls = cfg.label_smoothing
        bce = torch.nn.BCEWithLogitsLoss(pos_weight=weight)

        def smoothed(logits, y):
            return bce(logits, y * (1 - ls) + 0.5 * ls)

        return smoothed, torch.nn.BCEWithLogitsLoss()
    return (torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing),
            torch.nn.CrossEntropyLoss())


def _all_mean(value: float, count: int, world: int, device: str) -> float:
    if world <= 1:
        return value / max(count, 1)
    import torch

    t = torch.tensor([value, float(count)], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return float(t[0] / max(t[1], 1))


@dataclass(frozen=True)
class Recipe:
    """What differs between the torchvision tasks one loop trains (classification here, semantic
    segmentation in :mod:`cvft_train.segment`): data, model, loss, validation and what a checkpoint
    says of itself. The loop (checkpoints, resume, DDP, AMP, EMA, early stopping, W&B) is shared."""

    loaders: Callable      # (cfg, data, world, rank) -> (train_ds, train_loader, val_loader or None)
    build: Callable        # (cfg, names) -> (model, LoadReport or None)
    criteria: Callable     # (cfg, data, multilabel, device) -> (train criterion, validation criterion)
    evaluate: Callable     # (model, loader, criterion, *, device, dtype, names, multilabel, channels_last, world)
    task: Callable         # (multilabel) -> task name
    primary: Callable      # (multilabel) -> the metric that picks best.pt
    meta: Callable = lambda cfg, data: {}   # extra checkpoint fields


CLASSIFY = Recipe(
    loaders=lambda cfg, data, world, rank: _loaders(cfg, data.splits, world, rank),
    build=lambda cfg, names: build_model(cfg.model, len(names), imgsz=cfg.imgsz, pretrained=cfg.pretrained,
                                         weights=cfg.weights, classes=names),
    criteria=lambda cfg, data, multilabel, device: _criteria(cfg, data.splits, multilabel, device),
    evaluate=evaluate,
    task=lambda multilabel: "multilabel" if multilabel else "classification",
    primary=lambda multilabel: "exact_match" if multilabel else "top1",
)


def fit_classifier(cfg: TrainConfig, data: OpenedDataset | str, run: Path, logger=None) -> dict:
    return fit_torch(cfg, data, run, logger, CLASSIFY)


def fit_torch(cfg: TrainConfig, data: OpenedDataset | str, run: Path, logger, recipe: Recipe) -> dict:
    """Train a torchvision model the way ``recipe`` says (see :class:`Recipe`)."""
    import torch

    rank, local_rank, world = distributed()
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    try:
        return _fit(cfg, OpenedDataset.of(data), run, logger, rank, local_rank, world, recipe)
    finally:
        if world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _fit(cfg, data: OpenedDataset, run, logger, rank, local_rank, world, recipe: Recipe) -> dict:
    import torch

    device = pick_device(cfg.device)
    if device.startswith("cuda") and world > 1:
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    torch.manual_seed(cfg.seed)
    names = data.info["classes"]
    train_ds, train_loader, val_loader = recipe.loaders(cfg, data, world, rank)
    notes = []
    if val_loader is None:
        if cfg.patience:
            raise UsageError(f"--patience needs a validation split; the dataset has no {cfg.val_split!r} "
                             "(make one with cvft split)")
        notes.append(f"no validation split {cfg.val_split!r}: no validation metrics; best.pt is the last epoch's "
                     "weights (make a split with cvft split)")
        log.warning("warning: %s", notes[-1])
    multilabel = getattr(train_ds, "multilabel", False)
    model, load_report = recipe.build(cfg, names)
    if load_report is None:
        notes.append("trained from random weights (--no-pretrained and no --weights)")
    model = model.to(device)
    channels_last = cfg.channels_last and device.startswith("cuda")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    bare = model
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if device.startswith("cuda") else None)
    train_model = torch.compile(model) if cfg.compile else model
    criterion, val_criterion = recipe.criteria(cfg, data, multilabel, device)
    optimizer = build_optimizer(bare, cfg)
    steps_per_epoch = math.ceil(len(train_loader) / cfg.accumulate)
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
    dtype = amp_dtype(device, cfg.amp)
    scaler = torch.amp.GradScaler(enabled=dtype == torch.float16)
    ema = build_ema(bare, cfg.ema_decay)

    ckpt_last, ckpt_best = run / "checkpoints" / "last.pt", run / "checkpoints" / "best.pt"
    history: list[dict] = []
    done, best, stale, step = 0, -math.inf, 0, 0
    if cfg.resume:
        if ckpt_last.is_file():
            state = torch.load(ckpt_last, map_location=device, weights_only=True)
            bare.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            if ema is not None and state.get("ema") is not None:
                ema.load_state_dict(state["ema"])
            done, best, stale, step = state["epoch"], state["best"], state["stale"], state["step"]
            history = list(state.get("history", []))
            log.info("resuming %s after epoch %d of %d", run, done, cfg.epochs)
        else:
            log.info("--resume: no checkpoint in %s yet, starting a new run", run / "checkpoints")
    primary, task = recipe.primary(multilabel), recipe.task(multilabel)
    if done >= cfg.epochs:
        log.info("the run already has %d epochs; pass a larger --epochs to extend it", done)
    ev: dict[str, Any] = {}
    for epoch in range(done, cfg.epochs):
        # every epoch's order and augmentation depend on (seed, epoch) only
        torch.manual_seed(cfg.seed + epoch)
        train_loader.generator.manual_seed(cfg.seed + epoch)
        if hasattr(train_loader.sampler, "set_epoch"):
            train_loader.sampler.set_epoch(epoch)
        tr = train_one_epoch(train_model, train_loader, criterion, optimizer, scheduler, device=device, dtype=dtype,
                             scaler=scaler, channels_last=channels_last, accumulate=cfg.accumulate,
                             clip_grad=cfg.clip_grad, ema=ema, bare=bare,
                             desc=f"epoch {epoch + 1}/{cfg.epochs}" if rank == 0 else None)
        step += tr["steps"]
        train_loss = _all_mean(float(tr["loss_sum"]), tr["seen"], world, device)
        scored = ema.module if ema is not None else bare
        ev = recipe.evaluate(scored, val_loader, val_criterion, device=device, dtype=dtype, names=names,
                             multilabel=multilabel, channels_last=channels_last, world=world) if val_loader else {}
        score = ev.get(primary, float(epoch))  # without validation the latest epoch is the one kept
        record = {"epoch": epoch + 1, "step": step, "lr": optimizer.param_groups[0]["lr"], "train_loss": train_loss,
                  "train_images_per_s": tr["images_per_s"],
                  **{k: v for k, v in ev.items() if k not in ("confusion_matrix", "per_class")}}
        history.append(record)
        improved = score > best
        best, stale = (score, 0) if improved else (best, stale + 1)
        stop = bool(cfg.patience and stale >= cfg.patience)
        if world > 1:  # the same decision on every rank, whatever rounding did
            flag = torch.tensor([int(stop)], device=device)
            torch.distributed.broadcast(flag, 0)
            stop = bool(flag.item())
        if rank == 0:
            ckpt_last.parent.mkdir(parents=True, exist_ok=True)
            meta = {"classes": names, "model_name": cfg.model, "task": task, "imgsz": cfg.imgsz,
                    "mean": list(MEAN), "std": list(STD), **recipe.meta(cfg, data)}
            _atomic_save({"model": bare.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                          "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                          "scaler": scaler.state_dict(), "epoch": epoch + 1, "step": step, "best": best,
                          "stale": stale, "history": history, "config": _plain(cfg.to_dict()), **meta}, ckpt_last)
            if improved:
                _atomic_save({"model": scored.state_dict() if ema is None else ema.module.state_dict(),
                              "epoch": epoch + 1, "metric": primary if ev else "last_epoch",
                              "score": score, **meta}, ckpt_best)
            final = {**record, **({k: ev[k] for k in ("per_class", "confusion_matrix") if k in ev})}
            write_metrics(run, metrics_doc(task=task, model=cfg.model, classes=names, primary=primary, epochs=history,
                                           final=final, weights={"best": str(ckpt_best), "last": str(ckpt_last)},
                                           load=load_report.to_dict() if load_report else None, notes=notes))
            if logger:
                logger.log_epoch(record, ev.get("confusion_matrix"), names)
            log.info("epoch %d/%d loss %.4f%s (%.0f img/s)", epoch + 1, cfg.epochs, train_loss,
                     f" val_loss {ev['val_loss']:.4f} {primary} {ev[primary]:.4f}" if ev else "", tr["images_per_s"])
        if stop:
            log.info("early stop: no improvement for %d epochs", cfg.patience)
            break
    if world > 1:
        torch.distributed.barrier()  # rank 0 has written the checkpoint and metrics
    from .metrics import read_metrics
    return read_metrics(run)


def _plain(d: dict) -> dict:
    """Config values a ``weights_only`` load accepts (strings, numbers, lists, dicts, None)."""
    return {k: (v if isinstance(v, (str, int, float, bool, list, dict, type(None))) else str(v)) for k, v in d.items()}


def _atomic_save(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
