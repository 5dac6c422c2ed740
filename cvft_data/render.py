"""Draw a dataset row: the image at a reduced size with its boxes, masks, segments and labels.

Shared by ``cvft report`` (preview tiles) and ``cvft view`` (grid thumbnails, mask overlays).
Images are decoded at reduced size (JPEG draft mode) when only a thumbnail is wanted, and turned
upright by their EXIF orientation, as the row's ``width`` and ``height`` are.

Example:
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGB", (400, 200), "white").save(buf, "JPEG")
    >>> row = {"image": {"bytes": buf.getvalue(), "path": None}, "width": 400, "height": 200,
    ...        "label_status": "labeled", "objects": {"bbox": [[10, 10, 100, 50]], "category": [0],
    ...        "segmentation": [{"polygons": [], "rle": None}]}}
    >>> im = annotated(row, ["fox"], 200)
    >>> im.size, labels_of(row, ["fox"])
    ((200, 100), ['fox'])
"""

from __future__ import annotations

import io

import numpy as np

from . import masks

#: One colour per class (by class index), the same in the report, the viewer's thumbnails and its SVG.
PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#fabed4",
           "#469990", "#dcbeff", "#9a6324", "#800000", "#aaffc3", "#808000", "#000075", "#a9a9a9", "#ffe119"]


def colour(class_id: int) -> str:
    return PALETTE[class_id % len(PALETTE)]


def rgba(class_id: int, alpha: int) -> list[int]:
    """The class's colour as ``[r, g, b, alpha]`` (an overlay pixel)."""
    c = colour(class_id)
    return [int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16), alpha]


def image_data(image: dict) -> bytes:
    """The stored bytes of an ``{"bytes", "path"}`` image."""
    if image.get("bytes") is not None:
        return image["bytes"]
    with open(image["path"], "rb") as f:
        return f.read()


def open_image(image, max_side: int | None = None):
    """``image`` (``{"bytes", "path"}`` or a PIL image) as an upright RGB PIL image, decoded at
    about ``max_side`` pixels on its long side when that is smaller (never larger)."""
    from PIL import Image, ImageOps

    if isinstance(image, dict):
        im = Image.open(io.BytesIO(image_data(image)))
    else:
        im = image
    if max_side and im.format == "JPEG":
        im.draft("RGB", (max_side, max_side))   # decode at 1/2, 1/4 or 1/8 scale: the speed of a thumbnail
    im = ImageOps.exif_transpose(im)
    if max_side and max(im.size) > max_side:
        im = im.copy()
        im.thumbnail((max_side, max_side))
    return im.convert("RGB")


def fit(im, side: int):
    """``im`` scaled to fit a ``side`` x ``side`` tile, small images enlarged too."""
    from PIL import Image

    scale = side / max(im.size)
    return im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.LANCZOS)


def labels_of(row: dict, names: list[str]) -> list[str]:
    """The class names a row carries, in order (objects, segments, the label or labels)."""
    if row.get("objects") is not None:
        return [names[c] for c in row["objects"]["category"]]
    if row.get("segments_info") is not None:
        return [names[s["category"]] for s in row["segments_info"]]
    if row.get("mask_classes") is not None:
        return [names[c] for c in row["mask_classes"]]
    if row.get("label") is not None:
        return [names[row["label"]]]
    return [names[c] for c in row.get("labels") or []]


def object_masks(row: dict, h: int, w: int) -> list[np.ndarray | None]:
    """Per object, its mask at ``h`` x ``w`` (polygons scaled and filled, RLE resized), or None."""
    from PIL import Image

    sx, sy = w / row["width"], h / row["height"]
    out = []
    for seg in row["objects"]["segmentation"]:
        if seg.get("rle") is not None:
            m = masks.decode(seg["rle"])
            if m.shape != (h, w):
                m = np.asarray(Image.fromarray(m * 255).resize((w, h), Image.Resampling.NEAREST)) > 127
            out.append(m.astype(bool))
        elif seg.get("polygons"):
            scaled = [[v * (sx if i % 2 == 0 else sy) for i, v in enumerate(p)] for p in seg["polygons"]]
            out.append(masks.decode(masks.polygons_to_rle(scaled, h, w)).astype(bool))
        else:
            out.append(None)
    return out


