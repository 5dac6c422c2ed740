"""Builders of tiny fake sources. Images are non-square (24x16 by default) so that a width/height
swap anywhere fails a test."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

W, H = 24, 16


def image_bytes(w: int = W, h: int = H, fmt: str = "JPEG", seed: int = 0, orientation: int | None = None,
                quality: int = 90) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    im = Image.fromarray(arr)
    buf = io.BytesIO()
    kwargs = {"quality": quality} if fmt == "JPEG" else {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def write_image(path: Path, w: int = W, h: int = H, fmt: str | None = None, seed: int = 0, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = fmt or ("PNG" if path.suffix.lower() == ".png" else "JPEG")
    path.write_bytes(image_bytes(w, h, fmt, seed, **kw))
    return path


def write_json(path: Path, doc) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def coco_doc(images: list[dict], annotations: list[dict], categories=None) -> dict:
    cats = categories or [{"id": 1, "name": "cat"}, {"id": 3, "name": "dog"}]
    return {"images": images, "annotations": annotations, "categories": cats}


def make_coco(root: Path, *, with_bad: dict | None = None) -> Path:
    """A COCO source with boxes, polygons, list RLE, string RLE, a crowd object and a null image."""
    from cvft_data import masks

    for i in range(4):
        write_image(root / "images" / "train" / f"{i}.jpg", seed=i)
    write_image(root / "images" / "val" / "v0.jpg", seed=9)
    m = np.zeros((H, W), np.uint8)
    m[2:6, 3:9] = 1
    rle = masks.encode(m)
    list_rle = {"size": [H, W], "counts": masks.to_uncompressed_counts(rle)}
    train = coco_doc(
        [{"id": i + 10, "file_name": f"{i}.jpg", "width": W, "height": H} for i in range(4)],
        [
            {"id": 1, "image_id": 10, "category_id": 1, "bbox": [1.5, 2.25, 10.0, 5.0], "area": 50.0, "iscrowd": 0,
             "segmentation": []},
            {"id": 2, "image_id": 10, "category_id": 3, "bbox": [2, 2, 6, 6], "area": 18.0, "iscrowd": 0,
             "segmentation": [[2, 2, 8, 2, 8, 8], [10.5, 10, 12, 10, 12, 12]]},
            {"id": 3, "image_id": 11, "category_id": 3, "bbox": [3, 2, 6, 4], "area": 24.0, "iscrowd": 1,
             "segmentation": list_rle},
            {"id": 4, "image_id": 12, "category_id": 1, "bbox": [3, 2, 6, 4], "area": 24.0, "iscrowd": 0,
             "segmentation": rle},
        ],
    )
    val = coco_doc([{"id": 1, "file_name": "v0.jpg", "width": W, "height": H}],
                   [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 4], "area": 16, "iscrowd": 0}])
    if with_bad:
        for k, v in with_bad.items():
            train[k] = train[k] + v
    write_json(root / "annotations" / "instances_train.json", train)
    write_json(root / "annotations" / "instances_val.json", val)
    return root


def make_yolo(root: Path, *, names=("cat", "dog"), extra_lines: dict[str, list[str]] | None = None) -> Path:
    """Ultralytics layout: 3 train images (one without label file), 1 val image."""
    for split, stems in (("train", ["a", "b", "c"]), ("val", ["d"])):
        for i, stem in enumerate(stems):
            write_image(root / "images" / split / f"{stem}.jpg", seed=i)
    labels = {"train/a": ["0 0.5 0.5 0.25 0.5", "1 0.25 0.25 0.125 0.25"],
              "train/b": ["1 0.1 0.1 0.5 0.1 0.5 0.6 0.1 0.6"],
              "val/d": ["0 0.5 0.5 0.5 0.5"]}
    for k, v in (extra_lines or {}).items():
        labels[k] = labels.get(k, []) + v
    for k, lines in labels.items():
        p = root / "labels" / f"{k}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames:\n"
                                    + "".join(f"  {i}: {n}\n" for i, n in enumerate(names)))
    return root


VOC_XML = """<annotation>
  <filename>{filename}</filename>
  <size><width>{w}</width><height>{h}</height><depth>3</depth></size>
  {objects}
</annotation>"""

VOC_OBJ = """<object><name>{name}</name><difficult>{difficult}</difficult><truncated>1</truncated>
  <bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"""


def voc_xml(filename: str, objects: list[tuple[str, tuple]], w: int = W, h: int = H, difficult: int = 0) -> str:
    objs = "".join(VOC_OBJ.format(name=n, b=b, difficult=difficult) for n, b in objects)
    return VOC_XML.format(filename=filename, w=w, h=h, objects=objs)


def make_voc(root: Path) -> Path:
    """Devkit layout with the real-world quirks: 0AF.jpg vs 0af.xml, <filename> without extension,
    float coordinates, an XML with no objects, an image with no XML, ImageSets splits."""
    write_image(root / "JPEGImages" / "0AF.jpg", seed=1)
    write_image(root / "JPEGImages" / "c78.jpg", seed=2)
    write_image(root / "JPEGImages" / "empty1.jpg", seed=3)
    write_image(root / "JPEGImages" / "nolabel.jpg", seed=4)
    ann = root / "Annotations"
    ann.mkdir(parents=True)
    (ann / "0af.xml").write_text(voc_xml("0af.jpg", [("cat", (1, 1, 10, 8)), ("dog", (5.5, 2, 20, 16))], difficult=1))
    (ann / "c78.xml").write_text(voc_xml("c78", [("dog", (2, 3, 12, 9))]))
    (ann / "empty1.xml").write_text(voc_xml("empty1.jpg", []))
    sets = root / "ImageSets" / "Main"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("0af\nc78\nnolabel\n")
    (sets / "val.txt").write_text("empty1\n")
    return root


def make_folder(root: Path) -> Path:
    """Class folders under split folders, nested, mixed-case extensions, hidden files, a null folder."""
    write_image(root / "train" / "cat" / "a.jpg", seed=1)
    write_image(root / "train" / "cat" / "2024" / "deep" / "b.JPG", seed=2)
    write_image(root / "train" / "dog" / "c.PNG", seed=3)
    write_image(root / "train" / "Empty" / "d.jpeg", seed=4)
    write_image(root / "val" / "dog" / "e.jpg", seed=5)
    write_image(root / "val" / "background" / "f.jpg", seed=6)
    (root / "train" / "cat" / ".DS_Store").write_bytes(b"\0\0")
    (root / "train" / ".hidden").mkdir(parents=True)
    write_image(root / "train" / ".hidden" / "x.jpg", seed=7)
    (root / "train" / "dog" / "notes.txt").write_text("not an image")
    return root
