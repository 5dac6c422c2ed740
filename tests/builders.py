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


# --- CVAT ----------------------------------------------------------------------------------------

CVAT_META = """<meta><task><name>t</name><mode>annotation</mode><labels>
  <label><name>car</name><type>any</type><attributes>
    <attribute><name>parked</name><input_type>checkbox</input_type><values>false
true</values></attribute>
    <attribute><name>speed</name><input_type>number</input_type><values>0
100</values></attribute>
    <attribute><name>colour</name><input_type>select</input_type><values>red
blue</values></attribute></attributes></label>
  <label><name>person</name><type>any</type></label>
  <label><name>body</name><type>skeleton</type></label>
  <label><name>head</name><type>points</type><parent>body</parent></label>
  <label><name>foot</name><type>points</type><parent>body</parent></label>
</labels></task></meta>"""

# a 5x4 disc-like mask in a 5-wide, 4-high box at (2, 3): rows .XXX. / XXXXX / XXXXX / .XXX.
CVAT_MASK_RLE = "1, 3, 1, 10, 1, 3, 1"


def cvat_images_xml(shapes_img0: str, extra_images: str = "") -> str:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<annotations><version>1.1</version>{CVAT_META}
<image id="0" name="img0.jpg" width="{W}" height="{H}">{shapes_img0}</image>{extra_images}
</annotations>"""


ALL_CVAT_SHAPES = f"""
  <box label="car" occluded="1" xtl="1" ytl="2" xbr="9" ybr="8" z_order="2" group_id="4">
    <attribute name="parked">true</attribute><attribute name="speed">12.5</attribute>
    <attribute name="colour">red</attribute></box>
  <box label="car" xtl="10" ytl="4" xbr="14" ybr="8" rotation="90" z_order="0"/>
  <polygon label="person" points="2,2;8,2;8,9" z_order="1"/>
  <polyline label="person" points="1,1;5,1;9,1"/>
  <points label="person" points="3,3"/>
  <ellipse label="car" cx="12" cy="8" rx="4" ry="2"/>
  <cuboid label="car" xtl1="1" ytl1="1" xbl1="1" ybl1="5" xtr1="5" ytr1="1" xbr1="5" ybr1="5"
          xtl2="2" ytl2="2" xbl2="2" ybl2="6" xtr2="6" ytr2="2" xbr2="6" ybr2="6"/>
  <mask label="car" rle="{CVAT_MASK_RLE}" left="2" top="3" width="5" height="4"/>
  <skeleton label="body"><points label="head" points="4,2" outside="0"/><points label="foot" points="5,14" occluded="1"/></skeleton>
  <tag label="person"/>"""


def make_cvat(root: Path, *, zipped: bool = False) -> Path:
    import zipfile

    xml = cvat_images_xml(ALL_CVAT_SHAPES, f'\n<image id="1" name="sub/img1.png" width="{W}" height="{H}"></image>')
    if zipped:
        root.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(root, "w") as z:
            z.writestr("annotations.xml", xml)
            z.writestr("images/img0.jpg", image_bytes())
            z.writestr("images/sub/img1.png", image_bytes(fmt="PNG", seed=1))
        return root
    write_image(root / "images" / "img0.jpg")
    write_image(root / "images" / "sub" / "img1.png", fmt="PNG", seed=1)
    (root / "annotations.xml").write_text(xml)
    return root


def make_cvat_video(root: Path) -> Path:
    for f in (0, 1, 2, 3):
        write_image(root / "images" / f"frame_{f:06d}.png", fmt="PNG", seed=f)
    (root / "annotations.xml").write_text(f"""<?xml version="1.0"?>
<annotations><version>1.1</version><meta><task><mode>interpolation</mode>
<labels><label><name>car</name></label></labels>
<original_size><width>{W}</width><height>{H}</height></original_size></task></meta>
<track id="0" label="car">
  <box frame="0" outside="0" occluded="0" keyframe="1" xtl="1" ytl="1" xbr="5" ybr="5" z_order="0"/>
  <box frame="1" outside="0" occluded="0" keyframe="0" xtl="2" ytl="1" xbr="6" ybr="5" z_order="0"/>
  <box frame="2" outside="1" occluded="0" keyframe="1" xtl="3" ytl="1" xbr="7" ybr="5" z_order="0"/>
</track>
<track id="1" label="car">
  <box frame="1" outside="0" occluded="1" keyframe="1" xtl="10" ytl="2" xbr="20" ybr="9" z_order="0"/>
  <box frame="2" outside="0" occluded="0" keyframe="1" xtl="10" ytl="2" xbr="20" ybr="9" z_order="0"/>
