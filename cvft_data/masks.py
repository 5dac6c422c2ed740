"""COCO RLE masks, through pycocotools (column-major, first run = background).

The canonical mask is the compressed RLE ``{"size": [h, w], "counts": "<string>"}``; the
uncompressed form (a list of run lengths) is converted on the way in, losslessly.

Example:
    >>> import numpy as np
    >>> m = np.zeros((4, 6), dtype=np.uint8); m[1:3, 2:5] = 1
    >>> rle = encode(m)
    >>> rle["size"], int(area(rle))
    ([4, 6], 6)
    >>> bool((decode(rle) == m).all())
    True
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from pycocotools import mask as mask_utils


def to_compressed(rle: dict) -> dict:
    """Any COCO RLE (``counts`` as list or string) -> compressed, with ``counts`` as ``str``."""
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, list):
        if sum(int(c) for c in counts) != h * w:
            raise ValueError(f"RLE run lengths sum to {sum(counts)}, expected height*width = {h * w}")
        out = mask_utils.frPyObjects({"size": [h, w], "counts": [int(c) for c in counts]}, h, w)
    else:
        out = {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
        # decode once to validate the string; a malformed one must fail here, not in training
        decoded = mask_utils.decode(out)
        if decoded.shape[:2] != (h, w):
            raise ValueError(f"RLE decodes to {decoded.shape[:2]}, expected {(h, w)}")
    counts_out = out["counts"]
    return {"size": [h, w], "counts": counts_out.decode("ascii") if isinstance(counts_out, bytes) else counts_out}


def _native(rle: dict) -> dict:
    c = rle["counts"]
    return {"size": list(rle["size"]), "counts": c.encode("ascii") if isinstance(c, str) else c}


def decode(rle: dict) -> np.ndarray:
    """RLE (compressed or list) -> ``uint8`` array of shape ``(h, w)``."""
    if isinstance(rle["counts"], list):
        rle = to_compressed(rle)
    return mask_utils.decode(_native(rle))


def encode(mask: np.ndarray) -> dict:
    """Binary ``(h, w)`` array -> compressed RLE with ``str`` counts."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def area(rle: dict) -> float:
    return float(mask_utils.area(_native(to_compressed(rle) if isinstance(rle["counts"], list) else rle)))


def bbox(rle: dict) -> tuple[float, float, float, float]:
    native = _native(to_compressed(rle) if isinstance(rle["counts"], list) else rle)
    return tuple(float(v) for v in mask_utils.toBbox(native))  # type: ignore[return-value]


def to_uncompressed_counts(rle: dict) -> list[int]:
    """Compressed RLE -> list of run lengths (the form COCO uses for ``iscrowd`` objects)."""
    m = decode(rle)
    flat = np.asfortranarray(m).reshape(-1, order="F")
    counts: list[int] = []
    current, run = 0, 0
    for v in flat:
        if v == current:
            run += 1
        else:
            counts.append(run)
            current, run = int(v), 1
    counts.append(run)
    return counts


def polygons_to_rle(polygons: Sequence[Sequence[float]], height: int, width: int) -> dict:
    rles = mask_utils.frPyObjects([list(map(float, p)) for p in polygons], height, width)
    merged = mask_utils.merge(rles)
    return {"size": [int(v) for v in merged["size"]], "counts": merged["counts"].decode("ascii")}


def resize(rle: dict, width: int, height: int) -> dict:
    """Nearest-neighbour resize of a mask to ``width`` x ``height`` (used by ``max_side``)."""
    from PIL import Image

    m = decode(rle)
    img = Image.fromarray(m * 255).resize((width, height), Image.Resampling.NEAREST)
    return encode((np.asarray(img) > 127).astype(np.uint8))


def mask_to_polygons(mask: np.ndarray) -> list[list[float]]:
    """Outer contours of a binary mask as flat polygons (needs OpenCV, which Ultralytics brings)."""
    try:
        import cv2  # optional: only exporters that turn masks into polygons need it
    except ImportError:
        from .errors import UsageError
        raise UsageError("writing masks as polygons needs OpenCV: pip install 'cvft[train]' (Ultralytics brings "
                         "opencv-python) or pip install opencv-python-headless") from None

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        flat = c.reshape(-1).astype(float).tolist()
        if len(flat) >= 6:
            polys.append(flat)
    return polys


def colours_to_indices(rgb: np.ndarray, colours: dict[tuple, int], fill: int) -> tuple[np.ndarray, dict[tuple, int]]:
    """An RGB mask (``h x w x 3``) as class indices through a colour table; colours the table does
    not know become ``fill``, and are returned with their pixel counts.

    >>> rgb = np.zeros((1, 3, 3), np.uint8); rgb[0, 1] = (128, 0, 0); rgb[0, 2] = (1, 2, 3)
    >>> idx, unknown = colours_to_indices(rgb, {(0, 0, 0): 0, (128, 0, 0): 1}, 255)
    >>> idx.tolist(), unknown
    ([[0, 1, 255]], {(1, 2, 3): 1})
    """
    rgb = rgb.astype(np.int64)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    out = np.full(packed.shape, fill, np.int64)
    unknown: dict[tuple, int] = {}
    values, counts = np.unique(packed, return_counts=True)
    for v, n in zip(values.tolist(), counts.tolist()):
        c = ((v >> 16) & 255, (v >> 8) & 255, v & 255)
        if c in colours:
            out[packed == v] = colours[c]
        else:
            unknown[c] = n
    return out, unknown
