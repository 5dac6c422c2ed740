"""Semantic masks at ingest: read a mask PNG, check it against its image, keep its bytes when they
already hold class indices, map an RGB palette mask to indices, and say which classes it shows.

A mask of indices (PNG mode ``L`` or ``P``: Pascal VOC's palette PNGs hold the index in each pixel)
is stored byte for byte. An RGB mask is mapped through the source's colour table to an ``L`` PNG;
colours the table does not know become the ignore index and are counted in the ledger. Indices
beyond the class list (other than the ignore index) are kept and reported: ``cvft check`` names
the images (``mask_unknown_index``).

Example:
    >>> import io, numpy as np
    >>> from PIL import Image
    >>> m = np.zeros((4, 6), np.uint8); m[1:3, 2:5] = 2; m[0, 0] = 255
    >>> buf = io.BytesIO(); Image.fromarray(m).save(buf, "PNG")
    >>> facts = read_mask(buf.getvalue(), n_classes=3, ignore=255)
    >>> facts.classes, facts.data == buf.getvalue(), facts.unknown
    ([0, 2], True, {})
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

from .errors import AnnotationError, CorruptImageError


@dataclass
class MaskFacts:
    data: bytes                       # the PNG to store (the source's bytes when they hold indices)
    width: int
    height: int
    classes: list[int]                # class indices present (the ignore index left out)
    unknown: dict[int, int] = field(default_factory=dict)          # index beyond the classes -> pixels
    unknown_colours: dict[tuple, int] = field(default_factory=dict)  # RGB not in the palette -> pixels
    recoded: bool = False             # an RGB mask written as indices


#: PNG modes whose pixels are class indices (``P``: Pascal VOC's palette PNGs)
INDEX_MODES = ("L", "P", "I", "I;16", "1")


def _decode(data: bytes, name: str) -> tuple[str, tuple[int, int], np.ndarray | None, np.ndarray | None]:
    """(file format, size, RGB pixels of a colour mask or None, indices of an index mask or None)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.mode in ("RGB", "RGBA"):
                return im.format, im.size, np.asarray(im.convert("RGB")), None
            if im.mode not in INDEX_MODES:
                raise AnnotationError(f"{name} is a {im.mode} image; a mask of class indices is a single-channel "
                                      "PNG", item=name, expected="mode L or P (or RGB with a palette at ingest)")
            return im.format, im.size, None, np.asarray(im).astype(np.int64)
    # a header claiming billions of pixels (PIL's bomb guard) is refused by name like any bad file
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise CorruptImageError(f"{name} does not decode: {exc}", item=name, expected="a PNG mask") from None


def mask_array(data: bytes, *, name: str = "mask") -> np.ndarray:
    """The class indices of a stored mask PNG (``L``/``P``/``I`` modes), as a 2-D array."""
    _, _, rgb, arr = _decode(data, name)
    if rgb is not None:
        raise AnnotationError(f"{name} is an RGB image; a stored mask holds class indices", item=name,
                              expected="mode L or P")
    return arr


def read_mask(data: bytes, *, n_classes: int, ignore: int, colours: dict[tuple, int] | None = None,
              name: str = "mask") -> MaskFacts:
    """Decode a mask; map RGB through ``colours``; find the classes it shows and the indices or
    colours it should not hold."""
    fmt, size, rgb, arr = _decode(data, name)
    if fmt not in ("PNG", "BMP", "TIFF", "GIF"):
        raise AnnotationError(f"{name} is a {fmt} file: a lossy mask changes its class indices",
                              item=name, expected="a PNG mask (lossless)")
    facts = MaskFacts(data, size[0], size[1], [])
    if rgb is not None:
        if not colours:
            raise AnnotationError(f"{name} is an RGB mask and the source names no colours", item=name,
                                  expected="a labelmap.txt or classes.txt with r,g,b per class, or an index PNG")
        from PIL import Image

        from .masks import colours_to_indices

        arr, facts.unknown_colours = colours_to_indices(rgb, colours, ignore)
        buf = io.BytesIO()
        Image.fromarray(arr.astype(np.uint8)).save(buf, "PNG")
        facts.data, facts.recoded = buf.getvalue(), True
    values, counts = np.unique(arr, return_counts=True)
    for v, n in zip(values.tolist(), counts.tolist()):
        if v == ignore:
            continue
        if 0 <= v < n_classes:
            facts.classes.append(int(v))
        else:
            facts.unknown[int(v)] = int(n)
    return facts


@dataclass
class MaskCensus:
    pixels: list[int]                                   # labelled pixels per class
    wrong_size: list[tuple[str, str, str]] = field(default_factory=list)   # (image_id, mask size, image size)
    unknown: dict[str, set] = field(default_factory=dict)                  # image_id -> indices beyond the classes


