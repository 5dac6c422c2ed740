"""The thin trainer: a learnable classification set, resume, YOLO detect and segment, W&B offline."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

import cvft_data
from builders import write_image

torch = pytest.importorskip("torch", reason="the train extra is not installed")

SHAPES = ("circle", "square", "triangle")


def shape_image(kind: str, seed: int, size: int = 32) -> bytes:
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 80, 3)))
    d = ImageDraw.Draw(im)
    r = int(rng.integers(7, 12))
    cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
    colour = tuple(int(v) for v in rng.integers(150, 255, 3))
    if kind == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif kind == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def shapes_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    for split, n in (("train", 300), ("val", 60)):
        for i in range(n):
            kind = SHAPES[i % 3]
            p = root / "src" / split / kind / f"{i}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(shape_image(kind, seed=i + (1000 if split == "val" else 0)))
    cvft_data.ingest(root / "src", root / "ds")
    return root / "ds"


@pytest.mark.slow
def test_resnet18_learns_shapes_and_resumes(shapes_dataset, tmp_path, monkeypatch):
    from cvft_train import classify, fit

    common = dict(model="resnet18", imgsz=32, batch=32, lr=3e-3, workers=0, device="cpu", seed=0)
    full = fit(shapes_dataset, epochs=8, out=str(tmp_path / "full"), **common)
    assert full["final"]["top1"] > 0.9, full["final"]
    assert len(full["final"]["confusion_matrix"]) == 3 and set(full["final"]["per_class"]) == set(SHAPES)
    assert (tmp_path / "full" / "checkpoints" / "best.pt").is_file()
    state = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 7

    # kill the same run during its 5th epoch, then resume it
    real = classify.train_one_epoch
    calls = []

    def killed(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(classify, "train_one_epoch", killed)
    with pytest.raises(KeyboardInterrupt):
        fit(shapes_dataset, epochs=8, out=str(tmp_path / "part"), **common)
    monkeypatch.setattr(classify, "train_one_epoch", real)
    cont = fit(shapes_dataset, config={**common, "epochs": 8, "out": str(tmp_path / "part")}, resume=True)
    assert [e["epoch"] for e in cont["epochs"]] == list(range(8))
    assert cont["epochs"][-1]["step"] == full["epochs"][-1]["step"], "the same step count as the uninterrupted run"
    assert cont["final"]["top1"] == pytest.approx(full["final"]["top1"])
    assert cont["epochs"][-1]["train_loss"] == pytest.approx(full["epochs"][-1]["train_loss"], rel=1e-3)


def test_torch_datasets_for_own_code(shapes_dataset):
    from torch.utils.data import DataLoader

    from cvft_train import ClassificationDataset
    from cvft_train.classify import transforms_for

    ds = ClassificationDataset(cvft_data.load(shapes_dataset)["train"], transforms_for(32, False), imgsz=32)
    x, y = next(iter(DataLoader(ds, batch_size=8, num_workers=2)))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64


def test_detection_dataset_targets(tmp_path):
    from torch.utils.data import DataLoader

    from cvft_data.sample import write_coco_sample
    from cvft_train import DetectionDataset, collate_detection

    cvft_data.ingest(write_coco_sample(tmp_path / "src", n_images=10), tmp_path / "ds")
    ds = DetectionDataset(cvft_data.load(tmp_path / "ds")["train"], with_masks=True)
    images, targets = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate_detection)))
    assert len(images) == 4 and images[0].shape == (3, 120, 160)
    t = next(t for t in targets if len(t["labels"]))
    assert t["boxes"].shape[1] == 4 and t["masks"].shape[0] == len(t["labels"])
    row = cvft_data.load(tmp_path / "ds")["train"][ds.index[1]]
    x, y, w, h = row["objects"]["bbox"][0]
    assert targets[1]["boxes"][0].tolist() == pytest.approx([x, y, x + w, y + h])


def test_reduced_size_decode():
    from cvft_train.data import decode

    buf = io.BytesIO()
    Image.new("RGB", (1600, 1200), "red").save(buf, "JPEG")
    im = decode({"bytes": buf.getvalue(), "path": None}, target_side=100)
    assert im.size[1] >= 100 and im.size[0] < 1600, "decoded at a reduced size, still large enough"


def test_checkpoints_load_with_weights_only(tmp_path):
    from cvft_train.classify import build_model

    m = build_model("resnet18", 3)
    torch.save({"model": m.state_dict(), "evil": Payload()}, tmp_path / "ckpt.pt")
    with pytest.raises(Exception, match="[Ww]eights only|Unsupported global"):
        build_model("resnet18", 3, weights=str(tmp_path / "ckpt.pt"))
    torch.save({"model": m.state_dict()}, tmp_path / "ok.pt")
    assert build_model("resnet18", 5, weights=str(tmp_path / "ok.pt")).fc.out_features == 5


class Payload:
    """An arbitrary object: unpickling it would run code from the checkpoint's author."""

    def __reduce__(self):
        return (print, ("code ran while loading a checkpoint",))


