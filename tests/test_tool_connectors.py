"""makesense.ai, Roboflow and CVAT connectors on generated exports: every shape and quirk."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import connectors
import cvft_data
from builders import (
    CVAT_MASK_RLE,
    MAKESENSE_CSV,
    H,
    W,
    image_bytes,
    ingest_ledger,
    ledger_summary,
    make_cvat,
    make_cvat_video,
    make_makesense,
    make_roboflow_coco,
    make_roboflow_multilabel,
    make_yolo,
    write_image,
    write_json,
)
from connectors.cvat import cvat_mask_to_rle, rotated_box_polygon
from cvft_data import masks


def by_id(path, split="train"):
    return {r["image_id"]: r for r in cvft_data.load(path)[split]}


# --- CVAT -----------------------------------------------------------------------------------------

def _check_cvat_shapes(ds_path, img_id):
    row = by_id(ds_path)[img_id]
    o, attrs = row["objects"], row["object_attributes"]
    shapes = [a["shape"] for a in attrs]
    assert shapes == ["box", "box", "polygon", "polyline", "points", "ellipse", "cuboid", "mask", "skeleton"]
    names = cvft_data.info(ds_path)["classes"]
    assert names == ["car", "person", "body"]
    box = attrs[0]
    assert box == {"parked": True, "speed": 12.5, "colour": "red", "occluded": True, "z_order": 2, "group_id": 4,
                   "shape": "box"}
    assert o["bbox"][0] == [1, 2, 8, 6]
    rotated = o["segmentation"][1]["polygons"][0]
    assert rotated == pytest.approx([14, 4, 14, 8, 10, 8, 10, 4])  # 90 deg about (12, 6): 4x4 square
    assert attrs[3]["points"] == [1, 1, 5, 1, 9, 1] and o["bbox"][3][3] == 1  # line: 1 px high hull
    m = masks.decode(o["segmentation"][7]["rle"])
    assert m.sum() == 16 and m[3, 3:6].all() and not m[3, 2] and m[4, 2:7].all()
    kp = attrs[8]["keypoints"]
    assert kp == [4, 2, 2, 5, 14, 1] and attrs[8]["nodes"] == ["head", "foot"]
    assert row["meta"]["tags"] == ["person"]
    return row


def test_cvat_folder_every_shape(tmp_path):
    src = make_cvat(tmp_path / "src")
    assert connectors.detect(src).name == "cvat"
    info = cvft_data.ingest(src, tmp_path / "ds")
    assert info["task"] == "instance_segmentation"
    _check_cvat_shapes(tmp_path / "ds", "images/img0.jpg")
    assert by_id(tmp_path / "ds")["images/sub/img1.png"]["label_status"] == "empty"
    reasons = info["ledger"]["by_reason"]
    assert reasons == {"rotated_box": 1, "ellipse_as_polygon": 1, "cuboid_as_box": 1, "tags_in_meta": 1}


def test_cvat_zip_is_read_in_place(tmp_path):
    src = make_cvat(tmp_path / "export.zip", zipped=True)
    assert connectors.detect(src).name == "cvat"
    cvft_data.ingest(src, tmp_path / "ds")
    assert not (tmp_path / "images").exists(), "the zip is never unpacked"
    _check_cvat_shapes(tmp_path / "ds", "images/img0.jpg")
    from datasets import Image as HFImage
    ds = cvft_data.load(tmp_path / "ds")["train"].cast_column("image", HFImage(decode=False))
    with zipfile.ZipFile(src) as z:
        assert ds[0]["image"]["bytes"] == z.read("images/img0.jpg")


def test_cvat_zip_with_traversal_member_is_refused(tmp_path):
    p = tmp_path / "evil.zip"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("annotations.xml", "<annotations><version>1.1</version><meta><task><labels>"
                                      "<label><name>a</name></label></labels></task></meta></annotations>")
        z.writestr("../../escape.jpg", image_bytes())
    with pytest.raises(cvft_data.MalformedFileError, match="unsafe name"):
        cvft_data.ingest(p, tmp_path / "ds")
    info, ledger = ingest_ledger(p, tmp_path / "ds", on_error="skip")
    assert info is None and ledger_summary(ledger)["by_reason"] == {"malformed_file": 1}
    assert not (tmp_path.parent / "escape.jpg").exists()


def test_cvat_mask_is_row_major_in_its_box():
    rle = cvat_mask_to_rle(CVAT_MASK_RLE, 2, 3, 5, 4, W, H)
    m = masks.decode(rle)
    expected = np.zeros((H, W), np.uint8)
    expected[3:7, 2:7] = [[0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0]]
    assert (m == expected).all()
    with pytest.raises(cvft_data.GeometryError, match="covers 7 pixels"):
        cvft_data_mask = cvat_mask_to_rle("1, 3, 3", 0, 0, 5, 4, W, H)  # noqa: F841


def test_rotation_is_clockwise_about_the_centre():
    assert rotated_box_polygon(0, 0, 4, 2, 0) == pytest.approx([0, 0, 4, 0, 4, 2, 0, 2])
    assert rotated_box_polygon(0, 0, 4, 2, 90) == pytest.approx([3, -1, 3, 3, 1, 3, 1, -1])


def test_cvat_project_subsets_become_splits(tmp_path):
    src = tmp_path / "src"
    write_image(src / "images" / "Train" / "a.jpg")
    write_image(src / "images" / "Validation" / "a.jpg", seed=3)
    (src / "annotations.xml").write_text(f"""<annotations><version>1.1</version><meta><project><labels>
