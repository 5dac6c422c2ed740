"""What a resumed build may reuse: a committed shard is reused only when its files are whole
(fsynced at commit; size and row count checked again) and its records are the ones the source
gives now (a digest of each record and its file's size and modification time), so an interrupted
run never mixes old and new labels.

Example:
    >>> from cvft_data.records import ImageRecord
    >>> a = [ImageRecord(image_id="a.jpg", path=None, label="cat")]
    >>> chunk_digest(a) == chunk_digest([ImageRecord(image_id="a.jpg", path=None, label="cat")])
    True
    >>> chunk_digest(a) == chunk_digest([ImageRecord(image_id="a.jpg", path=None, label="dog")])
    False
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import xxhash

log = logging.getLogger(__name__)


def chunk_digest(records: list) -> str:
    """A digest of ``records`` (everything they carry) and of their image files' sizes and times."""
    h = xxhash.xxh3_128()
    for rec in records:
        h.update(repr(rec).encode("utf-8", "surrogatepass"))
        if rec.path is not None:
            try:
                st = os.stat(rec.path)
                h.update(f"|{st.st_size}|{st.st_mtime_ns}".encode())
            except OSError:
                h.update(b"|missing")
        h.update(b"\n")
    return h.hexdigest()


def fsync_file(path: Path) -> None:
    """Flush ``path`` to the disk (a committed shard must survive a power cut, not only a kill)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def arrow_rows(path: Path) -> int | None:
    """Rows of an Arrow IPC stream file (batch headers only, memory-mapped), or None if unreadable."""
    import pyarrow as pa

    try:
        with pa.memory_map(str(path)) as source:
            return sum(batch.num_rows for batch in pa.ipc.open_stream(source))
    except (OSError, pa.ArrowInvalid):
        return None


def read_manifest(work: Path, index: int) -> dict | None:
    """The committed manifest of chunk ``index``, when its files are whole (the size and the row
    count it recorded); None when it is missing, unreadable or its files are damaged."""
    try:
        manifest = json.loads((work / f"shard-{index:06d}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for f in manifest.get("files", {}).values():
        p = work / f["file"]
        try:
            size = p.stat().st_size
        except OSError:
            return None
        if size != f.get("bytes") or arrow_rows(p) != f["rows"]:
            log.info("shard %s: %s is damaged; it is written again", index, f["file"])
            return None
    return manifest


def reusable(manifest: dict, records: list) -> bool:
    """True when a whole committed shard (:func:`read_manifest`) describes ``records`` as they are now."""
    if manifest.get("records_digest") != chunk_digest(records):
        log.info("shard %s: the source changed since the interrupted run; it is written again", manifest.get("index"))
        return False
    return True
