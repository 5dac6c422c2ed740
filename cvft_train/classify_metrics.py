"""Classifier evaluation: loss, top-1/top-5, per-class precision, recall and F1, confusion matrix.

Counts are summed over ``torchrun`` ranks (each evaluates its own shard), so every rank ends with
the same figures and takes the same early-stopping decision.

Example:
    >>> import numpy as np
    >>> summarise(np.array([[3, 1], [0, 4]]), loss_sum=4.0, n=8, top5=None, names=["a", "b"])["per_class"]["a"]
    {'precision': 1.0, 'recall': 0.75, 'f1': 0.8571428571428571}
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _f1(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    return np.divide(2 * p * r, p + r, out=np.zeros_like(p), where=(p + r) > 0)


def _rates(tp, fp, fn) -> tuple[np.ndarray, np.ndarray]:
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp, dtype=float), where=(tp + fp) > 0)
    recall = np.divide(tp, tp + fn, out=np.zeros_like(tp, dtype=float), where=(tp + fn) > 0)
    return precision, recall


def summarise(conf: np.ndarray, *, loss_sum: float, n: int, top5: int | None, names: list[str]) -> dict[str, Any]:
    """Single-label figures from a confusion matrix (rows: true class, columns: predicted)."""
    tp = np.diag(conf).astype(float)
    precision, recall = _rates(tp, conf.sum(0) - tp, conf.sum(1) - tp)
    f1 = _f1(precision, recall)
    out: dict[str, Any] = {"val_loss": loss_sum / max(n, 1), "top1": float(tp.sum() / max(n, 1)),
                           "f1_macro": float(f1.mean()) if len(f1) else 0.0, "images": int(n)}
    if top5 is not None:
        out["top5"] = top5 / max(n, 1)
    out["per_class"] = {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i])}
                        for i, name in enumerate(names)}
    out["confusion_matrix"] = conf.tolist()
    return out


def summarise_multilabel(tp, fp, fn, *, exact: int, loss_sum: float, n: int, names: list[str]) -> dict[str, Any]:
    precision, recall = _rates(tp, fp, fn)
    f1 = _f1(precision, recall)
    return {"val_loss": loss_sum / max(n, 1), "exact_match": exact / max(n, 1), "f1_macro": float(f1.mean()),
            "images": int(n),
            "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i])}
                          for i, name in enumerate(names)}}


def evaluate(model, loader, criterion, *, device: str, dtype, names: list[str], multilabel: bool,
             channels_last: bool, world: int = 1) -> dict[str, Any]:
    """Run ``model`` over ``loader`` and summarise; counts are all-reduced when ``world`` > 1."""
    import torch

    k = len(names)
    model.eval()
    conf = torch.zeros((k, k), dtype=torch.int64, device=device)
    ml = torch.zeros((3, k), dtype=torch.float64, device=device)   # tp, fp, fn
    scalars = torch.zeros(4, dtype=torch.float64, device=device)    # loss_sum, n, exact, top5 hits
    from cvft_data import progress

    with torch.no_grad():
        for x, y in progress.bar(loader, total=len(loader), desc="validate", unit="batch", leave=False):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last:
                x = x.to(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype is not None):
                logits = model(x).float()
            scalars[0] += criterion(logits, y).double() * len(x)
            scalars[1] += len(x)
            if multilabel:
                pred, true = torch.sigmoid(logits) > 0.5, y > 0.5
                ml[0] += (pred & true).sum(0)
                ml[1] += (pred & ~true).sum(0)
                ml[2] += (~pred & true).sum(0)
                scalars[2] += (pred == true).all(1).sum()
            else:
                conf += torch.bincount(y * k + logits.argmax(1), minlength=k * k).reshape(k, k)
                if k >= 5:
                    scalars[3] += (logits.topk(5, dim=1).indices == y[:, None]).any(1).sum()
    if world > 1:
        for t in (conf, ml, scalars):
            torch.distributed.all_reduce(t)
    loss_sum, n, exact, top5 = scalars.tolist()
    if multilabel:
        tp, fp, fn = (a.cpu().numpy() for a in ml)
        return summarise_multilabel(tp, fp, fn, exact=int(exact), loss_sum=loss_sum, n=int(n), names=names)
    return summarise(conf.cpu().numpy(), loss_sum=loss_sum, n=int(n), top5=int(top5) if k >= 5 else None,
                     names=names)
