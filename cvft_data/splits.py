"""Group-aware, stratified, seeded split assignment, and re-splitting a built dataset.

Items that share a ``group`` (a camera site, a sequence, a Weed-AI collection) always land in the
same split. Groups are placed largest first, each into the split where it most reduces the
distance between every split's class counts and its target share (the null rate is one more
stratum); a repair pass then moves whole groups so that every class reaches every split where the
data allows it, and :class:`SplitAssignment` names the classes it could not place. The RNG is local
and seeded: the same input and seed give the same assignment.

Example:
    >>> keys = [SplitKey(f"img{i}", group=f"site{i % 10}", classes=("cat",) if i % 2 else ("dog",))
    ...         for i in range(100)]
    >>> a = assign_splits(keys, {"train": 0.8, "validation": 0.1, "test": 0.1}, seed=0)
    >>> sorted(set(a.splits)), a.unplaced
    (['test', 'train', 'validation'], {})
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from . import progress
from .errors import UsageError

EMPTY_STRATUM = "__empty__"


@dataclass(frozen=True)
class SplitKey:
    """What the splitter needs to know of one image: its id, its group and its classes."""

    image_id: str
    group: str | None = None
    classes: tuple[str, ...] = ()
    empty: bool = False


@dataclass
class SplitAssignment:
    """The split of each key (in the keys' order), and the classes missing from some split."""

    splits: list[str]
    unplaced: dict[str, list[str]] = field(default_factory=dict)  # class -> splits it could not reach

    def __iter__(self):
        return iter(self.splits)

    def __len__(self):
        return len(self.splits)


def parse_ratios(text: str) -> dict[str, float]:
    """``"0.8,0.1,0.1"`` -> train/validation/test ratios (two values: train/validation).

    >>> parse_ratios("0.8,0.2")
    {'train': 0.8, 'validation': 0.2}
    """
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"split ratios {text!r} are not numbers; expected e.g. 0.8,0.1,0.1") from None
    if not 1 <= len(values) <= 3 or any(v < 0 for v in values) or sum(values) <= 0:
        raise UsageError(f"split ratios {text!r}: expected 1 to 3 non-negative numbers, e.g. 0.8,0.1,0.1")
    total = sum(values)
    names = ("train", "validation", "test")[: len(values)]
    return {n: v / total for n, v in zip(names, values) if v > 0}


def _strata(k: SplitKey) -> set[str]:
    return set(k.classes) or ({EMPTY_STRATUM} if k.empty else set())


def assign_splits(keys: list[SplitKey], ratios: dict[str, float], seed: int = 0, *, by_group: bool = True,
                  stratify: bool = True) -> SplitAssignment:
    """Assign each key to a split; see the module docstring."""
    group_of = [(k.group if (by_group and k.group) else f"\0{k.image_id}\0{i}") for i, k in enumerate(keys)]
    members: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(group_of):
        members[g].append(i)
    counts = {g: Counter(c for i in idx for c in _strata(keys[i])) for g, idx in members.items()}
    total = sum(counts.values(), Counter()) if stratify else Counter()
    names = list(ratios)
    rng = random.Random(seed)
    order = list(members)
    rng.shuffle(order)
    order.sort(key=lambda g: -len(members[g]))  # big groups first, small ones even out what is left
    n = len(keys)
    placed_n: Counter = Counter()
    placed: dict[str, Counter] = {s: Counter() for s in names}
    where: dict[str, str] = {}

    def cost_delta(split: str, g: str) -> float:
        # change in squared relative deviation from target, over the group's strata and image count
        d = 0.0
        if stratify:
            for c, k in counts[g].items():
                t = ratios[split] * total[c]
                d += ((placed[split][c] + k - t) ** 2 - (placed[split][c] - t) ** 2) / max(total[c], 1) ** 2
        t = ratios[split] * n
        size = len(members[g])
        d += ((placed_n[split] + size - t) ** 2 - (placed_n[split] - t) ** 2) / max(n, 1) ** 2
        return d

    for g in order:
        best = min(names, key=lambda s: (cost_delta(s, g), -ratios[s]))
        where[g] = best
        placed_n[best] += len(members[g])
        placed[best].update(counts[g])

    unplaced: dict[str, list[str]] = {}
    if stratify:
        for c in sorted(total, key=lambda c: (total[c], c)):
            for s in names:
                if placed[s][c]:
                    continue
                # move the smallest group carrying c out of a split that keeps c without it
                donors = [g for g in order if c in counts[g] and placed[where[g]][c] - counts[g][c] > 0]
                if not donors:
                    if c != EMPTY_STRATUM:
                        unplaced.setdefault(c, []).append(s)
                    continue
                g = min(donors, key=lambda g: (len(members[g]), g))
                src = where[g]
                placed_n[src] -= len(members[g])
                placed[src].subtract(counts[g])
                where[g] = s
                placed_n[s] += len(members[g])
                placed[s].update(counts[g])
    return SplitAssignment([where[g] for g in group_of], unplaced)


