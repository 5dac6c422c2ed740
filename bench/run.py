"""cvft against the tools users would otherwise pick: ingest and training-input throughput.

    python bench/run.py --images 2000 --json OUT.json            # ~10 minutes on 2 cores
    python bench/run.py --images 2000,20000 --json OUT.json      # how cost grows (~50 min more)
    python bench/run.py --images 20000 --only limits,ingest --cold   # every tool reads from disk

Generates its own corpus (camera-trap-like 1920x1080 JPEGs, ~450 KB, in year/set/site/subsite, a
species sheet, a COCO file, a YOLO layout and class folders of the same images), then runs every
stage in a fresh process, sampling the resident memory of its process tree, and prints a table.
The JSON has one entry per tool and stage: ``tool``, ``stage``, ``images``, ``images_per_s``,
``peak_rss_mb`` (and ``output_mb``, ``ratio_to_cvft`` where they apply).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _corpus import make_corpus  # noqa: E402

# (tool, stage name in _stages.py, group, workers)
STAGES = [
    ("physical", "read", "limits", 0),
    ("physical", "read+hash", "limits", 0),
    ("physical", "read+hash+write", "limits", 1),
    ("physical", "read+hash+write", "limits", 2),
    ("physical", "read+hash+header+Arrow", "limits", 1),
    ("physical", "read+hash+header+Arrow", "limits", 2),
    ("physical", "header", "limits", 0),
    ("physical", "decode full", "limits", 0),
    ("physical", "decode draft 224", "limits", 0),
    ("cvft", "cvft ingest", "ingest", 2),
    ("datasets", "imagefolder+save_to_disk", "ingest", 0),
    ("datasets", "from_dict+cast_column+save_to_disk", "ingest", 0),
    ("supervision", "supervision from_coco", "ingest", 0),
    ("supervision", "supervision from_yolo", "ingest", 0),
    ("cvft", "loader224 cvft", "loader224", 0),
    ("torchvision", "loader224 imagefolder", "loader224", 0),
    ("cvft", "loader224 cvft", "loader224", 2),
    ("torchvision", "loader224 imagefolder", "loader224", 2),
    ("cvft", "cvft ingest detection", "setup", 2),
    ("ultralytics", "loader640 ultralytics", "loader640", 0),
    ("cvft", "loader640 cvft", "loader640", 0),
    ("ultralytics", "loader640 ultralytics", "loader640", 2),
    ("cvft", "loader640 cvft", "loader640", 2),
]


COLD = False  # --cold: the corpus is evicted from the page cache before every stage


def evict(folder: Path) -> None:
    """Drop ``folder``'s files from the page cache (no root needed): the next read is from disk."""
    for f in folder.rglob("*"):
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def run_stage(stage: str, corpus: Path, n: int, work: Path, workers: int) -> dict:
    # the corpus and the previous stage's output are written back to disk first: otherwise that
    # writeback lands on whichever stage runs next
    os.sync()
    if COLD:
        evict(corpus)
    cmd = [sys.executable, str(HERE / "_stages.py"), stage, str(corpus), str(n), str(work), str(workers)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True)))
        except psutil.Error:
            pass
        time.sleep(0.02)
    out, err = proc.communicate()
    if proc.returncode != 0:
        return {"error": err.strip().splitlines()[-1] if err.strip() else f"exit {proc.returncode}"}
    r = json.loads(out.strip().splitlines()[-1])
    r["peak_rss_mb"] = round(peak / 2**20, 1)
    return r


