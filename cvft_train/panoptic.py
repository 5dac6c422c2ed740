"""Panoptic segmentation with Hugging Face ``transformers``' Mask2Former, fed from cvft's panoptic
schema (COCO panoptic PNG + ``segments_info``).

The model is built from a config offline (a Swin backbone; ``--model-arg KEY=VALUE`` sets any
``Mask2FormerConfig`` or ``SwinConfig`` value) or, with ``--pretrained`` and a connection,
``facebook/mask2former-swin-tiny-coco-panoptic`` read as safetensors only (its class head replaced
for the dataset's classes). Validation reports PQ (the primary metric), SQ and RQ overall, for
things and for stuff (:mod:`cvft_train.panoptic_metrics`), at the training size. Checkpoints are
plain state dicts with the model's config as JSON (``weights_only=True`` loads them).
"""

from __future__ import annotations

import io
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from cvft_data.errors import CheckpointError, UsageError

from .augment import MEAN, STD
from .config import TrainConfig

log = logging.getLogger(__name__)

PRETRAINED = "facebook/mask2former-swin-tiny-coco-panoptic"
SWIN_KEYS = {"embed_dim", "depths", "num_heads", "window_size", "drop_path_rate"}
#: Swin-T dimensions with a light decoder: what --no-pretrained builds unless --model-arg says otherwise
DEFAULT_ARGS = {"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24], "window_size": 7,
                "hidden_dim": 256, "num_queries": 100, "decoder_layers": 6}


def build_config(names: list[str], args: dict[str, Any]):
    from transformers import Mask2FormerConfig, SwinConfig

    merged = {**DEFAULT_ARGS, **args}
    swin = SwinConfig(**{k: v for k, v in merged.items() if k in SWIN_KEYS},
                      out_features=["stage1", "stage2", "stage3", "stage4"])
    rest = {k: v for k, v in merged.items() if k not in SWIN_KEYS}
    for key in ("feature_size", "mask_feature_size"):
        rest.setdefault(key, rest["hidden_dim"])
    try:
        return Mask2FormerConfig(backbone_config=swin, num_labels=len(names), id2label=dict(enumerate(names)),
                                 label2id={n: i for i, n in enumerate(names)}, **rest)
    except TypeError as exc:
        raise UsageError(f"--model-arg: {exc}") from None


def build_mask2former(cfg: TrainConfig, names: list[str]):
    from transformers import Mask2FormerForUniversalSegmentation

    from .checkpoints import fit_state_dict, read_checkpoint

    if cfg.weights:
        state, meta = read_checkpoint(cfg.weights)
        config = build_config(names, {**meta.get("model_args", {}), **cfg.model_args})
        model = Mask2FormerForUniversalSegmentation(config)
        keep = meta.get("classes") in (None, list(names))
        return model, fit_state_dict(model, state, head=("class_predictor.",), source=str(cfg.weights), keep_head=keep)
    if cfg.pretrained and not cfg.model_args:
        try:
            model = Mask2FormerForUniversalSegmentation.from_pretrained(
                PRETRAINED, use_safetensors=True, num_labels=len(names), id2label=dict(enumerate(names)),
                label2id={n: i for i, n in enumerate(names)}, ignore_mismatched_sizes=True)
        except OSError as exc:
            raise CheckpointError(f"could not fetch {PRETRAINED} ({str(exc).splitlines()[0][:200]}); offline, pass "
                                  "--no-pretrained (a model built from its config) or --weights PATH") from None
        return model, None
    return Mask2FormerForUniversalSegmentation(build_config(names, cfg.model_args)), None


def _decode_ids(png: bytes, size: tuple[int, int] | None = None) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        rgb = im.convert("RGB")
        if size is not None:
            rgb = rgb.resize(size, Image.Resampling.NEAREST)
        a = np.asarray(rgb).astype(np.int64)
    return a[..., 0] + 256 * a[..., 1] + 65536 * a[..., 2]


