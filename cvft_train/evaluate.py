"""``cvft evaluate``: a trained model measured on a split of a cvft dataset.

Classifiers: top-1 (top-5 with 5+ classes), loss, per-class precision, recall and F1 and the
confusion matrix, computed by the same code as training's validation, so a run's best checkpoint on
its validation split gives the figure training reported. Detectors and segmenters: mAP50 and
mAP50-95 per class from Ultralytics' validator (COCO-style), as training reports them.

With ``out``: ``evaluation.json`` and, for classifiers, ``confusion_matrix.png``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from cvft_data.errors import UsageError

from .devices import amp_dtype, default_workers, pick_device
from .trained import Trained, load_trained

log = logging.getLogger(__name__)

_YOLO_SPLIT = {"train": "train", "validation": "val", "test": "test"}


def default_split(splits: list[str]) -> str:
    """``test`` when the dataset has one, else ``validation``."""
    for s in ("test", "validation"):
        if s in splits:
            return s
    raise UsageError(f"the dataset has no test or validation split (it has {', '.join(splits)}); name one with --split")


def evaluate(weights: str | os.PathLike | Trained, dataset: str | os.PathLike, *, split: str | None = None,
             device: str = "auto", batch: int = 32, workers: int | None = None,
             out: str | os.PathLike | None = None, resolution: str = "original") -> dict[str, Any]:
    """Measure ``weights`` (a checkpoint or run folder) on ``split`` of ``dataset``.

    Segmenters are measured at each mask's ``original`` resolution (the logits enlarged to it), as
    published figures are, or at the ``training`` size, as the run validated.

    Example:
        >>> import pathlib, tempfile, cvft_data
        >>> from PIL import Image
        >>> from cvft_train import fit
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> for split in ("train", "val"):
        ...     for i in range(8):
        ...         p = tmp / "src" / split / ("dark", "light")[i % 2] / f"{i}.png"
        ...         p.parent.mkdir(parents=True, exist_ok=True)
        ...         Image.new("RGB", (48, 40), (40 + 180 * (i % 2),) * 3).save(p)
        >>> _ = cvft_data.ingest(tmp / "src", tmp / "ds")
        >>> run = fit(tmp / "ds", model="squeezenet1_1", pretrained=False, epochs=1, imgsz=64, device="cpu",
        ...           out=str(tmp / "run"))
        >>> report = evaluate(tmp / "run", tmp / "ds", split="validation", device="cpu")
        >>> report["top1"] == run["best"]["value"], sorted(report["per_class"])
        (True, ['dark', 'light'])
    """
    from cvft_data.store import OpenedDataset

    data = OpenedDataset.of(dataset)
    info = data.info
    split = split or default_split(list(info["splits"]))
    if split not in info["splits"]:
        raise UsageError(f"split {split!r} is not in {dataset} (it has {', '.join(info['splits'])})")
    device = pick_device(device)
    trained = weights if isinstance(weights, Trained) else load_trained(weights, device=device)
    if list(trained.classes) != list(info["classes"]):
        raise UsageError(f"the model's classes {trained.classes[:8]} are not the dataset's {info['classes'][:8]}: "
                         "evaluate on a dataset with the classes it was trained on")
    if trained.kind == "classifier":
        report = _classifier(trained, data, split, device, batch, workers)
    elif trained.kind == "segmenter":
        if resolution not in ("original", "training"):
            raise UsageError(f"--resolution {resolution!r}: expected original or training")
        report = {**_segmenter(trained, data, split, device, batch, workers, resolution == "original"),
                  "resolution": resolution}
    elif trained.kind == "mask2former":
        from .panoptic import evaluate_mask2former
        report = evaluate_mask2former(trained, data, split, device, batch)
    else:
        report = _yolo(trained, data, split, device, batch, workers)
    report = {"task": trained.task, "split": split, "weights": str(trained.path), "dataset": str(dataset),
              "classes": trained.classes, **report}
    if out is not None:
        _write(report, Path(out))
    return report


def _classifier(trained: Trained, dataset, split: str, device: str, batch: int, workers: int | None) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from .augment import eval_transform
    from .classify_metrics import evaluate as run_eval
    from .data import ClassificationDataset

    ds = ClassificationDataset(dataset.splits[split], eval_transform(trained.imgsz, trained.mean, trained.std),
                               imgsz=trained.imgsz)
    if not len(ds):
        raise UsageError(f"split {split!r} has no labelled image to evaluate on")
    loader = DataLoader(ds, batch_size=batch, shuffle=False,
                        num_workers=default_workers() if workers is None else workers)
    multilabel = trained.task == "multilabel"
    criterion = torch.nn.BCEWithLogitsLoss() if multilabel else torch.nn.CrossEntropyLoss()
    return run_eval(trained.model, loader, criterion, device=device, dtype=amp_dtype(device, "auto"),
                    names=trained.classes, multilabel=multilabel, channels_last=False)


def _segmenter(trained: Trained, dataset, split: str, device: str, batch: int, workers: int | None,
               full: bool) -> dict:
    """mIoU, per-class IoU and pixel accuracy, at the original resolution (``full``) or at the
    model's size as training validated."""
    import torch
    from torch.utils.data import DataLoader

    from .config import TrainConfig
    from .segment import SegmentationDataset, evaluate_segmenter, transforms

    ignore = int(dataset.info.get("ignore_index", 255))
    ds = SegmentationDataset(dataset.splits[split], transforms(TrainConfig(imgsz=trained.imgsz), False, ignore),
                             imgsz=trained.imgsz, full_masks=full)
    if not len(ds):
        raise UsageError(f"split {split!r} has no image with a mask to evaluate on")
    from .segment import collate_full

    loader = DataLoader(ds, batch_size=batch, shuffle=False, num_workers=default_workers() if workers is None else workers,
                        **({"collate_fn": collate_full} if full else {}))
    return evaluate_segmenter(trained.model, loader, torch.nn.CrossEntropyLoss(ignore_index=ignore), device=device,
                              dtype=amp_dtype(device, "auto"), names=trained.classes, ignore=ignore)