def _yolo_source(tmp_path, seg: bool):
    src = tmp_path / "coco"
    images, anns = [], []
    for i in range(8):
        write_image(src / "images" / f"{i}.jpg", 64, 48, seed=i)
        images.append({"id": i, "file_name": f"{i}.jpg", "width": 64, "height": 48})
        x = 4 + 3 * i
        ann = {"id": i, "image_id": i, "category_id": 1 + i % 2, "bbox": [x, 6, 20, 20], "area": 400, "iscrowd": 0}
        if seg:
            ann["segmentation"] = [[x, 6, x + 20, 6, x + 20, 26, x, 26]]
        anns.append(ann)
    (src / "coco.json").write_text(json.dumps({"images": images, "annotations": anns,
                                               "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}))
    cvft_data.ingest(src, tmp_path / "ds", split="0.75,0.25")
    return tmp_path / "ds"


@pytest.mark.slow
@pytest.mark.parametrize("seg", [False, True], ids=["detect", "segment"])
def test_yolo_one_epoch(tmp_path, monkeypatch, seg):
    pytest.importorskip("ultralytics")
    from cvft_data.cli import main as cvft_cli

    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ulcfg"))
    monkeypatch.setenv("CVFT_CACHE", str(tmp_path / "cache"))
    ds = _yolo_source(tmp_path, seg)
    model = "yolo11n-seg.yaml" if seg else "yolo11n.yaml"
    code = cvft_cli.main(["train", str(ds), "--model", model, "--epochs", "1", "--imgsz", "64", "--batch", "4",
                          "--device", "cpu", "--workers", "0", "--out", str(tmp_path / "run")])
    assert code == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"map50", "map50_95"} <= set(metrics["final"]) and len(metrics["epochs"]) == 1
    assert (tmp_path / "run" / "yolo" / "weights" / "last.pt").is_file()
    assert (tmp_path / "run" / "config.yaml").is_file()
    assert len(list((tmp_path / "cache" / "yolo").iterdir())) == 1, "the YOLO layout is cached by content hash"


@pytest.mark.slow
def test_wandb_offline_run(shapes_dataset, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from cvft_train import fit

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    info = cvft_data.info(shapes_dataset)
    fit(shapes_dataset, model="resnet18", epochs=1, imgsz=32, batch=32, workers=0, device="cpu",
        out=str(tmp_path / "run"), wandb=True)
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    blob = next(runs[0].glob("*.wandb")).read_bytes()
    assert f"dataset-{info['content_hash'][:16]}".encode() in blob, "the dataset artifact"
    assert b"model-" in blob and b"best.pt" in blob, "the best model artifact"
    assert b"train_loss" in blob and b"top1" in blob, "the metrics history"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"][0]["epoch"] == 0


@pytest.mark.slow
def test_ddp_under_torchrun_on_cpu(shapes_dataset, tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    r = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "cvft_train.launch", str(shapes_dataset),
                        "--model", "resnet18", "--epochs", "1", "--imgsz", "32", "--batch", "16", "--workers", "0",
                        "--device", "cpu", "--out", str(tmp_path / "run")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # 300 training images, 2 processes of batch 16: 150 each -> 10 steps per process and epoch
    assert metrics["epochs"][0]["step"] == 10
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
