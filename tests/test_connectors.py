"""Each connector on a tiny generated copy of its layout: what lands in the dataset, and the ledger."""

from __future__ import annotations

import json

import numpy as np
import pytest

import connectors
import cvft_data
from builders import H, W, make_coco, make_folder, make_voc, make_yolo, write_image, write_json
from cvft_data import masks


def rows(ds, split):
    return {r["image_id"]: r for r in ds[split]}


def test_folder_tree(tmp_path):
    src = make_folder(tmp_path / "src")
    assert connectors.detect(src).name == "folder"
    info = cvft_data.ingest(src, tmp_path / "ds")
    assert info["task"] == "classification" and info["classes"] == ["cat", "dog"]
    ds = cvft_data.load(tmp_path / "ds")
    train = rows(ds, "train")
    assert set(train) == {"train/cat/a.jpg", "train/cat/2024/deep/b.JPG", "train/dog/c.PNG", "train/Empty/d.jpeg"}
    names = ds["train"].features["label"].names
    assert names[train["train/cat/2024/deep/b.JPG"]["label"]] == "cat"
    assert train["train/Empty/d.jpeg"]["label"] is None and train["train/Empty/d.jpeg"]["label_status"] == "empty"
    assert (train["train/cat/a.jpg"]["width"], train["train/cat/a.jpg"]["height"]) == (W, H)
    val = rows(ds, "validation")
    assert val["val/background/f.jpg"]["label_status"] == "empty"
    ledger = list(cvft_data.read_ledger(tmp_path / "ds"))
    assert [(e.item, e.action) for e in ledger] == [("train/dog/notes.txt", "ignored_file")]


def test_folder_without_splits_lands_in_train(tmp_path):
    write_image(tmp_path / "src" / "a" / "1.jpg")
    write_image(tmp_path / "src" / "b" / "2.jpg")
    write_image(tmp_path / "src" / "loose.jpg")
    cvft_data.ingest(tmp_path / "src", tmp_path / "ds")
    ds = cvft_data.load(tmp_path / "ds")
    assert list(ds) == ["train"]
    assert rows(ds, "train")["loose.jpg"]["label_status"] == "unlabeled"


def test_coco_boxes_polygons_rle_crowd_and_null_images(tmp_path):
    src = make_coco(tmp_path / "src")
    assert connectors.detect(src).name == "coco"
    info = cvft_data.ingest(src, tmp_path / "ds")
    assert info["task"] == "instance_segmentation"
    assert info["classes"] == ["cat", "dog"]
    assert [c["source_id"] for c in info["categories"]] == [1, 3]
    ds = cvft_data.load(tmp_path / "ds")
    train = rows(ds, "train")
    o0 = train["images/train/0.jpg"]["objects"]
    assert o0["bbox"][0] == pytest.approx([1.5, 2.25, 10.0, 5.0])
    assert o0["segmentation"][1]["polygons"] == [[2, 2, 8, 2, 8, 8], [10.5, 10, 12, 10, 12, 12]]
    crowd = train["images/train/1.jpg"]["objects"]
    assert crowd["iscrowd"] == [True]
    m = masks.decode(crowd["segmentation"][0]["rle"])
    expected = np.zeros((H, W), np.uint8)
    expected[2:6, 3:9] = 1
    assert (m == expected).all()
    assert (masks.decode(train["images/train/2.jpg"]["objects"]["segmentation"][0]["rle"]) == expected).all()
    assert train["images/train/3.jpg"]["label_status"] == "empty"
    assert train["images/train/3.jpg"]["meta"]["coco"]["id"] == 13
    assert info["splits"]["train"] == {"images": 4, "objects": 4, "labeled": 3, "empty": 1, "unlabeled": 0,
                                       "class_counts": {"cat": 2, "dog": 2}}


def test_coco_single_file_and_derived_bbox(tmp_path):
    write_image(tmp_path / "src" / "pics" / "a.png", fmt="PNG")
    write_json(tmp_path / "src" / "labels.json", {
        "images": [{"id": 0, "file_name": "pics/a.png", "width": W, "height": H}],
        "annotations": [{"id": 0, "image_id": 0, "category_id": 0, "segmentation": [[1, 1, 5, 1, 5, 4]]}],
        "categories": [{"id": 0, "name": "zero"}]})
    info = cvft_data.ingest(tmp_path / "src", tmp_path / "ds")
    row = cvft_data.load(tmp_path / "ds")["train"][0]
    assert info["classes"] == ["zero"], "category id 0 is a real class"
    assert row["objects"]["bbox"][0] == pytest.approx([1, 1, 4, 3])
    assert row["objects"]["area"][0] == pytest.approx(6.0)
    assert [e.reason for e in cvft_data.read_ledger(tmp_path / "ds")] == ["bbox_derived"]


