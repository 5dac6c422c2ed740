"""The builder's worker processes: forked on Linux, killed with the ingest (``PR_SET_PDEATHSIG``)."""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from concurrent.futures import ProcessPoolExecutor


def die_with_parent() -> None:
    """Worker initializer: on Linux, the kernel kills the worker when the ingest process dies (a
    killed ingest leaves no orphan writing shards into the partial folder)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
        except OSError:
            pass


def start_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes: forked on Linux (no re-import, shared pages), spawned elsewhere. Workers
    only read files and write their own Arrow shards."""
    # fork is safe enough on Linux (PyTorch's DataLoader does the same); macOS and Windows spawn
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context(method), initializer=die_with_parent)
    for _ in range(workers):
        pool.submit(os.getpid)  # start the workers now, while the first pass runs
    return pool
