"""A generated COCO panoptic sample: two stuff classes (sky above, ground below) and animals as
things, written as COCO panoptic (``annotations/panoptic_{split}.json`` + segment PNGs) beside
``images/{split}/``. Tests and the Mask2Former example train on it offline.

Example:
    >>> import tempfile, json
    >>> root = write_panoptic_sample(Path(tempfile.mkdtemp()), n_images=4)
    >>> doc = json.loads((root / "annotations" / "panoptic_train.json").read_text())
    >>> [(c["name"], c["isthing"]) for c in doc["categories"]]
    [('sky', 0), ('ground', 0), ('animal', 1)]
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
from PIL import Image

CATEGORIES = [("sky", 0), ("ground", 0), ("animal", 1)]


def _rgb(segment_id: int) -> list[int]:
    return [segment_id % 256, (segment_id // 256) % 256, segment_id // 65536]


def write_panoptic_sample(root: Path, n_images: int = 24, size: tuple[int, int] = (64, 48), seed: int = 0) -> Path:
    rng = random.Random(seed)
    root = Path(root)
    w, h = size
    docs = {s: {"images": [], "annotations": [],
                "categories": [{"id": i + 1, "name": n, "isthing": t} for i, (n, t) in enumerate(CATEGORIES)]}
            for s in ("train", "val")}
    for i in range(n_images):
        split = "val" if i % 4 == 3 else "train"
        horizon = rng.randint(h // 3, 2 * h // 3)
        img = np.zeros((h, w, 3), np.uint8)
        ids = np.zeros((h, w), np.int64)
        img[:horizon] = (90 + rng.randint(0, 30), 140 + rng.randint(0, 30), 220)   # sky
        img[horizon:] = (100 + rng.randint(0, 30), 80, 40)                         # ground
        ids[:horizon], ids[horizon:] = 1, 2
        segments = [{"id": 1, "category_id": 1}, {"id": 2, "category_id": 2}]
        for k in range(rng.randint(1, 3)):                                         # animals on the ground
            bw, bh = rng.randint(6, 14), rng.randint(5, 10)
            x, y = rng.randint(0, w - bw), rng.randint(max(0, horizon - bh // 2), h - bh)
            img[y:y + bh, x:x + bw] = (40, 40 + 60 * k, 40)
            ids[y:y + bh, x:x + bw] = 3 + k
            segments.append({"id": 3 + k, "category_id": 3})
        img = np.clip(img.astype(np.int64) + np.random.default_rng(seed + i).integers(-8, 9, img.shape), 0, 255)
        name = f"scene_{i:04d}"
        for folder, arr, ext in (("images/" + split, img.astype(np.uint8), "jpg"),
                                 (f"annotations/panoptic_{split}", np.stack([ids % 256, ids // 256 % 256, ids // 65536],
                                                                            -1).astype(np.uint8), "png")):
            path = root / folder / f"{name}.{ext}"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(path)
        infos = []
        for s in segments:
            m = ids == s["id"]
            if not m.any():
                continue
            ys, xs = np.nonzero(m)
            infos.append({**s, "area": int(m.sum()), "iscrowd": 0,
                          "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]})
        docs[split]["images"].append({"id": i + 1, "file_name": f"{name}.jpg", "width": w, "height": h})
        docs[split]["annotations"].append({"image_id": i + 1, "file_name": f"{name}.png", "segments_info": infos})
    for split, doc in docs.items():
        (root / "annotations" / f"panoptic_{split}.json").write_text(json.dumps(doc), encoding="utf-8")
    return root
