"""Every box and polygon conversion in cvft, and nowhere else.

The canonical box is COCO ``[x, y, w, h]`` in absolute pixels of the displayed image, origin at the
top-left corner of the top-left pixel. Polygons are flat ``[x1, y1, x2, y2, ...]`` lists in the same
frame.

Example:
    >>> yolo_to_xywh(0.5, 0.5, 0.2, 0.4, width=100, height=50)
    (40.0, 15.0, 20.0, 20.0)
    >>> voc_to_xywh(1, 1, 10, 20)   # VOC pixels are 1-based and inclusive
    (0.0, 0.0, 10.0, 20.0)
"""

from __future__ import annotations

from typing import Sequence

Box = tuple[float, float, float, float]


def xyxy_to_xywh(x1: float, y1: float, x2: float, y2: float) -> Box:
    return (float(x1), float(y1), float(x2) - float(x1), float(y2) - float(y1))


def xywh_to_xyxy(x: float, y: float, w: float, h: float) -> Box:
    return (float(x), float(y), float(x) + float(w), float(y) + float(h))


def yolo_to_xywh(cx: float, cy: float, w: float, h: float, *, width: int, height: int) -> Box:
    """YOLO normalised centre box -> absolute COCO box."""
    bw, bh = float(w) * width, float(h) * height
    return (float(cx) * width - bw / 2, float(cy) * height - bh / 2, bw, bh)


def xywh_to_yolo(x: float, y: float, w: float, h: float, *, width: int, height: int) -> Box:
    """Absolute COCO box -> YOLO normalised centre box."""
    return ((x + w / 2) / width, (y + h / 2) / height, w / width, h / height)


def centre_to_xywh(cx: float, cy: float, w: float, h: float) -> Box:
    """Absolute centre box (CreateML) -> COCO box."""
    return (float(cx) - float(w) / 2, float(cy) - float(h) / 2, float(w), float(h))


def voc_to_xywh(xmin: float, ymin: float, xmax: float, ymax: float) -> Box:
    """Pascal VOC box (1-based, inclusive pixel indices) -> COCO box.

    Pixel ``i`` (1-based) covers ``[i-1, i)`` in continuous coordinates, so the box spans
    ``[xmin-1, xmax]``: the same convention as detectron2 and torchvision's VOC readers.
    """
    return (float(xmin) - 1.0, float(ymin) - 1.0, float(xmax) - float(xmin) + 1.0, float(ymax) - float(ymin) + 1.0)


def xywh_to_voc(x: float, y: float, w: float, h: float) -> Box:
    """COCO box -> Pascal VOC (1-based inclusive); the inverse of :func:`voc_to_xywh`."""
    return (x + 1.0, y + 1.0, x + w, y + h)


def polygon_to_abs(coords: Sequence[float], *, width: int, height: int) -> list[float]:
    """Normalised flat polygon -> absolute pixels."""
    return [float(v) * (width if i % 2 == 0 else height) for i, v in enumerate(coords)]


def polygon_to_norm(coords: Sequence[float], *, width: int, height: int) -> list[float]:
    return [float(v) / (width if i % 2 == 0 else height) for i, v in enumerate(coords)]


def polygons_bbox(polygons: Sequence[Sequence[float]]) -> Box:
    """Tight COCO box around one or several flat polygons."""
    xs = [v for p in polygons for v in p[0::2]]
    ys = [v for p in polygons for v in p[1::2]]
    return xyxy_to_xywh(min(xs), min(ys), max(xs), max(ys))


def polygon_area(coords: Sequence[float]) -> float:
    """Shoelace area of one flat polygon."""
    xs, ys = coords[0::2], coords[1::2]
    n = len(xs)
    s = 0.0
    for i in range(n):
        j = (i + 1) % n
        s += xs[i] * ys[j] - xs[j] * ys[i]
    return abs(s) / 2.0


def box_corners(x: float, y: float, w: float, h: float) -> list[float]:
    """The four corners of a box as a flat polygon (clockwise from top-left)."""
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def out_of_bounds(box: Box, width: int, height: int, tolerance: float = 1.0) -> bool:
    """True when the box leaves the image by more than ``tolerance`` pixels on any side."""
    x, y, w, h = box
    return x < -tolerance or y < -tolerance or x + w > width + tolerance or y + h > height + tolerance


def clip_box(box: Box, width: int, height: int) -> Box:
    x1, y1, x2, y2 = xywh_to_xyxy(*box)
    x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
    y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
    return xyxy_to_xywh(x1, y1, x2, y2)


def polygon_out_of_bounds(coords: Sequence[float], width: int, height: int, tolerance: float = 1.0) -> bool:
    xs, ys = coords[0::2], coords[1::2]
    return (min(xs) < -tolerance or min(ys) < -tolerance or max(xs) > width + tolerance
            or max(ys) > height + tolerance)


def clip_polygon(coords: Sequence[float], width: int, height: int) -> list[float]:
    """Clamp every vertex into the image (keeps the vertex count)."""
    return [min(max(float(v), 0.0), float(width if i % 2 == 0 else height)) for i, v in enumerate(coords)]


def scale_box(box: Sequence[float], sx: float, sy: float) -> Box:
    x, y, w, h = box
    return (x * sx, y * sy, w * sx, h * sy)


def scale_polygon(coords: Sequence[float], sx: float, sy: float) -> list[float]:
    return [float(v) * (sx if i % 2 == 0 else sy) for i, v in enumerate(coords)]
