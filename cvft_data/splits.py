"""Group-aware, stratified, seeded split assignment.

Items that share a ``group`` (a camera site, a sequence, a Weed-AI collection) always land in the
same split. Groups are placed one at a time, largest first, into the split that is furthest below
its target for the rarest classes the group carries (iterative stratification), so every class
reaches every split when the data allows; the null (empty) rate is one more stratum. The RNG is
local and seeded: the same input and seed give the same assignment.

Example:
    >>> keys = [SplitKey(f"img{i}", group=f"site{i % 10}", classes=("cat",) if i % 2 else ("dog",))
    ...         for i in range(100)]
    >>> a = assign_splits(keys, {"train": 0.8, "validation": 0.1, "test": 0.1}, seed=0)
    >>> sorted(set(a))
    ['test', 'train', 'validation']
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass

EMPTY_STRATUM = "__empty__"


@dataclass(frozen=True)
class SplitKey:
    """What the splitter needs to know of one image: its id, its group and its classes."""

    image_id: str
    group: str | None = None
    classes: tuple[str, ...] = ()
    empty: bool = False


def parse_ratios(text: str) -> dict[str, float]:
    """``"0.8,0.1,0.1"`` -> train/validation/test ratios (two values: train/validation).

    >>> parse_ratios("0.8,0.2")
    {'train': 0.8, 'validation': 0.2}
    """
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"split ratios {text!r} are not numbers; expected e.g. 0.8,0.1,0.1") from None
    if not 1 <= len(values) <= 3 or any(v < 0 for v in values) or sum(values) <= 0:
        raise ValueError(f"split ratios {text!r}: expected 1 to 3 non-negative numbers, e.g. 0.8,0.1,0.1")
    total = sum(values)
    names = ("train", "validation", "test")[: len(values)]
    return {n: v / total for n, v in zip(names, values) if v > 0}


def assign_splits(keys: list[SplitKey], ratios: dict[str, float], seed: int = 0) -> list[str]:
    """The split of each key, in the order of ``keys``."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        groups[k.group if k.group else f"\0{k.image_id}\0{i}"].append(i)
    rng = random.Random(seed)
    names = list(ratios)
    total_counts: Counter[str] = Counter()
    group_counts: dict[str, Counter[str]] = {}
    for g, idx in groups.items():
        c: Counter[str] = Counter()
        for i in idx:
            for cls in set(keys[i].classes) or ((EMPTY_STRATUM,) if keys[i].empty else ()):
                c[cls] += 1
        group_counts[g] = c
        total_counts.update(c)
    order = list(groups)
    rng.shuffle(order)
    # big groups first, so the small ones can even out what they leave
    order.sort(key=lambda g: -len(groups[g]))
    n_total = len(keys)
    placed_images: Counter[str] = Counter()
    placed_class: dict[str, Counter[str]] = {n: Counter() for n in names}
    assignment: dict[str, str] = {}
    for g in order:
        counts = group_counts[g]
        rare = min(counts, key=lambda c: (total_counts[c], c)) if counts else None
        best = max(names, key=lambda split: (_need(split, rare, ratios, total_counts, placed_class, placed_images,
                                                   n_total), ratios[split]))
        assignment[g] = best
        placed_images[best] += len(groups[g])
        placed_class[best].update(counts)
    return [assignment[k.group if k.group else f"\0{k.image_id}\0{i}"] for i, k in enumerate(keys)]


def _need(split: str, rare: str | None, ratios: dict[str, float], total_counts: Counter, placed_class: dict,
          placed_images: Counter, n_total: int) -> float:
    """How far ``split`` is below its target, for the group's rarest class first, then in images."""
    img_need = (ratios[split] * n_total - placed_images[split]) / max(n_total, 1)
    if rare is None:
        return img_need
    cls_need = (ratios[split] * total_counts[rare] - placed_class[split][rare]) / max(total_counts[rare], 1)
    # a split still without this class comes first, so every class reaches every split when it can
    missing = 1.0 if placed_class[split][rare] == 0 and ratios[split] > 0 else 0.0
    return missing + cls_need + img_need
