"""Camera EXIF without decoding pixels: capture time, make, model, serial (Reconyx strings are
NUL-padded and space-padded; both are stripped)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from PIL import Image

from cvft_data.imageinfo import exif_of, header_facts
from cvft_data.paths import prefetch

_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL, _DATETIME_DIGITIZED, _DATETIME = 36867, 36868, 306
_MAKE, _MODEL, _BODY_SERIAL = 271, 272, 42033


def _clean(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    s = str(v).replace("\x00", "").strip()
    return s or None


def parse_exif_datetime(text: str | None) -> datetime | None:
    """``2022:04:17 11:19:14`` (EXIF's colons in the date) -> datetime; None when unreadable.

    >>> parse_exif_datetime("2022:04:17 11:19:14\\x00")
    datetime.datetime(2022, 4, 17, 11, 19, 14)
    """
    t = _clean(text)
    if not t:
        return None
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y:%m:%d %H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(t[:19], fmt)
        except ValueError:
            continue
    return None


def read_exif(path: Path) -> dict:
    """{"datetime": datetime|None, "make", "model", "serial", "header"} from the header only;
    ``header`` is the image's :data:`~cvft_data.imageinfo.HeaderFacts` (None when unreadable), so
    the builder does not parse the header again."""
    try:
        with Image.open(path) as im:
            header = header_facts(im)
            exif = exif_of(im)
            sub = exif.get_ifd(_EXIF_IFD) if exif else {}
    except Exception:  # an unreadable header is the builder's finding, not the EXIF reader's
        return {"datetime": None, "make": None, "model": None, "serial": None, "header": None}
    dt = sub.get(_DATETIME_ORIGINAL) or sub.get(_DATETIME_DIGITIZED) or exif.get(_DATETIME)
    return {"datetime": parse_exif_datetime(dt), "make": _clean(exif.get(_MAKE)), "model": _clean(exif.get(_MODEL)),
            "serial": _clean(sub.get(_BODY_SERIAL)), "header": header}


def read_exifs(paths: list[Path]) -> list[dict]:
    """:func:`read_exif` of each path (one task for a worker pool). The whole files are prefetched
    first: their bytes are read next, by the shard writer, and on a cold cache this pass is what
    gets the disk going."""
    prefetch(paths)
    return [read_exif(p) for p in paths]
