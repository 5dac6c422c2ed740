"""Write canonical rows to one Arrow IPC stream file (the format ``save_to_disk`` writes), fast.

Ingest is a copy job: hundreds of KB of JPEG per row go from a file to an Arrow file. Two things
decide its speed, and both are about memory, not Python: every fresh ``bytes`` object of that size
is fresh pages from the kernel (page faults cost more than the copy), and every extra copy is a
pass over the data. So image files are read straight into an :class:`ImageArena`, a buffer that
lives as long as the worker process, and a record batch's ``image.bytes`` column *is* that buffer
(no join, no copy); the other columns are converted column-wise from rows that are already plain
Python (no per-row ``Features.encode_example`` walk).

Example:
    >>> import io, pathlib, tempfile
    >>> from PIL import Image
    >>> from cvft_data.schema import features_for
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> buf = io.BytesIO(); Image.new("RGB", (8, 8)).save(buf, "JPEG"); _ = (tmp / "a.jpg").write_bytes(buf.getvalue())
    >>> w = ShardWriter(tmp / "part.arrow", features_for("classification", ["cat"]))
    >>> view = w.arena.read_file(tmp / "a.jpg")
    >>> w.write({"image_id": "a.jpg", "image": {"bytes": view, "path": None}, "width": 8, "height": 8,
    ...          "label": "cat", "label_status": "labeled", "group": None, "meta": {}})
    >>> w.close()
    1
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: Rows per Arrow record batch at most: a row carries the image bytes, so batches stay small.
WRITER_BATCH_SIZE = 32
#: Bytes of images per record batch at most (the arena's size): the batch is flushed before a file
#: that would not fit is read. One image larger than this gets an arena of its own size.
ARENA_BYTES = 16 * 2**20

# Arenas are kept for the life of the worker process and handed from shard to shard: the pages are
# faulted in once, not once per shard.
_FREE_ARENAS: list[ImageArena] = []


class ImageArena:
    """A reusable buffer holding the encoded images of one record batch, back to back.

    :meth:`read_file` and :meth:`add` return a ``memoryview`` of the image inside the buffer;
    :meth:`rollback` forgets images added after a :meth:`mark` (a dropped row leaves no gap);
    :meth:`reset` empties it once the batch is written. ``on_full`` is called (to write the
    pending batch) when the next image does not fit.
    """

    def __init__(self, capacity: int | None = None):
        self.buf = bytearray(capacity or ARENA_BYTES)
        self.view = memoryview(self.buf)
        self.used = 0
        self.batch = 0  # counts resets, so that a mark taken before one is recognised
        self.on_full = None

    def _reserve(self, n: int) -> memoryview:
        if self.used + n > len(self.buf):
            if self.on_full is not None and self.used:
                self.on_full()  # writes the pending rows, then calls reset()
            if n > len(self.buf):  # one image bigger than the arena: a bigger one (no rows are pending)
                self.buf = bytearray(n)
                self.view = memoryview(self.buf)
        start = self.used
        self.used += n
        return self.view[start:start + n]

    def read_file(self, path: str | os.PathLike) -> memoryview:
        """Read the whole file into the arena (one ``readinto``; no intermediate ``bytes``)."""
        with open(path, "rb", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            slot = self._reserve(size)
            got = 0
            while got < size:  # readinto may return short counts (network file systems, signals)
                n = f.readinto(slot[got:])
                if not n:
                    break
                got += n
        if got < size:  # the file shrank while being read
            self.used -= size - got
            return slot[:got]
        return slot

    def add(self, data) -> memoryview:
        """Copy bytes that came from elsewhere (a zip member, a downscaled image) into the arena."""
        slot = self._reserve(len(data))
        slot[:] = data
        return slot

    def owns(self, view: Any) -> bool:
        return isinstance(view, memoryview) and view.obj is self.buf

    def mark(self) -> tuple[int, int]:
        return self.batch, self.used

    def rollback(self, mark: tuple[int, int]) -> None:
        """Forget what was added since ``mark`` (if the batch was written since, all of the new one)."""
        batch, used = mark
        self.used = used if batch == self.batch else 0

    def reset(self) -> None:
        self.used = 0
        self.batch += 1


def release_arenas() -> None:
    """Free the kept arenas (the builder calls this when it wrote shards in its own process)."""
    _FREE_ARENAS.clear()


def take_arena() -> ImageArena:
    return _FREE_ARENAS.pop() if _FREE_ARENAS else ImageArena()


def give_back_arena(arena: ImageArena) -> None:
    arena.reset()
    arena.on_full = None
    if len(arena.buf) <= ARENA_BYTES:  # an arena grown for one huge image is not kept
        _FREE_ARENAS.append(arena)


def _image_column(values: list, arena: ImageArena):
    """The ``Image`` column (struct of bytes and path). When every row's bytes are consecutive
    views of the arena (the usual case) the data buffer is the arena itself; otherwise the bytes
    are joined once. None when rows hold paths or nulls (let ``datasets`` build it)."""
    import numpy as np
    import pyarrow as pa

    if any(v is None or v.get("bytes") is None for v in values):
        return None
    datas = [v["bytes"] for v in values]
    sizes = np.fromiter((len(d) for d in datas), dtype=np.int64, count=len(datas))
    offsets = np.zeros(len(datas) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    if offsets[-1] >= 2**31:
        return None
    # Rows are written in the order their images were read and a dropped row's bytes are rolled
    # back, so arena views that add up to the arena's fill level tile it exactly, in row order.
    contiguous = offsets[-1] == arena.used and all(arena.owns(d) for d in datas)
    data = pa.py_buffer(arena.view[:arena.used]) if contiguous else pa.py_buffer(b"".join(datas))
    binary = pa.BinaryArray.from_buffers(pa.binary(), len(datas), [None, pa.py_buffer(offsets.astype(np.int32)), data])
    paths = pa.array([v.get("path") for v in values], pa.string())
    return pa.StructArray.from_arrays([binary, paths], names=["bytes", "path"])


def _column(feature, values: list, arrow_type):
    """One non-image column as an Arrow array, from rows of plain Python values."""
    import pyarrow as pa
    from datasets import ClassLabel, Json, Value
    from datasets.features.features import encode_nested_example

    if isinstance(feature, Value):
        encoded = values
    elif isinstance(feature, ClassLabel):
        index = {n: i for i, n in enumerate(feature.names)}
        encoded = [index[v] if isinstance(v, str) else v for v in values]
    elif isinstance(feature, Json):
        encoded = [feature.encode_example(v) for v in values]
    else:  # nested (objects, segments): the rows are plain Python, so no cast_to_python_objects pass
        encoded = [encode_nested_example(feature, v) for v in values]
        storage = _storage_type(arrow_type)
        if storage != arrow_type:  # pyarrow builds nested extension types (JSON) only by a cast
            return pa.array(encoded, type=storage).cast(arrow_type)
    return pa.array(encoded, type=arrow_type)


def _storage_type(t):
    """``t`` with every extension type (``arrow.json``) replaced by its storage type."""
    import pyarrow as pa

    if isinstance(t, pa.BaseExtensionType):
        return _storage_type(t.storage_type)
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_storage_type(f.type)) for f in t])
    if pa.types.is_fixed_size_list(t):
        return pa.list_(t.value_field.with_type(_storage_type(t.value_type)), t.list_size)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        make = pa.list_ if pa.types.is_list(t) else pa.large_list
        return make(t.value_field.with_type(_storage_type(t.value_type)))
    return t


class ShardWriter:
    """One split of one shard as an Arrow IPC stream, rows converted in batches of at most
    :data:`WRITER_BATCH_SIZE` rows or one arena of image bytes."""

    def __init__(self, path: Path, features):
        import pyarrow as pa
        from datasets import Image

        self.features = features
        self.schema = features.arrow_schema
        self.image_columns = [n for n in self.schema.names if isinstance(features[n], Image)]
        self.sink = pa.OSFile(str(path), "wb")
        self.writer = pa.ipc.new_stream(self.sink, self.schema)
        self.arena = take_arena()
        self.arena.on_full = self.flush
        self.rows: list[dict] = []
        self.count = 0

    def write(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) >= WRITER_BATCH_SIZE:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa
        from datasets.arrow_writer import TypedSequence

        if not self.rows:
            self.arena.reset()
            return
        arrays = []
        for name, arrow_type in zip(self.schema.names, self.schema.types):
            values = [r[name] for r in self.rows]
            feature = self.features[name]
            if name in self.image_columns:
                array = _image_column(values, self.arena) if name == "image" else None
                if array is None:
                    values = [_as_bytes(v) for v in values]
                    array = pa.array(TypedSequence([feature.encode_example(v) if v is not None else None
                                                    for v in values], type=feature))
            else:
                array = _column(feature, values, arrow_type)
            arrays.append(array)
        self.writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self.schema))
        self.count += len(self.rows)
        self.rows = []
        self.arena.reset()  # written: the buffer can take the next batch

    def close(self) -> int:
        try:
            self.flush()
            self.writer.close()
        finally:
            self.sink.close()
            self._release()
        return self.count

    def abort(self) -> None:
        try:
            self.sink.close()
        except Exception:
            pass
        self.rows = []
        self._release()

    def _release(self) -> None:
        if self.arena is not None:
            give_back_arena(self.arena)
            self.arena = None


def _as_bytes(value):
    """An image value whose bytes may be an arena view, with the bytes copied out."""
    if isinstance(value, dict) and isinstance(value.get("bytes"), memoryview):
        return {**value, "bytes": bytes(value["bytes"])}
    return value
