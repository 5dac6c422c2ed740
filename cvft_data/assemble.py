"""Publishing a build: the ``cvft.json`` of the committed shards, and the ``save_to_disk`` layout
assembled from them (hard links, no copies) and renamed into place, so the output either does not
exist or is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import xxhash

from . import __version__
from .ledger import Ledger
from .schema import CANONICAL_SPLITS, SCHEMA_VERSION, features_for
from .stats import SplitStats, empty_info
from .store import CVFT_JSON, LEDGER_JSONL, replace_dir

_MOD128 = 1 << 128


def ordered_splits(names) -> list[str]:
    known = [s for s in CANONICAL_SPLITS if s in names]
    return known + sorted(set(names) - set(known))


def cvft_json(connector, opts, task: str, class_names: list[str], manifests: dict,
               ledger: Ledger) -> dict:
    splits: dict[str, SplitStats] = {}
    digest_sum = 0
    for i in sorted(manifests):
        m = manifests[i]
        digest_sum = (digest_sum + int(m["digest_sum"], 16)) % _MOD128
        for split, counts in m["stats"].items():
            splits.setdefault(split, SplitStats(task)).merge(counts, m["class_counts"].get(split, {}))
    ordered = {split: splits[split].as_info(class_names) for split in ordered_splits(splits)}
    return {
        "schema_version": SCHEMA_VERSION,
        "cvft_version": __version__,
        "task": task,
        "classes": list(class_names),
        "categories": connector.category_info(),
        "splits": ordered,
        "source": {"path": str(Path(connector.root).resolve()), "connector": connector.name,
                   "options": opts.connector_options, **({"info": connector.source_info()} if connector.source_info() else {})},
        "images": {"storage": "reference" if opts.reference and not opts.max_side else "embedded",
                   "max_side": opts.max_side},
        "split": {"ratios": opts.split_ratios, "seed": opts.seed} if opts.split_ratios else None,
        **({"ignore_index": getattr(connector, "ignore_index", 255)} if task == "semantic_segmentation" else {}),
        "on_error": opts.on_error,
        "ledger": ledger.summary(),
        "content_hash": xxhash.xxh3_128_hexdigest(f"{digest_sum:032x}".encode()),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def assemble(work: Path, out: Path, task: str, class_names: list[str], manifests: dict, info: dict,
              ledger: Ledger, overwrite: bool) -> None:
    """Lay out the committed shards as ``save_to_disk`` would, then rename into place."""
    from datasets import DatasetInfo

    features = features_for(task, class_names)
    staging = work / "dataset"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    per_split: dict[str, list[Path]] = {}
    for i in sorted(manifests):
        for split, f in manifests[i]["files"].items():
            if f["rows"]:
                per_split.setdefault(split, []).append(work / f["file"])
    if not per_split:
        per_split["train"] = []
    split_names = ordered_splits(per_split)
    for split in split_names:
        d = staging / split
        d.mkdir()
        files = per_split[split]
        if not files:  # an empty split still opens as a 0-row dataset
            from datasets.arrow_writer import ArrowWriter
            w = ArrowWriter(features=features, path=str(work / f"empty.{split}.arrow"))
            w.finalize()
            w.close()
            files = [work / f"empty.{split}.arrow"]
        n = len(files)
        for k, src in enumerate(files):
            _link(src, d / f"data-{k:05d}-of-{n:05d}.arrow")
        fp = xxhash.xxh3_64_hexdigest(f"{info['content_hash']}/{split}".encode())
        state = {"_data_files": [{"filename": f"data-{k:05d}-of-{n:05d}.arrow"} for k in range(n)],
                 "_fingerprint": fp, "_format_columns": None, "_format_kwargs": {}, "_format_type": None,
                 "_output_all_columns": False, "_split": split}
        (d / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
        DatasetInfo(features=features, description="cvft dataset").write_to_directory(str(d))
    info["splits"] = {s: info["splits"].get(s, empty_info(class_names)) for s in split_names}
    (staging / "dataset_dict.json").write_text(json.dumps({"splits": split_names}), encoding="utf-8")
    (staging / CVFT_JSON).write_text(json.dumps(info, indent=2, ensure_ascii=False), encoding="utf-8")
    ledger.write_jsonl(staging / LEDGER_JSONL)
    replace_dir(staging, out, overwrite)
    shutil.rmtree(work, ignore_errors=True)
