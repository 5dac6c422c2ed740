"""cvft_data: the canonical dataset, its builder, loaders, exporters and CLI.

Example:
    >>> import cvft_data, pathlib, tempfile
    >>> from cvft_data.sample import write_coco_sample
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> info = cvft_data.ingest(write_coco_sample(tmp / "src", n_images=5), tmp / "ds")
    >>> ds = cvft_data.load(tmp / "ds")
    >>> ds["train"][1]["objects"]["bbox"]
    [[35.0, 36.0, 33.0, 31.0], [64.0, 68.0, 26.0, 34.0]]
"""

from __future__ import annotations

__version__ = "0.1.0"

from .api import export, info, ingest, load, read_ledger  # noqa: E402
from .balance import class_weights, sample_weights, subsample_nulls, weighted_sampler  # noqa: E402
from .checks import CheckOptions, CheckReport, Finding, check  # noqa: E402
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
from .splits import split  # noqa: E402

__all__ = [
    "AnnotationError", "CheckOptions", "CheckReport", "Finding", "check", "class_weights", "sample_weights",
    "split", "subsample_nulls", "weighted_sampler", "CorruptImageError", "CvftError", "ErrorPolicy", "FormatDetectionError", "GeometryError",
    "Ledger", "LedgerEntry", "MalformedFileError", "MissingImageError", "SCHEMA_VERSION", "SizeMismatchError",
    "SourceError", "TASKS", "UnknownClassError", "UnsafePathError", "UsageError", "__version__", "export",
    "features_for", "info", "ingest", "load", "read_ledger",
]
