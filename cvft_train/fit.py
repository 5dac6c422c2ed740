"""``fit``: one entry point for every task; the run folder holds config, checkpoints, metrics."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import yaml

from .config import TrainConfig, explicit_values, is_yolo_model, read_yaml

log = logging.getLogger(__name__)


def resolve_config(run: Path, config: TrainConfig | dict | None, options: dict[str, Any]) -> TrainConfig:
    """The options of this run. On ``resume`` the run's saved ``config.yaml`` is the base and only the
    options given now change it (``epochs`` to extend a run); otherwise the defaults are."""
    given = {**explicit_values(config), **{k: v for k, v in options.items() if v is not None}}
    saved = run / "config.yaml"
    if given.get("resume") and saved.is_file():
        base = TrainConfig().updated(read_yaml(saved))
        changed = {k: v for k, v in given.items() if getattr(base, k) != v and k not in ("resume", "out")}
        if changed:
            log.info("resuming with changed options: %s", ", ".join(f"{k}={v}" for k, v in changed.items()))
        return base.updated(given)
    return TrainConfig().updated(given)


def fit(dataset: str | os.PathLike, config: TrainConfig | dict | None = None, **options: Any) -> dict:
    """Train on the cvft dataset at ``dataset`` and return its ``metrics.json`` content.

    ``task`` and the model family decide the loop: classification and multi-label go to the
    torchvision loop, detection and instance segmentation to Ultralytics. Options override
    ``config`` (a :class:`TrainConfig`, a dict, or None for the defaults); with ``resume=True`` they
    override the run's saved ``config.yaml`` instead.

    Example:
        >>> import pathlib, tempfile, cvft_data
        >>> from cvft_data.sample import write_coco_sample
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> _ = cvft_data.ingest(write_coco_sample(tmp / "src", n_images=8), tmp / "ds")   # doctest: +SKIP
        >>> fit(tmp / "ds", model="yolo11n.yaml", epochs=1, imgsz=64, out=str(tmp / "run"))  # doctest: +SKIP
    """
    from cvft_data.errors import UsageError
    from cvft_data.store import OpenedDataset, write_text_atomic

    out = options.get("out") or (config.get("out") if isinstance(config, dict) else getattr(config, "out", None))
    run = Path(out or TrainConfig().out)
    cfg = resolve_config(run, config, options)
    data = OpenedDataset.of(dataset)   # read once, handed to the trainer
    info = data.info
    task = cfg.task or info["task"]
    cfg = cfg.updated({"task": task, "model": cfg.resolved_model(task)})
    yolo = is_yolo_model(cfg.model)
    if task in ("classification", "multilabel") and yolo:
        raise UsageError(f"{cfg.model} is a YOLO model; classification uses torchvision models (resnet18, vit_b_16)")
    if task in ("detection", "instance_segmentation") and not yolo:
        raise UsageError(f"detection and segmentation train YOLO models (yolo11n.pt, yolov8s-seg.yaml), not {cfg.model}")
    from .segment import SEGMENTERS, is_segmenter
    if task == "semantic_segmentation" and not is_segmenter(cfg.model):
        raise UsageError(f"semantic segmentation trains a torchvision segmenter ({', '.join(SEGMENTERS)}), "
                         f"not {cfg.model}")
    if task == "panoptic" and cfg.model != "mask2former":
        raise UsageError(f"panoptic segmentation trains mask2former (Hugging Face transformers), not {cfg.model}")
    if task != "semantic_segmentation" and is_segmenter(cfg.model):
        raise UsageError(f"{cfg.model} is a semantic segmenter; this dataset is {task} "
                         "(cvft convert DS --to semantic --out NEW makes a semantic dataset of masks)")
    if cfg.model_args and cfg.model != "mask2former":
        raise UsageError(f"--model-arg configures mask2former; {cfg.model} cannot honour {sorted(cfg.model_args)}")
    if not yolo and cfg.yolo_args:
        raise UsageError(f"yolo_args {sorted(cfg.yolo_args)} are Ultralytics arguments; {cfg.model} trains in "
                         "cvft's torchvision loop, which cannot honour them")
    if task not in ("classification", "multilabel", "detection", "instance_segmentation", "semantic_segmentation",
                    "panoptic"):
        raise UsageError(f"training on a {task} dataset is not supported")
    held = [p for p in (run / "checkpoints" / "last.pt", run / "yolo" / "weights" / "last.pt") if p.is_file()]
    if held and not cfg.resume:   # a second run would overwrite the first one's weights and metrics
        raise UsageError(f"{run} already holds a run ({held[0].relative_to(run)}); pass --resume to continue it, "
                         "or another --out to start a new one")
    run.mkdir(parents=True, exist_ok=True)
    main_process = int(os.environ.get("RANK", 0)) == 0   # under torchrun only rank 0 writes
    before = _saved_hash(run)
    if cfg.resume and before not in (None, info["content_hash"]):
        log.warning("warning: %s was trained on dataset %s, this one is %s", run, before[:16], info["content_hash"][:16])
    resolved = {**cfg.to_dict(), "dataset": str(data.path.resolve()), "dataset_content_hash": info["content_hash"]}
    if main_process:
        write_text_atomic(run / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))
    logger = None
    if cfg.wandb and main_process:
        from .tracking import WandbLogger
        logger = WandbLogger(cfg, data, run)
    try:
        if yolo:
            from .yolo import fit_yolo
            metrics = fit_yolo(cfg, data, run, logger)
        elif task == "semantic_segmentation":
            from .segment import fit_segmenter
            metrics = fit_segmenter(cfg, data, run, logger)
        elif task == "panoptic":
            from .panoptic import fit_mask2former
            metrics = fit_mask2former(cfg, data, run, logger)
        else:
            from .classify import fit_classifier
            metrics = fit_classifier(cfg, data, run, logger)
    except BaseException:
        if logger:
            logger.finish(None, {}, exit_code=1)
        raise
    if logger:
        best = (metrics.get("weights") or {}).get("best")
        logger.finish(Path(best) if best else None, metrics.get("final", {}))
    return metrics


def _saved_hash(run: Path) -> str | None:
    try:
        doc = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return str(doc.get("dataset_content_hash")) if isinstance(doc, dict) and doc.get("dataset_content_hash") else None