def split(path, out, ratios: str | dict[str, float], *, seed: int = 0, by: str = "group", stratify: bool = True,
          overwrite: bool = False) -> dict:
    """Re-split the dataset at ``path`` into a new dataset at ``out`` (the input is never changed).

    Returns the new ``cvft.json`` content; its ``split`` entry holds the ratios, the seed and the
    classes that could not be placed in every split.

    Example:
        >>> import pathlib, tempfile, cvft_data
        >>> from cvft_data.sample import write_coco_sample
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> _ = cvft_data.ingest(write_coco_sample(tmp / "src", n_images=30), tmp / "ds")
        >>> info = split(tmp / "ds", tmp / "resplit", "0.6,0.2,0.2", seed=1)
        >>> list(info["splits"]), sum(s["images"] for s in info["splits"].values())
        (['train', 'validation', 'test'], 30)
    """
    from .guard import output_errors
    from .store import output_lock

    with output_lock(out), output_errors(out):
        return _split(path, Path(out), ratios, seed=seed, by=by, stratify=stratify, overwrite=overwrite)


def _split(path, out, ratios, *, seed: int, by: str, stratify: bool, overwrite: bool) -> dict:
    import json
    import shutil

    import datasets
    import xxhash

    from .stats import STATS_COLUMNS, SplitStats, classes_of
    from .store import CVFT_JSON, LEDGER_JSONL, read_info, replace_dir, rows
    from .store import open_dataset as load

    if by not in ("group", "none"):
        raise UsageError(f"--by must be group or none, not {by!r}")
    if out.exists() and not overwrite:
        raise UsageError(f"{out} already exists; pass --overwrite to replace it")
    ratios = parse_ratios(ratios) if isinstance(ratios, str) else ratios
    meta = read_info(path)
    dsd = load(path)
    whole = datasets.concatenate_datasets([dsd[s] for s in dsd])
    task, names = meta["task"], meta["classes"]
    keys = []
    cols = [c for c in ("image_id", "group", "label_status", "label", "labels", "objects", "segments_info", "mask_classes")
            if c in whole.column_names]
    shown = progress.bar(total=len(whole), desc="split: read labels")
    for batch in whole.select_columns(cols).iter(batch_size=2000):
        shown.update(len(batch["image_id"]))
        for i in range(len(batch["image_id"])):
            row = {c: batch[c][i] for c in cols}
            keys.append(SplitKey(row["image_id"], row.get("group"), tuple(sorted({names[c] for c in classes_of(row, task)})),
                                 row["label_status"] == "empty"))
    shown.close()
    assignment = assign_splits(keys, ratios, seed, by_group=(by == "group"), stratify=stratify)
    staging = out.parent / f".{out.name}.cvft-split-partial"
    if staging.exists():
        shutil.rmtree(staging)
    by_split: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(assignment.splits):
        by_split[s].append(i)
    new = datasets.DatasetDict({s: whole.select(by_split[s]) for s in ratios if by_split[s]})
    was_enabled = datasets.is_progress_bar_enabled()
    if not progress.enabled():   # datasets' own "Saving the dataset" bar: on a terminal only
        datasets.disable_progress_bars()
    try:
        new.save_to_disk(str(staging))
    finally:
        if was_enabled:
            datasets.enable_progress_bars()
    splits_info = {}
    for s, ds in new.items():
        st = SplitStats(task)
        for row in rows(ds, STATS_COLUMNS):
            st.add(row)
        splits_info[s] = st.as_info(names)
    # the same rows in other splits are another dataset: caches keyed by the hash must not serve the old split
    placement = xxhash.xxh3_128(str(meta.get("content_hash", "")).encode())
    for key, s in zip(keys, assignment.splits):
        placement.update(f"\n{s}\0{key.image_id}".encode())
    meta = {**meta, "splits": splits_info, "content_hash": placement.hexdigest(),
            "split": {"ratios": ratios, "seed": seed, "by": by, "stratify": stratify,
                      "unplaced_classes": assignment.unplaced, "from": str(path)}}
    (staging / CVFT_JSON).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
    if (Path(path) / LEDGER_JSONL).exists():
        shutil.copyfile(Path(path) / LEDGER_JSONL, staging / LEDGER_JSONL)
    replace_dir(staging, out, overwrite)
    return meta