def segment_overlay(row: dict, h: int, w: int) -> np.ndarray | None:
    """A panoptic row's segments as an RGBA overlay (each segment in its class colour), or None."""
    from PIL import Image

    if not row.get("panoptic") or not row.get("segments_info"):
        return None
    png = open_image(row["panoptic"]).resize((w, h), Image.Resampling.NEAREST)
    rgb = np.asarray(png).astype(np.int64)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    out = np.zeros((h, w, 4), np.uint8)
    for s in row["segments_info"]:
        out[ids == s["id"]] = rgba(s["category"], 110)
    return out


def class_mask_overlay(row: dict, h: int, w: int, ignore: int = 255) -> np.ndarray | None:
    """A semantic row's mask as an RGBA overlay: each class in its colour (index 0, usually the
    background, and the ignore index left clear)."""
    from PIL import Image

    if not row.get("mask"):
        return None
    with Image.open(io.BytesIO(image_data(row["mask"]))) as im:
        idx = np.asarray(im.resize((w, h), Image.Resampling.NEAREST)).astype(np.int64)
    out = np.zeros((h, w, 4), np.uint8)
    for c in np.unique(idx).tolist():
        if c in (0, ignore) or c < 0:
            continue
        out[idx == c] = rgba(c, 120)
    return out


def has_masks(row: dict) -> bool:
    """Whether :func:`mask_overlay` would draw anything, from the row's fields (nothing decoded)."""
    if row.get("objects") is not None:
        return any(s.get("rle") is not None or s.get("polygons") for s in row["objects"]["segmentation"])
    if "mask_classes" in row:
        return bool(row.get("mask"))
    return bool(row.get("panoptic") and row.get("segments_info"))


def mask_overlay(row: dict, h: int, w: int) -> np.ndarray | None:
    """Every mask of a row (object masks, a semantic mask or panoptic segments) as one RGBA
    overlay, or None."""
    if row.get("mask") is not None or "mask_classes" in row:
        return class_mask_overlay(row, h, w)
    if row.get("objects") is not None:
        found = object_masks(row, h, w)
        if not any(m is not None for m in found):
            return None
        out = np.zeros((h, w, 4), np.uint8)
        for m, cls in zip(found, row["objects"]["category"]):
            if m is not None:
                out[m] = rgba(cls, 110)
        return out
    return segment_overlay(row, h, w)


def annotated(row: dict, names: list[str], max_side: int):
    """The row's image at about ``max_side`` px with its masks, boxes and box labels drawn."""
    from PIL import Image, ImageDraw

    im = open_image(row["image"], max_side)
    w, h = im.size
    overlay = mask_overlay(row, h, w)
    if overlay is not None:
        im = Image.alpha_composite(im.convert("RGBA"), Image.fromarray(overlay)).convert("RGB")
    objects = row.get("objects")
    if objects is not None and objects["bbox"]:
        sx, sy = w / row["width"], h / row["height"]
        draw = ImageDraw.Draw(im)
        width = max(1, round(max(w, h) / 200))
        for (x, y, bw, bh), cls in zip(objects["bbox"], objects["category"]):
            box = [x * sx, y * sy, (x + bw) * sx, (y + bh) * sy]
            draw.rectangle(box, outline=colour(cls), width=width)
            text = names[cls]
            tw = draw.textlength(text)
            top = box[1] - 11 if box[1] >= 11 else box[1]   # above the box, or inside it at the image's top edge
            draw.rectangle([box[0], top, box[0] + tw + 4, top + 11], fill=colour(cls))
            draw.text((box[0] + 2, top), text, fill="white")
    return im


def encode(im, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return buf.getvalue()
