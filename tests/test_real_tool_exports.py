"""The real makesense, Roboflow and CVAT exports in ../shared/fixtures/real."""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pytest
import yaml
from defusedxml import ElementTree

import cvft_data
from builders import ingest_ledger, ledger_summary, write_image
from cvft_data import masks

pytestmark = pytest.mark.real_fixtures


def counts(path) -> Counter:
    c: Counter = Counter()
    for s in cvft_data.info(path)["splits"].values():
        c.update({k: v for k, v in s["class_counts"].items() if v})
    return c


def test_roboflow_sharks_coco_and_yolo_agree(real, tmp_path):
    a = cvft_data.ingest(real / "roboflow/rfpy_sharks-tiny-coco", tmp_path / "coco")
    b = cvft_data.ingest(real / "roboflow/rfpy_sharks-tiny-yolov9", tmp_path / "yolo")
    assert a["classes"] == b["classes"] == ["fish", "primary", "shark"], "root category gone, ids aligned"
    assert a["ledger"]["by_reason"] == {"synthetic_root_category": 1}
    assert counts(tmp_path / "coco") == counts(tmp_path / "yolo")
    expected: Counter = Counter()
    for f in (real / "roboflow/rfpy_sharks-tiny-coco").glob("*/_annotations.coco.json"):
        doc = json.loads(f.read_text())
        names = {c["id"]: c["name"] for c in doc["categories"]}
        expected.update(names[x["category_id"]] for x in doc["annotations"])
    assert counts(tmp_path / "coco") == expected
    assert {k: v["images"] for k, v in a["splits"].items()} == {"train": 7, "validation": 2, "test": 1}
    # same source image, two exports: boxes agree within 1 px after scaling 256 -> 640
    ca = {r["image_id"].split("_jpg")[0].split("/")[-1]: r for r in cvft_data.load(tmp_path / "coco")["train"]}
    cb = {r["image_id"].split("_jpg")[0].split("/")[-1]: r for r in cvft_data.load(tmp_path / "yolo")["train"]}
    for stem in ca:
        ba = sorted(np.array(ca[stem]["objects"]["bbox"]).tolist())
        bb = sorted((np.array(cb[stem]["objects"]["bbox"]) * 256 / 640).tolist())
        assert len(ba) == len(bb) and np.abs(np.array(ba) - np.array(bb)).max() < 1.0


def test_roboflow_classification_and_csv(real, tmp_path):
    info = cvft_data.ingest(real / "roboflow/rfpy_corrosion-singlelabel-classification", tmp_path / "cls")
    assert info["classes"] == ["Corrosion", "no-corrosion"]
    assert sum(s["images"] for s in info["splits"].values()) == 10
    info, ledger = ingest_ledger(real / "roboflow/rfpy_mosquitos_csv", tmp_path / "csv", on_error="skip")
    rows = (real / "roboflow/rfpy_mosquitos_csv/mosquitos.csv").read_text().strip().splitlines()[1:]
    assert info is None, "no images here: the ingest is an error, not an empty dataset"
    assert ledger_summary(ledger)["annotations_dropped"] == len(rows), "every box is ledgered with its image"


def test_roboflow_dict_names_yaml(real):
    from connectors.yolo import parse_names
    doc = yaml.safe_load((real / "roboflow/rfpy_misc/dict_names.yaml").read_text())
    assert parse_names(doc["names"], "dict_names.yaml") == ["cat", "dog", "fish"]


