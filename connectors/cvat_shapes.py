"""CVAT shapes, pure: point lists, rotated boxes, ellipses, CVAT's own mask RLE, attribute values,
the hull of a point set.

Example:
    >>> parse_points("1,2;3.5,4")
    [1.0, 2.0, 3.5, 4.0]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cvft_data import boxes, masks
from cvft_data.errors import (
    AnnotationError,
    GeometryError,
)

_SHAPES = ("box", "polygon", "polyline", "points", "ellipse", "cuboid", "mask", "skeleton")
_COMMON = {"label", "occluded", "z_order", "group_id", "source", "rotation", "outside", "keyframe", "frame",
           "points", "xtl", "ytl", "xbr", "ybr", "rle", "left", "top", "width", "height", "cx", "cy", "rx", "ry"}


def parse_points(text: str, *, file: str = "", item: str = "") -> list[float]:
    """``"x0,y0;x1,y1"`` -> ``[x0, y0, x1, y1]``."""
    out: list[float] = []
    try:
        for pair in text.strip().split(";"):
            if pair.strip():
                x, y = pair.split(",")
                out += [float(x), float(y)]
    except ValueError:
        raise AnnotationError(f"points {text[:40]!r} are not x,y pairs", file=file, item=item,
                              expected='"x0,y0;x1,y1;..."') from None
    return out


def rotated_box_polygon(xtl: float, ytl: float, xbr: float, ybr: float, degrees: float) -> list[float]:
    """The four corners of a box rotated clockwise (in image coordinates, y down) about its centre."""
    cx, cy = (xtl + xbr) / 2, (ytl + ybr) / 2
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    out = []
    for x, y in ((xtl, ytl), (xbr, ytl), (xbr, ybr), (xtl, ybr)):
        dx, dy = x - cx, y - cy
        out += [cx + dx * c - dy * s, cy + dx * s + dy * c]
    return out


def ellipse_polygon(cx: float, cy: float, rx: float, ry: float, degrees: float = 0.0, n: int = 32) -> list[float]:
    t0 = math.radians(degrees)
    out = []
    for k in range(n):
        a = 2 * math.pi * k / n
        x, y = rx * math.cos(a), ry * math.sin(a)
        out += [cx + x * math.cos(t0) - y * math.sin(t0), cy + x * math.sin(t0) + y * math.cos(t0)]
    return out


def cvat_mask_to_rle(rle_text: str, left: int, top: int, width: int, height: int, image_w: int, image_h: int,
                     *, file: str = "", item: str = "") -> dict:
    """CVAT XML mask -> COCO RLE over the whole image.

    CVAT's XML ``rle`` is run lengths alternating 0 and 1, background first, ROW-major over the
    ``width`` x ``height`` crop placed at (``left``, ``top``) (unlike COCO's column-major RLE).
    """
    try:
        counts = [int(v) for v in rle_text.replace(" ", "").split(",") if v]
    except ValueError:
        raise GeometryError("mask rle is not a list of integers", file=file, item=item,
                            expected='"n0, n1, n2, ..."') from None
    if sum(counts) != width * height:
        raise GeometryError(f"mask rle covers {sum(counts)} pixels, its box {width}x{height} = {width * height}",
                            file=file, item=item, expected="run lengths summing to width*height")
    flat = np.zeros(width * height, np.uint8)
    pos = 0
    for i, n in enumerate(counts):
        if i % 2:
            flat[pos:pos + n] = 1
        pos += n
    crop = flat.reshape(height, width)
    full = np.zeros((image_h, image_w), np.uint8)
    y1, x1 = min(top + height, image_h), min(left + width, image_w)
    if top < 0 or left < 0 or y1 <= top or x1 <= left:
        raise GeometryError(f"mask box at ({left}, {top}) is outside the {image_w}x{image_h} image", file=file,
                            item=item, expected="a mask inside the image")
    full[top:y1, left:x1] = crop[: y1 - top, : x1 - left]
    return masks.encode(full)


def parse_attribute_value(value: str, input_type: str | None) -> Any:
    """Attribute text -> a typed value, by the label's attribute spec."""
    v = (value or "").strip()
    if input_type == "checkbox":
        return v.lower() == "true"
    if input_type == "number":
        try:
            f = float(v)
            return int(f) if f.is_integer() else f
        except ValueError:
            return v
    return v


def _hull(pts: list[float]) -> tuple[float, float, float, float]:
    """Axis-aligned hull of points, at least 1 px wide and high (a point or a straight line still
    needs a box the builder accepts; the exact points stay in ``attributes.points``)."""
    x, y, w, h = boxes.polygons_bbox([pts])
    if w < 1:
        x, w = x - (1 - w) / 2, 1.0
    if h < 1:
        y, h = y - (1 - h) / 2, 1.0
    return (x, y, w, h)
