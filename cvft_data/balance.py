"""Balancing helpers for training: class weights, per-row sampling weights, null-image sub-sampling.

Example:
    >>> import pathlib, tempfile, cvft_data
    >>> from cvft_data.sample import write_coco_sample
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = cvft_data.ingest(write_coco_sample(tmp / "src", n_images=30), tmp / "ds")
    >>> train = cvft_data.load(tmp / "ds")["train"]
    >>> [round(w, 2) for w in class_weights(train)]
    [0.58, 1.62, 0.81]
    >>> len(sample_weights(train)) == len(train)
    True
"""

from __future__ import annotations

import random
from collections import Counter

from .errors import UsageError
from .schema import class_names_of, task_of
from .stats import classes_of as _classes_of
from .store import rows as _rows


def _row_classes(ds) -> list[list[int]]:
    task = task_of(ds.features)
    cols = ["label", "labels", "objects", "segments_info", "mask_classes"]
    return [_classes_of(r, task) for r in _rows(ds, cols)]


def class_weights(ds, scheme: str = "inverse", beta: float = 0.999) -> list[float]:
    """One weight per class, mean 1 over the classes present, for a weighted loss.

    ``inverse``: 1 / frequency; ``sqrt``: 1 / sqrt(frequency); ``effective``: the "effective number
    of samples" weighting (Cui et al. 2019) with ``beta``. Classes absent from ``ds`` get 0.
    """
    n_classes = len(class_names_of(ds.features))
    freq = Counter(c for classes in _row_classes(ds) for c in set(classes))
    raw = []
    for c in range(n_classes):
        f = freq[c]
        if f == 0:
            raw.append(0.0)
        elif scheme == "inverse":
            raw.append(1.0 / f)
        elif scheme == "sqrt":
            raw.append(1.0 / f ** 0.5)
        elif scheme == "effective":
            raw.append((1 - beta) / (1 - beta ** f))
        else:
            raise UsageError(f"scheme must be inverse, sqrt or effective, not {scheme!r}")
    present = [w for w in raw if w > 0]
    mean = sum(present) / len(present) if present else 1.0
    return [w / mean for w in raw]


def sample_weights(ds, null_weight: float | None = None) -> list[float]:
    """One weight per row for a weighted sampler that sees every class about equally often.

    A row weighs as its rarest class; null images weigh ``null_weight`` (default: as the average
    class), unlabeled rows 0.
    """
    weights = class_weights(ds)
    out = []
    statuses = [r["label_status"] for r in _rows(ds, ["label_status"])]
    default_null = null_weight if null_weight is not None else 1.0
    for classes, status in zip(_row_classes(ds), statuses):
        if status == "unlabeled":
            out.append(0.0)
        elif not classes:
            out.append(default_null)
        else:
            out.append(max(weights[c] for c in classes))
    return out


def weighted_sampler(ds, num_samples: int | None = None, seed: int = 0, **kwargs):
    """A ``torch.utils.data.WeightedRandomSampler`` over :func:`sample_weights` (needs torch)."""
    import torch
    from torch.utils.data import WeightedRandomSampler

    w = sample_weights(ds, **kwargs)
    g = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(w, num_samples or len(w), replacement=True, generator=g)


def subsample_nulls(ds, target_share: float, seed: int = 0):
    """Drop null (empty) rows at random until they are at most ``target_share`` of the result;
    returns a new dataset (``ds.select``), the input is not changed."""
    if not 0 <= target_share < 1:
        raise UsageError("target_share must be in [0, 1)")
    statuses = [r["label_status"] for r in _rows(ds, ["label_status"])]
    nulls = [i for i, s in enumerate(statuses) if s == "empty"]
    others = [i for i, s in enumerate(statuses) if s != "empty"]
    keep_nulls = min(len(nulls), int(target_share * len(others) / (1 - target_share)))
    rng = random.Random(seed)
    kept = sorted(others + rng.sample(nulls, keep_nulls))
    return ds.select(kept)
