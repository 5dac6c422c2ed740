"""``fit``: one entry point for every task; the run folder holds config, checkpoints, metrics."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from .config import TrainConfig


def fit(dataset: str | os.PathLike, config: TrainConfig | dict | None = None, **options: Any) -> dict:
    """Train on the cvft dataset at ``dataset`` and return its ``metrics.json`` content.

    ``task`` and the model family decide the loop: classification and multi-label go to the
    torchvision loop, detection and instance segmentation to Ultralytics. Options override
    ``config`` (a :class:`TrainConfig`, a dict, or None for the defaults).

    Example:
        >>> import pathlib, tempfile, cvft_data
        >>> from cvft_data.sample import write_coco_sample
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> _ = cvft_data.ingest(write_coco_sample(tmp / "src", n_images=8), tmp / "ds")   # doctest: +SKIP
        >>> fit(tmp / "ds", model="yolo11n.yaml", epochs=1, imgsz=64, out=str(tmp / "run"))  # doctest: +SKIP
    """
    import cvft_data

    cfg = config if isinstance(config, TrainConfig) else TrainConfig().updated(config or {})
    cfg = cfg.updated(options)
    info = cvft_data.info(dataset)
    task = cfg.task or info["task"]
    run = Path(cfg.out)
    run.mkdir(parents=True, exist_ok=True)
    main_process = int(os.environ.get("RANK", 0)) == 0   # under torchrun only rank 0 writes
    resolved = {**cfg.to_dict(), "task": task, "dataset": str(Path(dataset).resolve()),
                "dataset_content_hash": info["content_hash"]}
    if main_process:
        (run / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    logger = None
    if cfg.wandb and main_process:
        from .tracking import WandbLogger
        logger = WandbLogger(cfg, str(dataset), run)
    if task in ("classification", "multilabel"):
        if cfg.is_yolo:
            from cvft_data.errors import UsageError
            raise UsageError(f"{cfg.model} is a YOLO model; classification uses torchvision models (resnet18, vit_b_16)")
        from .classify import fit_classifier
        metrics = fit_classifier(cfg, str(dataset), run, logger)
        best = run / "checkpoints" / "best.pt"
    elif task in ("detection", "instance_segmentation"):
        if not cfg.is_yolo:
            from cvft_data.errors import UsageError
            raise UsageError(f"detection and segmentation train YOLO models (yolo11n.pt, yolov8s-seg.yaml), not {cfg.model}")
        from .yolo import fit_yolo
        metrics = fit_yolo(cfg, str(dataset), run, logger)
        best = Path(metrics.get("weights", {}).get("best", run / "missing"))
    else:
        from cvft_data.errors import UsageError
        raise UsageError(f"training on a {task} dataset is not supported yet")
    if logger:
        logger.finish(best, metrics.get("final", {}))
    if main_process:
        (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
