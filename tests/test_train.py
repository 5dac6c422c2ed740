"""The thin trainer: a learnable classification set, resume, fine-tuning, W&B offline, DDP."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

import cvft_data
from shapes import SHAPES, write_shapes

torch = pytest.importorskip("torch", reason="the train extra is not installed")

COMMON = dict(model="resnet18", imgsz=32, batch=32, lr=3e-3, device="cpu", seed=0, pretrained=False)


@pytest.fixture(scope="module")
def shapes_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    cvft_data.ingest(write_shapes(root / "src", {"train": 300, "val": 60}), root / "ds")
    return root / "ds"


@pytest.mark.slow
def test_resnet18_learns_shapes_and_resumes_with_workers(shapes_dataset, tmp_path, monkeypatch):
    """A run killed in its 5th epoch and resumed replays the uninterrupted run, DataLoader worker
    processes included (their random state used to carry over between epochs)."""
    from cvft_train import classify, fit

    common = {**COMMON, "workers": 2}
    full = fit(shapes_dataset, epochs=6, out=str(tmp_path / "full"), **common)
    assert full["final"]["top1"] > 0.9, full["final"]
    assert len(full["final"]["confusion_matrix"]) == 3 and set(full["final"]["per_class"]) == set(SHAPES)
    assert set(full["final"]["per_class"]["circle"]) == {"precision", "recall", "f1"}
    assert [e["epoch"] for e in full["epochs"]] == [1, 2, 3, 4, 5, 6]
    assert Path(full["weights"]["best"]).is_file() and full["best"]["metric"] == "top1"
    state = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 6

    real = classify.train_one_epoch
    calls = []

    def killed(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(classify, "train_one_epoch", killed)
    with pytest.raises(KeyboardInterrupt):
        fit(shapes_dataset, epochs=6, out=str(tmp_path / "part"), **common)
    monkeypatch.setattr(classify, "train_one_epoch", real)
    cont = fit(shapes_dataset, out=str(tmp_path / "part"), resume=True)
    assert [e["epoch"] for e in cont["epochs"]] == [1, 2, 3, 4, 5, 6]
    assert cont["epochs"][-1]["step"] == full["epochs"][-1]["step"]
    for a, b in zip(cont["epochs"], full["epochs"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4), (a, b)
    assert cont["final"]["top1"] == pytest.approx(full["final"]["top1"])


@pytest.mark.slow
def test_fine_tuning_from_a_checkpoint_beats_random_weights(tmp_path):
    """Pre-train on filled shapes, save a plain state dict, fine-tune on outlined shapes with other
    names: one epoch from that checkpoint beats one epoch from random weights."""
    from cvft_train import fit

    cvft_data.ingest(write_shapes(tmp_path / "a", {"train": 300, "val": 60}), tmp_path / "task_a")
    cvft_data.ingest(write_shapes(tmp_path / "b", {"train": 90, "val": 90}, names=("ring", "box", "wedge"),
                                  outline=True, seed=50_000), tmp_path / "task_b")
    fit(tmp_path / "task_a", epochs=6, out=str(tmp_path / "pre"), **COMMON)
    state = torch.load(tmp_path / "pre" / "checkpoints" / "best.pt", weights_only=True)["model"]
    torch.save(state, tmp_path / "pretrained.pth")   # what a user has: a bare state dict

    # SGD: its steps scale with the gradient, so the pretrained weights are refined, not shaken
    # (AdamW's first steps move every weight by about lr whatever the gradient)
    one = {**COMMON, "epochs": 1, "batch": 16, "lr": 1e-2, "optimizer": "sgd"}
    tuned = fit(tmp_path / "task_b", out=str(tmp_path / "tuned"), weights=str(tmp_path / "pretrained.pth"), **one)
    scratch = fit(tmp_path / "task_b", out=str(tmp_path / "scratch"), **one)
    assert tuned["load"]["loaded"] == tuned["load"]["total"], "a bare state dict of the same class count: all of it"
    assert tuned["final"]["top1"] > scratch["final"]["top1"] + 0.2, (tuned["final"]["top1"], scratch["final"]["top1"])


def test_torch_datasets_for_own_code(shapes_dataset):
    from torch.utils.data import DataLoader

    from cvft_train import ClassificationDataset, TrainConfig
    from cvft_train.augment import transforms_for

    ds = ClassificationDataset(cvft_data.load(shapes_dataset)["train"], transforms_for(TrainConfig(imgsz=32), False),
                               imgsz=32)
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


@pytest.mark.slow
def test_wandb_offline_run(shapes_dataset, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from cvft_train import fit

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    info = cvft_data.info(shapes_dataset)
    fit(shapes_dataset, epochs=1, out=str(tmp_path / "run"), wandb=True, workers=0, **COMMON)
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    # the offline file is written by W&B's service process: on a loaded machine it may trail finish()
    deadline = time.monotonic() + 60
    while True:
        blob = next(runs[0].glob("*.wandb")).read_bytes()
        if b"best.pt" in blob or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert f"dataset-{info['content_hash'][:16]}".encode() in blob, "the dataset artifact"
    assert b"model-" in blob and b"best.pt" in blob, "the best model artifact"
    assert b"train_loss" in blob and b"top1" in blob and b"val_loss" in blob, "the metrics history"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"][0]["epoch"] == 1


def _torchrun(dataset, out, *extra, timeout=300):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    return subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "cvft_train.launch", str(dataset),
                           "--imgsz", "32", "--batch", "16", "--workers", "0", "--device", "cpu", "--no-pretrained",
                           "--out", str(out), *extra], capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_ddp_under_torchrun_on_cpu(shapes_dataset, tmp_path):
    r = _torchrun(shapes_dataset, tmp_path / "run", "--model", "resnet18", "--epochs", "1")
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # 300 training images, 2 processes of batch 16: 150 each -> 10 steps per process and epoch
    assert metrics["epochs"][0]["step"] == 10
    assert metrics["final"]["images"] == 60, "each rank evaluated half; the counts were summed"
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()


@pytest.mark.slow
def test_ddp_balanced_sampler_splits_the_epoch_between_ranks(shapes_dataset, tmp_path):
    r = _torchrun(shapes_dataset, tmp_path / "run", "--model", "resnet18", "--epochs", "1", "--balance", "sampler")
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs"][0]["step"] == 10, "each rank draws half of the epoch, not all of it"


@pytest.mark.slow
def test_ddp_early_stopping_stops_every_rank(shapes_dataset, tmp_path):
    # squeezenet has no batch norm: with lr 0 its predictions never change, so epoch 2 is stale
    try:
        r = _torchrun(shapes_dataset, tmp_path / "run", "--model", "squeezenet1_1", "--imgsz", "64", "--epochs", "5",
                      "--lr", "0", "--patience", "1", timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail("a rank hung after rank 0 stopped early")
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