def _census_rows(rows: list[dict], n_classes: int, ignore: int) -> MaskCensus:
    census = MaskCensus([0] * n_classes)
    for row in rows:
        if not row["mask"] or not row["mask"].get("bytes"):
            continue
        arr = mask_array(row["mask"]["bytes"], name=row["image_id"])
        if arr.shape != (row["height"], row["width"]):
            census.wrong_size.append((row["image_id"], f"{arr.shape[1]}x{arr.shape[0]}", f"{row['width']}x{row['height']}"))
        counts = np.bincount(arr[(arr != ignore) & (arr >= 0)].ravel())
        for v, n in enumerate(counts.tolist()):
            if not n:
                continue
            if v < n_classes:
                census.pixels[v] += n
            else:
                census.unknown.setdefault(row["image_id"], set()).add(v)
    return census


def _census_range(path: str, split: str, start: int, stop: int, n_classes: int, ignore: int) -> MaskCensus:
    """One worker's share: rows ``start:stop`` of a split, read from the Arrow files at ``path``."""
    import datasets

    ds = datasets.load_from_disk(path)[split]
    if ds._indices is not None:   # a selected view: its rows in the order it shows
        ds = ds.flatten_indices()
    table = ds.data.table
    rows = table.select(["image_id", "width", "height", "mask"]).slice(start, stop - start).to_pylist()
    return _census_rows(rows, n_classes, ignore)


def mask_census(path: str, dsd, n_classes: int, *, ignore: int = 255, workers: int = 0,
                chunk: int = 512) -> MaskCensus:
    """Decode every mask once (in ``workers`` processes, one per core by default; small datasets
    in-process): pixels per class, masks of the wrong size, unknown indices."""
    import multiprocessing as mp
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from . import progress

    census = MaskCensus([0] * n_classes)
    sizes = {split: len(dsd[split]) for split in dsd}
    jobs = [(split, a, min(a + chunk, n)) for split, n in sizes.items() for a in range(0, n, chunk)]
    workers = workers or os.cpu_count() or 1
    with progress.bar(total=sum(sizes.values()), desc="check masks") as shown:
        if workers <= 1 or sum(sizes.values()) <= chunk:
            parts = []
            for split, a, b in jobs:
                parts.append(_census_range(path, split, a, b, n_classes, ignore))
                shown.update(b - a)
        else:
            parts = []
            with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
                futures = {pool.submit(_census_range, path, split, a, b, n_classes, ignore): b - a for split, a, b in jobs}
                for fut in as_completed(futures):
                    parts.append(fut.result())
                    shown.update(futures[fut])
    for part in parts:
        census.pixels = [x + y for x, y in zip(census.pixels, part.pixels)]
        census.wrong_size += part.wrong_size
        for k, v in part.unknown.items():
            census.unknown.setdefault(k, set()).update(v)
    census.wrong_size.sort()
    return census


def semantic_fields(rec, width: int, height: int, *, class_names, ignore: int, policy, read) -> dict:
    """The ``mask``, ``mask_classes`` (and, when the mask changes it, ``label_status``) of a row;
    a mask that does not decode or does not fit its image is raised or ledgered (the image is kept,
    unlabeled). ``read(path)`` reads a file inside the source."""
    from .errors import SizeMismatchError, SourceError

    out: dict = {"mask": None, "mask_classes": []}
    if rec.mask_path is None:
        return out
    name = str(rec.mask_path)
    try:
        data = read(rec.mask_path)
        facts = read_mask(data, n_classes=len(class_names), ignore=ignore, colours=rec.mask_colours, name=name)
        if (facts.width, facts.height) != (width, height):
            raise SizeMismatchError(f"mask is {facts.width}x{facts.height}, the image {width}x{height}", file=name,
                                    item=rec.image_id, expected="a mask of the image's size")
    except SourceError as exc:
        policy.handle(type(exc)(exc.message, file=exc.file or name, item=rec.image_id, expected=exc.expected),
                      action="dropped_annotation")
        out["label_status"] = "unlabeled"
        return out
    if facts.recoded:
        policy.note(rec.image_id, "mask_colours_mapped", "converted",
                    "RGB mask mapped to class indices through the source's colours", file=name)
    if facts.unknown_colours:
        shown = ", ".join(f"rgb{c} {n} px" for c, n in sorted(facts.unknown_colours.items())[:5])
        policy.note(rec.image_id, "unknown_mask_colour", "converted",
                    f"{sum(facts.unknown_colours.values())} pixels of colours no class has set to the ignore index "
                    f"{ignore}: {shown}", file=name)
    if facts.unknown:
        shown = ", ".join(f"{v} ({n} px)" for v, n in sorted(facts.unknown.items())[:5])
        policy.note(rec.image_id, "unknown_mask_index", "kept",
                    f"mask indices beyond the {len(class_names)} class{'es' if len(class_names) != 1 else ''} (kept; cvft "
                    f"check reports them): {shown}",
                    file=name)
    out["mask"] = {"bytes": facts.data, "path": None}
    out["mask_classes"] = [class_names[c] for c in facts.classes]
    out["label_status"] = "labeled" if facts.classes else "unlabeled"
    return out


def resize_mask(data: bytes, width: int, height: int) -> bytes:
    """A mask PNG resized with nearest neighbour (indices never blend), as an ``L`` PNG (``P``
    masks keep their palette)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        out = io.BytesIO()
        im.resize((width, height), Image.Resampling.NEAREST).save(out, "PNG")
    return out.getvalue()
