"""``cvft convert DS --to semantic --out NEW``: one annotation, two tasks. An instance
segmentation or panoptic dataset becomes a semantic segmentation dataset (a new dataset; the
source is never changed).

Instance masks (polygons or RLE) are painted largest first, so a small object on a large one
stays visible; pixels no object covers are ``background`` (class 0, added unless a class of that
name exists). Panoptic segments paint their class; pixels of no segment get the ignore index (255).
Objects without a mask (a box only) cannot be painted: each is ledgered, and a box-only dataset is
refused.

Example:
    >>> import pathlib, tempfile, cvft_data
    >>> from cvft_data.sample import write_coco_sample
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = cvft_data.ingest(write_coco_sample(tmp / "src", n_images=6, polygons=True), tmp / "ds")
    >>> info = convert(tmp / "ds", "semantic", tmp / "sem")
    >>> info["task"], info["classes"][0]
    ('semantic_segmentation', 'background')
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np

from .errors import UsageError
from .ledger import Ledger

BACKGROUND = "background"


def _png(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def instance_mask(row: dict, offset: int, ledger: Ledger) -> tuple[np.ndarray, int]:
    """A class-index mask from an instance row's objects (largest painted first); objects without a
    mask are ledgered. Returns the mask and how many objects were painted."""
    from . import masks

    h, w = row["height"], row["width"]
    out = np.zeros((h, w), np.int64)
    o = row["objects"]
    order = sorted(range(len(o["bbox"])), key=lambda k: -float(o["area"][k]))
    painted = 0
    for k in order:
        seg = o["segmentation"][k]
        if seg.get("rle") is not None:
            m = masks.decode(seg["rle"]).astype(bool)
        elif seg.get("polygons"):
            m = masks.decode(masks.polygons_to_rle(seg["polygons"], h, w)).astype(bool)
        else:
            ledger.note(f"{row['image_id']}#object {k}", "box_without_mask", "dropped_annotation",
                        "a box without a polygon or mask cannot be painted into a semantic mask")
            continue
        out[m] = o["category"][k] + offset
        painted += 1
    return out, painted


def panoptic_mask(row: dict, ignore: int) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(row["panoptic"]["bytes"])) as im:
        rgb = np.asarray(im.convert("RGB")).astype(np.int64)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    out = np.full(ids.shape, ignore, np.int64)
    for s in row["segments_info"]:
        out[ids == s["id"]] = s["category"]
    return out


def convert(path: str | os.PathLike, to: str, out: str | os.PathLike, *, overwrite: bool = False) -> dict:
    """Write the dataset at ``path`` as a ``semantic`` segmentation dataset at ``out``."""
    from .guard import output_errors
    from .store import output_lock

    if to != "semantic":
        raise UsageError(f"--to {to!r}: cvft convert writes semantic (from instance_segmentation or panoptic)")
    with output_lock(out), output_errors(out):
        return _convert(Path(path), Path(out), overwrite)


def _convert(path: Path, out: Path, overwrite: bool) -> dict:
    import datasets
    import xxhash

    from . import progress
    from .schema import features_for
    from .stats import SplitStats
    from .store import CVFT_JSON, LEDGER_JSONL, bytes_view, open_dataset, read_info, replace_dir

    info = read_info(path)
    task, names = info["task"], list(info["classes"])
    if task not in ("instance_segmentation", "panoptic"):
        raise UsageError(f"{path} is a {task} dataset; semantic masks come from instance_segmentation or panoptic "
                         "datasets (boxes alone cannot be painted)")
    if out.exists() and not overwrite:
        raise UsageError(f"{out} already exists; pass --overwrite to replace it")
    ignore = 255
    offset = 0 if task == "panoptic" or BACKGROUND in names else 1
    new_names = names if offset == 0 else [BACKGROUND, *names]
    if len(new_names) > ignore:
        raise UsageError(f"{len(new_names)} classes do not fit an 8-bit mask with {ignore} as the ignore index")
    features = features_for("semantic_segmentation", new_names)
    ledger = Ledger()
    staging = out.parent / f".{out.name}.cvft-convert-partial"
    shutil.rmtree(staging, ignore_errors=True)
    digest = xxhash.xxh3_128(f"{info.get('content_hash', '')}\nsemantic".encode())
    painted_any = 0

    def generate(ds, stats: SplitStats):
        nonlocal painted_any
        for row in progress.bar(ds, total=len(ds), desc="convert"):
            if task == "panoptic":
                arr = panoptic_mask(row, ignore) if row.get("panoptic") else None
                painted = bool(row.get("segments_info"))
            else:
                arr, painted = instance_mask(row, offset, ledger)
                if row["label_status"] == "unlabeled" and not painted:
                    arr = None
            painted_any += painted
            mask = _png(arr) if arr is not None else None
            present = sorted({int(v) for v in np.unique(arr) if 0 <= v < len(new_names)}) if arr is not None else []
            digest.update(xxhash.xxh3_128_digest(mask or b""))
            out = {"image_id": row["image_id"], "image": row["image"], "width": row["width"], "height": row["height"],
                   "mask": {"bytes": mask, "path": None} if mask else None, "mask_classes": present,
                   "label_status": "labeled" if mask and present else "unlabeled",
                   "group": row.get("group"), "meta": row.get("meta") or {}}
            stats.add(out)   # counted as written: no second pass over the new dataset
            yield out

    splits, stats = {}, {}
    try:
        from datasets.arrow_writer import ArrowWriter

        (staging / "rows").mkdir(parents=True)
        for split, ds in open_dataset(path).items():   # streamed: one row in memory at a time
            arrow = staging / "rows" / f"{split}.arrow"
            stats[split] = SplitStats("semantic_segmentation")
            with ArrowWriter(features=features, path=str(arrow)) as writer:
                for row in generate(bytes_view(ds), stats[split]):
                    writer.write(row)
                writer.finalize()
            splits[split] = datasets.Dataset.from_file(str(arrow))
        if not painted_any:
            raise UsageError(f"{path}: no object carries a mask (boxes only); nothing to paint")
        dsd = datasets.DatasetDict(splits)
        was_enabled = datasets.is_progress_bar_enabled()
        if not progress.enabled():   # datasets' own "Saving the dataset" bar: on a terminal only
            datasets.disable_progress_bars()
        try:
            dsd.save_to_disk(str(staging / "data"))
        finally:
            if was_enabled:
                datasets.enable_progress_bars()
        del dsd, splits
        result = staging / "data"
        ledger_in = path / LEDGER_JSONL
        merged = Ledger.read_jsonl(ledger_in) if ledger_in.exists() else Ledger()
        for entry in ledger:
            merged.add(entry)
        merged.write_jsonl(result / LEDGER_JSONL)
        meta = {**info, "task": "semantic_segmentation", "classes": new_names,
                "categories": ([{"name": BACKGROUND, "added_by": "cvft convert"}] if offset else [])
                + list(info.get("categories") or [{"name": n} for n in names]),
                "splits": {s: st.as_info(new_names) for s, st in stats.items()}, "ignore_index": ignore, "ledger": merged.summary(), "content_hash": digest.hexdigest(),
                "converted": {"from": str(path), "task": task, "ledger": ledger.summary()}}
        (result / CVFT_JSON).write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
        replace_dir(result, out, overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return meta

