"""Ingest throughput of one machine's process pool against the same shards as Ray tasks on a local
Ray cluster (the figures quoted for ``--executor ray``).

    python bench/ray_vs_pool.py [--images 2000] [--cpus 2] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--json")
    a = ap.parse_args()
    import cvft_data
    from cvft_data.executors import ray_ingest
    from cvft_data.sample import write_camera_trap_sample

    work = Path(tempfile.mkdtemp(prefix="cvft-ray-"))
    sites = max(1, a.images // 100)
    sample = write_camera_trap_sample(work / "sample", n_sites=sites, per_camera=50, size=(640, 480))
    n = sites * 100
    out = {"images": n, "cpus": a.cpus}
    t0 = time.perf_counter()
    one = cvft_data.ingest(sample["archive"], work / "pool", format="camera-trap", workers=a.cpus)
    out["pool_images_per_s"] = round(n / (time.perf_counter() - t0), 1)
    import ray
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    t0 = time.perf_counter()
    ray.init(num_cpus=a.cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    out["ray_start_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    info = ray_ingest(sample["archive"], work / "ray", shards=a.cpus, format="camera-trap")
    out["ray_images_per_s"] = round(n / (time.perf_counter() - t0), 1)
    ray.shutdown()
    out["same_content_hash"] = info["content_hash"] == one["content_hash"]
    for k, v in out.items():
        print(f"{k:<22}{v}")
    if a.json:
        Path(a.json).write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), **out}, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