</track></annotations>""")
    return root


# --- makesense -----------------------------------------------------------------------------------

MAKESENSE_CSV = "labels_my-project-name_2024-01-02-03-04-05.csv"


def make_makesense(root: Path, *, header: bool = True) -> Path:
    write_image(root / "a.jpg", seed=1)
    write_image(root / "b.v2.jpg", seed=2)
    write_image(root / "unseen.jpg", seed=3)
    rows = ["cat,2,3,10,5,a.jpg,24,16", "dog,0,0,4,4,a.jpg,24,16", "cat,5,5,6,6,b.v2.jpg,24,16"]
    text = ("label_name,bbox_x,bbox_y,bbox_width,bbox_height,image_name,image_width,image_height\n" if header else "")
    (root / MAKESENSE_CSV).write_text(text + "\n".join(rows) + "\n")
    return root


# --- Roboflow ------------------------------------------------------------------------------------

def make_roboflow_coco(root: Path) -> Path:
    for split in ("train", "valid"):
        write_image(root / split / f"{split}_0.jpg")
        write_json(root / split / "_annotations.coco.json", {
            "info": {"year": "2024"}, "licenses": [{"id": 1, "name": "Unknown"}],
            "categories": [{"id": 0, "name": "pets", "supercategory": "none"},
                           {"id": 1, "name": "cat", "supercategory": "pets"},
                           {"id": 2, "name": "dog", "supercategory": "pets"}],
            "images": [{"id": 0, "file_name": f"{split}_0.jpg", "width": W, "height": H}],
            "annotations": [{"id": 0, "image_id": 0, "category_id": 2, "bbox": [1, 1, 5, 5], "area": 25,
                             "iscrowd": 0, "segmentation": []}]})
    (root / "README.roboflow.txt").write_text("exported from roboflow")
    return root


def make_roboflow_multilabel(root: Path) -> Path:
    write_image(root / "train" / "x.jpg", seed=1)
    write_image(root / "train" / "y.jpg", seed=2)
    (root / "train" / "_classes.csv").write_text("filename, Acne, Blackheads\nx.jpg, 1, 1\ny.jpg, 0, 0\n")
    return root


# --- camera traps --------------------------------------------------------------------------------

def camera_jpeg(when: str | None, seed: int = 0, w: int = W, h: int = H) -> bytes:
    """A JPEG with Reconyx-like EXIF: NUL-padded model, DateTimeOriginal ``when`` (EXIF colons)."""
    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[271] = "RECONYX  "
    exif[272] = "HF2 PRO COVERT\x00\x00\x00"
    ifd = exif.get_ifd(0x8769)
    if when:
        ifd[36867] = when
    ifd[42033] = f"SN{seed:04d}\x00"
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=85, exif=exif.tobytes())
    return buf.getvalue()


#: (relative path, capture time) of the generated archive; IMG_0001.JPG repeats in every camera
ARCHIVE = [
    ("2019/set_01/site_A/cam1/IMG_0001.JPG", "2019:05:01 10:00:00"),
    ("2019/set_01/site_A/cam1/IMG_0002.JPG", "2019:05:01 10:00:02"),
    ("2019/set_01/site_A/cam1/IMG_0003.JPG", "2019:05:01 10:00:04"),
    ("2019/set_01/site_A/cam1/IMG_0004.JPG", "2019:05:01 10:30:00"),
    ("2019/set_01/site_A/cam2/IMG_0001.JPG", "2019:05:02 08:00:00"),
    ("2019/set_01/site_A/cam2/IMG_0002.JPG", "2019:05:02 08:00:01"),
    ("2019/set_01/site_B/cam1/IMG_0001.JPG", "2019:05:03 12:00:00"),
    ("2019/set_01/site_B/cam1/IMG_0002.JPG", "2019:05:03 11:00:00"),   # clock went backwards
    ("2019/set_01/site_B/cam1/IMG_0003.JPG", "1999:12:31 23:59:59"),   # clock reset
    ("2020/set_02/site_C/cam1/IMG_0001.JPG", None),                    # no EXIF time
]

SPECIES_CSV = """RelativePath,File,Species
2019/set_01/site_A/cam1,IMG_0001.JPG,wallaby
2019/set_01/site_A/cam1,IMG_0002.JPG,wallaby
2019/set_01/site_A/cam1,IMG_0003.JPG,none
2019/set_01/site_A/cam1,IMG_0004.JPG,fox
2019/set_01/site_A/cam2,IMG_0001.JPG,fox
2019/set_01/site_A/cam2,IMG_0001.JPG,wallaby
2019/set_01/site_B/cam1,IMG_0001.JPG,
2019/set_01/site_B/cam1,IMG_0002.JPG,echidna
2019/set_01/site_B/cam1,IMG_0003.JPG,echidna
2019/set_01/site_B/cam9,IMG_0001.JPG,fox
"""


def make_archive(root: Path, sheet: bool = True) -> Path:
    for i, (rel, when) in enumerate(ARCHIVE):
        p = root / "archive" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(camera_jpeg(when, seed=i))
    if sheet:
        (root / "species.csv").write_text(SPECIES_CSV)
    return root / "archive"


def ingest_ledger(src, out, **kw) -> tuple[dict | None, list]:
    """Ingest and return ``(cvft.json, ledger entries)``; ``(None, entries)`` when the ingest ended
    with nothing to publish (EmptyDatasetError carries the ledger: nothing was written)."""
    import cvft_data
    from cvft_data.errors import EmptyDatasetError
    from cvft_data.ledger import LedgerEntry

    try:
        info = cvft_data.ingest(src, out, **kw)
    except EmptyDatasetError as exc:
        assert not Path(out).exists(), "an empty ingest publishes nothing"
        return None, [LedgerEntry(**e) for e in exc.ledger]
    return info, list(cvft_data.read_ledger(out))


def ledger_summary(entries: list) -> dict:
    from cvft_data.ledger import Ledger

    return Ledger(list(entries)).summary()


def make_panoptic(root):
    write_image(root / "images" / "train" / "a.jpg")
    (root / "annotations" / "panoptic_train").mkdir(parents=True)
    Image.fromarray(np.full((H, W, 3), 3, np.uint8)).save(root / "annotations" / "panoptic_train" / "a.png")
    write_json(root / "annotations" / "panoptic_train.json", {
        "images": [{"id": 1, "file_name": "a.jpg", "width": W, "height": H}],
        "annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": [
            {"id": 197379, "category_id": 1, "area": 384, "bbox": [0, 0, W, H], "iscrowd": 0}]}],
        "categories": [{"id": 1, "name": "ground", "isthing": 0}]})
    return root


class LocalServer:
    """A threaded HTTP server on 127.0.0.1 (a free port) serving ``handler``, for download tests:
    ``with Sub(...) as server: fetch(server.url)``."""

    def __init__(self, handler):
        import http.server
        import threading

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
