"""One ``metrics.json`` shape for every trainer, written atomically into the run folder.

::

    {"task": "classification", "model": "resnet18", "classes": [...], "primary_metric": "top1",
     "epochs": [{"epoch": 1, "step": 10, "train_loss": ..., "val_loss": ..., "top1": ..., "lr": ...}, ...],
     "final": {... the last epoch's row, "per_class": {name: {...}}, "confusion_matrix": [[...]]},
     "best": {"epoch": 3, "metric": "top1", "value": 0.93},
     "weights": {"best": "run/checkpoints/best.pt", "last": "run/checkpoints/last.pt"},
     "load": {"source": ..., "loaded": 100, "total": 102, ...}}

Epochs count from 1. Classifiers report ``top1`` (and ``top5`` with 5+ classes), ``val_loss``
and per-class precision, recall and F1; detectors ``map50`` and ``map50_95`` (box, and mask for
segmentation) per class.

Example:
    >>> doc = metrics_doc(task="classification", model="resnet18", classes=["a", "b"], primary="top1",
    ...                   epochs=[{"epoch": 1, "top1": 0.5}, {"epoch": 2, "top1": 0.75}], final={"top1": 0.75},
    ...                   weights={"best": "b.pt", "last": "l.pt"})
    >>> doc["best"]
    {'epoch': 2, 'metric': 'top1', 'value': 0.75}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cvft_data.store import write_text_atomic


def best_of(epochs: list[dict], metric: str) -> dict[str, Any] | None:
    """The epoch with the highest ``metric`` (the first of equals), or None when no epoch has it."""
    rows = [r for r in epochs if isinstance(r.get(metric), (int, float))]
    if not rows:
        return None
    row = max(rows, key=lambda r: (r[metric], -r["epoch"]))
    return {"epoch": row["epoch"], "metric": metric, "value": row[metric]}


def metrics_doc(*, task: str, model: str, classes: list[str], primary: str, epochs: list[dict],
                final: dict, weights: dict[str, str | None], load: dict | None = None,
                notes: list[str] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"task": task, "model": model, "classes": list(classes), "primary_metric": primary,
                           "epochs": epochs, "final": final, "best": best_of(epochs, primary),
                           "weights": weights}
    if load is not None:
        doc["load"] = load
    if notes:
        doc["notes"] = notes
    return doc


def write_metrics(run: Path, doc: dict[str, Any]) -> None:
    write_text_atomic(run / "metrics.json", json.dumps(doc, indent=2))


def read_metrics(run: Path) -> dict[str, Any]:
    path = run / "metrics.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
