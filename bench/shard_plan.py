"""The non-parallel parts of a sharded ingest on paper: a simulated plan for 10 million images in 100
shards (``cvft-ingest --shard I/100`` x 100, then ``--commit``), measured on a synthetic file list and
synthetic committed shards, not real images.

    python bench/shard_plan.py [--images 10000000] [--shards 100] [--json OUT.json]

Prints: planning time (list, sort and cut 10 M paths into chunks and shards; how many camera folders
straddle two shards), manifest size (all chunk manifests and job files), and commit time (reading and
verifying every manifest and chunk file, merging statistics and ledgers), each with the figure per
image.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLASSES = [f"species_{k:02d}" for k in range(20)]


def synthetic_paths(n: int) -> list[str]:
    """``year/set/site/camera/IMG_nnnnn.JPG`` for ``n`` images, 500 to 3,500 per camera folder."""
    out: list[str] = []
    cam = 0
    while len(out) < n:
        count = 500 + (cam * 7919) % 3000
        folder = f"{2020 + cam % 5}/set_{cam // 500:03d}/site_{cam // 10:05d}/cam_{cam % 10}"
        out.extend(f"{folder}/IMG_{j:05d}.JPG" for j in range(min(count, n - len(out))))
        cam += 1
    return out


def plan(n: int, shards: int) -> dict:
    """What every shard computes before writing: the sorted listing cut into camera-folder units,
    the units into chunks (no chunk holds two folders) and the units into shards."""
    from cvft_data.builder import shard_size_for
    from cvft_data.shards import unit_jobs, unit_plan

    t0 = time.perf_counter()
    paths = synthetic_paths(n)
    paths.sort()
    units: list[list] = []
    for p in paths:
        folder = p.rsplit("/", 1)[0]
        if units and units[-1][0] == folder:
            units[-1][1] += 1
        else:
            units.append([folder, 1])
    units_t = [(u, c) for u, c in units]
    size = shard_size_for(n)
    chunks = unit_plan(units_t, size)
    jobs = unit_jobs(units_t, shards)
    seconds = time.perf_counter() - t0
    folder_jobs: dict[int, set[int]] = {}
    for unit, _ in chunks:
        folder_jobs.setdefault(unit, set()).add(jobs[unit])
    per_shard = [0] * shards
    for (_, c), j in zip(units_t, jobs):
        per_shard[j] += c
    return {"images": n, "shards": shards, "chunk_size": size, "chunks": len(chunks), "_sizes": [c for _, c in chunks],
            "_jobs": [jobs[u] for u, _ in chunks], "plan_s": round(seconds, 2),
            "camera_folders": len(units_t),
            "folders_straddling_two_shards": sum(1 for js in folder_jobs.values() if len(js) > 1),
            "images_per_shard_min_max": [min(per_shard), max(per_shard)]}


def manifest(k: int, size: int) -> dict:
    per_class = {c: size // len(CLASSES) for c in CLASSES}
    return {"index": k, "files": {"train": {"file": f"shard-{k:06d}.train.arrow", "rows": 1, "bytes": 0}},
            "stats": {"train": {"images": size, "objects": 0, "labeled": size - 50, "empty": 40, "unlabeled": 10}},
            "class_counts": {"train": per_class},
            "ledger": [{"item": f"2020/set/site/cam/IMG_{j:05d}.JPG", "reason": "clock_backwards", "action": "kept",
                        "detail": "capture time 2020-01-01T00:00:00 (backwards)"} for j in range(3)],
            "digest_sum": "0" * 32, "records_digest": "0" * 32}


def commit_cost(info: dict, shards: int) -> dict:
    import pyarrow as pa

    from cvft_data.assemble import cvft_json
    from cvft_data.ledger import Ledger
    from cvft_data.shards import committed, write_job

    work = Path(tempfile.mkdtemp(prefix="cvft-plan-")) / ".ds.cvft-partial"
    work.mkdir(parents=True)
    sink = pa.BufferOutputStream()
    schema = pa.schema([("image_id", pa.string())])
    with pa.ipc.new_stream(sink, schema) as w:
        w.write_batch(pa.record_batch([pa.array(["x"])], schema=schema))
    arrow = sink.getvalue().to_pybytes()
    t0 = time.perf_counter()
    total_bytes = 0
    for k in range(info["chunks"]):
        (work / f"shard-{k:06d}.train.arrow").write_bytes(arrow)
        m = manifest(k, info["_sizes"][k])
        m["files"]["train"]["bytes"] = len(arrow)
        text = json.dumps(m)
        total_bytes += len(text)
        (work / f"shard-{k:06d}.json").write_text(text)
    for i in range(shards):
        mine = [k for k in range(info["chunks"]) if info["_jobs"][k] == i]
        write_job(work, i, shards, mine, [], "units")
    job_bytes = sum(p.stat().st_size for p in work.glob("job-*.json"))
    fingerprint = "simulated"
    (work / "plan.json").write_text(json.dumps({"fingerprint": fingerprint, "images": info["images"],
                                                "shard_size": info["chunk_size"], "chunks": info["chunks"]}))
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    manifests, _jobs = committed(work, fingerprint)
    ledger = Ledger()

    class _Conn:   # what cvft_json reads of a connector
        root, name = Path("/archive"), "camera_trap"

        @staticmethod
        def category_info():
            return [{"name": c} for c in CLASSES]

        @staticmethod
        def source_info():
            return {}

    from cvft_data.builder import BuildOptions
    info_json = cvft_json(_Conn, BuildOptions(), "classification", CLASSES, manifests, ledger)
    commit_s = time.perf_counter() - t0
    shutil.rmtree(work.parent, ignore_errors=True)
    return {"manifest_mb": round(total_bytes / 2**20, 1), "job_files_kb": round(job_bytes / 1024, 1),
            "write_simulated_shards_s": round(write_s, 1), "commit_s": round(commit_s, 2),
            "commit_us_per_image": round(1e6 * commit_s / info["images"], 3),
            "committed_images": sum(s["images"] for s in info_json["splits"].values())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10_000_000)
    ap.add_argument("--shards", type=int, default=100)
    ap.add_argument("--json")
    a = ap.parse_args()
    info = plan(a.images, a.shards)
    info.update(commit_cost(info, a.shards))
    info = {k: v for k, v in info.items() if not k.startswith("_")}
    for k, v in info.items():
        print(f"{k:<34}{v}")
    if a.json:
        Path(a.json).write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), **info}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
