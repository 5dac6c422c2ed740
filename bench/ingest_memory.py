"""Peak memory of ``cvft-ingest`` at two sizes: it must not grow with the number of images.

Generates class-per-folder trees of small JPEGs (2,000 and 20,000 by default, camera-trap-like
nesting ``class/site/subsite``), ingests each in a fresh process, samples the resident memory of
the whole process tree every 20 ms, and prints a table (and JSON with ``--json``).

    python bench/ingest_memory.py [--sizes 2000,20000] [--workers 1,2] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image


def make_tree(root: Path, n: int, size=(160, 120)) -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    for i in range(n):
        arr = np.roll(base, i % size[0], axis=1)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "JPEG", quality=85)
        p = root / f"class{i % 5}" / f"site{i % 37:02d}" / f"cam{i % 4}" / f"IMG_{i:06d}.JPG"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(buf.getvalue())


def peak_tree_rss(cmd: list[str]) -> tuple[float, float, int]:
    """(seconds, peak resident MB of the process tree, exit code)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    return time.perf_counter() - t0, peak / 2**20, proc.returncode


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2000,20000")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--json")
    ap.add_argument("--keep", help="folder to keep the generated trees in (default: a temp dir)")
    a = ap.parse_args(argv)
    work = Path(a.keep or tempfile.mkdtemp(prefix="cvft-bench-"))
    exe = str(Path(sys.executable).parent / "cvft-ingest")
    results = []
    print(f"{'images':>8} {'workers':>8} {'seconds':>8} {'img/s':>8} {'peak MB':>9}")
    for n in (int(s) for s in a.sizes.split(",")):
        src = work / f"tree_{n}"
        if not src.exists():
            make_tree(src, n)
        for w in (int(x) for x in a.workers.split(",")):
            out = work / f"ds_{n}_{w}"
            shutil.rmtree(out, ignore_errors=True)
            secs, peak, code = peak_tree_rss([exe, str(src), "--out", str(out), "--workers", str(w), "--quiet"])
            if code != 0:
                raise SystemExit(f"ingest failed with exit code {code}")
            r = {"tool": "cvft", "stage": "ingest", "images": n, "workers": w, "seconds": round(secs, 2),
                 "images_per_s": round(n / secs, 1), "peak_rss_mb": round(peak, 1)}
            results.append(r)
            print(f"{n:>8} {w:>8} {secs:>8.1f} {n / secs:>8.0f} {peak:>9.0f}")
            shutil.rmtree(out, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
