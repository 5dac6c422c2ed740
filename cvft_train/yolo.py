"""Detection and segmentation: export to a YOLO layout (cached by the dataset's content hash), then
train with Ultralytics, its own options passed through, metrics collected into ``metrics.json``."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from .config import TrainConfig
from .devices import pick_device


def cache_root() -> Path:
    return Path(os.environ.get("CVFT_CACHE", Path.home() / ".cache" / "cvft"))


def yolo_layout(dataset_dir: str | Path) -> Path:
    """The dataset as an Ultralytics layout, exported once per content hash and reused after."""
    import cvft_data

    info = cvft_data.info(dataset_dir)
    target = cache_root() / "yolo" / info["content_hash"]
    if not (target / "data.yaml").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        cvft_data.export(dataset_dir, "yolo", target, overwrite=True)
    return target


def _ultralytics_device(device: str, requested: str) -> str:
    if "," in requested or requested.isdigit():
        return requested  # Ultralytics' own multi-GPU syntax: "0,1"
    if device.startswith("cuda"):
        return device.split(":")[1] if ":" in device else "0"
    return device  # cpu | mps


def fit_yolo(cfg: TrainConfig, dataset_dir: str, run: Path, logger=None) -> dict:
    import torch
    from ultralytics import YOLO

    import cvft_data

    info = cvft_data.info(dataset_dir)
    device = pick_device(cfg.device)
    if device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)  # Ultralytics set cores-1 at import; use them all
    layout = yolo_layout(dataset_dir)
    seg = info["task"] == "instance_segmentation"
    name = Path(cfg.model).name
    if seg and "-seg" not in name:
        print(f"note: {name} is a detection model; this dataset has masks, consider {name.replace('.', '-seg.', 1)}")
    last = run / "yolo" / "weights" / "last.pt"
    if cfg.resume and last.is_file():
        model = YOLO(str(last))
        model.train(resume=True)
    else:
        model = YOLO(cfg.weights or cfg.model)
        args = dict(data=str(layout / "data.yaml"), epochs=cfg.epochs, imgsz=cfg.imgsz, batch=cfg.batch,
                    device=_ultralytics_device(device, cfg.device), workers=cfg.workers, project=str(run),
                    name="yolo", exist_ok=True, seed=cfg.seed, pretrained=cfg.pretrained, amp=cfg.amp != "off",
                    plots=False, verbose=False)
        if cfg.patience:
            args["patience"] = cfg.patience
        args.update(cfg.yolo_args)
        model.train(**args)
    metrics = collect_metrics(run / "yolo", info["classes"], model)
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if logger:
        for rec in metrics["epochs"]:
            logger.log_epoch(rec, None, info["classes"])
    return metrics


def collect_metrics(yolo_run: Path, names: list[str], model) -> dict:
    """Per-epoch rows from Ultralytics' results.csv and final per-class mAP from its validator."""
    epochs = []
    csv_path = yolo_run / "results.csv"
    if csv_path.is_file():
        with open(csv_path, newline="") as f:
            for row in csv.DictReader(f):
                row = {k.strip(): v for k, v in row.items()}
                rec = {"epoch": int(float(row.get("epoch", 0)))}
                for key, out in (("metrics/mAP50(B)", "map50"), ("metrics/mAP50-95(B)", "map50_95"),
                                 ("metrics/mAP50(M)", "mask_map50"), ("metrics/mAP50-95(M)", "mask_map50_95"),
                                 ("train/box_loss", "train_box_loss"), ("val/box_loss", "val_box_loss")):
                    if key in row and row[key] not in ("", None):
                        rec[out] = float(row[key])
                epochs.append(rec)
    final: dict = {k: v for k, v in (epochs[-1] if epochs else {}).items()}
    validator = getattr(getattr(model, "trainer", None), "validator", None)
    m = getattr(validator, "metrics", None)
    box = getattr(m, "box", None)
    if box is not None:
        final["map50"] = float(box.map50)
        final["map50_95"] = float(box.map)
        per_class = {}
        for j, c in enumerate(getattr(box, "ap_class_index", [])):
            per_class[names[int(c)]] = {"map50": float(box.ap50[j]), "map50_95": float(box.ap[j])}
        final["per_class"] = per_class
    seg = getattr(m, "seg", None)
    if seg is not None and getattr(seg, "ap_class_index", None) is not None and len(seg.ap_class_index):
        final["mask_map50"], final["mask_map50_95"] = float(seg.map50), float(seg.map)
    weights = {k: str(yolo_run / "weights" / f"{k}.pt") for k in ("best", "last")
               if (yolo_run / "weights" / f"{k}.pt").is_file()}
    return {"task": "detection", "classes": names, "final": final, "epochs": epochs, "weights": weights}
