"""Running shards on an engine users already have: Ray (``--executor ray``). The shard function is
the one a SLURM array task runs (``cvft-ingest --shard I/N``); Ray only places the tasks. Ray is an
optional extra (``pip install 'cvft[ray]'``).

Each shard is a Ray task with one retry; progress comes back to the driver as tasks finish, the
ledger through the shards' files (the commit publishes it), and a task that fails twice is
reported by shard with its error.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable

from .errors import CvftError, UsageError

log = logging.getLogger(__name__)


class ShardFailed(CvftError):
    """A shard failed on its engine, retried once, and failed again."""


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def run_on_ray(fn: Callable, calls: list[tuple[tuple, dict]], *, address: str | None = None, num_gpus: float = 0,
               num_cpus: float = 1, label: str = "shard") -> list[Any]:
    """``fn(*args, **kwargs)`` for each call as Ray tasks (one retry each), on the cluster at
    ``address`` or a local one; results in call order. Shards that fail twice raise
    :class:`ShardFailed` naming each."""
    if not ray_available():
        raise UsageError("--executor ray needs Ray: pip install 'cvft[ray]'")
    import ray

    started = not ray.is_initialized()
    if started:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")   # a local cluster of this user's processes
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 ignore_reinit_error=True)
    try:
        task = ray.remote(max_retries=1, retry_exceptions=True, num_cpus=num_cpus, num_gpus=num_gpus)(fn)
        refs = {task.remote(*a, **k): i for i, (a, k) in enumerate(calls)}
        results: list[Any] = [None] * len(calls)
        failures: dict[int, str] = {}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            i = refs[done[0]]
            try:
                results[i] = ray.get(done[0])
                log.info("%s %d/%d done (%d of %d finished)", label, i, len(calls), len(calls) - len(pending), len(calls))
            except Exception as exc:   # Ray wraps the task's error: report it by shard
                failures[i] = f"{type(exc).__name__}: {str(exc).splitlines()[-1] if str(exc) else ''}"[:300]
        if failures:
            raise ShardFailed("; ".join(f"{label} {i}/{len(calls)} failed twice: {why}"
                                        for i, why in sorted(failures.items())))
        return results
    finally:
        if started:
            ray.shutdown()


def _ingest_shard(src: str, out: str, shard: str, options: dict) -> dict:
    from .api import ingest

    return ingest(src, out, shard=shard, **options)


def ray_ingest(src: str | os.PathLike, out: str | os.PathLike, *, shards: int | None = None, address: str | None = None,
               **options: Any) -> dict:
    """Ingest ``src`` as ``shards`` Ray tasks (default: the cluster's CPUs), then commit in the driver.
    ``options`` are :func:`cvft_data.api.ingest`'s (format, on_error, connector options...)."""
    from .api import ingest

    n = shards or _cluster_cpus(address)
    options = {**options, "workers": 1}   # each task is one core's worth of work; Ray gives the parallelism
    calls = [((str(src), str(out), f"{i}/{n}", options), {}) for i in range(n)]
    run_on_ray(_ingest_shard, calls, address=address, label="ingest shard")
    commit_options = {k: v for k, v in options.items() if k not in ("workers", "progress")}
    return ingest(src, out, commit=True, **commit_options)


def _cluster_cpus(address: str | None) -> int:
    if address is None:
        return max(1, os.cpu_count() or 1)
    import ray

    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    try:
        return max(1, int(ray.cluster_resources().get("CPU", 1)))
    finally:
        ray.shutdown()


__all__ = ["ShardFailed", "ray_available", "ray_ingest", "run_on_ray"]
