"""cvft_data: the canonical dataset, its builder, loaders, exporters and CLI.

Example:
    >>> import cvft_data                                                 # doctest: +SKIP
    >>> info = cvft_data.ingest("exports/coco", "datasets/coco")         # doctest: +SKIP
    >>> ds = cvft_data.load("datasets/coco")                             # doctest: +SKIP
    >>> ds["train"][0]["objects"]["bbox"]                                # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

from .api import export, info, ingest, load, read_ledger  # noqa: E402
from .errors import (  # noqa: E402
                     AnnotationError,
                     CorruptImageError,
                     CvftError,
                     FormatDetectionError,
                     GeometryError,
                     MalformedFileError,
                     MissingImageError,
                     SizeMismatchError,
                     SourceError,
                     UnknownClassError,
                     UnsafePathError,
                     UsageError,
)
from .ledger import ErrorPolicy, Ledger, LedgerEntry  # noqa: E402
from .schema import SCHEMA_VERSION, TASKS, features_for  # noqa: E402

__all__ = [
    "AnnotationError", "CorruptImageError", "CvftError", "ErrorPolicy", "FormatDetectionError", "GeometryError",
    "Ledger", "LedgerEntry", "MalformedFileError", "MissingImageError", "SCHEMA_VERSION", "SizeMismatchError",
    "SourceError", "TASKS", "UnknownClassError", "UnsafePathError", "UsageError", "__version__", "export",
    "features_for", "info", "ingest", "load", "read_ledger",
]