class PanopticDataset:
    """Per labelled row: normalised pixels at ``imgsz`` x ``imgsz``, one binary mask and one class
    per segment (what Mask2Former's loss takes), and the segment-id map with its classes (for PQ)."""

    def __init__(self, ds, *, imgsz: int, train: bool, hflip: float = 0.5):
        from cvft_data.store import bytes_view, present

        keep = [i for i, (st, p) in enumerate(zip(ds["label_status"], present(ds, "panoptic"))) if p and st == "labeled"]
        self.ds = bytes_view(ds.select_columns(["image", "panoptic", "segments_info"])).select(keep)
        self.imgsz, self.train, self.hflip = imgsz, train, hflip

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, k: int) -> dict:
        import torch
        from PIL import Image

        from .data import decode

        row = self.ds[k]
        s = self.imgsz
        image = decode(row["image"], 2 * s).resize((s, s), Image.Resampling.BILINEAR)
        ids = _decode_ids(row["panoptic"]["bytes"], (s, s))
        if self.train and self.hflip and torch.rand(()) < self.hflip:   # image and segments flip together
            image, ids = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), ids[:, ::-1].copy()
        x = torch.from_numpy(np.asarray(image.convert("RGB"), np.float32) / 255.0).permute(2, 0, 1)
        x = (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
        segs = [(sg["id"], sg["category"], bool(sg["iscrowd"])) for sg in row["segments_info"]]
        present = [(i, c) for i, c, crowd in segs if not crowd and (ids == i).any()]
        masks = torch.from_numpy(np.stack([ids == i for i, _ in present]).astype(np.float32)) if present \
            else torch.zeros((0, s, s))
        return {"pixel_values": x, "mask_labels": masks, "class_labels": torch.tensor([c for _, c in present]).long(),
                "ids": ids, "segments": {i: (c, crowd) for i, c, crowd in segs}}


def collate(batch: list[dict]) -> dict:
    import torch

    return {"pixel_values": torch.stack([b["pixel_values"] for b in batch]),
            "mask_labels": [b["mask_labels"] for b in batch], "class_labels": [b["class_labels"] for b in batch],
            "ids": [b["ids"] for b in batch], "segments": [b["segments"] for b in batch]}


def things_of(info: dict) -> list[bool]:
    """Per class, whether it is a thing (countable) or stuff, from the source's ``isthing``."""
    cats = {c.get("name"): c for c in info.get("categories") or []}
    return [bool(cats.get(n, {}).get("isthing", 1)) for n in info["classes"]]


def panoptic_outputs(processor, outputs, sizes, stuff: set[int]) -> list[tuple[np.ndarray, dict[int, int], list]]:
    """(segment-id map, id -> class, segment facts) per image from the model's outputs."""
    found = processor.post_process_panoptic_segmentation(outputs, threshold=0.5, label_ids_to_fuse=stuff,
                                                         target_sizes=sizes)
    out = []
    for r in found:
        seg = r["segmentation"].cpu().numpy().astype(np.int64)
        seg[seg < 0] = 0
        classes = {int(s["id"]): int(s["label_id"]) for s in r["segments_info"]}
        out.append((seg, classes, r["segments_info"]))
    return out


def evaluate_panoptic(model, loader, device: str, names: list[str], things: list[bool]) -> dict:
    """Validation: the loss and PQ/SQ/RQ over the loader's images."""
    import torch
    from transformers import Mask2FormerImageProcessor

    from cvft_data import progress

    from .panoptic_metrics import PQAccumulator

    processor = Mask2FormerImageProcessor()
    acc = PQAccumulator(len(names))
    stuff = {c for c, t in enumerate(things) if not t}
    loss_sum, n = 0.0, 0
    model.eval()
    with torch.no_grad():
        for b in progress.bar(loader, total=len(loader), desc="validate", unit="batch", leave=False):
            x = b["pixel_values"].to(device)
            out = model(pixel_values=x, mask_labels=[m.to(device) for m in b["mask_labels"]],
                        class_labels=[c.to(device) for c in b["class_labels"]])
            loss_sum += float(out.loss) * len(x)
            n += len(x)
            preds = panoptic_outputs(processor, out, [tuple(x.shape[-2:])] * len(x), stuff)
            for (seg, classes, _), ids, segs in zip(preds, b["ids"], b["segments"]):
                acc.add(ids, segs, seg, classes)
    model.train()
    r = acc.result(things)
    per_class = {names[c]: v for c, v in r.pop("per_class").items()}
    return {"val_loss": loss_sum / max(n, 1), "images": n, **r, "per_class": per_class}


def _loaders(cfg: TrainConfig, data):
    from .data import loaders

    dsd = data.splits
    if cfg.train_split not in dsd:
        raise UsageError(f"the dataset has no {cfg.train_split!r} split; make one with cvft split")
    hflip = 0.5 if cfg.hflip is None else cfg.hflip
    train_ds = PanopticDataset(dsd[cfg.train_split], imgsz=cfg.imgsz, train=True, hflip=hflip)
    if not len(train_ds):
        raise UsageError(f"split {cfg.train_split!r} has no labelled panoptic image to train on")
    val_ds = PanopticDataset(dsd[cfg.val_split], imgsz=cfg.imgsz, train=False) if cfg.val_split in dsd else None
    return loaders(cfg, train_ds, val_ds, collate_fn=collate)


def fit_mask2former(cfg: TrainConfig, data, run: Path, logger=None) -> dict:
    """Train Mask2Former on a panoptic dataset; the run folder as the torchvision loop writes it."""
    import os

    import torch

    from cvft_data import progress
    from cvft_data.store import OpenedDataset

    from .classify import _atomic_save, _plain
    from .devices import pick_device
    from .metrics import metrics_doc, read_metrics, write_metrics
    from .optim import build_scheduler

    if int(os.environ.get("WORLD_SIZE", 1)) > 1:
        raise UsageError("mask2former trains on one device in cvft (no DDP yet); run it without torchrun")
    for name, default in (("compile", False), ("ema_decay", 0.0), ("accumulate", 1)):
        if getattr(cfg, name) != default:
            raise UsageError(f"--{name.replace('_', '-')} is not supported for mask2former")
    data = OpenedDataset.of(data)
    names, things = list(data.info["classes"]), things_of(data.info)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    train, val = _loaders(cfg, data)
    model, report = build_mask2former(cfg, names)
    model.to(device)
    notes = [] if report or cfg.pretrained and not cfg.model_args else ["trained from a config (random weights)"]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr or 1e-4, weight_decay=0.05 if cfg.weight_decay is None
                                  else cfg.weight_decay)
    scheduler = build_scheduler(optimizer, cfg, len(train))
    last, best_ckpt = run / "checkpoints" / "last.pt", run / "checkpoints" / "best.pt"
    done, best, history = 0, -math.inf, []
    if cfg.resume and last.is_file():
        state = torch.load(last, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        done, best, history = state["epoch"], state["best"], list(state["history"])
        log.info("resuming %s after epoch %d of %d", run, done, cfg.epochs)
    config_json = json.loads(model.config.to_json_string())
    meta = {"classes": names, "isthing": things, "model_name": "mask2former", "task": "panoptic", "imgsz": cfg.imgsz,
            "mean": list(MEAN), "std": list(STD), "m2f_config": config_json}
    for epoch in range(done, cfg.epochs):
        torch.manual_seed(cfg.seed + epoch)
        train.generator.manual_seed(cfg.seed + epoch)
        model.train()
        loss_sum, seen = 0.0, 0
        for b in progress.bar(train, total=len(train), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                              leave=False):
            out = model(pixel_values=b["pixel_values"].to(device), mask_labels=[m.to(device) for m in b["mask_labels"]],
                        class_labels=[c.to(device) for c in b["class_labels"]])
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            if cfg.clip_grad:
                torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
            optimizer.step()
            scheduler.step()
            loss_sum += float(out.loss.detach()) * len(b["pixel_values"])
            seen += len(b["pixel_values"])
        ev = evaluate_panoptic(model, val, device, names, things) if val is not None else {}
        score = ev.get("pq", float(epoch))
        record = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "train_loss": loss_sum / max(seen, 1),
                  **{k: v for k, v in ev.items() if k != "per_class"}}
        history.append(record)
        improved = score > best
        best = max(best, score)
        last.parent.mkdir(parents=True, exist_ok=True)
        _atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                      "epoch": epoch + 1, "best": best, "history": history, "config": _plain(cfg.to_dict()), **meta}, last)
        if improved:
            _atomic_save({"model": model.state_dict(), "epoch": epoch + 1, "metric": "pq" if ev else "last_epoch",
                          "score": score, **meta}, best_ckpt)
        write_metrics(run, metrics_doc(task="panoptic", model="mask2former", classes=names, primary="pq",
                                       epochs=history, final={**record, "per_class": ev.get("per_class", {})},
                                       weights={"best": str(best_ckpt), "last": str(last)},
                                       load=report.to_dict() if report else None, notes=notes))
        if logger:
            logger.log_epoch(record, None, names)
        log.info("epoch %d/%d loss %.4f%s", epoch + 1, cfg.epochs, record["train_loss"],
                 f" val_loss {ev['val_loss']:.4f} PQ {ev['pq']:.4f} SQ {ev['sq']:.4f} RQ {ev['rq']:.4f}" if ev else "")
    return read_metrics(run)


