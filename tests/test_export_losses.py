"""Exports carry it or ledger it: keypoints, shapes YOLO has no form for, attributes, splits of
any name, multi-label datasets, masks that trace to nothing. Each export re-ingests whole."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from dsfactory import row, scene, write_dataset

import cvft_data
from builders import cvat_images_xml, make_cvat, write_image, write_json
from cvft_data.errors import UsageError


def _ledger(summary: dict) -> dict:
    return {e["reason"]: e for e in summary["ledger_entries"]}


def test_yolo_export_writes_keypoints_and_ledgers_objects_without_them(tmp_path):
    src = tmp_path / "src"
    write_image(src / "images" / "a.jpg", 40, 30)
    kp = [5, 5, 2, 10, 10, 2, 0, 0, 0]
    write_json(src / "annotations" / "person_keypoints_train.json", {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 20, 20], "keypoints": kp,
                         "num_keypoints": 2},
                        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [22, 5, 10, 10]}],
        "categories": [{"id": 1, "name": "person", "keypoints": ["a", "b", "c"]}]})
    cvft_data.ingest(src, tmp_path / "ds")
    summary = cvft_data.export(tmp_path / "ds", "yolo", tmp_path / "yolo")
    doc = yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())
    assert doc["kpt_shape"] == [3, 3]
    lines = (tmp_path / "yolo" / "labels" / "train" / "a.txt").read_text().splitlines()
    assert [len(ln.split()) for ln in lines] == [5 + 9, 5 + 9]
    assert "keypoints_zero_filled" in _ledger(summary)
    back = cvft_data.ingest(tmp_path / "yolo", tmp_path / "back")
    assert back["splits"]["train"]["objects"] == 2


def test_yolo_export_ledgers_cvat_shapes_and_attributes_it_cannot_carry(tmp_path):
    src = tmp_path / "src"
    write_image(src / "images" / "img0.jpg")
    shapes = ('<box label="car" occluded="1" xtl="1" ytl="1" xbr="9" ybr="7" z_order="0">'
              '<attribute name="parked">true</attribute></box>'
              '<points label="person" occluded="0" points="2,2;5,5;8,3" z_order="0"/>'
              '<polyline label="person" occluded="0" points="1,10;12,12;20,14" z_order="0"/>')
    (src / "annotations.xml").write_text(cvat_images_xml(shapes))
    info = cvft_data.ingest(src, tmp_path / "ds")
    assert info["task"] == "detection"
    summary = cvft_data.export(tmp_path / "ds", "yolo", tmp_path / "yolo")
    got = _ledger(summary)
    assert "2 objects" in got["shape_as_box"]["detail"] and "attributes_not_exported" in got


def test_cvat_shapes_in_a_segmentation_export_are_ledgered(tmp_path):
    src = make_cvat(tmp_path / "src")
    info = cvft_data.ingest(src, tmp_path / "ds", on_error="skip")
    summary = cvft_data.export(tmp_path / "ds", "yolo", tmp_path / "yolo")
    got = _ledger(summary)
    assert "attributes_not_exported" in got
    if info["task"] == "instance_segmentation":
        assert {"box_as_polygon"} & set(got)


@pytest.mark.parametrize("splits", [["default"], ["validation"], ["test"], ["train", "minival"]])
def test_any_split_names_export_to_exactly_the_folders_written_and_reingest_whole(tmp_path, splits):
    rows = {s: [row(f"{s}/{i}.jpg", scene(10 * k + i), boxes=[(0, [4, 4, 20, 20])]) for i in range(2)]
            for k, s in enumerate(splits)}
    write_dataset(tmp_path / "ds", rows, ["cat"])
    cvft_data.export(tmp_path / "ds", "yolo", tmp_path / "yolo")
    doc = yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())
    listed = {v for k, v in doc.items() if isinstance(v, str) and v.startswith("images/")}
    written = {f"images/{p.name}" for p in (tmp_path / "yolo" / "images").iterdir()}
    assert listed == written
    back = cvft_data.ingest(tmp_path / "yolo", tmp_path / "back")
    assert sum(s["images"] for s in back["splits"].values()) == 2 * len(splits)
    assert sum(s["objects"] for s in back["splits"].values()) == 2 * len(splits)


def test_a_split_whose_images_were_all_left_out_is_not_listed(tmp_path):
    write_dataset(tmp_path / "ds", {
        "train": [row("a.jpg", scene(1), boxes=[(0, [4, 4, 20, 20])])],
        "validation": [row("b.jpg", scene(2), status="unlabeled")]}, ["cat"])
    summary = cvft_data.export(tmp_path / "ds", "yolo", tmp_path / "yolo")
    doc = yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())
    assert doc["train"] == "images/train" and doc["val"] == "images/train"
    assert "unlabeled_not_exported" in _ledger(summary)
    back = cvft_data.ingest(tmp_path / "yolo", tmp_path / "back")
    assert back["splits"]["train"]["images"] == 1


def test_a_multilabel_dataset_exports_to_csv_and_refusals_point_there(tmp_path):
    from builders import make_roboflow_multilabel

    src = make_roboflow_multilabel(tmp_path / "src")
    info = cvft_data.ingest(src, tmp_path / "ds")
    assert info["task"] == "multilabel"
    for to in ("yolo", "coco", "imagefolder"):
        with pytest.raises(UsageError, match="--to csv"):
            cvft_data.export(tmp_path / "ds", to, tmp_path / to)
    summary = cvft_data.export(tmp_path / "ds", "csv", tmp_path / "csv")
    back = cvft_data.ingest(tmp_path / "csv", tmp_path / "back")
    assert back["task"] == "multilabel" and summary["images"] == sum(s["images"] for s in info["splits"].values())
    for split in info["splits"]:
        assert back["splits"][split]["class_counts"] == info["splits"][split]["class_counts"]


def test_zero_area_polygons_traced_from_masks_are_not_written(tmp_path):
    pytest.importorskip("cv2")
    from cvft_data import masks

    m = np.zeros((64, 96), np.uint8)
    m[10:30, 10:30] = 1          # a blob
    for i in range(6):           # a one-pixel V: traces to a polygon that goes out and back, no area
        m[40 + i, 40 + i] = 1
        m[40 + i, 50 - i] = 1
    r = row("a.jpg", scene(1), task="instance_segmentation", boxes=[(0, [10, 10, 70, 41])])
    r["objects"]["segmentation"] = [{"polygons": [], "rle": masks.encode(m)}]
    write_dataset(tmp_path / "ds", {"train": [r]}, ["weed"], task="instance_segmentation")
    cvft_data.export(tmp_path / "ds", "yolo", tmp_path / "yolo")
    lines = (tmp_path / "yolo" / "labels" / "train" / "a.txt").read_text().splitlines()
    from cvft_data.boxes import polygon_area
    assert len(lines) == 1
    for ln in lines:
        vals = [float(v) for v in ln.split()[1:]]
        assert len(vals) >= 6 and polygon_area(vals) > 0


@pytest.mark.real_fixtures
@pytest.mark.parametrize("to", ["yolo", "coco"])
def test_real_exports_round_trip_without_silent_changes(real, to, tmp_path):
    """ingest -> export -> re-ingest over every real export: what changed is in a ledger
    (``bench/roundtrip_real.py`` prints the table)."""
    import importlib.util
    from pathlib import Path

    from test_real_fixtures import EXPECTED_CONNECTOR

    spec = importlib.util.spec_from_file_location("roundtrip_real", Path(__file__).parents[1] / "bench" / "roundtrip_real.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.REAL = real
    silent = {}
    for k, (rel, fmt) in enumerate(sorted(EXPECTED_CONNECTOR.items())):
        r = module.roundtrip(real / rel, fmt, to, tmp_path / str(k))
        assert not r["status"].startswith("re-ingest failed"), r
        if r["status"] == "ok" and r["silent_annotations"] + r["silent_images"]:
            silent[rel] = r
    assert not silent
