"""YOLO through cvft: the run folder holds the weights wherever --out points, checkpoints load with
weights_only=True, cvft's options reach Ultralytics or are refused, W&B gets each epoch live."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cvft_data.cli import main as cvft_cli
from cvft_data.errors import CheckpointError, UsageError
from shapes import yolo_dataset

pytest.importorskip("ultralytics", reason="the train extra is not installed")
torch = pytest.importorskip("torch")

FAST = ["--epochs", "1", "--imgsz", "64", "--batch", "4", "--device", "cpu", "--workers", "0", "--no-pretrained"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ulcfg"))
    monkeypatch.setenv("CVFT_CACHE", str(tmp_path / "cache"))


@pytest.mark.slow
def test_relative_out_keeps_weights_and_they_load_safely_again(tmp_path, monkeypatch, capsys):
    ds = yolo_dataset(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cvft_cli.main(["train", str(ds), "--model", "yolo11n.yaml", *FAST, "--out", "runs/det"]) == 0
    m = json.loads((tmp_path / "runs" / "det" / "metrics.json").read_text())
    assert m["task"] == "detection" and m["primary_metric"] == "map50_95" and m["best"]["epoch"] == 1
    assert [e["epoch"] for e in m["epochs"]] == [1] and {"map50", "map50_95"} <= set(m["final"])
    last = tmp_path / "runs" / "det" / "yolo" / "weights" / "last.pt"
    assert last.is_file() and Path(m["weights"]["best"]).is_file()
    assert not (tmp_path / "runs" / "detect").exists(), "not nested under runs/<task>/"
    assert len(list((tmp_path / "cache" / "yolo").iterdir())) == 1, "the YOLO layout is cached by content hash"

    # resuming a finished run neither starts a new one nor trains Ultralytics' defaults
    capsys.readouterr()
    assert cvft_cli.main(["train", str(ds), "--resume", "--out", "runs/det"]) == 0
    assert "finished its 1 epochs; nothing to resume" in capsys.readouterr().out
    assert cvft_cli.main(["train", str(ds), "--resume", "--epochs", "3", "--out", "runs/det"]) == 2
    assert "cannot extend a finished run" in capsys.readouterr().err
    # a real Ultralytics checkpoint goes through the weights_only loader
    assert cvft_cli.main(["train", str(ds), "--model", "yolo11n.yaml", *FAST, "--weights", str(last),
                          "--out", "runs/tuned"]) == 0
    assert (tmp_path / "runs" / "tuned" / "yolo" / "weights" / "last.pt").is_file()


@pytest.mark.slow
def test_segmentation_one_epoch(tmp_path):
    ds = yolo_dataset(tmp_path, seg=True)
    assert cvft_cli.main(["train", str(ds), "--model", "yolo11n-seg.yaml", *FAST, "--out", str(tmp_path / "run")]) == 0
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["task"] == "instance_segmentation" and "mask_map50" in m["final"]
    assert m["primary_metric"] == "mask_map50_95"


def test_yolo_checkpoint_that_runs_code_is_refused(tmp_path, capsys):
    ds = yolo_dataset(tmp_path)

    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "ran"), "w"))

    torch.save({"model": Payload(), "train_args": {}}, tmp_path / "evil.pt")
    code = cvft_cli.main(["train", str(ds), "--model", "yolo11n.yaml", *FAST, "--weights", str(tmp_path / "evil.pt"),
                          "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1 and "evil.pt" in err and "Traceback" not in err
    assert not (tmp_path / "ran").exists(), "the checkpoint's code did not run"


def test_options_reach_ultralytics_or_are_refused():
    from cvft_train import TrainConfig
    from cvft_train.yolo import ultralytics_args

    a = ultralytics_args(TrainConfig(lr=0.002, weight_decay=0.01, warmup_epochs=1, accumulate=4, batch=8, hflip=0,
                                     vflip=0.5, balance="weights", optimizer="sgd", compile=True), "detection")
    assert (a["lr0"], a["optimizer"], a["weight_decay"], a["warmup_epochs"], a["nbs"]) == (0.002, "SGD", 0.01, 1, 32)
    assert (a["fliplr"], a["flipud"], a["cls_pw"], a["cos_lr"], a["compile"]) == (0, 0.5, 1.0, True, True)
    assert ultralytics_args(TrainConfig(scheduler="constant"), "detection")["lrf"] == 1.0
    for bad in ({"label_smoothing": 0.1}, {"balance": "sampler"}, {"ema_decay": 0.999}, {"clip_grad": 1.0},
                {"auto_augment": "randaugment"}, {"amp": "bf16"}, {"val_split": "test"}):
        with pytest.raises(UsageError, match="cannot be honoured by Ultralytics"):
            ultralytics_args(TrainConfig(**bad), "detection")
    assert ultralytics_args(TrainConfig(yolo_args={"mosaic": 0.0, "lr0": 0.5}, lr=0.1), "detection")["lr0"] == 0.5


def test_refused_option_exits_2_before_training(tmp_path, capsys):
    ds = yolo_dataset(tmp_path)
    code = cvft_cli.main(["train", str(ds), "--model", "yolo11n.yaml", *FAST, "--label-smoothing", "0.1",
                          "--out", str(tmp_path / "run")])
    assert code == 2 and "label-smoothing" in capsys.readouterr().err


def test_default_model_offline_names_weights(tmp_path, monkeypatch):
    import ultralytics.utils.downloads as dl

    from cvft_train import fit

    ds = yolo_dataset(tmp_path)

    def offline(name, *a, **k):
        raise ConnectionError(f"Download failure for {name}. Environment may be offline.")

    monkeypatch.setattr(dl, "attempt_download_asset", offline)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match=r"could not fetch yolo11n.pt .*--weights PATH.*--no-pretrained"):
        fit(ds, epochs=1, imgsz=64, device="cpu", out=str(tmp_path / "run"))


@pytest.mark.slow
def test_wandb_gets_each_epoch_while_training(tmp_path):
    from cvft_train.config import TrainConfig
    from cvft_train.yolo import fit_yolo

    ds = yolo_dataset(tmp_path)
    run = tmp_path / "run"

    class Recorder:
        def __init__(self):
            self.epochs, self.config = [], {}

        def update_config(self, values):
            self.config.update(values)

        def log_epoch(self, record, confusion, names):
            csv = run / "yolo" / "results.csv"
            rows = len(csv.read_text().splitlines()) - 1 if csv.is_file() else 0
            self.epochs.append((record, rows))

    rec = Recorder()
    cfg = TrainConfig(model="yolo11n.yaml", epochs=2, imgsz=64, batch=4, device="cpu", workers=0, pretrained=False,
                      lr=0.001)
    fit_yolo(cfg, str(ds), run, rec)
    assert [r["epoch"] for r, _ in rec.epochs] == [1, 2]
    assert "map50" in rec.epochs[0][0] and "train_box_loss" in rec.epochs[0][0]
    assert rec.epochs[0][1] <= 1, "epoch 1 was logged before epoch 2 ran"
    assert rec.config["ultralytics"]["lr0"] == 0.001 and rec.config["ultralytics"]["optimizer"] == "AdamW"


def test_two_sources_of_weights_are_refused(tmp_path):
    from cvft_train import fit

    ds = yolo_dataset(tmp_path)
    (tmp_path / "mine.pt").write_bytes(b"not read")
    with pytest.raises(UsageError, match="both name weights"):
        fit(ds, model="yolo11s.pt", weights=str(tmp_path / "mine.pt"), epochs=1, device="cpu", out=str(tmp_path / "r"))
