"""Generate a small, realistic sample source to try cvft on (``python -m cvft_data.sample OUT``).

It writes a camera-trap-like COCO export: JPEGs (non-square, some EXIF-rotated) of coloured
"animals" on textured backgrounds, split into ``train`` and ``val`` annotation files, with null
images (no annotation) as camera traps have them.

Example:
    >>> import tempfile, pathlib
    >>> root = write_coco_sample(pathlib.Path(tempfile.mkdtemp()) / "sample", n_images=6)
    >>> sorted(p.name for p in (root / "annotations").iterdir())
    ['instances_train.json', 'instances_val.json']
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("wallaby", "fox", "echidna")
_COLOURS = {"wallaby": (150, 100, 60), "fox": (220, 110, 30), "echidna": (40, 40, 40)}


def _background(rng: random.Random, w: int, h: int) -> np.ndarray:
    base = np.array([rng.randint(60, 120), rng.randint(90, 150), rng.randint(40, 90)], dtype=np.float32)
    noise = np.random.default_rng(rng.randint(0, 2**31)).normal(0, 18, (h, w, 3)).astype(np.float32)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def write_coco_sample(root: Path, n_images: int = 40, size: tuple[int, int] = (160, 120), seed: int = 0,
                      null_share: float = 0.2, polygons: bool = False) -> Path:
    """Write ``root/images/{train,val}/*.jpg`` and ``root/annotations/instances_{train,val}.json``
    (``polygons``: each box also as its polygon, an instance segmentation sample)."""
    rng = random.Random(seed)
    root = Path(root)
    w, h = size
    docs = {s: {"info": {"description": "cvft sample"}, "images": [], "annotations": [],
                "categories": [{"id": i + 1, "name": c, "supercategory": "animal"} for i, c in enumerate(CLASSES)]}
            for s in ("train", "val")}
    ann_id = 1
    for i in range(n_images):
        split = "val" if i % 5 == 4 else "train"
        site = f"site{i % 4:02d}"
        arr = _background(rng, w, h)
        anns = []
        if rng.random() >= null_share:
            for _ in range(rng.randint(1, 2)):
                cls = rng.choice(CLASSES)
                bw, bh = rng.randint(w // 8, w // 3), rng.randint(h // 8, h // 3)
                x, y = rng.randint(0, w - bw), rng.randint(0, h - bh)
                arr[y:y + bh, x:x + bw] = _COLOURS[cls]
                anns.append({"id": ann_id, "image_id": i + 1, "category_id": CLASSES.index(cls) + 1,
                             "bbox": [float(x), float(y), float(bw), float(bh)], "area": float(bw * bh),
                             "iscrowd": 0, "segmentation": [[float(x), float(y), float(x + bw), float(y),
                                                             float(x + bw), float(y + bh), float(x), float(y + bh)]]
                             if polygons else []})
                ann_id += 1
        name = f"{site}/IMG_{i:04d}.JPG"
        path = root / "images" / split / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(path, "JPEG", quality=90)
        docs[split]["images"].append({"id": i + 1, "file_name": name, "width": w, "height": h})
        docs[split]["annotations"] += anns
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, doc in docs.items():
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc, indent=1))
    return root


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cvft_data.sample", description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--images", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    root = write_coco_sample(Path(a.out), a.images, seed=a.seed)
    print(f"wrote a {a.images}-image COCO sample to {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def write_camera_trap_sample(root: Path, n_sites: int = 4, per_camera: int = 12, seed: int = 0,
                             size: tuple[int, int] = (160, 120), unlabeled_every: int = 0) -> dict[str, Path]:
    """A camera-trap archive ``year/set/site/camera/IMG_*.JPG`` with EXIF capture times (bursts of
    three), a species sheet (CSV, blanks included; every ``unlabeled_every``-th image left out of
    it, so unlabeled), a deployments sheet (coordinates, time zone, one camera's clock an hour
    behind) and a MegaDetector output for the same images.
    Returns the paths: ``archive``, ``species``, ``deployments``, ``megadetector``."""
    import io

    rng = random.Random(seed)
    root = Path(root)
    archive = root / "archive"
    rows = ["RelativePath,File,Species"]
    md_images = []
    w, h = size
    for s in range(n_sites):
        for cam in ("cam_A", "cam_B"):
            rel_dir = f"2024/set_01/site_{s:02d}/{cam}"
            for i in range(per_camera):
                burst, frame = divmod(i, 3)
                species = rng.choice(CLASSES) if burst % 3 else None
                arr = _background(rng, w, h)
                boxes = []
                if species:
                    bw, bh = rng.randint(w // 6, w // 3), rng.randint(h // 6, h // 3)
                    x, y = rng.randint(0, w - bw), rng.randint(0, h - bh)
                    arr[y:y + bh, x:x + bw] = _COLOURS[species]
                    boxes.append({"category": "1", "conf": round(rng.uniform(0.5, 0.99), 3),
                                  "bbox": [x / w, y / h, bw / w, bh / h]})
                exif = Image.Exif()
                exif[271], exif[272] = "RECONYX", "HF2 PRO COVERT\x00\x00"
                exif.get_ifd(0x8769)[36867] = f"2024:03:{1 + burst:02d} {6 + s:02d}:{cam == 'cam_B':02d}:{frame * 2:02d}"
                buf = io.BytesIO()
                Image.fromarray(arr).save(buf, "JPEG", quality=90, exif=exif.tobytes())
                name = f"IMG_{i + 1:04d}.JPG"
                p = archive / rel_dir / name
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(buf.getvalue())
                if not (unlabeled_every and (i + 1) % unlabeled_every == 0):
                    rows.append(f"{rel_dir},{name},{species or 'none'}")
                md_images.append({"file": f"{rel_dir}/{name}", "detections": boxes})
    (root / "species.csv").write_text("\n".join(rows) + "\n")
    deployments = ["deployment,latitude,longitude,timezone,clock_offset,camera_model,habitat"]
    for s in range(n_sites):
        for k, cam in enumerate(("cam_A", "cam_B")):
            offset = 3600 if (s, cam) == (0, "cam_B") else 0   # a camera left on winter time
            deployments.append(f"2024/set_01/site_{s:02d}/{cam},{-33.8 - 0.01 * s:.4f},{151.2 + 0.01 * k:.4f},"
                               f"Australia/Sydney,{offset},RECONYX HF2,woodland")
    (root / "deployments.csv").write_text("\n".join(deployments) + "\n")
    (root / "md.json").write_text(json.dumps({
        "info": {"format_version": "1.4", "detector": "md_v5a.0.0.pt",
                 "detector_metadata": {"typical_detection_threshold": 0.2}},
        "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"}, "images": md_images}))
    return {"archive": archive, "species": root / "species.csv", "deployments": root / "deployments.csv",
            "megadetector": root / "md.json"}


MASK_CLASSES = ["soil", "crop", "weed"]


def write_mask_sample(root: Path, n_images: int = 48, size: tuple[int, int] = (96, 64), seed: int = 0,
                      val_share: float = 0.25) -> Path:
    """A semantic segmentation sample as a mask folder: ``images/{train,val}/*.jpg``,
    ``masks/{train,val}/*.png`` (class indices: 0 soil, 1 crop rows, 2 weed blobs, 255 at the
    border as "not labelled") and ``classes.txt``: what a weed-mapping team would hand over.

    >>> import tempfile
    >>> root = write_mask_sample(Path(tempfile.mkdtemp()), n_images=4)
    >>> sorted(p.name for p in root.iterdir())
    ['classes.txt', 'images', 'masks']
    """
    from PIL import ImageDraw

    rng = random.Random(seed)
    root = Path(root)
    w, h = size
    for i in range(n_images):
        split = "val" if (i + 1) % round(1 / val_share) == 0 else "train"
        soil = np.clip(np.array([110, 80, 50]) + np.random.default_rng(seed + i).normal(0, 12, (h, w, 3)), 0, 255)
        img = Image.fromarray(soil.astype(np.uint8))
        mask = Image.new("L", (w, h), 0)
        di, dm = ImageDraw.Draw(img), ImageDraw.Draw(mask)
        for row_y in range(rng.randint(4, 12), h, rng.randint(16, 22)):   # crop rows: green bands
            di.rectangle([0, row_y, w, row_y + 5], fill=(40 + rng.randint(0, 30), 150 + rng.randint(0, 40), 40))
            dm.rectangle([0, row_y, w, row_y + 5], fill=1)
        for _ in range(rng.randint(1, 4)):                                 # weeds: yellow-green blobs
            cx, cy, r = rng.randint(6, w - 6), rng.randint(6, h - 6), rng.randint(3, 7)
            di.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(170, 190 + rng.randint(0, 40), 30))
            dm.ellipse([cx - r, cy - r, cx + r, cy + r], fill=2)
        m = np.asarray(mask).copy()
        m[0, :] = m[-1, :] = 255                                           # an unlabelled border
        for folder, im, ext in (("images", img, "jpg"), ("masks", Image.fromarray(m), "png")):
            path = root / folder / split / f"plot_{i:04d}.{ext}"
            path.parent.mkdir(parents=True, exist_ok=True)
            im.save(path, **({"quality": 92} if ext == "jpg" else {}))
    (root / "classes.txt").write_text("".join(f"{c}\n" for c in MASK_CLASSES), encoding="utf-8")
    return root
