"""Detection and segmentation: export to a YOLO layout (cached by the dataset's content hash), then
train with Ultralytics.

- cvft's options are translated to Ultralytics' arguments (:func:`ultralytics_args`); an option it
  cannot honour is refused, never dropped. ``yolo_args`` passes anything else through as it is.
- Every checkpoint Ultralytics reads in this process is loaded with ``weights_only=True`` against
  its allow-list of model classes (Ultralytics' safe-load mode, :func:`safe_ultralytics`).
- The run folder is made absolute, so Ultralytics never nests it under ``runs/<task>/``.
- ``metrics.json`` has the shape every cvft trainer writes (:mod:`cvft_train.metrics`); W&B gets
  each epoch's figures as Ultralytics produces them.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from cvft_data.errors import CheckpointError, UsageError
from cvft_data.store import OpenedDataset

from .config import TrainConfig
from .devices import cpu_threads, default_workers, pick_device
from .metrics import metrics_doc, write_metrics

log = logging.getLogger(__name__)

_HASH = re.compile(r"[0-9a-f]{16,128}")


def cache_root() -> Path:
    return Path(os.environ.get("CVFT_CACHE", Path.home() / ".cache" / "cvft"))


def yolo_layout(data: OpenedDataset | str | Path) -> Path:
    """The dataset as an Ultralytics layout, exported once per content hash and reused after.

    The hash comes from ``cvft.json``, which may have been edited: anything but hex digits is
    refused before it becomes a path. The export goes to a private temporary folder renamed into
    place, so two trainers starting together never write into one folder.
    """
    import cvft_data

    data = OpenedDataset.of(data)
    digest = str(data.info.get("content_hash", ""))
    if not _HASH.fullmatch(digest):
        raise UsageError(f"{data.path / 'cvft.json'}: content_hash {digest[:80]!r} is not a hex digest; "
                         "the file was edited or damaged (ingest the dataset again)")
    target = cache_root() / "yolo" / digest
    if (target / "data.yaml").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=target.parent))
    try:
        cvft_data.export(data.path, "yolo", staging / "layout")
        try:
            os.rename(staging / "layout", target)
        except OSError:
            if not (target / "data.yaml").is_file():  # not another trainer's finished export: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def safe_ultralytics():
    """Switch Ultralytics to ``weights_only`` loading in this process and its children (multi-GPU
    training starts new processes), without installing packages at run time; refuse to go on with
    an Ultralytics that has no safe mode."""
    os.environ["ULTRALYTICS_SAFE_LOAD"] = "1"
    # Ultralytics pip-installs what a step lacks (exporters, trackers) at run time; cvft's extras do
    os.environ["YOLO_AUTOINSTALL"] = "false"
    import ultralytics.nn.tasks as tasks
    import ultralytics.utils.checks as checks

    checks.AUTOINSTALL = False

    safe = getattr(tasks, "_SafeLoad", None)
    if safe is None or not safe.SUPPORTED:
        raise CheckpointError("this Ultralytics or torch cannot load checkpoints with weights_only=True; cvft will not "
                              "unpickle YOLO checkpoints otherwise: pip install -U 'ultralytics>=8.4.190' 'torch>=2.6'")
    tasks.SAFE_LOAD = True


def _refuse(option: str, why: str) -> None:
    raise UsageError(f"{option} cannot be honoured by Ultralytics YOLO: {why}")


def ultralytics_args(cfg: TrainConfig, task: str) -> dict[str, Any]:
    """cvft's options as Ultralytics ``train()`` arguments; refuses what YOLO cannot do.

    Example:
        >>> a = ultralytics_args(TrainConfig(lr=0.002, hflip=0.0, balance="weights", scheduler="cosine"), "detection")
        >>> a["lr0"], a["optimizer"], a["fliplr"], a["cls_pw"], a["cos_lr"]
        (0.002, 'AdamW', 0.0, 1.0, True)
    """
    default = TrainConfig()
    for option, why in (("label_smoothing", "its detection loss has no label smoothing"),
                        ("clip_grad", "it clips gradients at a fixed norm of 10"),
                        ("ema_decay", "it always keeps its own EMA of the weights"),
                        ("decay_norm_bias", "it never applies weight decay to norm layers and biases"),
                        ("crop_scale", "use yolo_args scale= (its own zoom augmentation)"),
                        ("color_jitter", "use yolo_args hsv_h/hsv_s/hsv_v="),
                        ("auto_augment", "auto-augment policies apply to classification only"),
                        ("random_erasing", "random erasing applies to classification only"),
                        ("train_split", "it trains on the exported 'train' split"),
                        ("val_split", "it validates on the exported 'validation' split")):
        if getattr(cfg, option) != getattr(default, option):
            _refuse(f"--{option.replace('_', '-')} {getattr(cfg, option)}", why)
    if cfg.balance == "sampler":
        _refuse("--balance sampler", "it has no weighted sampler; --balance weights maps to its cls_pw")
    if cfg.amp in ("bf16", "fp16"):
        _refuse(f"--amp {cfg.amp}", "it chooses the AMP dtype itself; use auto or off")
    args: dict[str, Any] = {"epochs": cfg.epochs, "imgsz": cfg.imgsz, "batch": cfg.batch, "seed": cfg.seed,
                            "workers": default_workers() if cfg.workers is None else cfg.workers,
                            "patience": cfg.patience, "amp": cfg.amp != "off", "plots": False, "verbose": False,
                            "compile": cfg.compile}
    if cfg.optimizer:
        args["optimizer"] = {"adamw": "AdamW", "sgd": "SGD"}[cfg.optimizer]
    if cfg.lr is not None:
        args["lr0"] = cfg.lr
        args.setdefault("optimizer", "AdamW")  # Ultralytics' "auto" optimizer ignores lr0
    if cfg.weight_decay is not None:
        args["weight_decay"] = cfg.weight_decay
    if cfg.scheduler == "cosine":
        args["cos_lr"] = True
    else:
        args.update(cos_lr=False, lrf=1.0)
    if cfg.warmup_epochs is not None:
        args["warmup_epochs"] = cfg.warmup_epochs
    if cfg.accumulate > 1:
        args["nbs"] = cfg.batch * cfg.accumulate   # Ultralytics accumulates round(nbs / batch) batches
    if cfg.hflip is not None:
        args["fliplr"] = cfg.hflip
    if cfg.vflip is not None:
        args["flipud"] = cfg.vflip
    if cfg.balance == "weights":
        args["cls_pw"] = 1.0
    overridden = sorted(set(cfg.yolo_args) & set(args))
    if overridden:
        log.info("yolo_args override cvft's %s", ", ".join(overridden))
    args.update(cfg.yolo_args)
    return args


def _ultralytics_device(device: str, requested: str) -> str:
    if "," in requested or requested.isdigit():
        return requested  # Ultralytics' own multi-GPU syntax: "0,1"
    if device.startswith("cuda"):
        return device.split(":")[1] if ":" in device else "0"
    return device  # cpu | mps


def _open_model(cfg: TrainConfig, model_name: str):
    """The YOLO model to train: a local checkpoint (``--weights``), a named ``.pt`` (downloaded by
    Ultralytics where there is internet) or a ``.yaml`` architecture (random weights)."""
    from ultralytics import YOLO

    if model_name.endswith(".pt") and not Path(model_name).is_file() and not cfg.weights:
        from ultralytics.utils.downloads import attempt_download_asset

        try:
            model_name = str(attempt_download_asset(model_name))
        except Exception as exc:  # Ultralytics raises ConnectionError, FileNotFoundError, ...
            raise CheckpointError(
                f"could not fetch {model_name} ({str(exc).strip()[:160]}); on a machine without internet pass "
                f"--weights PATH to a local YOLO checkpoint, or --no-pretrained to train "
                f"{Path(model_name).stem}.yaml from random weights") from None
    if cfg.weights and model_name.endswith(".pt") and Path(model_name) != Path(cfg.weights):
        raise UsageError(f"--model {model_name} and --weights {cfg.weights} both name weights; give the architecture "
                         f"as {Path(model_name).stem}.yaml, or leave --model out to take it from --weights")
    if model_name.endswith((".yaml", ".yml")) and not cfg.weights:
        log.warning("note: %s is an architecture: it trains from random weights; %s.pt fine-tunes pretrained weights",
                    model_name, Path(model_name).stem)
    try:
        if cfg.weights:
            if not Path(cfg.weights).is_file():
                raise CheckpointError(f"weights file {cfg.weights} does not exist")
            if not model_name.endswith((".yaml", ".yml")):
                return YOLO(cfg.weights)
            yolo = YOLO(model_name)
            yolo.load(cfg.weights)   # Ultralytics logs how many tensors it transferred
            return yolo
        return YOLO(model_name)
    except (TypeError, ModuleNotFoundError, RuntimeError) as exc:
        raise CheckpointError(f"Ultralytics refused {cfg.weights or model_name}: {str(exc).strip()[:300]}") from None


def fit_yolo(cfg: TrainConfig, data: OpenedDataset | str, run: Path, logger=None) -> dict:
    safe_ultralytics()
    data = OpenedDataset.of(data)
    info = data.info
    task = info["task"]
    run = run.resolve()   # a relative project is nested under runs/<task>/ by Ultralytics
    device = pick_device(cfg.device) if "," not in cfg.device and not cfg.device.isdigit() else "cuda"
    args = ultralytics_args(cfg, task)
    notes = []
    if cfg.val_split not in data.splits:
        notes.append("no validation split: Ultralytics validates on the training images, so mAP is optimistic "
                     "(make a split with cvft split)")
        log.warning("warning: %s", notes[-1])
    model_name = cfg.model or cfg.resolved_model(task)
    seg = task == "instance_segmentation"
    if seg and "-seg" not in Path(model_name).name:
        log.warning("note: %s is a detection model; this dataset has masks, consider %s", model_name,
                    Path(model_name).name.replace(".", "-seg.", 1))
    last = run / "yolo" / "weights" / "last.pt"
    if cfg.resume and last.is_file() and _finished(last):
        done = len(read_results_csv(run / "yolo" / "results.csv"))
        if cfg.epochs > done:
            raise UsageError(f"the YOLO run in {run} finished its {done} epochs and Ultralytics cannot extend a "
                             f"finished run; start a new run from its weights: --weights {last} --out NEW_RUN")
        log.info("the YOLO run in %s finished its %d epochs; nothing to resume", run, done)
        from .metrics import read_metrics
        return read_metrics(run)
    if cfg.resume and last.is_file():
        model = _open_model(cfg.updated({"weights": str(last)}), str(last))
        _attach(model, logger, info["classes"])
        _threads(device)
        model.train(resume=True)
    else:
        if cfg.resume:
            log.info("--resume: no checkpoint in %s yet, starting a new run", last.parent)
        layout = yolo_layout(data)
        model = _open_model(cfg, model_name)
        args.update(data=str(layout / "data.yaml"), device=_ultralytics_device(device, cfg.device),
                    project=str(run), name="yolo", exist_ok=True, pretrained=cfg.pretrained or bool(cfg.weights))
        if logger:
            logger.update_config({"ultralytics": {k: v for k, v in args.items() if k != "data"}})
        _attach(model, logger, info["classes"])
        _threads(device)
        model.train(**args)
    if cfg.weights is None and (not cfg.pretrained or model_name.endswith((".yaml", ".yml"))):
        notes.append(f"trained from random weights ({model_name} and no --weights)")
    doc = collect_metrics(run / "yolo", task, model_name, info["classes"], model, notes)
    write_metrics(run, doc)
    return doc


def _finished(last: Path) -> bool:
    """Ultralytics strips the optimizer from ``last.pt`` when a run completes."""
    from ultralytics.nn.tasks import torch_safe_load

    try:
        ckpt, _ = torch_safe_load(str(last), safe_only=True)
    except Exception as exc:  # Ultralytics raises TypeError for refused or damaged files
        raise CheckpointError(f"cannot resume from {last}: {str(exc).strip()[:300]}") from None
    return ckpt.get("optimizer") is None or ckpt.get("epoch", -1) == -1


def _threads(device: str) -> None:
    if device == "cpu":
        import torch
        torch.set_num_threads(cpu_threads())  # Ultralytics sets cores-1 at import


def _attach(model, logger, names: list[str]) -> None:
    """Send each epoch's figures to W&B as Ultralytics finishes it."""
    if logger is None:
        return

    logged: set[int] = set()

    def on_fit_epoch_end(trainer) -> None:
        row = {"epoch": int(trainer.epoch) + 1}
        if row["epoch"] in logged or row["epoch"] > int(trainer.epochs):  # again after validating best.pt
            return
        logged.add(row["epoch"])
        losses = trainer.label_loss_items(trainer.tloss, prefix="train") if getattr(trainer, "tloss", None) is not None else {}
        for key, value in {**losses, **(trainer.metrics or {})}.items():
            out = _COLUMNS.get(key.strip(), None) or key.strip().replace("/", "_")
            try:
                row[out] = float(value)
            except (TypeError, ValueError):
                continue
        logger.log_epoch(row, None, names)

    model.add_callback("on_fit_epoch_end", on_fit_epoch_end)


