"""The benchmark corpus: camera-trap-like JPEGs (1920x1080, ~450 KB, with the EXIF a trail camera
writes: capture time in bursts of three, make, model) in ``year/set/site/subsite``, a species sheet,
a COCO file, a YOLO layout and a class-folder view of the same images."""

from __future__ import annotations

import io
import json
import os
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image

SPECIES = ("wallaby", "fox", "echidna", "possum", "deer")
W, H = 1920, 1080


def _rel(i: int) -> str:
    return f"2021/set_{i % 2}/site_{i % 10:02d}/cam_{(i // 10) % 4}/IMG_{i:06d}.JPG"


def _exif(i: int) -> bytes:
    # a camera (site, subsite) gets every 40th image: bursts of three 2 s apart, an hour between bursts
    k = i // 40
    t = datetime(2021, 3, 1, 6, 0, 0) + timedelta(hours=k // 3, seconds=2 * (k % 3))
    exif = Image.Exif()
    exif[271], exif[272] = "RECONYX", "HF2X HYPERFIRE 2"
    exif.get_ifd(0x8769)[36867] = t.strftime("%Y:%m:%d %H:%M:%S")
    return exif.tobytes()


def _species(i: int) -> str | None:
    return None if i % 10 < 3 else SPECIES[i % len(SPECIES)]


def _box(i: int) -> tuple[float, float, float, float]:
    rng = np.random.default_rng(i)
    bw, bh = int(rng.integers(200, 600)), int(rng.integers(150, 400))
    return float(rng.integers(0, W - bw)), float(rng.integers(0, H - bh)), float(bw), float(bh)


def _write_chunk(args) -> int:
    root, start, stop = args
    rng = np.random.default_rng(start)
    pool = [rng.normal(0, 8, (H, W, 3)).astype(np.int8) for _ in range(3)]
    for i in range(start, stop):
        base = np.asarray(Image.fromarray(rng.integers(0, 255, (27, 48, 3), dtype=np.uint8)).resize((W, H), Image.BICUBIC))
        arr = np.clip(base.astype(np.int16) + np.roll(pool[i % 3], i * 7, axis=1), 0, 255).astype(np.uint8)
        if _species(i):
            x, y, bw, bh = (int(v) for v in _box(i))
            arr[y:y + bh, x:x + bw] //= 2
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "JPEG", quality=85, exif=_exif(i))
        p = Path(root) / "tree" / _rel(i)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(buf.getvalue())
    return stop - start


def make_corpus(root: Path, n: int, workers: int = 0) -> dict[str, Path]:
    root = Path(root)
    done = root / f".complete-v2-{n}"  # v2: with EXIF
    if not done.exists():
        workers = workers or os.cpu_count() or 1
        step = 100
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_write_chunk, [(str(root), s, min(s + step, n)) for s in range(0, n, step)]))
        rows = ["RelativePath,File,Species"]
        images, anns = [], []
        for i in range(n):
            rel = _rel(i)
            d, f = rel.rsplit("/", 1)
            sp = _species(i)
            rows.append(f"{d},{f},{sp or 'none'}")
            images.append({"id": i, "file_name": f"tree/{rel}", "width": W, "height": H})
            if sp:
                anns.append({"id": i, "image_id": i, "category_id": SPECIES.index(sp) + 1, "bbox": list(_box(i)),
                             "area": _box(i)[2] * _box(i)[3], "iscrowd": 0})
            # YOLO layout and class folders: hard links to the same files
            src = root / "tree" / rel
            for dst in (root / "yolo" / "images" / "train" / f"{i:06d}.jpg",
                        root / "classes" / (sp or "empty") / f"{i:06d}.jpg"):
                dst.parent.mkdir(parents=True, exist_ok=True)
                if not dst.exists():
                    os.link(src, dst)
            lab = root / "yolo" / "labels" / "train" / f"{i:06d}.txt"
            lab.parent.mkdir(parents=True, exist_ok=True)
            if sp:
                x, y, bw, bh = _box(i)
                lab.write_text(f"{SPECIES.index(sp)} {(x + bw / 2) / W:.6f} {(y + bh / 2) / H:.6f} {bw / W:.6f} {bh / H:.6f}\n")
            else:
                lab.write_text("")
        (root / "species.csv").write_text("\n".join(rows) + "\n")
        (root / "coco.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": [
            {"id": k + 1, "name": s} for k, s in enumerate(SPECIES)]}))
        (root / "yolo" / "data.yaml").write_text("train: images/train\nval: images/train\nnames:\n"
                                                 + "".join(f"  {k}: {s}\n" for k, s in enumerate(SPECIES)))
        done.write_text("ok")
    return {"tree": root / "tree", "species": root / "species.csv", "coco": root / "coco.json",
            "yolo": root / "yolo", "classes": root / "classes"}
