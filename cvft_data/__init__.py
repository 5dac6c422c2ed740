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

# Names are imported on first use (PEP 562), so that ``import connectors`` -- which needs only the
# kernel (errors, paths, records, vocabulary) -- does not import ``datasets`` and ``pyarrow``.
_LAZY = {
    "api": ("export", "info", "ingest", "load", "read_ledger"),
    "balance": ("class_weights", "sample_weights", "subsample_nulls", "weighted_sampler"),
    "checks": ("CheckOptions", "CheckReport", "Finding", "check"),
    "errors": ("AnnotationError", "CorruptImageError", "CvftError", "FormatDetectionError", "GeometryError",
               "MalformedFileError", "MissingImageError", "SizeMismatchError", "SourceError", "UnknownClassError",
               "UnsafePathError", "UsageError", "CheckpointError", "EmptyDatasetError"),
    "ledger": ("ErrorPolicy", "Ledger", "LedgerEntry"),
    "schema": ("SCHEMA_VERSION", "features_for"),
    "vocabulary": ("TASKS",),
    "splits": ("split",),
    "convert": ("convert",),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'cvft_data' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "AnnotationError", "CheckOptions", "CheckReport", "Finding", "check", "class_weights", "sample_weights",
    "split", "convert", "subsample_nulls", "weighted_sampler", "CorruptImageError", "CvftError", "ErrorPolicy", "FormatDetectionError", "GeometryError",
    "Ledger", "LedgerEntry", "MalformedFileError", "MissingImageError", "SCHEMA_VERSION", "SizeMismatchError",
    "SourceError", "TASKS", "UnknownClassError", "UnsafePathError", "UsageError", "CheckpointError", "EmptyDatasetError",
    "__version__", "export",
    "features_for", "info", "ingest", "load", "read_ledger",
]
