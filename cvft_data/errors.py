"""The cvft exception tree, drawn once.

::

    CvftError                      anything cvft raises on purpose
    ├── UsageError                 the caller asked for something impossible (bad option, output exists);
    │                              also a ValueError
    ├── FormatDetectionError       no connector recognised the source; carries every rejection reason
    ├── CheckpointError            a weights file that cannot be loaded safely or does not fit the model
    ├── OutputError                the output cannot be written (a full disk, a read-only folder)
    └── SourceError                the source data is wrong; names the file, the item and what was expected
        ├── MalformedFileError     an annotation file that does not parse (JSON, XML, YAML, text)
        ├── UnsafePathError        a file name that would escape the dataset root (``../``, absolute paths)
        ├── MissingImageError      an annotation refers to an image file that is not there
        ├── CorruptImageError      an image whose header does not parse or whose data is truncated
        ├── SizeMismatchError      the annotation file's image size differs from the real image
        ├── EmptyDatasetError      an ingest that ended with no images, or with every annotation dropped
        └── AnnotationError        one annotation is wrong
            ├── UnknownClassError  a class id or name the source does not declare
            └── GeometryError      a box or polygon that is degenerate or outside the image

Every ``SourceError`` can be handed to an :class:`~cvft_data.ledger.ErrorPolicy`: under ``raise`` it
propagates, under ``skip`` it becomes a ledger entry and the offending item is dropped or mended.
All exceptions are plain (picklable) so that worker processes can send them back.
"""

from __future__ import annotations


class CvftError(Exception):
    """Base class of every error cvft raises on purpose."""


class UsageError(CvftError, ValueError):
    """The caller asked for something that cannot be done (CLI exit code 2). Also a ``ValueError``,
    as a bad argument is in Python; only this class means "usage error": a ``ValueError`` from a bug
    is never reported as one."""


class CheckpointError(CvftError):
    """A checkpoint that cvft will not load: it pickles code, holds no state dict, or does not fit
    the model (CLI exit code 1)."""


class OutputError(CvftError):
    """The output cannot be written: a full disk, a read-only or forbidden folder (CLI exit code 1).
    Nothing half-written is published."""


class FormatDetectionError(CvftError):
    """No connector recognised the source.

    ``reasons`` maps each connector name to why it said no.
    """

    def __init__(self, root: str, reasons: dict[str, str]):
        self.root = root
        self.reasons = reasons
        lines = "\n".join(f"  - {name}: {why}" for name, why in reasons.items())
        super().__init__(f"no connector recognised {root}; each one said:\n{lines}")

    def __reduce__(self):
        return (type(self), (self.root, self.reasons))


class SourceError(CvftError):
    """Bad source data. ``file`` is the file at fault, ``item`` the image or annotation in it,
    ``expected`` what cvft expected to find there, ``code`` a short machine-readable reason."""

    code = "source_error"

    def __init__(self, message: str, *, file: str | None = None, item: str | None = None,
                 expected: str | None = None):
        self.message = message
        self.file = file
        self.item = item
        self.expected = expected
        parts = [message]
        if item:
            parts.append(f"item: {item}")
        if file:
            parts.append(f"file: {file}")
        if expected:
            parts.append(f"expected: {expected}")
        super().__init__("; ".join(parts))

    def __reduce__(self):
        return (_rebuild_source_error, (type(self), self.message, self.file, self.item, self.expected))


def _rebuild_source_error(cls, message, file, item, expected):
    return cls(message, file=file, item=item, expected=expected)


class MalformedFileError(SourceError):
    code = "malformed_file"


class UnsafePathError(SourceError):
    code = "unsafe_path"


class MissingImageError(SourceError):
    code = "missing_image"


class CorruptImageError(SourceError):
    code = "corrupt_image"


class SizeMismatchError(SourceError):
    code = "size_mismatch"


class EmptyDatasetError(SourceError):
    """An ingest that would publish nothing useful: zero images, or images whose every annotation
    was dropped. ``ledger`` (a list of ledger entry dicts) says what was dropped and why; nothing is
    written at the output."""

    code = "empty_dataset"

    def __init__(self, message: str, *, file: str | None = None, item: str | None = None,
                 expected: str | None = None, ledger: list[dict] | None = None):
        super().__init__(message, file=file, item=item, expected=expected)
        self.ledger = list(ledger or [])


class AnnotationError(SourceError):
    code = "bad_annotation"


class UnknownClassError(AnnotationError):
    code = "unknown_class"


class GeometryError(AnnotationError):
    code = "bad_geometry"
