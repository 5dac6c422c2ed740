"""The behaviour every connector owes, checked on a tiny fake copy of its layout
(after torchvision's ``test/datasets_utils.py``). A new connector must add its builder here."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import connectors
from builders import (
    H,
    W,
    ingest_ledger,
    ledger_summary,
    make_coco,
    make_cvat,
    make_folder,
    make_makesense,
    make_panoptic,
    make_roboflow_coco,
    make_roboflow_multilabel,
    make_voc,
    make_yolo,
    write_image,
    write_json,
)
from cvft_data.paths import inside
from cvft_data.schema import TASKS


def make_mask_folder(root):
    write_image(root / "images" / "train" / "a.jpg")
    write_image(root / "images" / "val" / "b.jpg", seed=2)
    for split, name in (("train", "a"), ("val", "b")):
        m = np.zeros((H, W), np.uint8)
        m[2:6, 3:9] = 1
        (root / "masks" / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(m).save(root / "masks" / split / f"{name}.png")
    (root / "classes.txt").write_text("background\nweed\n")
    return root


def make_voc_segmentation(root):
    write_image(root / "JPEGImages" / "a.jpg")
    (root / "SegmentationClass").mkdir(parents=True)
    m = np.zeros((H, W), np.uint8)
    m[2:6, 3:9] = 8
    Image.fromarray(m).save(root / "SegmentationClass" / "a.png")
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("a\n")
    return root


def make_roboflow_yolo(root):
    make_yolo(root)
    (root / "data.yaml").write_text((root / "data.yaml").read_text() + "roboflow:\n  project: p\n")
    return root


def make_roboflow_voc(root):
    from builders import voc_xml
    write_image(root / "train" / "a.jpg")
    (root / "train" / "a.xml").write_text(voc_xml("a.jpg", [("cat", (1, 1, 5, 5))]))
    (root / "README.roboflow.txt").write_text("roboflow")
    return root


def make_roboflow_folder(root):
    write_image(root / "train" / "rust" / "a.jpg")
    write_image(root / "valid" / "clean" / "b.jpg")
    (root / "README.dataset.txt").write_text("roboflow")
    return root


def make_createml(root):
    write_image(root / "train" / "a.jpg")
    write_json(root / "train" / "_annotations.createml.json",
               [{"image": "a.jpg", "annotations": [{"label": "cat", "coordinates": {"x": 5, "y": 5, "width": 4,
                                                                                    "height": 4}}]}])
    return root


def make_detection_csv(root):
    write_image(root / "a.jpg")
    (root / "_annotations.csv").write_text("filename,width,height,class,xmin,ymin,xmax,ymax\na.jpg,24,16,cat,1,1,5,5\n")
    return root


def make_camera_trap(root):
    from builders import make_archive
    return make_archive(root)


def make_megadetector(root):
    write_image(root / "a.jpg")
    write_image(root / "b.jpg", seed=1)
    write_json(root / "md.json", {"info": {"format_version": "1.4"}, "detection_categories": {"1": "animal"},
                                  "images": [{"file": "a.jpg", "detections": [{"category": "1", "conf": 0.9,
                                                                               "bbox": [0.1, 0.1, 0.5, 0.5]}]},
                                             {"file": "b.jpg", "detections": []}]})
    return root


def make_cct(root):
    write_image(root / "x.jpg")
    write_json(root / "cct.json", {"images": [{"id": "x", "file_name": "x.jpg", "location": "L", "seq_id": "s"}],
                                   "annotations": [{"id": "a", "image_id": "x", "category_id": 1}],
                                   "categories": [{"id": 0, "name": "empty"}, {"id": 1, "name": "deer"}]})
    return root


def make_weedai(root):
    write_image(root / "images" / "a.png", fmt="PNG")
    write_json(root / "weedcoco.json", {
        "images": [{"id": 1, "file_name": "/elsewhere/images/a.png", "width": W, "height": H, "agcontext_id": 0}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 0, "bbox": [1, 1, 5, 5]}],
        "categories": [{"id": 0, "name": "weed: lolium rigidum"}], "info": {"description": "x"},
        "agcontexts": [{"id": 0, "crop_type": "wheat"}]})
    return root


def make_camtrap_dp(root):
    write_image(root / "media" / "d1" / "a.jpg")
    write_image(root / "media" / "d1" / "b.jpg", seed=1)
    write_json(root / "datapackage.json", {
        "profile": "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/camtrap-dp-profile.json",
        "resources": [{"name": n, "path": f"{n}.csv"} for n in ("deployments", "media", "observations")]})
    (root / "deployments.csv").write_text("deploymentID,latitude,longitude,deploymentStart,deploymentEnd\n"
                                          "d1,1,2,2024-01-01T00:00:00Z,2024-01-02T00:00:00Z\n")
    (root / "media.csv").write_text("mediaID,deploymentID,timestamp,filePath,filePublic,fileMediatype\n"
                                    "m1,d1,2024-01-01T10:00:00Z,media/d1/a.jpg,false,image/jpeg\n"
                                    "m2,d1,2024-01-01T11:00:00Z,media/d1/b.jpg,false,image/jpeg\n")
    (root / "observations.csv").write_text(
        "observationID,deploymentID,mediaID,eventStart,eventEnd,observationLevel,observationType,scientificName\n"
        "o1,d1,m1,2024-01-01T10:00:00Z,2024-01-01T10:00:00Z,media,animal,Vulpes vulpes\n"
        "o2,d1,m2,2024-01-01T11:00:00Z,2024-01-01T11:00:00Z,media,blank,\n")
    return root


FAKES = {"camtrap_dp": make_camtrap_dp, "weedai": make_weedai, "camera_trap": make_camera_trap, "megadetector": make_megadetector, "coco_camera_traps": make_cct,
         "folder": make_folder, "coco": make_coco, "coco_panoptic": make_panoptic, "yolo": make_yolo, "voc": make_voc,
         "cvat": make_cvat, "makesense": make_makesense, "roboflow_coco": make_roboflow_coco,
         "roboflow_yolo": make_roboflow_yolo, "roboflow_voc": make_roboflow_voc, "roboflow_folder": make_roboflow_folder,
         "roboflow_createml": make_createml, "roboflow_multilabel": make_roboflow_multilabel,
         "roboflow_csv": make_detection_csv, "mask_folder": make_mask_folder, "voc_segmentation": make_voc_segmentation}


def test_every_connector_has_a_fake_layout():
    assert set(FAKES) == set(connectors.available())


@pytest.fixture(params=sorted(FAKES))
def fake(request, tmp_path):
    name = request.param
    return connectors.get(name), FAKES[name](tmp_path / name)


def test_contract(fake):
    cls, root = fake
    assert cls.name and cls.summary and "──" in (cls.__doc__ or ""), "docstring must draw the folder tree"
    assert connectors.rank(root)[0][0] is cls, "it must rank first on its own layout"
    assert connectors.detect(root) is cls
    conn = cls(root)
    assert conn.task in TASKS
    names = conn.categories()
    assert len(names) == len(set(names)) and all(isinstance(n, str) for n in names)
    first = list(conn.records())
    second = list(cls(root).records())
    assert [r.image_id for r in first] == [r.image_id for r in second], "records must be deterministic"
    ids = [(r.split, r.image_id) for r in first]
    assert len(ids) == len(set(ids)), "image ids must be unique within a split"
    for r in first:
        assert r.path is not None and r.path.is_file() and inside(root, r.path)
        assert r.member is None or r.path.suffix == ".zip"
        assert not r.image_id.startswith("/") and ".." not in r.image_id.split("/")
        assert r.label_status in ("labeled", "empty", "unlabeled")
        assert r.split and r.split == r.split.lower()
        for o in r.objects:
            assert o.category in names
        if r.label is not None:
            assert r.label in names and r.label_status == "labeled"
        if r.label_status == "empty":
            assert not r.objects and r.label is None and not r.segments


def test_sniff_says_why_not(fake, tmp_path):
    cls, _ = fake
    (tmp_path / "nothing").mkdir()
    conf = cls.sniff(tmp_path / "nothing")
    assert conf.score == 0 and conf.reason


def test_contract_builds_a_loadable_dataset(fake, tmp_path):
    """Every fake layout yields records and the builder turns all of them into a dataset that
    datasets.load_from_disk opens, nothing lost."""
    import datasets

    import cvft_data

    cls, root = fake
    records = list(cls(root).records())
    assert records, "the fake layout must yield records"
    info = cvft_data.ingest(root, tmp_path / "ds", format=cls.name)
    ds = datasets.load_from_disk(str(tmp_path / "ds"))
    assert sum(len(ds[s]) for s in ds) == len(records) == sum(v["images"] for v in info["splits"].values())
    assert info["ledger"]["images_dropped"] == 0


def test_contract_a_missing_image_is_ledgered_under_skip(fake, tmp_path):
    """Delete an image an annotation file names: raise says which, skip ledgers it."""
    import cvft_data
    from cvft_data.errors import SourceError

    cls, root = fake
    named = [r for r in cls(root).records() if r.source_file and r.member is None and r.annotation_count]
    if not named:
        pytest.skip(f"{cls.name} finds its images by walking the folder: no annotation names a file")
    victim = named[0]
    victim.path.unlink()
    with pytest.raises(SourceError):
        cvft_data.ingest(root, tmp_path / "raise", format=cls.name)
    # a fake with one image ends empty: the error carries the ledger and nothing is published
    info, ledger = ingest_ledger(root, tmp_path / "skip", format=cls.name, on_error="skip")
    stem = victim.image_id.rsplit("/", 1)[-1].rsplit(".", 1)[0]   # VOC and YOLO name an image by its stem
    # the user's own spelling: the image's name, or the one its annotation file gives (VOC's 0af.xml
    # names 0af, the image on disk is 0AF.jpg)
    entries = [e for e in ledger if stem in e.item or (e.action == "dropped_image" and e.file == victim.source_file)]
    assert entries and entries[0].action == "dropped_image", ledger
    assert ledger_summary(ledger)["images_dropped"] >= 1
    assert info is None or info["ledger"]["images_dropped"] >= 1
