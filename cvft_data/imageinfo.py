"""Image facts without decoding pixels: bytes, content hash, displayed size, format, integrity.

``PIL.Image.open`` reads only the header, so the size and the EXIF orientation cost microseconds;
truncation is caught by checking the format's end marker (JPEG ``FFD9``, PNG ``IEND``) instead of
a full decode (the full decode is a check of its own, run in parallel by ``cvft check``).

Example:
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGB", (24, 16)).save(buf, "JPEG")
    >>> info = probe(buf.getvalue(), name="x.jpg")
    >>> (info.width, info.height, info.format)
    (24, 16, 'JPEG')
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import xxhash
from PIL import Image, ImageOps

from .errors import CorruptImageError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff",
                              ".webp", ".mpo"})
#: EXIF orientations that swap width and height when applied.
_TRANSPOSING = {5, 6, 7, 8}
_EXTENSION_OF_FORMAT = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif",
                        "WEBP": ".webp", "MPO": ".jpg"}

# Decompression bombs are an untrusted-input risk: keep PIL's guard, but make it an error, not a warning.
warnings.simplefilter("error", Image.DecompressionBombWarning)


@dataclass(frozen=True)
class ImageInfo:
    width: int          # displayed width (after EXIF orientation)
    height: int         # displayed height
    raw_width: int      # width of the stored pixels
    raw_height: int
    orientation: int    # EXIF orientation tag (1 = none)
    format: str         # PIL format name (JPEG, PNG, ...)
    xxh3: str           # xxh3-128 of the bytes, hex

    @property
    def extension(self) -> str:
        return _EXTENSION_OF_FORMAT.get(self.format, "." + self.format.lower())


def content_hash(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


#: Bytes of an image handed to the header parser when the image is a view into a buffer: JPEG
#: markers up to the scan (EXIF, XMP, ICC, thumbnails) fit in this almost always; when they do not,
#: the whole image is parsed. (``bytes`` are parsed in place, without a copy.)
HEADER_PREFIX = 256 * 1024

#: (raw width, raw height, EXIF orientation, PIL format): what the header says, no pixels decoded.
HeaderFacts = tuple[int, int, int, str]


def exif_of(im: Image.Image, data=None) -> Image.Exif:
    """The EXIF of an opened PIL image, without decoding pixels. Pillow's ``getexif`` decodes every
    PNG to look for an eXIf chunk after the pixel data; here that happens only when ``data`` (the
    encoded bytes) holds one. A broken EXIF block gives an empty one: it must not hide a good image."""
    if im.format == "PNG" and "exif" not in im.info and (data is None or b"eXIf" not in data):
        return Image.Exif()
    try:
        return im.getexif()
    except Exception:
        return Image.Exif()


def header_facts(im: Image.Image, data=None) -> HeaderFacts:
    """The header facts of an opened PIL image (``data``: see :func:`exif_of`)."""
    raw_w, raw_h = im.size
    try:
        orientation = int(exif_of(im, data).get(0x0112, 1) or 1)
    except (TypeError, ValueError):
        orientation = 1
    if im.format == "TIFF" and orientation in _TRANSPOSING:
        raw_w, raw_h = raw_h, raw_w   # Pillow reports a TIFF's size already turned by its orientation
    return raw_w, raw_h, orientation, im.format or "?"


def _truncated(data, fmt: str) -> bool:
    tail = bytes(data[-4096:]).rstrip(b"\x00\r\n ")
    if fmt in ("JPEG", "MPO"):
        return not tail.endswith(b"\xff\xd9")
    if fmt == "PNG":
        return b"IEND" not in tail[-12:]
    return False


def _decodes(data) -> bool:
    """True when the image decodes to its last row: a JPEG or PNG with bytes after its end marker
    (a motion photo's video, padding) is whole, a cut one is not. Run only when the end-marker
    check failed, so the common case never decodes."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format == "JPEG":
                im.draft("RGB", (max(1, im.size[0] // 8), max(1, im.size[1] // 8)))  # every scan, 1/8 the pixels
            im.load()
        return True
    except Exception as exc:
        if isinstance(exc, MemoryError):
            raise
        return False


def _parse_header(data) -> HeaderFacts:
    if not isinstance(data, bytes) and len(data) > HEADER_PREFIX and bytes(data[:3]) == b"\xff\xd8\xff":
        try:  # a JPEG's header from its first bytes: no copy of the whole image
            with Image.open(io.BytesIO(bytes(data[:HEADER_PREFIX]))) as im:
                return header_facts(im)
        except Exception:
            pass  # markers beyond the prefix (or a broken file): parse the whole image below
    with Image.open(io.BytesIO(data)) as im:
        return header_facts(im, data)


def probe(data, *, name: str, file: str | None = None, header: HeaderFacts | None = None) -> ImageInfo:
    """Size, orientation, format and hash of an encoded image (``bytes`` or a ``memoryview``);
    raises :class:`CorruptImageError`. ``header``: facts a connector already read from this file's
    header (camera-trap EXIF), so it is not parsed twice; the end marker and hash are still checked."""
    if header is None:
        try:
            header = _parse_header(data)
        except Exception as exc:  # any failure to parse the header (PIL raises many types) means unreadable
            if isinstance(exc, MemoryError):
                raise
            raise CorruptImageError(f"cannot read the image header ({exc})", file=file or name, item=name,
                                    expected="a JPEG, PNG, BMP, GIF, TIFF or WebP image") from None
    raw_w, raw_h, orientation, fmt = header
    if raw_w <= 0 or raw_h <= 0:
        raise CorruptImageError(f"image has size {raw_w}x{raw_h}", file=file or name, item=name,
                                expected="a positive width and height")
    if _truncated(data, fmt) and not _decodes(data):
        raise CorruptImageError(f"{fmt} data is truncated (no end-of-image marker)", file=file or name, item=name,
                                expected=f"a complete {fmt} file")
    w, h = (raw_h, raw_w) if orientation in _TRANSPOSING else (raw_w, raw_h)
    return ImageInfo(w, h, raw_w, raw_h, orientation, fmt, content_hash(data))


def sniff_extension(data: bytes) -> str:
    """File extension for encoded image bytes, from the magic number."""
    if data[:3] == b"\xff\xd8\xff":
        return ".jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if data[:2] == b"BM":
        return ".bmp"
    if data[:4] in (b"GIF8",):
        return ".gif"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return ".tif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return ".jpg"


def downscale(data: bytes, info: ImageInfo, max_side: int) -> tuple[bytes, int, int]:
    """Decode (at reduced size where JPEG allows), apply EXIF orientation, resize so the longer
    side is ``max_side``, and re-encode in the source format family. Returns bytes and new size."""
    scale = max_side / max(info.width, info.height)
    new_w, new_h = max(1, round(info.width * scale)), max(1, round(info.height * scale))
    with Image.open(io.BytesIO(data)) as im:
        if im.format == "JPEG":
            # DCT-domain downscale: decodes at 1/2, 1/4 or 1/8 size, several times faster
            draft_size = (new_w, new_h) if info.orientation not in _TRANSPOSING else (new_h, new_w)
            im.draft("RGB", draft_size)
        im = ImageOps.exif_transpose(im)
        im = im.resize((new_w, new_h), Image.Resampling.LANCZOS, reducing_gap=3.0)
        out = io.BytesIO()
        if info.format in ("JPEG", "MPO"):
            im.convert("RGB").save(out, "JPEG", quality=95)
        else:
            im.save(out, "PNG")
    return out.getvalue(), new_w, new_h