def test_makesense_real_json(real, tmp_path):
    src = real / "makesense/real_exports"
    with pytest.raises(cvft_data.AnnotationError, match="category_id"):
        cvft_data.ingest(src, tmp_path / "ds")
    info, ledger = ingest_ledger(src, tmp_path / "ds", on_error="skip")
    doc = json.loads(next(src.glob("*.json")).read_text())
    assert info is None and ledger_summary(ledger)["annotations_dropped"] == len(doc["annotations"])
    # with the image present and the class given, every polygon lands
    write_image(tmp_path / "imgs" / "ejemplo.jpg", 1000, 750)
    labelled = json.loads(json.dumps(doc))
    labelled["categories"] = [{"id": 1, "name": "panel"}]
    for a in labelled["annotations"]:
        a["category_id"] = 1
    (tmp_path / "imgs" / "labels_my-project-name_2025-04-03-08-39-57.json").write_text(json.dumps(labelled))
    info = cvft_data.ingest(tmp_path / "imgs", tmp_path / "ds2")
    assert info["splits"]["train"]["objects"] == len(doc["annotations"])
    row = cvft_data.load(tmp_path / "ds2")["train"][0]
    assert row["objects"]["segmentation"][0]["polygons"][0] == doc["annotations"][0]["segmentation"][0]


def _cvat_shape_count(xml_path) -> int:
    root = ElementTree.parse(xml_path).getroot()
    n = 0
    for img in root.iter("image"):
        n += sum(1 for e in img if e.tag in ("box", "polygon", "polyline", "points", "ellipse", "cuboid", "mask",
                                             "skeleton"))
    return n


def test_cvat_datumaro_images(real, tmp_path):
    info = cvft_data.ingest(real / "cvat/datumaro_cvat/for_images", tmp_path / "ds", on_error="skip")
    total = _cvat_shape_count(real / "cvat/datumaro_cvat/for_images/train.xml")
    assert info["splits"]["train"]["objects"] + info["ledger"]["annotations_dropped"] == total
    assert info["ledger"]["by_reason"] == {"unknown_class": 2}  # the two shapes with label=""


def test_cvat_datumaro_video(real, tmp_path):
    src = real / "cvat/datumaro_cvat/for_video"
    info = cvft_data.ingest(src, tmp_path / "ds", on_error="skip")
    root = ElementTree.parse(src / "annotations.xml").getroot()
    visible = sum(1 for t in root.findall("track") for e in t if e.tag != "track" and e.get("outside") != "1")
    assert info["splits"]["train"]["objects"] + info["ledger"]["annotations_dropped"] == visible


def test_cvat_docs_example_with_its_image(real, tmp_path):
    xml = real / "cvat/cvat_docs_examples/cvat_for_images_1.1_docs_example.xml"
    write_image(tmp_path / "imgs" / "filename000.jpg", 1600, 1200)
    with pytest.raises(cvft_data.UnknownClassError, match="good_frame"):  # the docs' tag is not a declared label
        cvft_data.ingest(xml, tmp_path / "ds", images=str(tmp_path / "imgs"))
    info = cvft_data.ingest(xml, tmp_path / "ds", images=str(tmp_path / "imgs"), on_error="skip")
    assert info["ledger"]["by_reason"] == {"unknown_class": 1}
    assert info["splits"]["train"]["objects"] == _cvat_shape_count(xml) == 7
    row = cvft_data.load(tmp_path / "ds")["train"][0]
    shapes = [a["shape"] for a in row["object_attributes"]]
    assert shapes == ["box", "polygon", "polyline", "polyline", "points", "skeleton", "mask"]
    # the reference decoding (FORMATS.md): row-major in the 13x15 box at (707, 888) gives a disc
    m = masks.decode(row["objects"]["segmentation"][6]["rle"])[888:903, 707:720]
    text = xml.read_text()
    counts_ = [int(v) for v in re.search(r'rle="([^"]+)"', text).group(1).split(",")]
    flat = np.repeat(np.arange(len(counts_)) % 2, counts_).reshape(15, 13)
    assert (m == flat).all()
    assert all(np.count_nonzero(np.diff(r)) <= 2 for r in m), "every row is one run: a convex blob"
    col_major = np.repeat(np.arange(len(counts_)) % 2, counts_).reshape(13, 15).T
    assert not all(np.count_nonzero(np.diff(r)) <= 2 for r in col_major), "column-major would not be a disc"
    assert m.sum() == sum(counts_[1::2])
