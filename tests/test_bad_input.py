"""Bad input: a clear error under ``raise``; under ``skip`` the rest ingests and the ledger names the item."""

from __future__ import annotations

import pytest

import cvft_data
from builders import coco_doc, make_coco, make_voc, make_yolo, write_image, write_json
from cvft_data.errors import (
    CorruptImageError,
    GeometryError,
    MalformedFileError,
    MissingImageError,
    UnknownClassError,
    UnsafePathError,
)


def _coco_with(tmp_path, images=(), annotations=()):
    return make_coco(tmp_path / "src", with_bad={"images": list(images), "annotations": list(annotations)})


def _both_policies(tmp_path, src, error_cls, message_parts, expected_item, action, **kw):
    with pytest.raises(error_cls) as e:
        cvft_data.ingest(src, tmp_path / "ds_raise", **kw)
    text = str(e.value)
    for part in message_parts:
        assert part in text, f"{part!r} not in {text!r}"
    assert "expected" in text
    assert not (tmp_path / "ds_raise").exists(), "a failed ingest must leave no dataset behind"
    info = cvft_data.ingest(src, tmp_path / "ds_skip", on_error="skip", **kw)
    entries = [x for x in cvft_data.read_ledger(tmp_path / "ds_skip") if x.reason == error_cls.code]
    assert entries, f"no {error_cls.code} entry in the ledger"
    assert any(expected_item in x.item for x in entries) and all(x.action == action for x in entries)
    return info


def test_missing_image(tmp_path):
    src = _coco_with(tmp_path, images=[{"id": 99, "file_name": "gone.jpg", "width": 24, "height": 16}],
                     annotations=[{"id": 50, "image_id": 99, "category_id": 1, "bbox": [0, 0, 2, 2]}])
    info = _both_policies(tmp_path, src, MissingImageError, ["gone.jpg", "instances_train.json"], "gone.jpg",
                          "dropped_image")
    assert info["splits"]["train"]["images"] == 4 and info["ledger"]["annotations_dropped"] == 1


def test_truncated_jpeg(tmp_path):
    src = make_coco(tmp_path / "src")
    p = src / "images" / "train" / "1.jpg"
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    info = _both_policies(tmp_path, src, CorruptImageError, ["1.jpg", "truncated"], "images/train/1.jpg",
                          "dropped_image")
    assert info["splits"]["train"]["images"] == 3


def test_not_an_image_at_all(tmp_path):
    write_image(tmp_path / "src" / "cat" / "ok.jpg")
    (tmp_path / "src" / "cat" / "bad.jpg").write_bytes(b"this is text")
    info = _both_policies(tmp_path, tmp_path / "src", CorruptImageError, ["cat/bad.jpg", "header"], "cat/bad.jpg",
                          "dropped_image")
    assert info["splits"]["train"]["images"] == 1, "the good image still lands"


def test_box_outside_the_image(tmp_path):
    src = _coco_with(tmp_path, annotations=[{"id": 60, "image_id": 13, "category_id": 1, "bbox": [20, 2, 10, 5]}])
    _both_policies(tmp_path, src, GeometryError, ["leaves the 24x16 image", "images/train/3.jpg"],
                   "images/train/3.jpg", "clipped")
    row = {r["image_id"]: r for r in cvft_data.load(tmp_path / "ds_skip")["train"]}["images/train/3.jpg"]
    assert row["objects"]["bbox"] == [[20, 2, 4, 5]]


def test_box_entirely_outside_is_dropped(tmp_path):
    src = _coco_with(tmp_path, annotations=[{"id": 61, "image_id": 13, "category_id": 1, "bbox": [40, 2, 10, 5]}])
    cvft_data.ingest(src, tmp_path / "ds", on_error="skip")
    entry = next(e for e in cvft_data.read_ledger(tmp_path / "ds") if e.reason == "bad_geometry")
    assert entry.action == "dropped_annotation"
    row = {r["image_id"]: r for r in cvft_data.load(tmp_path / "ds")["train"]}["images/train/3.jpg"]
    assert row["label_status"] == "unlabeled", "an image whose only box was dropped is not a null image"


def test_unknown_class_id_yolo(tmp_path):
    src = make_yolo(tmp_path / "src", extra_lines={"train/a": ["5 0.5 0.5 0.1 0.1"]})
    info = _both_policies(tmp_path, src, UnknownClassError, ["class id 5", "labels/train/a.txt"],
                          "images/train/a.jpg#line 3", "dropped_annotation")
    assert info["splits"]["train"]["objects"] == 3


def test_unknown_category_coco(tmp_path):
    src = _coco_with(tmp_path, annotations=[{"id": 70, "image_id": 13, "category_id": 42, "bbox": [1, 1, 2, 2]}])
    info = _both_policies(tmp_path, src, UnknownClassError, ["category_id 42", "instances_train.json"],
                          "annotation 70", "dropped_annotation")
    assert info["ledger"]["annotations_dropped"] == 1 and info["splits"]["train"]["objects"] == 4


