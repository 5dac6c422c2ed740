"""``cvft check`` throughput: metadata checks plus the full decode, exact and perceptual hashes.

Generates a detection dataset of N camera-trap-like JPEGs (default 20,000 at 320x240), ingests it,
then times ``check`` with 1 and 2 decode workers and prints images per second.

    python bench/check_speed.py [--images 20000] [--size 320x240] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cvft_data  # noqa: E402
from cvft_data.checks import CheckOptions, check  # noqa: E402


def make_source(root: Path, n: int, size: tuple[int, int]) -> Path:
    rng = np.random.default_rng(0)
    w, h = size
    images, anns = [], []
    for i in range(n):
        coarse = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8))
        buf = io.BytesIO()
        coarse.resize((w, h), Image.Resampling.BICUBIC).save(buf, "JPEG", quality=85)
        rel = f"site{i % 20:02d}/cam{i % 4}/IMG_{i:06d}.JPG"
        p = root / "images" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(buf.getvalue())
        images.append({"id": i, "file_name": rel, "width": w, "height": h})
        if i % 10 >= 3:
            anns.append({"id": i, "image_id": i, "category_id": 1 + i % 8, "bbox": [10, 10, w / 3, h / 3],
                         "area": w * h / 9, "iscrowd": 0})
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances_train.json").write_text(json.dumps(
        {"images": images, "annotations": anns, "categories": [{"id": k, "name": f"sp{k}"} for k in range(1, 9)]}))
    return root


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    w, h = (int(v) for v in a.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="cvft-check-bench-"))
    try:
        src = make_source(work / "src", a.images, (w, h))
        cvft_data.ingest(src, work / "ds", workers=0)
        results = []
        print(f"{'stage':<28}{'workers':>8}{'seconds':>9}{'img/s':>9}")
        for decode, workers in ((False, 1), (True, 1), (True, 2)):
            t0 = time.perf_counter()
            report = check(work / "ds", CheckOptions(decode=decode, workers=workers))
            dt = time.perf_counter() - t0
            stage = "check (metadata only)" if not decode else "check (full decode + hashes)"
            results.append({"tool": "cvft", "stage": stage, "images": a.images, "workers": workers,
                            "seconds": round(dt, 2), "images_per_s": round(a.images / dt, 1),
                            "findings": len(report.findings)})
            print(f"{stage:<28}{workers:>8}{dt:>9.1f}{a.images / dt:>9.0f}")
        if a.json:
            Path(a.json).write_text(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
