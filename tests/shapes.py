"""A learnable classification task for trainer tests: shapes drawn on noise-free backgrounds."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

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