_COLUMNS = {"metrics/mAP50(B)": "map50", "metrics/mAP50-95(B)": "map50_95", "metrics/mAP50(M)": "mask_map50",
            "metrics/mAP50-95(M)": "mask_map50_95", "metrics/precision(B)": "precision",
            "metrics/recall(B)": "recall", "train/box_loss": "train_box_loss", "train/cls_loss": "train_cls_loss",
            "train/seg_loss": "train_seg_loss", "val/box_loss": "val_box_loss", "val/cls_loss": "val_cls_loss",
            "val/seg_loss": "val_seg_loss", "lr/pg0": "lr"}


def read_results_csv(path: Path) -> list[dict]:
    """Ultralytics' per-epoch ``results.csv`` as cvft rows (epoch counted from 1)."""
    rows = []
    if not path.is_file():
        return rows
    with open(path, newline="") as f:
        for i, raw in enumerate(csv.DictReader(f)):
            raw = {(k or "").strip(): v for k, v in raw.items()}
            rec: dict[str, Any] = {"epoch": i + 1}
            for key, out in _COLUMNS.items():
                if raw.get(key) not in ("", None):
                    rec[out] = float(raw[key])
            rows.append(rec)
    return rows


def collect_metrics(yolo_run: Path, task: str, model_name: str, names: list[str], model, notes: list[str]) -> dict:
    """Per-epoch rows from ``results.csv`` and the final per-class mAP from the validator."""
    epochs = read_results_csv(yolo_run / "results.csv")
    if not epochs:
        raise UsageError(f"Ultralytics wrote no results.csv in {yolo_run}: the training did not run an epoch")
    final: dict[str, Any] = dict(epochs[-1])
    m = getattr(getattr(getattr(model, "trainer", None), "validator", None), "metrics", None)
    box = getattr(m, "box", None)
    if box is not None and len(getattr(box, "ap_class_index", [])):
        final["map50"], final["map50_95"] = float(box.map50), float(box.map)
        final["per_class"] = {names[int(c)]: {"map50": float(box.ap50[j]), "map50_95": float(box.ap[j])}
                              for j, c in enumerate(box.ap_class_index)}
    seg = getattr(m, "seg", None)
    if seg is not None and len(getattr(seg, "ap_class_index", [])):
        final["mask_map50"], final["mask_map50_95"] = float(seg.map50), float(seg.map)
    weights = {k: str(yolo_run / "weights" / f"{k}.pt") if (yolo_run / "weights" / f"{k}.pt").is_file() else None
               for k in ("best", "last")}
    primary = "mask_map50_95" if task == "instance_segmentation" and "mask_map50_95" in final else "map50_95"
    return metrics_doc(task=task, model=model_name, classes=names, primary=primary, epochs=epochs, final=final,
                       weights=weights, notes=notes)