def _yolo(trained: Trained, dataset, split: str, device: str, batch: int, workers: int | None) -> dict:
    from .yolo import yolo_layout

    layout = yolo_layout(dataset)
    if _YOLO_SPLIT.get(split) is None:
        raise UsageError(f"YOLO evaluates train, validation or test, not {split!r}")
    dev = "0" if device == "cuda" else device.replace("cuda:", "")
    with tempfile.TemporaryDirectory(prefix="cvft-eval-") as tmp:
        m = trained.model.val(data=str(layout / "data.yaml"), split=_YOLO_SPLIT[split], imgsz=trained.imgsz,
                              batch=batch, device=dev, workers=default_workers() if workers is None else workers,
                              plots=False, verbose=False, project=tmp, name="val")
    out: dict[str, Any] = {"map50": float(m.box.map50), "map50_95": float(m.box.map),
                           "per_class": {trained.classes[int(c)]: {"map50": float(m.box.ap50[j]),
                                                                   "map50_95": float(m.box.ap[j])}
                                         for j, c in enumerate(m.box.ap_class_index)}}
    seg = getattr(m, "seg", None)
    if seg is not None and len(getattr(seg, "ap_class_index", [])):
        out["mask_map50"], out["mask_map50_95"] = float(seg.map50), float(seg.map)
    return out


def _write(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    from cvft_data.store import write_text_atomic

    write_text_atomic(out / "evaluation.json", json.dumps(report, indent=2))
    if "confusion_matrix" in report:
        confusion_png(report["confusion_matrix"], report["classes"], out / "confusion_matrix.png",
                      title=f"{Path(report['weights']).name} on {report['split']}: top-1 {report['top1']:.3f}")


def confusion_png(matrix: list[list[int]], names: list[str], path: Path, *, title: str = "") -> None:
    """A confusion matrix as a PNG: rows true classes, columns predicted, counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    m = np.asarray(matrix)
    k = len(names)
    size = min(24, 2 + 0.45 * k)
    fig, ax = plt.subplots(figsize=(size, size))
    row = m.sum(1, keepdims=True)
    ax.imshow(np.divide(m, row, out=np.zeros(m.shape), where=row > 0), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), names, rotation=90)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if m[i, j]:
                    ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
