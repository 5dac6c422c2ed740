"""Pascal VOC ``SegmentationObject`` as instances: each instance id's pixels become one object
mask (COCO RLE), its class the majority of ``SegmentationClass`` under it.

Example:
    >>> import numpy as np
    >>> ids = np.array([[0, 1, 1], [0, 2, 255]]); cls = np.array([[0, 8, 8], [0, 15, 255]])
    >>> [(o.category, int(o.rle["size"][1])) for o in objects_from_arrays(ids, cls, VOC_CLASSES, 255, "a")]
    [('cat', 3), ('person', 3)]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cvft_data import masks
from cvft_data.records import ObjectRecord

from ._labelmap import VOC_CLASSES, VOC_VOID, voc_colormap  # noqa: F401 (VOC_CLASSES: the doctest)


def _indices(path: Path, colours: dict[tuple, int], ignore: int) -> np.ndarray:
    """A VOC PNG as indices: a palette PNG's own indices, an RGB one's colours looked up."""
    from PIL import Image

    from cvft_data.errors import AnnotationError

    with Image.open(path) as im:
        if im.mode in ("P", "L"):
            return np.asarray(im).astype(np.int64)
        rgb = np.asarray(im.convert("RGB"))
    out, unknown = masks.colours_to_indices(rgb, colours, ignore)
    if unknown:
        c = next(iter(unknown))
        raise AnnotationError(f"colour rgb{c} is in no class", file=str(path), item=path.stem,
                              expected="the VOC colour map or labelmap.txt's colours")
    return out


def objects_from_arrays(ids: np.ndarray, cls: np.ndarray, names: list[str], ignore: int, ref: str) -> list[ObjectRecord]:
    out = []
    for k in np.unique(ids).tolist():
        if k in (0, ignore):
            continue
        m = ids == k
        under = cls[m]
        under = under[(under != ignore) & (under > 0) & (under < len(names))]
        if not under.size:
            continue
        c = int(np.bincount(under).argmax())
        out.append(ObjectRecord(names[c], rle=masks.encode(m.astype(np.uint8)), ref=f"{ref}#instance {k}"))
    return out


def instance_objects(objects_png: Path, class_png: Path, names: list[str], colours: dict[tuple, int], ignore: int,
                     *, ref: str) -> list[ObjectRecord]:
    instance_colours = {c: i for i, c in enumerate(voc_colormap(256))}
    instance_colours[VOC_VOID] = ignore
    ids = _indices(objects_png, instance_colours, ignore)
    cls = _indices(class_png, colours, ignore)
    return objects_from_arrays(ids, cls, names, ignore, ref)