def test_yolo_layout(tmp_path):
    src = make_yolo(tmp_path / "src", extra_lines={"train/a": ["1 0.5 0.5 0.25 0.25 7"]})
    assert connectors.detect(src).name == "yolo"
    info = cvft_data.ingest(src, tmp_path / "ds")
    assert info["task"] == "instance_segmentation"  # b.txt holds a polygon
    ds = cvft_data.load(tmp_path / "ds")
    train = rows(ds, "train")
    a = train["images/train/a.jpg"]["objects"]
    assert a["bbox"][0] == pytest.approx([9.0, 4.0, 6.0, 8.0])
    assert train["images/train/a.jpg"]["object_attributes"][2] == {"track_id": 7}
    b = train["images/train/b.jpg"]["objects"]
    assert b["segmentation"][0]["polygons"][0] == pytest.approx([2.4, 1.6, 12, 1.6, 12, 9.6, 2.4, 9.6])
    assert train["images/train/c.jpg"]["label_status"] == "empty"
    ledger = [e.reason for e in cvft_data.read_ledger(tmp_path / "ds")]
    assert ledger.count("box_without_mask") == 4  # a: 3 box lines, d: 1, in a segmentation dataset


def test_yolo_names_as_list_and_foreign_absolute_paths(tmp_path):
    src = make_yolo(tmp_path / "src")
    (src / "data.yaml").write_text("train: /Users/someone/exports/proj/images/train\nval: ../images/val\n"
                                   "nc: 2\nnames: ['cat', 'dog']\nroboflow:\n  workspace: w\n")
    info = cvft_data.ingest(src, tmp_path / "ds")
    assert info["splits"]["train"]["images"] == 3 and info["splits"]["validation"]["images"] == 1


def test_darknet_yolo(tmp_path):
    src = tmp_path / "src"
    write_image(src / "obj_train_data" / "1.jpg")
    (src / "obj_train_data" / "1.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    write_image(src / "obj_train_data" / "2.jpg")
    (src / "obj.names").write_text("cat\ndog\n")
    (src / "obj.data").write_text("classes = 2\ntrain = data/train.txt\nnames = data/obj.names\nbackup = backup/\n")
    (src / "train.txt").write_text("data/obj_train_data/1.jpg\ndata/obj_train_data/2.jpg\n")
    info = cvft_data.ingest(src, tmp_path / "ds")
    assert info["source"]["connector"] == "yolo"
    assert info["splits"]["train"] | {} == {"images": 2, "objects": 1, "labeled": 1, "empty": 1, "unlabeled": 0,
                                            "class_counts": {"cat": 0, "dog": 1}}


def test_voc_quirks(tmp_path):
    src = make_voc(tmp_path / "src")
    assert connectors.detect(src).name == "voc"
    info = cvft_data.ingest(src, tmp_path / "ds")
    ds = cvft_data.load(tmp_path / "ds")
    train = rows(ds, "train")
    assert set(train) == {"JPEGImages/0AF.jpg", "JPEGImages/c78.jpg", "JPEGImages/nolabel.jpg"}
    o = train["JPEGImages/0AF.jpg"]["objects"]
    assert o["bbox"] == [pytest.approx([0, 0, 10, 8]), pytest.approx([4.5, 1, 15.5, 15])]
    assert train["JPEGImages/0AF.jpg"]["object_attributes"][0] == {"difficult": 1, "truncated": 1}
    assert train["JPEGImages/c78.jpg"]["objects"]["bbox"] == [pytest.approx([1, 2, 11, 7])]
    assert train["JPEGImages/nolabel.jpg"]["label_status"] == "unlabeled"
    assert rows(ds, "validation")["JPEGImages/empty1.jpg"]["label_status"] == "empty"
    assert info["classes"] == ["cat", "dog"]
    assert {e.reason for e in cvft_data.read_ledger(tmp_path / "ds")} == {"filename_mismatch"}


def test_panoptic(tmp_path):
    from PIL import Image

    src = tmp_path / "src"
    write_image(src / "images" / "train" / "a.jpg")
    write_image(src / "images" / "train" / "b.jpg", seed=2)
    seg = np.zeros((H, W, 3), np.uint8)
    seg[:8, :, 0] = 7
    seg[8:, :, 0] = 4
    seg[8:, :, 1] = 1  # id 4 + 256 = 260
    (src / "annotations" / "panoptic_train").mkdir(parents=True)
    Image.fromarray(seg).save(src / "annotations" / "panoptic_train" / "a.png")
    write_json(src / "annotations" / "panoptic_train.json", {
        "images": [{"id": 1, "file_name": "a.jpg", "width": W, "height": H},
                   {"id": 2, "file_name": "b.jpg", "width": W, "height": H}],
        "annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": [
            {"id": 7, "category_id": 1, "area": 192, "bbox": [0, 0, 24, 8], "iscrowd": 0},
            {"id": 260, "category_id": 2, "area": 192, "bbox": [0, 8, 24, 8], "iscrowd": 0}]}],
        "categories": [{"id": 1, "name": "sky", "isthing": 0}, {"id": 2, "name": "road", "isthing": 0}]})
    assert connectors.detect(src).name == "coco_panoptic"
    info = cvft_data.ingest(src, tmp_path / "ds")
    ds = cvft_data.load(tmp_path / "ds")
    r = rows(ds, "train")
    a = r["images/train/a.jpg"]
    assert [s["id"] for s in a["segments_info"]] == [7, 260]
    png = np.asarray(a["panoptic"])
    png = png.astype(np.int64)
    ids = png[..., 0] + 256 * png[..., 1] + 65536 * png[..., 2]
    assert set(np.unique(ids)) == {7, 260}
    assert r["images/train/b.jpg"]["label_status"] == "unlabeled"
    assert info["categories"][0]["isthing"] == 0


