"""Write cvft datasets directly (rows -> save_to_disk + cvft.json), to plant problems the ingest
itself would refuse (truncated bytes, boxes outside the image, groups straddling splits)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from cvft_data.schema import features_for


def scene(seed: int, w: int = 96, h: int = 64, quality: int = 92) -> bytes:
    """A smooth synthetic scene (gradient + shapes): distinct per seed, stable under re-encoding."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 255, (4, 6, 3), dtype=np.uint8))
    img = coarse.resize((w, h), Image.Resampling.BICUBIC)
    d = ImageDraw.Draw(img)
    for _ in range(4):
        x, y = rng.integers(0, w - 20), rng.integers(0, h - 20)
        d.rectangle([x, y, x + rng.integers(8, 30), y + rng.integers(8, 30)], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def row(image_id: str, data: bytes, *, task: str = "detection", boxes=(), label=None, status=None, group=None,
        w: int = 96, h: int = 64) -> dict:
    r = {"image_id": image_id, "image": {"bytes": data, "path": None}, "width": w, "height": h, "group": group,
         "meta": {}}
    if task == "classification":
        r["label"] = label
        r["label_status"] = status or ("labeled" if label is not None else "empty")
    else:
        cats = [c for c, _ in boxes]
        r["objects"] = {"bbox": [list(b) for _, b in boxes], "category": cats, "area": [b[2] * b[3] for _, b in boxes],
                        "iscrowd": [False] * len(boxes),
                        "segmentation": [{"polygons": [], "rle": None} for _ in boxes]}
        r["object_attributes"] = [{} for _ in boxes]
        r["label_status"] = status or ("labeled" if boxes else "empty")
    return r


def write_dataset(path: Path, splits: dict[str, list[dict]], classes: list[str], task: str = "detection") -> Path:
    import datasets

    feats = features_for(task, classes)
    dd = datasets.DatasetDict({s: datasets.Dataset.from_list(rows, features=feats) for s, rows in splits.items()})
    dd.save_to_disk(str(path))
    info = {"schema_version": 2, "task": task, "classes": classes, "categories": [{"name": c} for c in classes],
            "splits": {s: {"images": len(r), "objects": 0, "labeled": 0, "empty": 0, "unlabeled": 0,
                           "class_counts": {}} for s, r in splits.items()},
            "source": {"path": "generated", "connector": "test", "options": {}},
            "images": {"storage": "embedded", "max_side": None}, "ledger": {"entries": 0}, "content_hash": ""}
    (path / "cvft.json").write_text(json.dumps(info))
    return path
