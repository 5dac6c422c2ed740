"""Exporters, each proven by a round trip that moves the output folder before reading it back."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import yaml

import cvft_data
from builders import H, W, make_coco, make_folder, make_voc, make_yolo, write_image, write_json
from cvft_data import masks


def _rows(path, split="train"):
    return {r["image_id"]: r for r in cvft_data.load(path)[split]}


def _objects_by_name(path, split):
    out = {}
    for r in cvft_data.load(path)[split]:
        o = r["objects"]
        out[os.path.basename(r["image_id"])] = sorted(
            (o["category"][i], tuple(round(v, 3) for v in o["bbox"][i]), o["iscrowd"][i]) for i in range(len(o["bbox"])))
    return out


def test_coco_export_round_trip(tmp_path):
    make_coco(tmp_path / "src")
    cvft_data.ingest(tmp_path / "src", tmp_path / "ds")
    summary = cvft_data.export(tmp_path / "ds", "coco", tmp_path / "out")
    assert summary["images"] == 5 and summary["objects"] == 5
    shutil.move(tmp_path / "out", tmp_path / "moved")
    doc = json.loads((tmp_path / "moved" / "annotations" / "instances_train.json").read_text())
    assert [c["id"] for c in doc["categories"]] == [1, 3], "source category ids are kept"
    crowd = next(a for a in doc["annotations"] if a["iscrowd"])
    assert isinstance(crowd["segmentation"]["counts"], list), "crowd masks as uncompressed RLE, as COCO does"
    cvft_data.ingest(tmp_path / "moved", tmp_path / "back")
    for split in ("train", "validation"):
        assert _objects_by_name(tmp_path / "back", split) == _objects_by_name(tmp_path / "ds", split)
    a, b = _rows(tmp_path / "ds"), _rows(tmp_path / "back")
    for iid, row in a.items():
        other = b[iid.replace("images/train/", "images/train/")]
        for s1, s2 in zip(row["objects"]["segmentation"], other["objects"]["segmentation"]):
            assert s1["polygons"] == s2["polygons"]
            if s1["rle"]:
                assert (masks.decode(s1["rle"]) == masks.decode(s2["rle"])).all()
        assert other["label_status"] == row["label_status"]


def test_yolo_export_round_trip_and_ledger(tmp_path):
    make_yolo(tmp_path / "src")
    cvft_data.ingest(tmp_path / "src", tmp_path / "ds")
    summary = cvft_data.export(tmp_path / "ds", "yolo", tmp_path / "out")
    shutil.move(tmp_path / "out", tmp_path / "moved")
    doc = yaml.safe_load((tmp_path / "moved" / "data.yaml").read_text())
    assert doc["names"] == {0: "cat", 1: "dog"} and doc["train"] == "images/train" and doc["val"] == "images/val"
    assert (tmp_path / "moved" / "labels" / "train" / "c.txt").read_text() == "", "null image: empty label file"
    # box lines in a segmentation dataset become rectangles, and say so
    assert summary["ledger"]["by_reason"] == {"box_as_polygon": 3}
    cvft_data.ingest(tmp_path / "moved", tmp_path / "back")
    a, b = _rows(tmp_path / "ds"), _rows(tmp_path / "back")
    assert a.keys() == b.keys()
    for iid in a:
        assert a[iid]["objects"]["category"] == b[iid]["objects"]["category"]
        assert np.allclose(a[iid]["objects"]["bbox"], b[iid]["objects"]["bbox"], atol=1e-3) if a[iid]["objects"]["bbox"] else True


def test_yolo_export_of_coco_masks_crowds_and_unlabeled(tmp_path):
    make_coco(tmp_path / "src", with_bad={"annotations": [
        {"id": 80, "image_id": 13, "category_id": 1, "bbox": [30, 2, 4, 4]}]})  # dropped -> image 3 unlabeled
    cvft_data.ingest(tmp_path / "src", tmp_path / "ds", on_error="skip")
    summary = cvft_data.export(tmp_path / "ds", "yolo", tmp_path / "out")
    reasons = summary["ledger"]["by_reason"]
    assert reasons["crowd_not_exported"] == 1 and reasons["mask_to_polygon"] == 1
    assert reasons["unlabeled_not_exported"] == 1 and reasons["box_as_polygon"] == 2
    assert reasons["multipart_polygon"] == 1
    assert not (tmp_path / "out" / "images" / "train" / "3.jpg").exists()
    line = (tmp_path / "out" / "labels" / "train" / "2.txt").read_text().split()
    assert line[0] == "0" and len(line) >= 7


def test_detection_yolo_export_keeps_bytes(tmp_path):
    make_voc(tmp_path / "src")
    cvft_data.ingest(tmp_path / "src", tmp_path / "ds")
    cvft_data.export(tmp_path / "ds", "yolo", tmp_path / "out")
    assert (tmp_path / "out" / "images" / "train" / "0AF.jpg").read_bytes() == \
        (tmp_path / "src" / "JPEGImages" / "0AF.jpg").read_bytes()
    lines = (tmp_path / "out" / "labels" / "train" / "0AF.txt").read_text().splitlines()
    assert lines[0] == "0 0.20833333 0.25 0.41666667 0.5"


def test_reference_mode_export_hard_links(tmp_path):
    src = make_folder(tmp_path / "src")
    cvft_data.ingest(src, tmp_path / "ds", reference=True)
    cvft_data.export(tmp_path / "ds", "imagefolder", tmp_path / "out")
    a = src / "train" / "cat" / "a.jpg"
    b = tmp_path / "out" / "train" / "cat" / "a.jpg"
    assert os.stat(a).st_ino == os.stat(b).st_ino


def test_imagefolder_round_trip(tmp_path):
    src = make_folder(tmp_path / "src")
    cvft_data.ingest(src, tmp_path / "ds")
    cvft_data.export(tmp_path / "ds", "imagefolder", tmp_path / "out")
    shutil.move(tmp_path / "out", tmp_path / "moved")
    assert (tmp_path / "moved" / "train" / "cat" / "2024" / "deep" / "b.JPG").is_file()
    assert (tmp_path / "moved" / "train" / "empty" / "d.jpeg").is_file()
    cvft_data.ingest(tmp_path / "moved", tmp_path / "back")
    a, b = cvft_data.info(tmp_path / "ds"), cvft_data.info(tmp_path / "back")
    assert a["classes"] == b["classes"]
    for split in ("train", "validation"):
        for k in ("images", "empty", "class_counts"):
            assert a["splits"][split][k] == b["splits"][split][k]


def test_panoptic_coco_round_trip(tmp_path):
    from PIL import Image

    src = tmp_path / "src"
    write_image(src / "images" / "val" / "a.jpg")
    seg = np.zeros((H, W, 3), np.uint8)
    seg[:, :12, 0] = 9
    (src / "annotations" / "panoptic_val").mkdir(parents=True)
    Image.fromarray(seg).save(src / "annotations" / "panoptic_val" / "a.png")
    write_json(src / "annotations" / "panoptic_val.json", {
        "images": [{"id": 1, "file_name": "a.jpg", "width": W, "height": H}],
        "annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": [
            {"id": 9, "category_id": 5, "area": 192, "bbox": [0, 0, 12, 16], "iscrowd": 0}]}],
        "categories": [{"id": 5, "name": "grass", "isthing": 0}]})
    cvft_data.ingest(src, tmp_path / "ds")
    cvft_data.export(tmp_path / "ds", "coco", tmp_path / "out")
    shutil.move(tmp_path / "out", tmp_path / "moved")
    doc = json.loads((tmp_path / "moved" / "annotations" / "panoptic_val.json").read_text())
    assert doc["annotations"][0]["segments_info"][0]["category_id"] == 5
    cvft_data.ingest(tmp_path / "moved", tmp_path / "back")
    r1, r2 = cvft_data.load(tmp_path / "ds")["validation"][0], cvft_data.load(tmp_path / "back")["validation"][0]
    assert r1["segments_info"] == r2["segments_info"]
    assert (np.asarray(r1["panoptic"]) == np.asarray(r2["panoptic"])).all()


def test_export_refuses_what_the_format_cannot_hold(tmp_path):
    make_coco(tmp_path / "src")
    cvft_data.ingest(tmp_path / "src", tmp_path / "ds")
    with pytest.raises(cvft_data.UsageError, match="classification"):
        cvft_data.export(tmp_path / "ds", "imagefolder", tmp_path / "out")
    assert not (tmp_path / "out").exists() and not any(p.name.startswith(".out") for p in tmp_path.iterdir())
    with pytest.raises(cvft_data.UsageError, match="unknown export format"):
        cvft_data.export(tmp_path / "ds", "tfrecord", tmp_path / "out")


def test_yolo_classification_export_is_class_folders(tmp_path):
    make_folder(tmp_path / "src")
    cvft_data.ingest(tmp_path / "src", tmp_path / "ds")
    cvft_data.export(tmp_path / "ds", "yolo", tmp_path / "out")
    assert (tmp_path / "out" / "val" / "dog" / "e.jpg").is_file()
