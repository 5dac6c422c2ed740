"""The classification loop: torchvision models, read in one sitting.

``fit_classifier`` = build the model -> build the loaders -> for each epoch ``train_one_epoch`` then
``evaluate`` -> checkpoint (plain dict) -> keep the best -> stop early when asked. DDP under
``torchrun`` (one process per GPU), AMP (bf16 where supported, else fp16) and channels-last on CUDA.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from .config import TrainConfig
from .data import ClassificationDataset
from .devices import amp_dtype, distributed, pick_device


def build_model(name: str, num_classes: int, *, pretrained: bool = False, weights: str | None = None):
    """A torchvision classification model with its head replaced for ``num_classes``.

    ``weights`` is a local checkpoint (a cvft checkpoint or a plain state dict), loaded with
    ``weights_only=True``; ``pretrained`` asks torchvision for its default weights (needs internet once).
    """
    import torch
    import torchvision

    tv_weights = "DEFAULT" if pretrained and not weights else None
    model = torchvision.models.get_model(name, weights=tv_weights)
    head_replaced = False
    for attr in ("fc", "classifier", "heads", "head"):
        mod = getattr(model, attr, None)
        if mod is None:
            continue
        parent, key = model, attr
        if isinstance(mod, torch.nn.Sequential):  # classifier = Sequential(..., Linear) / heads.head
            idx = max(i for i, m in enumerate(mod) if isinstance(m, torch.nn.Linear))
            parent, key, mod = mod, str(idx), mod[idx]
        if isinstance(mod, torch.nn.Linear):
            setattr(parent, key, torch.nn.Linear(mod.in_features, num_classes))
            head_replaced = True
            break
    if not head_replaced:
        raise ValueError(f"cannot find the classification head of {name}")
    if weights:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        state = state.get("model", state)
        own = model.state_dict()
        # a checkpoint from another class count: keep everything but the head
        state = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(state, strict=False)
    return model


def transforms_for(imgsz: int, train: bool):
    import torch
    from torchvision.transforms import v2

    norm = v2.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    if train:
        return v2.Compose([v2.PILToTensor(), v2.RandomResizedCrop(imgsz, scale=(0.6, 1.0), antialias=True),
                           v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True), norm])
    return v2.Compose([v2.PILToTensor(), v2.Resize(imgsz, antialias=True), v2.CenterCrop(imgsz),
                       v2.ToDtype(torch.float32, scale=True), norm])


def train_one_epoch(model, loader, criterion, optimizer, scheduler, device, dtype, scaler, channels_last) -> dict:
    import torch

    model.train()
    total, seen = 0, 0
    loss_sum = torch.zeros((), device=device)  # accumulated on the device: no host sync per step
    t0 = time.perf_counter()
    for x, y in loader:
        x = x.to(device, non_blocking=True)
        if channels_last:
            x = x.to(memory_format=torch.channels_last)
        y = y.to(device, non_blocking=True)
        with torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype is not None):
            loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        loss_sum += loss.detach().float() * len(x)
        seen += len(x)
        total += 1
    dt = time.perf_counter() - t0
    return {"loss": float(loss_sum) / max(seen, 1), "steps": total, "images_per_s": seen / dt if dt else 0.0}


def evaluate(model, loader, device, dtype, num_classes: int, multilabel: bool, channels_last: bool) -> dict:
    """top-1 (or, multi-label, exact-match and per-class F1 at 0.5), per-class precision/recall, and
    the confusion matrix (rows: true class, columns: predicted)."""
    import torch

    model.eval()
    conf = np.zeros((num_classes, num_classes), dtype=np.int64)
    tp = np.zeros(num_classes)
    fp = np.zeros(num_classes)
    fn = np.zeros(num_classes)
    exact = n = 0
    with torch.no_grad():
        for x, y in loader:
            x = x.to(device, non_blocking=True)
            if channels_last:
                x = x.to(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype is not None):
                logits = model(x).float()
            if multilabel:
                pred = (torch.sigmoid(logits) > 0.5).cpu().numpy()
                true = y.numpy() > 0.5
                tp += (pred & true).sum(0)
                fp += (pred & ~true).sum(0)
                fn += (~pred & true).sum(0)
                exact += int((pred == true).all(1).sum())
            else:
                pred = logits.argmax(1).cpu().numpy()
                true = y.numpy()
                np.add.at(conf, (true, pred), 1)
                exact += int((pred == true).sum())
            n += len(x)
    if not multilabel:
        tp = np.diag(conf).astype(float)
        fp = conf.sum(0) - tp
        fn = conf.sum(1) - tp
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    recall = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=(tp + fn) > 0)
    out = {"top1": exact / max(n, 1), "precision": precision.tolist(), "recall": recall.tolist(), "images": n}
    if multilabel:
        f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0)
        out["f1_macro"] = float(f1.mean())
    else:
        out["confusion_matrix"] = conf.tolist()
    return out


def _loaders(cfg: TrainConfig, dsd, world: int, rank: int):
    import torch
    from torch.utils.data import DataLoader, DistributedSampler

    from cvft_data.balance import sample_weights

    train_ds = ClassificationDataset(dsd[cfg.train_split], transforms_for(cfg.imgsz, True), imgsz=cfg.imgsz)
    val_ds = ClassificationDataset(dsd[cfg.val_split], transforms_for(cfg.imgsz, False), imgsz=cfg.imgsz) \
        if cfg.val_split in dsd else None
    sampler = None
    if cfg.balance == "sampler":
        w = sample_weights(dsd[cfg.train_split])
        w = [w[i] for i in train_ds.index]
        sampler = torch.utils.data.WeightedRandomSampler(w, len(w), generator=torch.Generator().manual_seed(cfg.seed))
    elif world > 1:
        sampler = DistributedSampler(train_ds, num_replicas=world, rank=rank, seed=cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    kw = {"num_workers": cfg.workers, "pin_memory": torch.cuda.is_available(),
          "persistent_workers": cfg.workers > 0}
    train = DataLoader(train_ds, batch_size=cfg.batch, shuffle=sampler is None, sampler=sampler, drop_last=False,
                       generator=g, **kw)
    val = DataLoader(val_ds, batch_size=cfg.batch, shuffle=False, **kw) if val_ds is not None and len(val_ds) else None
    return train_ds, train, val


def fit_classifier(cfg: TrainConfig, dataset_dir: str, run: Path, logger=None) -> dict:
    import torch

    import cvft_data

    rank, local_rank, world = distributed()
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    device = pick_device(cfg.device)
    if device.startswith("cuda") and world > 1:
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    torch.manual_seed(cfg.seed)
    info = cvft_data.info(dataset_dir)
    dsd = cvft_data.load(dataset_dir)
    names = info["classes"]
    train_ds, train_loader, val_loader = _loaders(cfg, dsd, world, rank)
    multilabel = train_ds.multilabel
    model = build_model(cfg.model, len(names), pretrained=cfg.pretrained, weights=cfg.weights).to(device)
    channels_last = cfg.channels_last and device.startswith("cuda")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if device.startswith("cuda") else None)
    weight = None
    if cfg.balance == "weights":
        from cvft_data.balance import class_weights
        weight = torch.tensor(class_weights(dsd[cfg.train_split]), dtype=torch.float32, device=device)
    criterion = torch.nn.BCEWithLogitsLoss(pos_weight=weight) if multilabel else \
        torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay) \
        if cfg.optimizer == "sgd" else torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, len(train_loader))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch,
                                                    pct_start=min(0.3, 1 / max(cfg.epochs, 1)))
    dtype = amp_dtype(device, cfg.amp)
    scaler = torch.amp.GradScaler(enabled=dtype == torch.float16)

    ckpt_last, ckpt_best = run / "checkpoints" / "last.pt", run / "checkpoints" / "best.pt"
    history: list[dict] = []
    start_epoch, best, stale, step = 0, -math.inf, 0, 0
    if cfg.resume and ckpt_last.is_file():
        state = torch.load(ckpt_last, map_location=device, weights_only=True)
        (model.module if world > 1 else model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, best, stale, step = state["epoch"] + 1, state["best"], state["stale"], state["step"]
        history = json.loads((run / "metrics.json").read_text())["epochs"] if (run / "metrics.json").exists() else []
    for epoch in range(start_epoch, cfg.epochs):
        # every epoch's order and augmentation depend on (seed, epoch) only, so a resumed run
        # replays exactly what an uninterrupted one would have done
        torch.manual_seed(cfg.seed + epoch)
        if train_loader.generator is not None:
            train_loader.generator.manual_seed(cfg.seed + epoch)
        if hasattr(train_loader.sampler, "set_epoch"):
            train_loader.sampler.set_epoch(epoch)
        tr = train_one_epoch(model, train_loader, criterion, optimizer, scheduler, device, dtype, scaler, channels_last)
        step += tr["steps"]
        ev = evaluate(model, val_loader, device, dtype, len(names), multilabel, channels_last) if val_loader else {}
        score = ev.get("top1", -tr["loss"])
        record = {"epoch": epoch, "step": step, "train_loss": tr["loss"], "train_images_per_s": tr["images_per_s"],
                  **{k: v for k, v in ev.items() if k != "confusion_matrix"}}
        history.append(record)
        if rank == 0:
            bare = model.module if world > 1 else model
            improved = score > best
            if improved:
                best, stale = score, 0
            else:
                stale += 1
            state = {"model": bare.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch,
                     "step": step, "best": best, "stale": stale, "classes": names, "model_name": cfg.model,
                     "config": cfg.to_dict()}
            ckpt_last.parent.mkdir(parents=True, exist_ok=True)
            _atomic_save(state, ckpt_last)
            if improved:
                _atomic_save({"model": bare.state_dict(), "classes": names, "model_name": cfg.model,
                              "epoch": epoch, "score": score}, ckpt_best)
            _write_metrics(run, history, ev, names, multilabel)
            if logger:
                logger.log_epoch(record, ev.get("confusion_matrix"), names)
            print(f"epoch {epoch + 1}/{cfg.epochs} loss {tr['loss']:.4f}"
                  + (f" top1 {ev['top1']:.4f}" if ev else "") + f" ({tr['images_per_s']:.0f} img/s)", flush=True)
        if cfg.patience and stale >= cfg.patience:
            print(f"early stop: no improvement for {cfg.patience} epochs", flush=True)
            break
    if world > 1:
        torch.distributed.barrier()  # rank 0 has written the checkpoint and metrics
        torch.distributed.destroy_process_group()
    return json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").exists() else {}


def _atomic_save(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_metrics(run: Path, history: list[dict], last_eval: dict, names: list[str], multilabel: bool) -> None:
    final: dict[str, Any] = {k: v for k, v in (history[-1] if history else {}).items()}
    if last_eval:
        final["per_class"] = {n: {"precision": last_eval["precision"][i], "recall": last_eval["recall"][i]}
                              for i, n in enumerate(names)}
        if not multilabel:
            final["confusion_matrix"] = last_eval["confusion_matrix"]
    final["best_top1"] = max((h.get("top1", 0) for h in history), default=0)
    doc = {"task": "multilabel" if multilabel else "classification", "classes": names, "final": final,
           "epochs": history}
    tmp = run / "metrics.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, run / "metrics.json")
