"""Panoptic quality (PQ), segmentation quality (SQ) and recognition quality (RQ), by the COCO
panoptic definition (Kirillov et al. 2019; ``panopticapi/evaluation.py``): per category, a predicted
and a true segment match when their IoU is above 0.5 (such a match is unique); PQ = sum of matched
IoUs / (TP + FP/2 + FN/2); SQ = mean matched IoU; RQ = TP / (TP + FP/2 + FN/2). Pixels nobody
labelled (segment id 0) are left out of IoUs, and a prediction lying mostly (> 50 %) on them, or
on a crowd region of its class, is not a false positive. Averages run over the categories that
occur (in the truth or the predictions), overall and for things and stuff apart.

Example (a hand-computed image):
    >>> import numpy as np
    >>> gt = np.array([[1, 1, 2, 2]]); pred = np.array([[1, 1, 1, 2]])
    >>> acc = PQAccumulator(2)
    >>> acc.add(gt, {1: (0, False), 2: (1, False)}, pred, {1: 0, 2: 1})
    >>> r = acc.result(things=[True, False])
    >>> # class 0: IoU 2/3, a TP (PQ 2/3, SQ 2/3, RQ 1); class 1: IoU 1/2, no match: an FP and an FN (all 0)
    >>> round(r["pq"], 4), round(r["sq"], 4), r["rq"]
    (0.3333, 0.3333, 0.5)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

OFFSET = 1 << 32   # pairs of segment ids packed in one int64 (ids below 2^32)


@dataclass
class PQAccumulator:
    n_classes: int
    tp: np.ndarray = field(init=False)
    fp: np.ndarray = field(init=False)
    fn: np.ndarray = field(init=False)
    iou: np.ndarray = field(init=False)

    def __post_init__(self):
        self.tp, self.fp, self.fn = (np.zeros(self.n_classes, np.int64) for _ in range(3))
        self.iou = np.zeros(self.n_classes, np.float64)

    def add(self, gt: np.ndarray, gt_segments: dict[int, tuple[int, bool]], pred: np.ndarray,
            pred_segments: dict[int, int]) -> None:
        """One image: segment-id maps of the same shape; ``gt_segments`` id -> (class, iscrowd),
        ``pred_segments`` id -> class. Id 0 is "no segment" in both."""
        gt = gt.astype(np.int64)
        pred = pred.astype(np.int64)
        pairs, counts = np.unique(gt * OFFSET + pred, return_counts=True)
        inter = {(int(p // OFFSET), int(p % OFFSET)): int(n) for p, n in zip(pairs, counts)}
        gt_area = {int(k): int(n) for k, n in zip(*np.unique(gt, return_counts=True))}
        pred_area = {int(k): int(n) for k, n in zip(*np.unique(pred, return_counts=True))}
        matched_gt, matched_pred = set(), set()
        for (g, p), n in inter.items():
            if g == 0 or p == 0 or g not in gt_segments or p not in pred_segments:
                continue
            cls, crowd = gt_segments[g]
            if crowd or pred_segments[p] != cls:
                continue
            union = pred_area[p] + gt_area[g] - n - inter.get((0, p), 0)   # unlabelled pixels left out
            iou = n / union if union else 0.0
            if iou > 0.5:
                self.tp[cls] += 1
                self.iou[cls] += iou
                matched_gt.add(g)
                matched_pred.add(p)
        crowd_of = {}   # class -> its crowd segment id
        for g, (cls, crowd) in gt_segments.items():
            if crowd:
                crowd_of[cls] = g
            elif g not in matched_gt and g in gt_area:
                self.fn[cls] += 1
        for p, cls in pred_segments.items():
            if p in matched_pred or p not in pred_area:
                continue
            on_void = inter.get((0, p), 0)
            on_crowd = inter.get((crowd_of[cls], p), 0) if cls in crowd_of else 0
            if (on_void + on_crowd) / pred_area[p] > 0.5:
                continue   # mostly on what nobody labelled (or on its class's crowd): not a false positive
            self.fp[cls] += 1

    def result(self, things: list[bool]) -> dict:
        """PQ, SQ, RQ overall, for things and stuff, and per class."""
        per_class = {}
        for c in range(self.n_classes):
            denom = self.tp[c] + 0.5 * self.fp[c] + 0.5 * self.fn[c]
            if denom == 0:
                continue
            sq = self.iou[c] / self.tp[c] if self.tp[c] else 0.0
            per_class[c] = {"pq": float(self.iou[c] / denom), "sq": float(sq), "rq": float(self.tp[c] / denom),
                            "tp": int(self.tp[c]), "fp": int(self.fp[c]), "fn": int(self.fn[c])}
        out = {}
        for name, keep in (("", lambda c: True), ("_things", lambda c: things[c]), ("_stuff", lambda c: not things[c])):
            chosen = [v for c, v in per_class.items() if keep(c)]
            for m in ("pq", "sq", "rq"):
                out[m + name] = float(np.mean([v[m] for v in chosen])) if chosen else 0.0
        out["per_class"] = per_class
        return out
