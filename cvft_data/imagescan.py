"""One pass over a dataset's image bytes: full decode (corruption), content hash, perceptual hash.

The decode runs in worker processes over index ranges of the memory-mapped dataset, so nothing
but small results crosses the process boundary.

Example:
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGB", (32, 24), "white").save(buf, "PNG")
    >>> r = scan_bytes(buf.getvalue())
    >>> r.error is None, len(r.xxh3), r.dhash
    (True, 32, 0)
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from . import progress
from .imageinfo import content_hash


@dataclass(frozen=True)
class ScanResult:
    xxh3: str
    dhash: int | None      # 64-bit difference hash of the displayed image (None when it did not decode)
    error: str | None      # why the full decode failed
    brightness: float | None = None   # mean luminance, 0..1 (near-black night frames)
    colour: float | None = None       # mean chroma, 0..1 (infrared night images are grey, daylight ones not)


def tone(im: Image.Image) -> tuple[float, float]:
    """(brightness, colourfulness) of an image from a 16x16 thumbnail: mean luminance and the mean
    spread between its RGB channels, both 0..1."""
    a = np.asarray(im.convert("RGB").resize((16, 16), Image.Resampling.BOX), dtype=np.float32) / 255.0
    lum = float((0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]).mean())
    return lum, float((a.max(axis=2) - a.min(axis=2)).mean())


def dhash(im: Image.Image) -> int:
    """64-bit difference hash: 9x8 greyscale, one bit per horizontal gradient sign.
    Robust to re-encoding and resizing, cheap enough to run on every image."""
    g = np.asarray(im.convert("L").resize((9, 8), Image.Resampling.BOX), dtype=np.int16)
    bits = (g[:, 1:] > g[:, :-1]).flatten()
    return int(np.packbits(bits, bitorder="little").view("<u8")[0])


def scan_bytes(data: bytes) -> ScanResult:
    h = content_hash(data)
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # the full decode: truncated or corrupt data fails here
            im = ImageOps.exif_transpose(im)
            return ScanResult(h, dhash(im), None, *tone(im))
    except Exception as exc:  # any decoder failure is a finding, not a crash
        return ScanResult(h, None, f"{type(exc).__name__}: {exc}")


def _image_bytes(image: dict) -> bytes:
    if image.get("bytes") is not None:
        return image["bytes"]
    with open(image["path"], "rb") as f:
        return f.read()


_TABLES: dict = {}


def _image_column(path: str, split: str):
    """The split's ``image`` column as an Arrow table, memory-mapped once per process.
    Datasets saved by cvft (and by ``save_to_disk``) have no indices mapping, so Arrow row i is row i."""
    key = (path, split)
    if key not in _TABLES:
        import datasets

        ds = datasets.load_from_disk(path)[split]
        if ds._indices is not None:  # a selected view: materialise the order it shows
            ds = ds.flatten_indices()
        _TABLES[key] = ds.data.table.select(["image"])
    return _TABLES[key]


def _scan_range(path: str, split: str, start: int, stop: int) -> list[tuple[int, ScanResult]]:
    images = _image_column(path, split).slice(start, stop - start).column("image").to_pylist()
    out = []
    for i, image in zip(range(start, stop), images):
        try:
            out.append((i, scan_bytes(_image_bytes(image))))
        except OSError as exc:
            out.append((i, ScanResult("", None, f"cannot read the image: {exc}")))
    return out


def scan_dataset(path: str, split_sizes: dict[str, int], workers: int = 0, chunk: int = 256
                 ) -> dict[str, list[ScanResult]]:
    """ScanResult per row, per split. ``workers=0``: one per core; small datasets run in-process."""
    workers = workers or os.cpu_count() or 1
    total = sum(split_sizes.values())
    jobs = [(split, s, min(s + chunk, n)) for split, n in split_sizes.items() for s in range(0, n, chunk)]
    results: dict[str, list] = {split: [None] * n for split, n in split_sizes.items()}
    with progress.bar(total=total, desc="decode") as shown:
        if workers <= 1 or total <= chunk:
            for split, a, b in jobs:
                for i, r in _scan_range(path, split, a, b):
                    results[split][i] = r
                shown.update(b - a)
            return results
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(_scan_range, path, split, a, b): (split, b - a) for split, a, b in jobs}
            for fut in as_completed(futures):
                split, n = futures[fut]
                for i, r in fut.result():
                    results[split][i] = r
                shown.update(n)
    return results
