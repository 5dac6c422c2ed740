"""The public Python API: ingest, load, info, read_ledger, export."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from .errors import UsageError
from .ledger import Ledger
from .store import CVFT_JSON, LEDGER_JSONL, open_dataset, read_info, require_dataset  # noqa: F401 (re-exported)
from .store import read_ledger as _read_ledger


def ingest(src: str | os.PathLike, out: str | os.PathLike, *, format: str | None = None, on_error: str = "raise",
           reference: bool = False, max_side: int | None = None, split: str | dict[str, float] | None = None,
           seed: int = 0, workers: int = 1, overwrite: bool = False, progress: bool = False,
           on_progress: Callable[[int], None] | None = None, shard: str | tuple[int, int] | None = None,
           commit: bool = False, **connector_options: Any) -> dict:
    """Read ``src`` with the named (or detected) connector and write a cvft dataset at ``out``.

    Returns the dataset's ``cvft.json`` content (task, classes, per-split counts, ledger summary).
    ``shard="I/N"`` writes only shard I of N (a SLURM array task, a Ray task) and returns what it
    wrote; ``commit=True`` publishes the shards once all N are there (:mod:`cvft_data.shards`).

    Example:
        >>> import pathlib, tempfile
        >>> from cvft_data.sample import write_coco_sample
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> info = ingest(write_coco_sample(tmp / "src", n_images=10), tmp / "ds", on_error="skip")
        >>> info["task"], info["classes"], info["splits"]["train"]["images"], info["ledger"]["entries"]
        ('detection', ['wallaby', 'fox', 'echidna'], 8, 0)
    """
    import connectors

    from .builder import BuildOptions, build_dataset
    from .guard import guarded_call
    from .splits import parse_ratios

    cls = connectors.get(format) if format else connectors.detect(src)
    conn = guarded_call(lambda: cls(src, on_error=on_error, **connector_options), source=str(src), connector=cls.name)
    ratios = parse_ratios(split) if isinstance(split, str) else split
    if max_side is not None and max_side < 8:
        raise UsageError(f"--max-side must be at least 8 pixels, not {max_side}")
    from .shards import parse_shard

    opts = BuildOptions(on_error=on_error, reference=reference, max_side=max_side, split_ratios=ratios, seed=seed,
                        workers=workers, overwrite=overwrite, progress=progress,
                        connector_options={k: str(v) for k, v in connector_options.items()},
                        shard=parse_shard(shard) if isinstance(shard, str) else shard, commit=commit)
    return build_dataset(conn, out, opts, on_progress=on_progress)


def load(path: str | os.PathLike):
    """The :class:`datasets.DatasetDict` saved at ``path`` (memory-mapped, nothing decoded).

    Example:
        >>> import pathlib, tempfile
        >>> from cvft_data.sample import write_coco_sample
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> _ = ingest(write_coco_sample(tmp / "src", n_images=5), tmp / "ds")
        >>> ds = load(tmp / "ds")
        >>> row = ds["train"][0]
        >>> row["image_id"], row["image"].size, (row["width"], row["height"])
        ('images/train/site00/IMG_0000.JPG', (160, 120), (160, 120))
    """
    return open_dataset(path)


def info(path: str | os.PathLike) -> dict:
    """The dataset's ``cvft.json``: task, classes, per-split counts, source, ledger summary."""
    return read_info(path)


def read_ledger(path: str | os.PathLike) -> Ledger:
    """Every dropped or changed item of the dataset's ingest."""
    return _read_ledger(path)


def export(path: str | os.PathLike, to: str, out: str | os.PathLike, *, overwrite: bool = False,
           options: dict | None = None) -> dict:
    """Write the dataset at ``path`` as ``yolo``, ``coco``, ``imagefolder``, ``csv`` (image-level
    labels, Roboflow's multi-label layout) or ``camtrap-dp`` (a Camtrap DP 1.0.2 package; project
    metadata in ``options``) into ``out``.

    Returns a summary with ``images``, ``objects`` and the export ledger (what the target format
    could not carry). Example:

        >>> import pathlib, tempfile
        >>> from cvft_data.sample import write_coco_sample
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> _ = ingest(write_coco_sample(tmp / "src", n_images=5), tmp / "ds")
        >>> summary = export(tmp / "ds", "yolo", tmp / "yolo")
        >>> summary["images"], (tmp / "yolo" / "data.yaml").is_file()
        (5, True)
    """
    from .exporters import EXPORTERS, TAKES_OPTIONS

    if to not in EXPORTERS:
        raise UsageError(f"unknown export format {to!r}; choose one of {', '.join(sorted(EXPORTERS))}")
    if options and to not in TAKES_OPTIONS:
        raise UsageError(f"--to {to} takes no options (given: {sorted(options)})")
    kwargs = {"options": options or {}} if to in TAKES_OPTIONS else {}
    from .guard import output_errors
    from .store import output_lock

    with output_lock(out), output_errors(out):
        return EXPORTERS[to](require_dataset(path), Path(out), overwrite=overwrite, **kwargs)
