"""Generate a small, realistic sample source to try cvft on (``python -m cvft_data.sample OUT``).

It writes a camera-trap-like COCO export: JPEGs (non-square, some EXIF-rotated) of coloured
"animals" on textured backgrounds, split into ``train`` and ``val`` annotation files, with null
images (no annotation) as camera traps have them.

Example:
    >>> import tempfile, pathlib
    >>> root = write_coco_sample(pathlib.Path(tempfile.mkdtemp()) / "sample", n_images=6)
    >>> sorted(p.name for p in (root / "annotations").iterdir())
    ['instances_train.json', 'instances_val.json']
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("wallaby", "fox", "echidna")
_COLOURS = {"wallaby": (150, 100, 60), "fox": (220, 110, 30), "echidna": (40, 40, 40)}


def _background(rng: random.Random, w: int, h: int) -> np.ndarray:
    base = np.array([rng.randint(60, 120), rng.randint(90, 150), rng.randint(40, 90)], dtype=np.float32)
    noise = np.random.default_rng(rng.randint(0, 2**31)).normal(0, 18, (h, w, 3)).astype(np.float32)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def write_coco_sample(root: Path, n_images: int = 40, size: tuple[int, int] = (160, 120), seed: int = 0,
                      null_share: float = 0.2) -> Path:
    """Write ``root/images/{train,val}/*.jpg`` and ``root/annotations/instances_{train,val}.json``."""
    rng = random.Random(seed)
    root = Path(root)
    w, h = size
    docs = {s: {"info": {"description": "cvft sample"}, "images": [], "annotations": [],
                "categories": [{"id": i + 1, "name": c, "supercategory": "animal"} for i, c in enumerate(CLASSES)]}
            for s in ("train", "val")}
    ann_id = 1
    for i in range(n_images):
        split = "val" if i % 5 == 4 else "train"
        site = f"site{i % 4:02d}"
        arr = _background(rng, w, h)
        anns = []
        if rng.random() >= null_share:
            for _ in range(rng.randint(1, 2)):
                cls = rng.choice(CLASSES)
                bw, bh = rng.randint(w // 8, w // 3), rng.randint(h // 8, h // 3)
                x, y = rng.randint(0, w - bw), rng.randint(0, h - bh)
                arr[y:y + bh, x:x + bw] = _COLOURS[cls]
                anns.append({"id": ann_id, "image_id": i + 1, "category_id": CLASSES.index(cls) + 1,
                             "bbox": [float(x), float(y), float(bw), float(bh)], "area": float(bw * bh),
                             "iscrowd": 0, "segmentation": []})
                ann_id += 1
        name = f"{site}/IMG_{i:04d}.JPG"
        path = root / "images" / split / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(path, "JPEG", quality=90)
        docs[split]["images"].append({"id": i + 1, "file_name": name, "width": w, "height": h})
        docs[split]["annotations"] += anns
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, doc in docs.items():
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc, indent=1))
    return root


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cvft_data.sample", description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--images", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    root = write_coco_sample(Path(a.out), a.images, seed=a.seed)
    print(f"wrote a {a.images}-image COCO sample to {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