<label><name>car</name></label></labels><tasks><task><id>1</id><subset>Train</subset></task></tasks></project></meta>
<image id="0" name="a.jpg" width="{W}" height="{H}" subset="Train" task_id="1"><box label="car" xtl="1" ytl="1" xbr="4" ybr="4"/></image>
<image id="0" name="a.jpg" width="{W}" height="{H}" subset="Validation" task_id="2"></image>
</annotations>""")
    info = cvft_data.ingest(src, tmp_path / "ds")
    assert {k: v["images"] for k, v in info["splits"].items()} == {"train": 1, "validation": 1}


def test_cvat_tags_only_is_classification(tmp_path):
    src = tmp_path / "src"
    write_image(src / "images" / "a.jpg")
    write_image(src / "images" / "b.jpg", seed=2)
    (src / "annotations.xml").write_text(f"""<annotations><version>1.1</version><meta><task><labels>
<label><name>day</name></label><label><name>night</name></label></labels></task></meta>
<image id="0" name="a.jpg" width="{W}" height="{H}"><tag label="night"/></image>
<image id="1" name="b.jpg" width="{W}" height="{H}"><tag label="day"/></image></annotations>""")
    info = cvft_data.ingest(src, tmp_path / "ds")
    assert info["task"] == "classification" and info["splits"]["train"]["class_counts"] == {"day": 1, "night": 1}


def test_cvat_video_tracks(tmp_path):
    src = make_cvat_video(tmp_path / "src")
    info = cvft_data.ingest(src, tmp_path / "ds")
    rows = by_id(tmp_path / "ds")
    f = lambda i: rows[f"images/frame_{i:06d}.png"]  # noqa: E731
    assert len(f(0)["objects"]["bbox"]) == 1 and len(f(1)["objects"]["bbox"]) == 2 and len(f(2)["objects"]["bbox"]) == 1
    assert f(1)["object_attributes"][0]["keyframe"] is False and f(1)["object_attributes"][0]["track_id"] == 0
    assert f(2)["object_attributes"][0]["track_id"] == 1, "track 0 is outside from frame 2"
    assert rows["images/frame_000003.png"]["label_status"] == "empty"
    assert info["splits"]["train"]["objects"] == 4


def test_cvat_unknown_label_and_bad_mask(tmp_path):
    src = make_cvat(tmp_path / "src")
    xml = (src / "annotations.xml").read_text().replace('<points label="person" points="3,3"/>',
                                                         '<points label="ghost" points="3,3"/>')
    (src / "annotations.xml").write_text(xml.replace(CVAT_MASK_RLE, "1, 2"))
    with pytest.raises(cvft_data.UnknownClassError, match="ghost"):
        cvft_data.ingest(src, tmp_path / "ds")
    info = cvft_data.ingest(src, tmp_path / "ds", on_error="skip")
    assert info["ledger"]["by_reason"]["unknown_class"] == 1 and info["ledger"]["by_reason"]["bad_geometry"] == 1


# --- makesense ------------------------------------------------------------------------------------

@pytest.mark.parametrize("header", [True, False])
def test_makesense_rect_csv(tmp_path, header):
    src = make_makesense(tmp_path / "src", header=header)
    assert connectors.detect(src).name == "makesense"
    info = cvft_data.ingest(src, tmp_path / "ds")
    rows = by_id(tmp_path / "ds")
    assert rows["a.jpg"]["objects"]["bbox"] == [[2, 3, 10, 5], [0, 0, 4, 4]]  # top-left corner, not centre
    assert rows["b.v2.jpg"]["label_status"] == "labeled"
    assert rows["unseen.jpg"]["label_status"] == "unlabeled"
    assert info["classes"] == ["cat", "dog"]


def test_makesense_yolo_zip_needs_classes(tmp_path):
    src = make_makesense(tmp_path / "src")
    (src / MAKESENSE_CSV).unlink()
    z = src / "labels_proj_2024-01-02-03-04-05.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("a.txt", "1 0.500000 0.500000 0.250000 0.500000\n")
        f.writestr("b.v2.txt", "0 0.5 0.5 0.5 0.5\n")
    with pytest.raises(cvft_data.UsageError, match="--option classes="):
        cvft_data.ingest(src, tmp_path / "ds")
    info = cvft_data.ingest(src, tmp_path / "ds", classes="cat,dog")
    rows = by_id(tmp_path / "ds")
    assert info["classes"] == ["cat", "dog"]
    assert rows["a.jpg"]["objects"]["bbox"] == [[9, 4, 6, 8]] and rows["a.jpg"]["objects"]["category"] == [1]
    assert rows["b.v2.jpg"]["objects"]["category"] == [0], "multi-dot names match by stem"
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    assert cvft_data.ingest(src, tmp_path / "ds2", labels=str(labels))["classes"] == ["cat", "dog"]


def test_makesense_voc_zip(tmp_path):
    src = make_makesense(tmp_path / "src")
    (src / MAKESENSE_CSV).unlink()
    with zipfile.ZipFile(src / "labels_proj_2024-01-02-03-04-05.zip", "w") as f:
        f.writestr("a.xml", "<annotation><folder>proj</folder><filename>a.jpg</filename><object><name>dog</name>"
                            "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>4</xmax><ymax>4</ymax></bndbox></object>"
                            "</annotation>")
    info = cvft_data.ingest(src, tmp_path / "ds")
    assert info["classes"] == ["dog"] and by_id(tmp_path / "ds")["a.jpg"]["objects"]["bbox"] == [[0, 0, 4, 4]]


def test_makesense_coco_json_without_categories(tmp_path):
    src = tmp_path / "src"
    write_image(src / "x.jpg")
    write_json(src / "labels_p_2024-01-02-03-04-05.json", {
        "info": {"description": "p"}, "categories": [],
        "images": [{"id": 1, "width": W, "height": H, "file_name": "x.jpg"}],
        "annotations": [{"id": 0, "iscrowd": 0, "image_id": 1, "segmentation": [[1, 1, 5, 1, 5, 5]],
                         "bbox": [1, 1, 4, 4], "area": 8}]})
    with pytest.raises(cvft_data.AnnotationError, match="no category_id"):
        cvft_data.ingest(src, tmp_path / "ds")
    with pytest.raises(cvft_data.EmptyDatasetError, match="dropped every annotation") as caught:
        cvft_data.ingest(src, tmp_path / "ds", on_error="skip")
    assert ledger_summary([cvft_data.LedgerEntry(**e) for e in caught.value.ledger])["annotations_dropped"] == 1


# --- Roboflow -------------------------------------------------------------------------------------

def test_roboflow_coco_drops_the_root_category(tmp_path):
    src = make_roboflow_coco(tmp_path / "src")
    assert connectors.detect(src).name == "roboflow_coco"
    info = cvft_data.ingest(src, tmp_path / "ds")
    assert info["classes"] == ["cat", "dog"]
    assert info["ledger"]["by_reason"] == {"synthetic_root_category": 1}
    assert list(info["splits"]) == ["train", "validation"]
    assert by_id(tmp_path / "ds")["train/train_0.jpg"]["objects"]["category"] == [1]


def test_roboflow_yolo_is_told_apart(tmp_path):
    src = make_yolo(tmp_path / "src")
    (src / "data.yaml").write_text((src / "data.yaml").read_text() + "roboflow:\n  workspace: w\n")
    assert connectors.detect(src).name == "roboflow_yolo"


def test_createml_centre_boxes_equal_the_yolo_export(tmp_path):
    yolo = make_yolo(tmp_path / "yolo")
    cvft_data.ingest(yolo, tmp_path / "from_yolo")
    src = tmp_path / "createml"
    entries = []
    for stem, lines in (("a", ["0 0.5 0.5 0.25 0.5", "1 0.25 0.25 0.125 0.25"]),):
        write_image(src / "train" / f"{stem}.jpg")
        anns = []
        for line in lines:
            c, cx, cy, w, h = line.split()
            anns.append({"label": ["cat", "dog"][int(c)], "coordinates": {
                "x": float(cx) * W, "y": float(cy) * H, "width": float(w) * W, "height": float(h) * H}})
        entries.append({"image": f"{stem}.jpg", "annotations": anns})
    write_json(src / "train" / "_annotations.createml.json", entries)
    assert connectors.detect(src).name == "roboflow_createml"
    cvft_data.ingest(src, tmp_path / "from_createml")
    a = by_id(tmp_path / "from_yolo")["images/train/a.jpg"]["objects"]["bbox"]
    b = by_id(tmp_path / "from_createml")["train/a.jpg"]["objects"]["bbox"]
    assert np.abs(np.array(a) - np.array(b)).max() < 1


def test_roboflow_multilabel_csv(tmp_path):
    src = make_roboflow_multilabel(tmp_path / "src")
    assert connectors.detect(src).name == "roboflow_multilabel"
    info = cvft_data.ingest(src, tmp_path / "ds")
    rows = by_id(tmp_path / "ds")
    assert info["task"] == "multilabel" and info["classes"] == ["Acne", "Blackheads"]
    assert rows["train/x.jpg"]["labels"] == [0, 1] and rows["train/y.jpg"]["label_status"] == "empty"


def test_roboflow_detection_csv(tmp_path):
    src = tmp_path / "src"
    write_image(src / "a.jpg")
    (src / "_annotations.csv").write_text("filename,width,height,class,xmin,ymin,xmax,ymax\na.jpg,24,16,cat,1,2,5,6\n"
                                          "a.jpg,24,16,dog,0,0,24,16\n")
    assert connectors.detect(src).name == "roboflow_csv"
    cvft_data.ingest(src, tmp_path / "ds")
    assert by_id(tmp_path / "ds")["a.jpg"]["objects"]["bbox"] == [[1, 2, 4, 4], [0, 0, 24, 16]]


def test_detection_tells_tools_apart(tmp_path):
    cases = {"cvat": make_cvat(tmp_path / "c"), "makesense": make_makesense(tmp_path / "m"),
             "roboflow_coco": make_roboflow_coco(tmp_path / "r"), "yolo": make_yolo(tmp_path / "y")}
    for name, root in cases.items():
        ranked = connectors.rank(root)
        assert ranked[0][0].name == name, (name, [(c.name, f.score) for c, f in ranked[:3]])
    doc = json.loads(json.dumps([c.name for c in connectors.available().values()]))
    assert len(doc) == len(set(doc))


def test_roboflow_pull_needs_package_and_key(tmp_path, monkeypatch):
    import sys
    import types

    from cvft_data.download import DownloadError, fetch_roboflow

    monkeypatch.setitem(sys.modules, "roboflow", None)  # not installed
    with pytest.raises(DownloadError, match="pip install roboflow"):
        fetch_roboflow("ws/proj/3", cache=tmp_path)
    with pytest.raises(DownloadError, match="workspace"):
        fetch_roboflow("ws/proj", cache=tmp_path)

    calls = []

    class Version:
        def download(self, fmt, location, overwrite):   # what the package does: writes the export
            calls.append(fmt)
            make_roboflow_coco(__import__("pathlib").Path(location))

    fake = types.SimpleNamespace(Roboflow=lambda api_key: types.SimpleNamespace(
        workspace=lambda w: types.SimpleNamespace(project=lambda p: types.SimpleNamespace(version=lambda v: Version()))))
    monkeypatch.setitem(sys.modules, "roboflow", fake)
    monkeypatch.delenv("ROBOFLOW_API_KEY", raising=False)
    with pytest.raises(DownloadError, match="ROBOFLOW_API_KEY"):
        fetch_roboflow("ws/proj/3", cache=tmp_path)
    monkeypatch.setenv("ROBOFLOW_API_KEY", "k")
    monkeypatch.setenv("CVFT_CACHE", str(tmp_path / "cache"))
    from cvft_data.cli import ingest as ingest_cli
    assert ingest_cli.main(["roboflow:ws/proj/3", "--out", str(tmp_path / "ds"), "--quiet"]) == 0
    assert ingest_cli.main(["roboflow:ws/proj/3", "--out", str(tmp_path / "ds2"), "--quiet"]) == 0
    assert calls == ["coco"], "the second pull uses the cache"
    assert cvft_data.info(tmp_path / "ds")["source"]["connector"] == "roboflow_coco"


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_makesense_voc_zip_with_an_entity_is_refused_clearly(tmp_path, on_error):
    """An XML entity in a makesense VOC zip escaped as defusedxml's traceback (the CVAT and VOC
    readers caught it; makesense had its own copy of the XML handling)."""
    from cvft_data.errors import MalformedFileError

    src = make_makesense(tmp_path / "src")
    (src / MAKESENSE_CSV).unlink()
    with zipfile.ZipFile(src / "labels_proj_2024-01-02-03-04-05.zip", "w") as f:
        f.writestr("a.xml", '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "dog">]><annotation><filename>a.jpg'
                            "</filename><object><name>&e;</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>4</xmax>"
                            "<ymax>4</ymax></bndbox></object></annotation>")
        f.writestr("b.xml", "<annotation><filename>b.jpg</filename></annotation>")
    if on_error == "raise":
        with pytest.raises(MalformedFileError, match="unsafe XML refused"):
            cvft_data.ingest(src, tmp_path / "ds")
    else:
        cvft_data.ingest(src, tmp_path / "ds", on_error="skip")
        assert any(e.reason == "malformed_file" and "a.xml" in (e.file or "") + e.item
                   for e in cvft_data.read_ledger(tmp_path / "ds"))


def test_an_image_symlink_leading_out_of_a_roboflow_export_is_refused(tmp_path):
    """find_image (the connector base) refuses a symlink out of the source, under raise and skip."""
    from builders import write_image
    from cvft_data.errors import UnsafePathError

    outside = write_image(tmp_path / "secret" / "x.jpg")
    src = tmp_path / "src"
    write_image(src / "a.jpg")
    (src / "b.jpg").symlink_to(outside)
    (src / "_annotations.csv").write_text("filename,width,height,class,xmin,ymin,xmax,ymax\n"
                                          "a.jpg,24,16,cat,1,1,5,5\nb.jpg,24,16,cat,1,1,5,5\n")
    with pytest.raises(UnsafePathError, match="leads out of the source"):
        cvft_data.ingest(src, tmp_path / "ds")
    info = cvft_data.ingest(src, tmp_path / "ds2", on_error="skip")
    assert info["splits"]["train"]["images"] == 1
    assert [e.item for e in cvft_data.read_ledger(tmp_path / "ds2")] == ["b.jpg"]


def test_makesense_image_whose_annotations_were_all_dropped_is_unlabeled_not_empty(tmp_path):
    """A VOC-zip image whose only object was rejected (no box) was called 'empty', a verified
    background image: a wrong label, not a missing one."""
    src = make_makesense(tmp_path / "src")
    (src / MAKESENSE_CSV).unlink()
    with zipfile.ZipFile(src / "labels_proj_2024-01-02-03-04-05.zip", "w") as f:
        f.writestr("a.xml", "<annotation><filename>a.jpg</filename><object><name>dog</name><bndbox><xmin>1</xmin>"
                            "<ymin>1</ymin><xmax>4</xmax><ymax>4</ymax></bndbox></object></annotation>")
        f.writestr("b.xml", "<annotation><filename>b.v2.jpg</filename><object><name>cat</name></object></annotation>")
    cvft_data.ingest(src, tmp_path / "ds", on_error="skip")
    rows = by_id(tmp_path / "ds")
    assert rows["b.v2.jpg"]["label_status"] == "unlabeled" and rows["a.jpg"]["label_status"] == "labeled"