def run_repeated(stage: str, corpus: Path, n: int, work: Path, workers: int, reps: int) -> dict:
    """The run with the median throughput of ``reps`` runs (this kind of VM varies by tens of
    percent from run to run), with every run's images/s and the highest peak memory."""
    runs = []
    for _ in range(reps):
        r = run_stage(stage, corpus, n, work, workers)
        if "error" in r:
            return r
        r["ips"] = r["images"] / r["seconds"] if r["seconds"] else 0.0
        runs.append(r)
    runs.sort(key=lambda r: r["ips"])
    median = dict(runs[len(runs) // 2])
    median["runs"] = [round(r["ips"], 1) for r in runs]
    median["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return median


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default="2000", help="corpus sizes, comma-separated (e.g. 2000,20000)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--work", help="keep the corpus here (default: a temp folder)")
    ap.add_argument("--only", help="comma-separated stage groups: limits,ingest,loader224,loader640")
    ap.add_argument("--cold", action="store_true",
                    help="evict the corpus from the page cache before every stage (every tool reads from disk, "
                         "as on an archive larger than memory); default: whatever the cache holds")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each limits and ingest stage; the median is reported (default 3)")
    a = ap.parse_args(argv)
    global COLD
    COLD = a.cold
    base = Path(a.work or tempfile.mkdtemp(prefix="cvft-bench-"))
    only = set(a.only.split(",")) if a.only else None
    results = []
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, " \
              f"{psutil.virtual_memory().total / 2**30:.0f} GiB"
    print(f"machine: {machine}" + ("; page cache: cold (corpus evicted before every stage)" if a.cold else ""))
    for n in (int(x) for x in a.images.split(",")):
        t0 = time.perf_counter()
        corpus = make_corpus(base / f"corpus_{n}", n)
        size = sum(f.stat().st_size for f in (corpus["tree"]).rglob("*.JPG"))
        print(f"\n{n} images, {size / n / 1024:.0f} KB mean (corpus made in {time.perf_counter() - t0:.0f} s)")
        print(f"{'tool':<13}{'stage':<38}{'workers':>7}{'img/s':>9}{'peak MB':>9}{'out MB':>9}{'vs cvft':>9}")
        corpus_dir = base / f"corpus_{n}"
        work = base / f"work_{n}"
        cvft_ingest = None
        copy_limit = None  # read+hash+header+Arrow on every core: the most an ingest could do here
        cvft_by_stage: dict[tuple[str, int], float] = {}
        for tool, stage, group, workers in STAGES:
            if only and group not in only and not (group == "setup" and "loader640" in only):
                continue
            r = run_repeated(stage, corpus_dir, n, work, workers, a.repeat if group in ("limits", "ingest") else 1)
            if "error" in r:
                print(f"{tool:<13}{stage:<38}{workers:>7}  failed: {r['error'][:80]}")
                results.append({"tool": tool, "stage": stage, "images": n, "workers": workers, "error": r["error"]})
                continue
            ips = r["ips"]
            entry = {"tool": tool, "stage": stage, "images": r["images"], "workers": workers,
                     "images_per_s": round(ips, 1), "peak_rss_mb": r["peak_rss_mb"],
                     "output_mb": round(r.get("output_bytes", 0) / 2**20, 1), "corpus_images": n,
                     "runs_images_per_s": r["runs"]}
            if "export_s" in r:
                entry["export_s"] = round(r["export_s"], 2)
            if stage == "read+hash+header+Arrow" and workers == os.cpu_count():
                copy_limit = ips
            if stage == "cvft ingest":
                cvft_ingest = ips
                if copy_limit:
                    entry["ratio_to_limit"] = round(ips / copy_limit, 3)
            key = (group, workers)
            if tool == "cvft":
                cvft_by_stage[key] = ips
            ref = cvft_ingest if group == "ingest" else cvft_by_stage.get(key)
            ratio = ""
            if ref and tool != "cvft" and group != "limits":
                entry["ratio_to_cvft"] = round(ips / ref, 3)
                ratio = f"{ips / ref:>8.2f}x"
            results.append(entry)
            print(f"{tool:<13}{stage:<38}{workers:>7}{ips:>9.0f}{r['peak_rss_mb']:>9.0f}"
                  f"{entry['output_mb']:>9.0f}{ratio:>9}")
            if "ratio_to_limit" in entry:
                print(f"{'':<13}{'  = ' + format(entry['ratio_to_limit'], '.0%') + ' of read+hash+header+Arrow on every core':<38}")
            if "export_s" in r and r["export_s"]:
                print(f"{'':<13}{'  (+ YOLO export once: ' + format(r['export_s'], '.1f') + ' s)':<38}")
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": machine, "cold_cache": a.cold, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