def test_detection_explains_every_rejection(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(cvft_data.FormatDetectionError) as e:
        connectors.detect(tmp_path)
    for name in connectors.available():
        assert f"{name}:" in str(e.value)


def test_cvft_json_sidecar(tmp_path):
    make_coco(tmp_path / "src")
    cvft_data.ingest(tmp_path / "src", tmp_path / "ds")
    doc = json.loads((tmp_path / "ds" / "cvft.json").read_text())
    assert doc["schema_version"] == 2 and doc["source"]["connector"] == "coco"
    assert len(doc["content_hash"]) == 32 and doc["ledger"]["entries"] == 0


def test_detection_refuses_to_break_a_tie_by_name(tmp_path, monkeypatch):
    import connectors
    from connectors.base import Confidence, Score
    from cvft_data.errors import UsageError

    class A:
        name = "alpha"

        @classmethod
        def sniff(cls, root):
            return Confidence(Score.STRUCTURE, "looks like alpha")

    class B(A):
        name = "beta"

        @classmethod
        def sniff(cls, root):
            return Confidence(Score.STRUCTURE, "looks like beta")

    monkeypatch.setattr(connectors, "registry", lambda: {"alpha": A, "beta": B})
    with pytest.raises(UsageError, match=r"2 formats read .* equally well \(alpha: looks like alpha; beta: looks like"):
        connectors.detect(tmp_path)


def test_a_yolo_label_file_without_its_image_is_not_lost_silently(tmp_path):
    """Labels whose image is gone were skipped without a word: the connector walked the images."""
    import cvft_data
    from builders import make_yolo
    from cvft_data.errors import MissingImageError

    root = make_yolo(tmp_path / "src")
    label = next(p for p in sorted((root / "labels").rglob("*.txt")) if p.read_text().strip())
    image = next((root / "images").rglob(label.stem + ".*"))
    image.unlink()
    with pytest.raises(MissingImageError, match=f"label file .*{label.name} has no image"):
        cvft_data.ingest(root, tmp_path / "ds")
    info = cvft_data.ingest(root, tmp_path / "ds2", on_error="skip")
    entry = next(e for e in cvft_data.read_ledger(tmp_path / "ds2") if e.item == label.stem)
    assert entry.action == "dropped_image" and entry.annotations == len(label.read_text().split("\n")) - 1
    assert info["ledger"]["annotations_dropped"] >= entry.annotations
