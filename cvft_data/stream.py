"""Training from a dataset too large for one node's disk or memory: each process (torchrun rank)
streams its own part of a split, and each DataLoader worker its own part of that.

``datasets`` assigns whole Arrow shards to ranks when the shard count is a multiple of the world
size (otherwise every rank reads everything and drops what is not its own), and then to workers,
so the count asked for here is ``world_size x max(1, num_workers) x per_worker``.

Example (one process; under ``torchrun`` each rank gets its share):
    >>> import pathlib, tempfile, cvft_data
    >>> from cvft_data.sample import write_coco_sample
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = cvft_data.ingest(write_coco_sample(tmp / "src", n_images=10), tmp / "ds")
    >>> part = node_split(tmp / "ds", "train", rank=0, world_size=2)
    >>> sum(1 for _ in part) + sum(1 for _ in node_split(tmp / "ds", "train", rank=1, world_size=2))
    8
"""

from __future__ import annotations

import os


def node_split(path: str | os.PathLike, split: str, *, rank: int | None = None, world_size: int | None = None,
               num_workers: int = 0, per_worker: int = 1):
    """The part of ``split`` this process streams: an :class:`datasets.IterableDataset` (images not
    decoded until read). ``rank``/``world_size`` default to torchrun's ``RANK``/``WORLD_SIZE``."""
    from datasets.distributed import split_dataset_by_node

    from .store import open_dataset

    rank = int(os.environ.get("RANK", 0)) if rank is None else rank
    world_size = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else world_size
    ds = open_dataset(path)[split]
    shards = max(1, min(len(ds), world_size * max(1, num_workers) * per_worker))
    streamed = ds.to_iterable_dataset(num_shards=shards)
    return split_dataset_by_node(streamed, rank=rank, world_size=world_size)
