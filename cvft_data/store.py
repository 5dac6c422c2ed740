"""The on-disk layout of a cvft dataset, known here only: ``cvft.json``, the ledger, the partial
folder a build writes into, replace-into-place, and reading rows and columns without decoding
images.

::

    DATASET/
    ├── cvft.json               task, classes, per-split counts, source, ledger summary, content hash
    ├── ledger.jsonl            every dropped or changed item
    ├── dataset_dict.json       the save_to_disk layout: datasets.load_from_disk opens it
    └── train/ validation/ test/   Arrow shards + state.json + dataset_info.json

Example:
    >>> import pathlib, tempfile
    >>> from cvft_data.sample import write_coco_sample
    >>> from cvft_data.api import ingest
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = ingest(write_coco_sample(tmp / "src", n_images=4), tmp / "ds")
    >>> read_info(tmp / "ds")["task"], column(open_dataset(tmp / "ds")["train"], "label_status")[:2]
    ('detection', ['empty', 'labeled'])
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterator

from .errors import OutputError, UsageError
from .ledger import Ledger

CVFT_JSON = "cvft.json"
LEDGER_JSONL = "ledger.jsonl"


def require_dataset(path: str | os.PathLike) -> Path:
    """``path`` as a Path, or a usage error when it holds no ``cvft.json``."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{p} does not exist")
    if not (p / CVFT_JSON).is_file():
        raise UsageError(f"{p} is not a cvft dataset (no {CVFT_JSON}); build one with cvft-ingest")
    return p


def read_info(path: str | os.PathLike) -> dict:
    """The dataset's ``cvft.json``."""
    p = require_dataset(path) / CVFT_JSON
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UsageError(f"{p} is not valid JSON ({exc}); ingest the dataset again") from None


def open_dataset(path: str | os.PathLike):
    """The :class:`datasets.DatasetDict` at ``path`` (memory-mapped, nothing decoded)."""
    import datasets

    from .schema import upgrade_v1

    dsd = datasets.load_from_disk(str(require_dataset(path)))
    return datasets.DatasetDict({s: upgrade_v1(d) for s, d in dsd.items()})


def read_ledger(path: str | os.PathLike) -> Ledger:
    return Ledger.read_jsonl(require_dataset(path) / LEDGER_JSONL)


def partial_dir_for(out: Path) -> Path:
    """Where a build of ``out`` writes its committed shards until it renames the dataset into place."""
    return out.parent / f".{out.name}.cvft-partial"


@contextlib.contextmanager
def output_lock(out: str | os.PathLike, *, shared: bool = False):
    """Hold the lock of the output ``out`` for the duration of the block: a second ingest, export
    or split to the same output is refused while the first runs (two runs never share an output).
    The lock is ``.<name>.cvft-lock`` beside ``out`` (``flock``; released when the process dies).
    ``shared``: the shards of one ingest (``--shard I/N``) hold it together; a one-shot run or the
    commit, which need it alone, are refused while any of them runs."""
    out = Path(out)
    path = out.parent / f".{out.name}.cvft-lock"
    try:
        import fcntl
    except ImportError:   # no flock (Windows): no lock, as before
        yield
        return
    while True:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot write {out}: {exc.strerror} ({exc.filename or out.parent})") from None
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise OutputError(f"another cvft run (pid {holder}) is writing {out}; wait for it to finish or choose "
                              "another output") from None
        try:   # the holder before us may have removed the file after we opened it: lock the current one
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    if not shared:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
    try:
        yield
    finally:
        try:
            if not shared:   # other shards may still hold a shared lock on this file
                os.unlink(path)
        finally:
            os.close(fd)


def replace_dir(src: Path, dst: Path, overwrite: bool) -> None:
    """Rename the finished folder ``src`` to ``dst`` (replacing it when ``overwrite``)."""
    old = None
    if dst.exists():
        if not overwrite:
            raise UsageError(f"{dst} already exists; pass --overwrite to replace it")
        old = dst.parent / f".{dst.name}.cvft-old-{os.getpid()}"
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``path`` through a temporary file renamed into place: a reader (or a killed run) sees
    the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def column(ds, name: str) -> list:
    """One column as a Python list (respects ``select``; indexing ``ds[name]`` element by element is
    slow in datasets 4+, where it returns a lazy column)."""
    return ds.select_columns([name]).to_dict()[name]


def bytes_view(ds):
    """``ds`` with every image column (``image``, ``mask``, ``panoptic``) as ``{"bytes", "path"}``:
    read without decoding (exporters copy the bytes, the renderer decodes at the size it needs)."""
    from datasets import Image

    for name, feature in ds.features.items():
        if isinstance(feature, Image) and feature.decode:
            ds = ds.cast_column(name, Image(decode=False))
    return ds


def present(ds, column: str) -> list[bool]:
    """Per row, whether ``column`` holds a value (a mask, a panoptic PNG), from Arrow's validity
    bits: no image bytes are copied out."""
    out: list[bool] = []
    for batch in ds.select_columns([column]).with_format("arrow").iter(batch_size=10_000):
        out += batch.column(column).is_valid().to_pylist()
    return out


def rows(ds, columns: list[str]) -> Iterator[dict]:
    """The rows of ``ds`` restricted to ``columns`` (those it has), read a thousand at a time."""
    cols = [c for c in columns if c in ds.column_names]
    for batch in ds.select_columns(cols).iter(batch_size=1000):
        n = len(batch[cols[0]])
        for i in range(n):
            yield {c: batch[c][i] for c in cols}


class OpenedDataset:
    """A dataset opened once: its folder, its ``cvft.json`` and its splits (opened on first use).
    What the trainer hands around instead of a path each part would read again.

    >>> import pathlib, tempfile
    >>> from cvft_data.sample import write_coco_sample
    >>> from cvft_data.api import ingest
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = ingest(write_coco_sample(tmp / "src", n_images=4), tmp / "ds")
    >>> data = OpenedDataset.of(tmp / "ds")
    >>> data.info["task"], list(data.splits)
    ('detection', ['train'])
    """

    def __init__(self, path: str | os.PathLike):
        self.path = require_dataset(path)
        self.info = read_info(self.path)
        self._splits = None

    @classmethod
    def of(cls, data: OpenedDataset | str | os.PathLike) -> OpenedDataset:
        return data if isinstance(data, OpenedDataset) else cls(data)

    @property
    def splits(self):
        """The :class:`datasets.DatasetDict`, memory-mapped on first use."""
        if self._splits is None:
            self._splits = open_dataset(self.path)
        return self._splits

    def __fspath__(self) -> str:
        return str(self.path)
