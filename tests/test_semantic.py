"""Semantic segmentation: mask folders and Pascal VOC masks in, checks, export, convert, a
torchvision segmenter trained, evaluated and predicting masks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import cvft_data
from builders import ingest_ledger, ledger_summary
from cvft_data.checks import CheckOptions, check
from cvft_data.sample import MASK_CLASSES, write_coco_sample, write_mask_sample


def _mask(ds_row) -> np.ndarray:
    return np.asarray(ds_row["mask"])


def test_a_mask_folder_ingests_byte_for_byte(tmp_path):
    src = write_mask_sample(tmp_path / "src", n_images=8)
    import connectors
    assert connectors.detect(src).name == "mask_folder"
    info = cvft_data.ingest(src, tmp_path / "ds")
    assert info["task"] == "semantic_segmentation" and info["classes"] == MASK_CLASSES and info["ignore_index"] == 255
    ds = cvft_data.load(tmp_path / "ds")
    row = ds["train"][0]
    stored = cvft_data.load(tmp_path / "ds")["train"].cast_column("mask", __import__("datasets").Image(decode=False))[0]
    assert stored["mask"]["bytes"] == (src / "masks" / row["image_id"].split("/", 1)[1]).with_suffix(".png").read_bytes()
    assert set(np.unique(_mask(row))) <= {0, 1, 2, 255}
    assert [MASK_CLASSES[c] for c in row["mask_classes"]] == [MASK_CLASSES[v] for v in sorted(set(np.unique(_mask(row))) - {255})]
    assert sum(s["images"] for s in info["splits"].values()) == 8


def test_rgb_masks_map_through_the_labelmap_and_unknown_colours_are_ledgered(tmp_path):
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "masks").mkdir()
    Image.new("RGB", (6, 4), "white").save(src / "images" / "a.jpg")
    m = np.zeros((4, 6, 3), np.uint8)
    m[1:3, 1:4] = (128, 0, 0)
    m[0, 0] = (1, 2, 3)   # a colour no class has
    Image.fromarray(m).save(src / "masks" / "a.png")
    (src / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\nweed:128,0,0::\n")
    info, ledger = ingest_ledger(src, tmp_path / "ds", on_error="skip")
    assert info["classes"] == ["background", "weed"]
    reasons = ledger_summary(ledger)["by_reason"]
    assert reasons == {"mask_colours_mapped": 1, "unknown_mask_colour": 1}, reasons
    arr = _mask(cvft_data.load(tmp_path / "ds")["train"][0])
    assert arr[0, 0] == 255 and (arr[1:3, 1:4] == 1).all() and arr[3, 5] == 0


def test_a_mask_of_the_wrong_size_is_raised_or_ledgered(tmp_path):
    src = write_mask_sample(tmp_path / "src", n_images=4)
    bad = sorted((src / "masks" / "train").glob("*.png"))[0]
    Image.new("L", (10, 10)).save(bad)
    with pytest.raises(cvft_data.SizeMismatchError, match="mask is 10x10"):
        cvft_data.ingest(src, tmp_path / "ds")
    info, ledger = ingest_ledger(src, tmp_path / "ds2", on_error="skip")
    assert [e.reason for e in ledger] == ["size_mismatch"] and info["splits"]["train"]["unlabeled"] == 1


def test_mask_checks_find_unknown_indices_and_pixel_imbalance(tmp_path):
    src = write_mask_sample(tmp_path / "src", n_images=8)
    bad = sorted((src / "masks" / "train").glob("*.png"))[0]
    arr = np.asarray(Image.open(bad)).copy()
    arr[5, 5] = 7                                   # no class 7
    Image.fromarray(arr).save(bad)
    info, ledger = ingest_ledger(src, tmp_path / "ds", on_error="skip")
    assert ledger_summary(ledger)["by_reason"] == {"unknown_mask_index": 1}
    report = check(tmp_path / "ds", CheckOptions(min_images_per_class=1, workers=1, max_imbalance_ratio=2))
    found = {f.check: f for f in report.findings}
    assert found["mask_unknown_index"].image_ids == [f"images/train/{bad.stem}.jpg"]
    assert "class_pixel_balance" in found and "weed covers" in found["class_pixel_balance"].message
    assert "null_images" not in found, "a semantic mask's background is a class: no null-image warning"
    assert set(report.stats["class_pixels"]) == set(MASK_CLASSES)


def _voc_tree(root, n: int = 4):
    from connectors._labelmap import voc_colormap

    palette = [v for c in voc_colormap(256) for v in c]
    for d in ("JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"):
        (root / d).mkdir(parents=True, exist_ok=True)
    stems = []
    for i in range(n):
        stem = f"2008_{i:06d}"
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(
            root / "JPEGImages" / f"{stem}.jpg")
        cls = np.zeros((20, 30), np.uint8)
        obj = np.zeros((20, 30), np.uint8)
        cls[2:8, 3:12], obj[2:8, 3:12] = 8, 1       # a cat
        cls[10:18, 15:28], obj[10:18, 15:28] = 15, 2   # a person
        cls[8, :], obj[8, :] = 255, 255              # a boundary line
        for name, arr in (("SegmentationClass", cls), ("SegmentationObject", obj)):
            im = Image.fromarray(arr, "P")
            im.putpalette(palette)
            im.save(root / name / f"{stem}.png")
        stems.append(stem)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(stems[:-1]) + "\n")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text(stems[-1] + "\n")
    return root


def test_voc_segmentation_class_round_trips(tmp_path):
    src = _voc_tree(tmp_path / "voc")
    import connectors
    assert connectors.detect(src).name == "voc_segmentation"
    info = cvft_data.ingest(src, tmp_path / "ds")
    assert info["task"] == "semantic_segmentation" and info["classes"][8] == "cat" and len(info["classes"]) == 21
    first = cvft_data.load(tmp_path / "ds")
    cvft_data.export(tmp_path / "ds", "masks", tmp_path / "out", options={"layout": "voc"})
    assert (tmp_path / "out" / "labelmap.txt").is_file() and Image.open(next((tmp_path / "out" / "SegmentationClass").iterdir())).mode == "P"
    again = cvft_data.ingest(tmp_path / "out", tmp_path / "ds2")
    assert again["classes"] == info["classes"] and again["splits"] == info["splits"]
    second = cvft_data.load(tmp_path / "ds2")
    for split in first:
        a = {r["image_id"].rsplit("/", 1)[-1]: _mask(r) for r in first[split]}
        b = {r["image_id"].rsplit("/", 1)[-1]: _mask(r) for r in second[split]}
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    cvft_data.export(tmp_path / "ds", "masks", tmp_path / "folder")   # the mask-folder layout reads back too
    assert cvft_data.ingest(tmp_path / "folder", tmp_path / "ds3")["splits"] == info["splits"]


def test_voc_segmentation_object_as_instances(tmp_path):
    src = _voc_tree(tmp_path / "voc", n=2)
    info = cvft_data.ingest(src, tmp_path / "ds", format="voc_segmentation", task="instance")
    assert info["task"] == "instance_segmentation"
    row = cvft_data.load(tmp_path / "ds")["train"][0]
    names = info["classes"]
    assert [names[c] for c in row["objects"]["category"]] == ["cat", "person"]
    assert row["objects"]["bbox"][0] == [3, 2, 9, 6] and row["objects"]["area"][0] == 54


@pytest.mark.real_fixtures
def test_real_voc_segmentation_masks(real, tmp_path):
    info = cvft_data.ingest(real / "voc/datumaro_ov/voc_dataset1", tmp_path / "ds", format="voc_segmentation",
                            on_error="skip")
    ds = cvft_data.load(tmp_path / "ds")
    row = ds["train"][0]
    assert info["classes"][2] == "bicycle" and (np.asarray(row["mask"]) == 2).all(), "RGB (0,128,0) is VOC's bicycle"


def test_instances_and_panoptic_convert_to_semantic(tmp_path):
    from cvft_data.convert import convert
    from cvft_data.sample_panoptic import write_panoptic_sample

    cvft_data.ingest(write_coco_sample(tmp_path / "src", n_images=10, polygons=True), tmp_path / "inst")
    info = convert(tmp_path / "inst", "semantic", tmp_path / "sem")
    inst = cvft_data.load(tmp_path / "inst")["train"][0]
    sem = cvft_data.load(tmp_path / "sem")["train"][0]
    assert info["classes"][0] == "background" and sem["image_id"] == inst["image_id"]
    for x, y, w, h in inst["objects"]["bbox"]:
        assert _mask(sem)[int(y + h / 2), int(x + w / 2)] != 0, "an object's centre is painted with a class"
    assert set(np.unique(_mask(sem))) == {0} | {c + 1 for c in inst["objects"]["category"]}, "class + 1 (background 0)"
    cvft_data.ingest(write_panoptic_sample(tmp_path / "psrc", n_images=6), tmp_path / "pan")
    pinfo = convert(tmp_path / "pan", "semantic", tmp_path / "psem")
    assert pinfo["classes"] == ["sky", "ground", "animal"]
    arr = _mask(cvft_data.load(tmp_path / "psem")["train"][0])
    assert set(np.unique(arr)) <= {0, 1, 2} and (arr[0] == 0).all(), "the top row is sky"
    with pytest.raises(cvft_data.UsageError, match="semantic masks come from"):
        convert(tmp_path / "sem", "semantic", tmp_path / "again")


def test_a_segmenter_trains_evaluates_and_predicts_masks(tmp_path):
    from cvft_train import evaluate, fit, predict_to

    cvft_data.ingest(write_mask_sample(tmp_path / "src", n_images=16), tmp_path / "ds")
    m = fit(tmp_path / "ds", model="lraspp_mobilenet_v3_large", pretrained=False, epochs=1, imgsz=64, batch=4,
            workers=0, device="cpu", out=str(tmp_path / "run"))
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert doc["task"] == "semantic_segmentation" and doc["primary_metric"] == "miou"
    assert 0.0 <= doc["final"]["miou"] <= 1.0 and set(doc["final"]["per_class"]) == set(MASK_CLASSES)
    assert "pixel_accuracy" in doc["epochs"][0]
    r = evaluate(tmp_path / "run", tmp_path / "ds", split="validation", device="cpu", resolution="training")
    assert r["miou"] == pytest.approx(m["best"]["value"]), "evaluate measures what training validated"
    full = evaluate(tmp_path / "run", tmp_path / "ds", split="validation", device="cpu")
    assert full["resolution"] == "original" and 0.0 <= full["miou"] <= 1.0
    labelled = sum(int(((_mask(r_) != 255)).sum()) for r_ in cvft_data.load(tmp_path / "ds")["validation"])
    assert sum(v["pixels"] for v in full["per_class"].values()) == labelled, "every labelled pixel, at its size"
    s = predict_to(tmp_path / "run", tmp_path / "src" / "images", tmp_path / "masks", fmt="masks", device="cpu")
    assert s["images"] == 16
    png = tmp_path / "masks" / "train" / "plot_0000.png"
    pred = np.asarray(Image.open(png))
    assert pred.shape == (64, 96) and pred.max() < 3, "a class index per pixel, at the image's size"
    assert (tmp_path / "masks" / "classes.txt").read_text().split() == MASK_CLASSES
    with pytest.raises(cvft_data.UsageError, match="writes masks or csv"):
        predict_to(tmp_path / "run", tmp_path / "src" / "images", tmp_path / "x.json", fmt="megadetector")


@pytest.mark.slow
def test_a_segmenter_resumes_exports_and_trains_under_torchrun(tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import torch

    from cvft_train import export_model, fit

    cvft_data.ingest(write_mask_sample(tmp_path / "src", n_images=16), tmp_path / "ds")
    common = dict(model="lraspp_mobilenet_v3_large", pretrained=False, imgsz=32, batch=4, workers=0, device="cpu")
    fit(tmp_path / "ds", epochs=1, out=str(tmp_path / "run"), **common)
    m = fit(tmp_path / "ds", epochs=2, out=str(tmp_path / "run"), resume=True)
    assert [e["epoch"] for e in m["epochs"]] == [1, 2]
    meta = export_model(tmp_path / "run", "torchscript", tmp_path / "seg.pt")
    assert meta["kind"] == "segmenter" and meta["classes"] == MASK_CLASSES
    out = torch.jit.load(str(tmp_path / "seg.pt"))(torch.zeros(1, 3, 32, 32))
    assert tuple(out.shape) == (1, 3, 32, 32)
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    r = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "cvft_train.launch", str(tmp_path / "ds"),
                        "--model", "lraspp_mobilenet_v3_large", "--no-pretrained", "--imgsz", "32", "--batch", "4",
                        "--workers", "0", "--device", "cpu", "--epochs", "1", "--out", str(tmp_path / "ddp")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert doc["task"] == "semantic_segmentation" and "miou" in doc["final"]


def test_the_viewer_draws_a_semantic_mask(tmp_path):
    from cvft_data.view.app import create_app
    from cvft_data.view.index import ViewIndex

    cvft_data.ingest(write_mask_sample(tmp_path / "src", n_images=4), tmp_path / "ds")
    client = create_app(ViewIndex.build(tmp_path / "ds", findings=[])).test_client()
    d = client.get("/api/image/train/0").get_json()
    assert d["has_masks"] and {a["class"] for a in d["annotations"]} <= set(MASK_CLASSES)
    png = client.get("/mask/train/0")
    assert png.mimetype == "image/png" and Image.open(__import__("io").BytesIO(png.data)).mode == "RGBA"
    weeds = client.get("/api/images?class=weed").get_json()
    assert weeds["total"] == sum(1 for e in ViewIndex.build(tmp_path / "ds", findings=[]).entries if 2 in e.classes)


def test_a_segmenter_from_random_weights_lets_batch_norm_follow_the_data():
    """MobileNetV3's batch-norm momentum (0.01) kept its random-init statistics for hundreds of
    steps: a model that segmented in training predicted soil everywhere in eval mode (mIoU stuck
    at 0.216 for 20 epochs on the generated set). From random weights the loop uses 0.1."""
    import torch

    from cvft_train.config import TrainConfig
    from cvft_train.segment import build_segmenter

    model, report = build_segmenter(TrainConfig(model="lraspp_mobilenet_v3_large", pretrained=False), MASK_CLASSES)
    assert report is None
    momenta = {m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert momenta == {0.1}, momenta


def test_exports_that_cannot_hold_masks_say_to_use_masks(tmp_path):
    """--to coco raised a KeyError traceback on a semantic dataset; the others named coco/yolo."""
    cvft_data.ingest(write_mask_sample(tmp_path / "src", n_images=4), tmp_path / "ds")
    for to in ("coco", "yolo", "imagefolder", "csv"):
        with pytest.raises(cvft_data.UsageError, match="--to masks"):
            cvft_data.export(tmp_path / "ds", to, tmp_path / f"out_{to}")
        assert not (tmp_path / f"out_{to}").exists()


def test_hostile_masks_are_refused_by_name(tmp_path):
    """A truncated mask, a decompression bomb (its header claims 10^10 pixels: a traceback from PIL
    before the fix), a symlink out of the source and a JPEG mask: raised by name, or ledgered."""
    import os
    import struct
    import zlib

    src = write_mask_sample(tmp_path / "src", n_images=6)
    masks = sorted((src / "masks" / "train").glob("*.png"))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    masks[0].write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0))
                         + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))
    with pytest.raises(cvft_data.CorruptImageError, match="does not decode.*decompression bomb"):
        cvft_data.ingest(src, tmp_path / "ds")
    data = masks[1].read_bytes()
    masks[1].write_bytes(data[: len(data) // 2])
    outside = tmp_path / "outside.png"
    outside.write_bytes(masks[2].read_bytes())
    masks[2].unlink()
    os.symlink(outside, masks[2])
    Image.open(outside).save(masks[3], "JPEG")   # a .png name, JPEG bytes
    info, ledger = ingest_ledger(src, tmp_path / "ds", on_error="skip")
    reasons = sorted(e.reason for e in ledger)
    assert reasons == ["bad_annotation", "corrupt_image", "corrupt_image", "unsafe_path"], reasons
    assert info["splits"]["train"]["unlabeled"] == 4, "the images stay, without their masks"
