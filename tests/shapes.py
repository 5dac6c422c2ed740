"""Tiny learnable datasets for trainer tests: shapes on plain backgrounds (classification) and a
COCO source of boxes (detection, segmentation)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import cvft_data
from builders import write_image

SHAPES = ("circle", "square", "triangle")


def shape_image(kind: str, seed: int, size: int = 32, outline: bool = False) -> bytes:
    """A PNG of one filled (or, ``outline``, drawn) circle, square or triangle at a random place."""
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 80, 3)))
    d = ImageDraw.Draw(im)
    r = int(rng.integers(7, 12))
    cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
    colour = tuple(int(v) for v in rng.integers(150, 255, 3))
    style = {"outline": colour, "width": 2} if outline else {"fill": colour}
    if kind == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], **style)
    elif kind == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], **style)
    else:
        pts = [(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)]
        d.polygon(pts, **({"outline": colour, "width": 2} if outline else {"fill": colour}))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def write_shapes(root: Path, counts: dict[str, int], *, names=SHAPES, outline: bool = False, seed: int = 0) -> Path:
    """``root/<split>/<class>/<i>.png``: a class-folder tree the folder connector reads."""
    for s, (split, n) in enumerate(counts.items()):
        for i in range(n):
            kind = SHAPES[i % 3]
            p = root / split / names[i % 3] / f"{i}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(shape_image(kind, seed=seed + i + 1000 * s, outline=outline))
    return root


def yolo_dataset(tmp_path: Path, seg: bool = False) -> Path:
    src = tmp_path / "coco"
    images, anns = [], []
    for i in range(8):
        write_image(src / "images" / f"{i}.jpg", 64, 48, seed=i)
        images.append({"id": i, "file_name": f"{i}.jpg", "width": 64, "height": 48})
        x = 4 + 3 * i
        ann = {"id": i, "image_id": i, "category_id": 1 + i % 2, "bbox": [x, 6, 20, 20], "area": 400, "iscrowd": 0}
        if seg:
            ann["segmentation"] = [[x, 6, x + 20, 6, x + 20, 26, x, 26]]
        anns.append(ann)
    (src / "coco.json").write_text(json.dumps({"images": images, "annotations": anns,
                                               "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}))
    cvft_data.ingest(src, tmp_path / "ds", split="0.75,0.25")
    return tmp_path / "ds"
