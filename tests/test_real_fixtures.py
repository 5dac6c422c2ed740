"""The real exports in ../shared/fixtures/real: detection, counts against a hand count of the
source files, and exact round trips."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from defusedxml import ElementTree

import connectors
import cvft_data
from builders import ingest_ledger, ledger_summary
from cvft_data import masks

pytestmark = pytest.mark.real_fixtures

COCO = ["coco/datumaro_ov/coco_instances", "coco/datumaro_ov/coco_roboflow", "coco/datumaro_ov/coco_person_keypoints",
        "coco/datumaro_ov/coco_stuff_compressed_rle"]
YOLO = ["yolo/datumaro_cvat_ai/" + n for n in ("yolov8_detection", "yolo", "yolov8_segmentation", "yolov8_pose",
                                                "yolov8_oriented_boxes", "yolov8_detection_with_subset_txt",
                                                "yolov8_detection_with_list_of_imgs",
                                                "yolov8_detection_with_list_of_names",
                                                "yolov8_pose_two_values_per_point")]
VOC = ["voc/datumaro_ov/voc_dataset1", "voc/datumaro_ov/voc_dataset2_Annotations"]
EXPECTED_CONNECTOR = {**{p: "coco" for p in COCO}, **{p: "yolo" for p in YOLO}, **{p: "voc" for p in VOC},
                      "coco/datumaro_ov/coco_panoptic": "coco_panoptic",
                      "coco/datumaro_ov/coco_roboflow": "roboflow_coco",
                      "roboflow/rfpy_sharks-tiny-coco": "roboflow_coco",
                      "roboflow/rfpy_sharks-tiny-yolov9": "roboflow_yolo",
                      "roboflow/rfpy_corrosion-singlelabel-classification": "roboflow_folder",
                      "roboflow/rfpy_mosquitos_csv": "roboflow_csv",
                      "makesense/real_exports": "makesense",
                      "cvat/datumaro_cvat/for_images": "cvat",
                      "cvat/datumaro_cvat/for_video": "cvat",
                      "cvat/cvat_docs_examples/cvat_for_images_1.1_docs_example.xml": "cvat",
                      "cvat/cvat_docs_examples/cvat_for_video_1.1_docs_example.xml": "cvat",
                      "yolo/datumaro_cvat_ai/yolov8_classification": "folder"}


def dataset_counts(path) -> Counter:
    info = cvft_data.info(path)
    c: Counter = Counter()
    for s in info["splits"].values():
        c.update({k: v for k, v in s["class_counts"].items() if v})
    return c


def source_counts_coco(root: Path) -> tuple[Counter, int]:
    c: Counter = Counter()
    n_images = 0
    for f in sorted(root.rglob("*.json")):
        doc = json.loads(f.read_text())
        names = {x["id"]: x["name"] for x in doc["categories"]}
        seg = "segments_info" in json.dumps(doc["annotations"][:1])
        for a in doc["annotations"]:
            for s in (a["segments_info"] if seg else [a]):
                c[names[s["category_id"]]] += 1
        n_images += len(doc["images"])
    return c, n_images


def source_counts_yolo(root: Path) -> Counter:
    import yaml
    y = next(root.glob("*.yaml"), None)
    if y:
        names = yaml.safe_load(y.read_text())["names"]
        names = names if isinstance(names, list) else [names[i] for i in sorted(names)]
    else:
        names = (root / "obj.names").read_text().split()
    c: Counter = Counter()
    for t in root.rglob("*.txt"):
        if t.name in ("train.txt", "obj.names") or t.parent == root:
            continue
        for line in t.read_text().splitlines():
            if line.strip():
                c[names[int(line.split()[0])]] += 1
    return c


def source_counts_voc(root: Path) -> Counter:
    c: Counter = Counter()
    for x in root.rglob("*.xml"):
        for o in ElementTree.parse(x).getroot().findall("object"):
            c[o.findtext("name")] += 1
    return c


@pytest.mark.parametrize("sample", sorted(EXPECTED_CONNECTOR))
def test_detected_with_the_right_connector(real, sample):
    assert connectors.detect(real / sample).name == EXPECTED_CONNECTOR[sample]


@pytest.mark.parametrize("sample", COCO + YOLO + VOC + ["coco/datumaro_ov/coco_panoptic"])
def test_every_annotation_is_in_the_dataset_or_the_ledger(real, sample, tmp_path):
    src = real / sample
    info, ledger = ingest_ledger(src, tmp_path / "ds", on_error="skip")
    got = dataset_counts(tmp_path / "ds") if info is not None else Counter()
    summary = ledger_summary(ledger)
    if sample.startswith("coco"):
        expected, n_images = source_counts_coco(src)
    elif sample.startswith("yolo"):
        expected, n_images = source_counts_yolo(src), None
    else:
        expected, n_images = source_counts_voc(src), None
    dropped = summary["annotations_dropped"]
    assert sum(got.values()) + dropped == sum(expected.values())
    if dropped == 0:
        assert got == expected
    if n_images is not None:
        images = sum(s["images"] for s in info["splits"].values()) if info is not None else 0
        assert images + summary["images_dropped"] == n_images
    for e in ledger:
        assert e.reason and e.item and e.action


def test_known_quirks_are_ledgered_not_hidden(real, tmp_path):
    # panoptic: a.png is 5x5 for a 10x5 image
    info = cvft_data.ingest(real / "coco/datumaro_ov/coco_panoptic", tmp_path / "p", on_error="skip")
    assert info["ledger"]["by_reason"] == {"size_mismatch": 1}
    with pytest.raises(cvft_data.SizeMismatchError, match="5x5"):
        cvft_data.ingest(real / "coco/datumaro_ov/coco_panoptic", tmp_path / "p2")
    # VOC annotations without images: each image named, with the objects it carried
    info, ledger = ingest_ledger(real / "voc/datumaro_ov/voc_dataset2_Annotations", tmp_path / "v", on_error="skip")
    assert info is None, "no image at all: an error, not an empty dataset"
    assert ledger_summary(ledger)["images_dropped"] == 5 and ledger_summary(ledger)["annotations_dropped"] == 4


def test_voc_devkit_sample(real, tmp_path):
    cvft_data.ingest(real / "voc/datumaro_ov/voc_dataset1", tmp_path / "ds")
    ds = cvft_data.load(tmp_path / "ds")
    r = ds["train"][0]
    assert r["objects"]["bbox"] == [[0, 1, 3, 3], [3, 4, 3, 3]]  # 1-based (1,2)-(3,4) -> x=0, y=1, 3x3
    assert r["object_attributes"][1]["voc"]["parts"][0] == {"name": "head", "bbox": [4.5, 5.0, 3.0, 3.0]}
    assert ds["test"][0]["label_status"] == "unlabeled"


def _coco_by_file(path: Path) -> dict:
    doc = json.loads(path.read_text())
    names = {c["id"]: c["name"] for c in doc["categories"]}
    out = {}
    for img in doc["images"]:
        anns = sorted((a for a in doc["annotations"] if a["image_id"] == img["id"]), key=lambda a: a["bbox"])
        out[Path(img["file_name"]).name] = (img["width"], img["height"], [(names[a["category_id"]], a) for a in anns])
    return out


def _mask(seg, h, w):
    if isinstance(seg, dict):
        return masks.decode(seg)
    if seg:
        return masks.decode(masks.polygons_to_rle(seg, h, w))
    return None


@pytest.mark.parametrize("sample", ["coco/datumaro_ov/coco_instances", "coco/datumaro_ov/coco_person_keypoints"])
def test_coco_round_trip_is_exact(real, sample, tmp_path):
    cvft_data.ingest(real / sample, tmp_path / "ds")
    cvft_data.export(tmp_path / "ds", "coco", tmp_path / "out")
    shutil.move(tmp_path / "out", tmp_path / "moved")
    src_files = sorted((real / sample / "annotations").glob("*.json"))
    for src in src_files:
        split = src.stem.split("_")[-1]
        a, b = _coco_by_file(src), _coco_by_file(tmp_path / "moved" / "annotations" / f"instances_{split}.json")
        assert a.keys() == b.keys()
        for name in a:
            (w1, h1, anns1), (w2, h2, anns2) = a[name], b[name]
            assert (w1, h1) == (w2, h2) and len(anns1) == len(anns2)
            for (c1, x1), (c2, x2) in zip(anns1, anns2):
                assert c1 == c2 and x1["iscrowd"] == x2["iscrowd"]
                assert x1["bbox"] == pytest.approx(x2["bbox"], abs=1e-3)
                if isinstance(x1["segmentation"], list):
                    assert x1["segmentation"] == x2["segmentation"]
                m1, m2 = _mask(x1["segmentation"], h1, w1), _mask(x2["segmentation"], h2, w2)
                assert (m1 is None and m2 is None) or (m1 == m2).all()
                assert x1.get("keypoints") == x2.get("keypoints")
                assert x1.get("attributes", {}) == x2.get("attributes", {})
        assert (tmp_path / "moved" / "images" / ("val" if split == "val" else split)).is_dir()
    # and the exported folder reads back into the same dataset content
    cvft_data.ingest(tmp_path / "moved", tmp_path / "ds2")
    assert dataset_counts(tmp_path / "ds2") == dataset_counts(tmp_path / "ds")


def _yolo_labels(root: Path) -> dict:
    out = {}
    for t in sorted(root.rglob("*.txt")):
        if t.parent == root:
            continue
        out[t.stem] = sorted([float(v) for v in line.split()] for line in t.read_text().splitlines() if line.strip())
    return out


@pytest.mark.parametrize("sample", YOLO)
def test_yolo_round_trip_is_exact(real, sample, tmp_path):
    src = real / sample
    cvft_data.ingest(src, tmp_path / "ds")
    cvft_data.export(tmp_path / "ds", "yolo", tmp_path / "out")
    shutil.move(tmp_path / "out", tmp_path / "moved")
    a, b = _yolo_labels(src), _yolo_labels(tmp_path / "moved" / "labels")
    assert a.keys() == b.keys()
    w, h = 15, 10  # every image of these samples
    for stem in a:
        assert len(a[stem]) == len(b[stem])
        for la, lb in zip(a[stem], b[stem]):
            assert la[0] == lb[0] and len(la) == len(lb)
            scale = np.array([w if i % 2 == 0 else h for i in range(len(la) - 1)])
            if len(la) > 5 and (len(la) - 5) % 3 == 0 and "pose" in sample and "two_values" not in sample:
                scale = np.array([w, h, w, h] + [w, h, 1] * ((len(la) - 5) // 3))
            assert np.abs((np.array(la[1:]) - np.array(lb[1:])) * scale).max() < 1e-3
    cvft_data.ingest(tmp_path / "moved", tmp_path / "ds2")
    assert dataset_counts(tmp_path / "ds2") == dataset_counts(tmp_path / "ds")
