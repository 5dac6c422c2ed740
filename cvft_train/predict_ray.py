"""``cvft predict --executor ray``: the shards of :mod:`cvft_train.predict_shards` as Ray tasks, one
GPU each where the cluster has GPUs, then the merge in the driver."""

from __future__ import annotations

import os
from typing import Any

from cvft_data.executors import run_on_ray


def _predict_shard(weights: str, source: str, out: str, shard: tuple[int, int], options: dict) -> dict:
    from .predict_run import predict_to

    return predict_to(weights, source, out, shard=shard, **options)


def ray_predict(weights: str | os.PathLike, source: str | os.PathLike, out: str | os.PathLike, *,
                shards: int | None = None, address: str | None = None, batch: int = 32, overwrite: bool = False,
                workers: int | None = None, **common: Any) -> dict:
    """Predict ``source`` in ``shards`` Ray tasks and merge them into ``out``; returns the merge's summary."""
    from .predict_shards import merge_predictions

    gpus = _cluster_gpus(address)
    n = shards or max(1, gpus or os.cpu_count() or 1)
    options = {"batch": batch, "workers": workers or 1, "device": "cuda" if gpus else "cpu", **common}
    calls = [((str(weights), str(source), str(out), (i, n), options), {}) for i in range(n)]
    run_on_ray(_predict_shard, calls, address=address, num_gpus=1 if gpus else 0, label="predict shard")
    return merge_predictions(weights, source, out, overwrite=overwrite, workers=workers, **common)


def _cluster_gpus(address: str | None) -> int:
    if address is None:
        try:
            import torch
            return torch.cuda.device_count()
        except ImportError:
            return 0
    import ray

    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    try:
        return int(ray.cluster_resources().get("GPU", 0))
    finally:
        ray.shutdown()