def test_malformed_json(tmp_path):
    src = make_coco(tmp_path / "src")
    (src / "annotations" / "instances_train.json").write_text('{"images": [ {"id": 1,, }')
    info = _both_policies(tmp_path, src, MalformedFileError, ["instances_train.json", "line 1"],
                          "instances_train.json", "ignored_file")
    assert list(info["splits"]) == ["validation"], "the other split still ingests"


def test_malformed_xml(tmp_path):
    src = make_voc(tmp_path / "src")
    (src / "Annotations" / "c78.xml").write_text("<annotation><object><name>dog</name></annotation>")
    info = _both_policies(tmp_path, src, MalformedFileError, ["c78.xml", "line"], "c78", "dropped_image")
    assert info["splits"]["train"]["images"] == 2


def test_xml_bomb_is_refused(tmp_path):
    src = make_voc(tmp_path / "src")
    (src / "Annotations" / "c78.xml").write_text(
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxx"><!ENTITY y "&x;&x;&x;&x;">]>'
        "<annotation><filename>&y;</filename></annotation>")
    with pytest.raises(MalformedFileError, match="unsafe XML"):
        cvft_data.ingest(src, tmp_path / "ds")


def test_path_traversal_in_file_name(tmp_path):
    write_image(tmp_path / "secret.jpg")  # exists, outside the root: must never be read
    src = _coco_with(tmp_path, images=[{"id": 98, "file_name": "../../secret.jpg", "width": 24, "height": 16}])
    _both_policies(tmp_path, src, UnsafePathError, ["../../secret.jpg", "escapes"], "secret.jpg", "dropped_image")
    ids = [r["image_id"] for r in cvft_data.load(tmp_path / "ds_skip")["train"]]
    assert not any("secret" in i for i in ids)


def test_symlink_out_of_the_root_is_not_followed(tmp_path):
    write_image(tmp_path / "outside" / "x.jpg")
    src = make_coco(tmp_path / "src")
    (src / "images" / "train" / "link.jpg").symlink_to(tmp_path / "outside" / "x.jpg")
    doc = coco_doc([{"id": 1, "file_name": "link.jpg", "width": 24, "height": 16}], [])
    write_json(src / "annotations" / "instances_test.json", doc)
    (src / "images" / "test").mkdir()
    with pytest.raises(MissingImageError):
        cvft_data.ingest(src, tmp_path / "ds")


def test_absolute_foreign_file_name_is_found_inside_the_root(tmp_path):
    src = _coco_with(tmp_path)
    doc = coco_doc([{"id": 1, "file_name": "/Weed-ID-Interchange/upload/0.jpg", "width": 24, "height": 16}], [])
    write_json(src / "annotations" / "instances_test.json", doc)
    write_image(src / "images" / "test" / "0.jpg")
    info = cvft_data.ingest(src, tmp_path / "ds")
    assert info["splits"]["test"]["images"] == 1


def test_declared_size_mismatch(tmp_path):
    src = _coco_with(tmp_path)
    doc = coco_doc([{"id": 1, "file_name": "0.jpg", "width": 30, "height": 16}], [])
    write_json(src / "annotations" / "instances_test.json", doc)
    write_image(src / "images" / "test" / "0.jpg")
    from cvft_data.errors import SizeMismatchError
    info = _both_policies(tmp_path, src, SizeMismatchError, ["30x16", "24x16"], "images/test/0.jpg", "kept")
    assert info["splits"]["test"]["images"] == 1, "under skip the image is kept"


@pytest.mark.parametrize("bad", [{"bbox": [1, float("nan"), 3, 4]}, {"bbox": [1, 2, float("inf"), 4]},
                                 {"area": -5.0}, {"area": float("nan")},
                                 {"segmentation": [[1, 1, 5, 1, float("nan"), 5]]},
                                 {"keypoints": [2, 2, 2, float("inf"), 3, 2], "num_keypoints": 2}],
                         ids=["nan-box", "inf-box", "negative-area", "nan-area", "nan-polygon", "inf-keypoint"])
def test_non_finite_numbers_are_geometry_errors_in_every_connector(tmp_path, bad):
    """NaN and inf (valid in Python's JSON) were written into the dataset: comparisons with NaN
    are all false, so no geometry check caught them. The builder checks every connector's objects."""
    from cvft_data.errors import GeometryError

    write_image(tmp_path / "src" / "images" / "a.jpg")
    ann = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "area": 12.0, "iscrowd": 0, **bad}
    doc = coco_doc([{"id": 1, "file_name": "a.jpg", "width": 24, "height": 16}],
                   [ann, {"id": 2, "image_id": 1, "category_id": 1, "bbox": [5, 5, 4, 4], "area": 16.0, "iscrowd": 0}])
    (tmp_path / "src" / "annotations").mkdir(parents=True)
    import json
    (tmp_path / "src" / "annotations" / "instances_train.json").write_text(json.dumps(doc))   # NaN, Infinity
    with pytest.raises(GeometryError, match="not a finite number"):
        cvft_data.ingest(tmp_path / "src", tmp_path / "ds")
    info = cvft_data.ingest(tmp_path / "src", tmp_path / "ds2", on_error="skip")
    assert info["splits"]["train"]["objects"] == 1
    assert [e.reason for e in cvft_data.read_ledger(tmp_path / "ds2")] == ["bad_geometry"]
