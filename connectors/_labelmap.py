"""Class lists and colour tables of semantic mask sources: ``classes.txt``, Pascal VOC / CVAT /
Datumaro ``labelmap.txt`` and the Pascal VOC colour map. Pure parsing; the callers read the files.

Example:
    >>> parse_labelmap("# label:color_rgb:parts:actions\\nbackground:0,0,0::\\nweed:128,0,0::\\n")
    (['background', 'weed'], {(0, 0, 0): 0, (128, 0, 0): 1})
    >>> parse_classes_txt("soil\\ncrop 0 255 0\\nweed,255,0,0\\n")
    (['soil', 'crop', 'weed'], {(0, 255, 0): 1, (255, 0, 0): 2})
    >>> voc_colormap(3)
    [(0, 0, 0), (128, 0, 0), (0, 128, 0)]
"""

from __future__ import annotations

import re

VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor"]
#: the colour Pascal VOC paints object boundaries and "void" with (class index 255)
VOC_VOID = (224, 224, 192)


def voc_colormap(n: int = 256) -> list[tuple[int, int, int]]:
    """Pascal VOC's colour for each index: the index's bits spread over the high bits of R, G, B."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= (c & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return out


def parse_labelmap(text: str) -> tuple[list[str], dict[tuple, int]]:
    """``name:r,g,b:parts:actions`` lines (comments with ``#``): the names in order, and their colours."""
    names, colours = [], {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(":")
        rgb = rest.split(":", 1)[0]
        names.append(name.strip())
        parts = [p for p in re.split(r"[,\s]+", rgb.strip()) if p]
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            colours[tuple(int(p) for p in parts)] = len(names) - 1
    return names, colours


def parse_classes_txt(text: str) -> tuple[list[str], dict[tuple, int]]:
    """One class per line, in index order; a line may end with its colour (``name r g b`` or
    ``name,r,g,b``)."""
    names, colours = [], {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p for p in re.split(r"[,\t ]+", line) if p]
        if len(parts) >= 4 and all(p.isdigit() for p in parts[-3:]):
            names.append(" ".join(parts[:-3]))
            colours[tuple(int(p) for p in parts[-3:])] = len(names) - 1
        else:
            names.append(line)
    return names, colours