def load_mask2former(path: Path, ckpt: dict, device: str):
    """A cvft Mask2Former checkpoint's model, rebuilt from the config it carries (offline), in
    eval mode on ``device``."""
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation

    try:
        model = Mask2FormerForUniversalSegmentation(Mask2FormerConfig.from_dict(dict(ckpt["m2f_config"])))
        model.load_state_dict(ckpt["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is not a cvft Mask2Former checkpoint that fits its config: "
                              f"{str(exc).splitlines()[0][:200]}") from None
    return model.eval().to(device)


def evaluate_mask2former(trained, data, split: str, device: str, batch: int) -> dict:
    from torch.utils.data import DataLoader

    ds = PanopticDataset(data.splits[split], imgsz=trained.imgsz, train=False)
    if not len(ds):
        raise UsageError(f"split {split!r} has no labelled panoptic image to evaluate on")
    loader = DataLoader(ds, batch_size=batch, shuffle=False, collate_fn=collate)
    return evaluate_panoptic(trained.model, loader, device, trained.classes, trained.extra["isthing"])


def predict_panoptic(trained, batch: list, device: str) -> None:
    """Segments per image at its displayed size: a COCO panoptic PNG (ids as R + 256 G + 256^2 B),
    each segment's class, score and area, and the classes' pixel shares."""
    import base64

    import torch
    from PIL import Image
    from transformers import Mask2FormerImageProcessor

    ok = [p for p in batch if p.image is not None]
    if not ok:
        return
    s = trained.imgsz
    x = torch.stack([torch.from_numpy(np.asarray(p.image.convert("RGB").resize((s, s), Image.Resampling.BILINEAR),
                                                 np.float32) / 255.0).permute(2, 0, 1) for p in ok])
    x = ((x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)).to(device)
    with torch.inference_mode():
        out = trained.model(pixel_values=x)
    stuff = {c for c, t in enumerate(trained.extra["isthing"]) if not t}
    sizes = [(p.result["height"], p.result["width"]) for p in ok]
    for p, (seg, _, infos) in zip(ok, panoptic_outputs(Mask2FormerImageProcessor(), out, sizes, stuff)):
        rgb = np.stack([seg % 256, (seg // 256) % 256, seg // 65536], -1).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "PNG")
        p.result["panoptic_png"] = base64.b64encode(buf.getvalue()).decode("ascii")
        areas = dict(zip(*np.unique(seg, return_counts=True)))
        p.result["segments"] = [{"id": int(i["id"]), "category": trained.classes[int(i["label_id"])],
                                 "score": round(float(i["score"]), 6), "area": int(areas.get(i["id"], 0)),
                                 "iscrowd": 0} for i in infos]
        total = max(seg.size, 1)
        shares: dict[str, float] = {}
        for sg in p.result["segments"]:
            shares[sg["category"]] = round(shares.get(sg["category"], 0.0) + sg["area"] / total, 6)
        p.result["class_pixels"] = shares
