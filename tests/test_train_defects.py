"""Trainer defects found by trying it as a new user would; each test failed before its fix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

import cvft_data
from cvft_data.cli import main as cvft_cli
from cvft_data.errors import UsageError
from shapes import write_shapes

torch = pytest.importorskip("torch", reason="the train extra is not installed")

TINY = dict(model="resnet18", imgsz=32, batch=8, device="cpu", workers=0, pretrained=False, seed=0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    cvft_data.ingest(write_shapes(root / "src", {"train": 24, "val": 12}), root / "ds")
    return root / "ds"


def test_one_step_per_epoch_trains(tmp_path):
    """OneCycle divided by zero when an epoch was a single optimizer step."""
    from cvft_train import fit

    cvft_data.ingest(write_shapes(tmp_path / "src", {"train": 4, "val": 3}), tmp_path / "ds")
    m = fit(tmp_path / "ds", epochs=4, out=str(tmp_path / "run"), **{**TINY, "batch": 32})
    assert [e["step"] for e in m["epochs"]] == [1, 2, 3, 4]


def test_resume_extends_a_finished_run_with_its_saved_config(tiny, tmp_path, capsys):
    run = str(tmp_path / "run")
    args = ["train", str(tiny), "--imgsz", "32", "--batch", "6", "--lr", "0.01", "--hflip", "0", "--device", "cpu",
            "--workers", "0", "--no-pretrained", "--epochs", "2", "--out", run]
    assert cvft_cli.main(args) == 0
    assert cvft_cli.main(["train", str(tiny), "--resume", "--epochs", "3", "--out", run]) == 0
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert (saved["batch"], saved["lr"], saved["hflip"], saved["epochs"], saved["pretrained"]) == (6, 0.01, 0.0, 3, False)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    assert [e["step"] for e in metrics["epochs"]] == [4, 8, 12], "batch 6 from the saved config, not the default 32"
    assert "resuming" in capsys.readouterr().out


def test_resume_without_a_checkpoint_says_it_starts(tiny, tmp_path, caplog):
    from cvft_train import fit

    with caplog.at_level("INFO", logger="cvft_train"):
        fit(tiny, epochs=1, out=str(tmp_path / "new"), resume=True, **TINY)
    assert "no checkpoint" in caplog.text and "starting a new run" in caplog.text


def test_no_validation_split_is_said_and_best_is_the_last_epoch(tmp_path, caplog):
    from cvft_train import fit

    cvft_data.ingest(write_shapes(tmp_path / "src", {"train": 12}), tmp_path / "ds")
    with caplog.at_level("WARNING", logger="cvft_train"):
        m = fit(tmp_path / "ds", epochs=2, out=str(tmp_path / "run"), **TINY)
    assert "no validation split" in caplog.text and "no validation split" in m["notes"][0]
    assert torch.load(m["weights"]["best"], weights_only=True)["epoch"] == 2
    with pytest.raises(UsageError, match="--patience needs a validation split"):
        fit(tmp_path / "ds", epochs=2, patience=1, out=str(tmp_path / "run2"), **TINY)


def test_cpu_threads_respect_omp_and_affinity(monkeypatch):
    from cvft_train.devices import cpu_threads, pick_device

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        pick_device("cpu")
        assert torch.get_num_threads() == 1, "torchrun's one thread per process is kept"
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
        assert cpu_threads() == 1, "a taskset/SLURM affinity of one core"
    finally:
        torch.set_num_threads(before)


def test_edited_content_hash_never_becomes_a_path(tmp_path, monkeypatch):
    from cvft_data.sample import write_coco_sample
    from cvft_train.yolo import yolo_layout

    cvft_data.ingest(write_coco_sample(tmp_path / "src", n_images=4), tmp_path / "ds")
    monkeypatch.setenv("CVFT_CACHE", str(tmp_path / "cache"))
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    doc = json.loads((tmp_path / "ds" / "cvft.json").read_text())
    doc["content_hash"] = "../../victim"
    (tmp_path / "ds" / "cvft.json").write_text(json.dumps(doc))
    with pytest.raises(UsageError, match="content_hash.*not a hex digest"):
        yolo_layout(tmp_path / "ds")
    assert (victim / "keep.txt").read_text() == "precious"


@pytest.mark.parametrize("to", ["imagefolder", "yolo"])
def test_edited_class_names_stay_inside_the_export(tmp_path, to):
    cvft_data.ingest(write_shapes(tmp_path / "src", {"train": 6}), tmp_path / "ds")
    doc = json.loads((tmp_path / "ds" / "cvft.json").read_text())
    doc["classes"] = ["../../../escaped", "a/b", "triangle"]
    (tmp_path / "ds" / "cvft.json").write_text(json.dumps(doc))
    summary = cvft_data.export(tmp_path / "ds", to, tmp_path / "out" / "export")
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png") if "src" not in p.parts)
    assert written and all(p.startswith("out/export/train/") for p in written), written
    assert {p.split("/")[3] for p in written} == {".._.._.._escaped", "a_b", "triangle"}
    renamed = [e for e in summary["ledger_entries"] if e["reason"] == "class_folder_renamed"]
    assert len(renamed) == 2


def test_one_metrics_shape_and_the_knobs_do_what_they_say(tiny, tmp_path):
    from cvft_train import fit

    plain = fit(tiny, epochs=1, out=str(tmp_path / "plain"), **TINY)
    knobs = fit(tiny, epochs=1, out=str(tmp_path / "knobs"), accumulate=2, clip_grad=1.0, ema_decay=0.9,
                label_smoothing=0.1, auto_augment="trivialaugment", color_jitter=0.2, random_erasing=0.25,
                vflip=0.5, scheduler="constant", warmup_epochs=0, optimizer="sgd", **TINY)
    for m in (plain, knobs):
        assert {"task", "model", "classes", "primary_metric", "epochs", "final", "best", "weights"} <= set(m)
        assert m["epochs"][0]["epoch"] == 1 and {"val_loss", "top1", "f1_macro"} <= set(m["epochs"][0])
        assert set(m["final"]["per_class"]["circle"]) == {"precision", "recall", "f1"}
    assert plain["epochs"][0]["step"] == 3 and knobs["epochs"][0]["step"] == 2, "24 images, batch 8, accumulate 2"
    assert knobs["epochs"][0]["lr"] == pytest.approx(0.01), "constant schedule, SGD's default lr"
    last = torch.load(tmp_path / "knobs" / "checkpoints" / "last.pt", weights_only=True)
    best = torch.load(tmp_path / "knobs" / "checkpoints" / "best.pt", weights_only=True)
    assert last["ema"] is not None and torch.equal(best["model"]["fc.weight"], last["ema"]["module.fc.weight"])
    assert not torch.equal(best["model"]["fc.weight"], last["model"]["fc.weight"]), "best.pt holds the EMA weights"


def test_norm_layers_and_biases_get_no_weight_decay():
    from cvft_train.models import build_model
    from cvft_train.optim import param_groups

    model, _ = build_model("resnet18", 3, pretrained=False)
    decay, no_decay = param_groups(model, 0.05, decay_norm_bias=False)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert any(p is model.bn1.weight for p in no_decay["params"]) and any(p is model.fc.bias for p in no_decay["params"])
    assert all(p.ndim > 1 for p in decay["params"])
    assert len(param_groups(model, 0.05, decay_norm_bias=True)) == 1


def test_compile_option_compiles(tiny, tmp_path, monkeypatch):
    from cvft_train import fit

    seen = []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: seen.append(model) or model)
    fit(tiny, epochs=1, compile=True, out=str(tmp_path / "run"), **TINY)
    assert len(seen) == 1


def test_defaults_fine_tune_from_pretrained_weights():
    from cvft_train import TrainConfig

    cfg = TrainConfig()
    assert cfg.pretrained is True
    assert cfg.resolved_model("detection") == "yolo11n.pt"
    assert cfg.resolved_model("instance_segmentation") == "yolo11n-seg.pt"
    assert TrainConfig(pretrained=False).resolved_model("detection") == "yolo11n.yaml"
    with pytest.raises(UsageError, match="hflip is a probability"):
        TrainConfig(hflip=2.0)


def test_bad_config_values_are_usage_errors(tiny, tmp_path, capsys):
    (tmp_path / "cfg.yaml").write_text("epochs: 1\nnot_an_option: 3\n")
    code = cvft_cli.main(["train", str(tiny), "--config", str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "r")])
    assert code == 2 and "not_an_option" in capsys.readouterr().err
    Path(tmp_path / "cfg.yaml").write_text("- a list\n")
    assert cvft_cli.main(["train", str(tiny), "--config", str(tmp_path / "cfg.yaml")]) == 2


def test_options_the_classifier_cannot_honour_are_refused(tiny, tmp_path):
    from cvft_train import fit

    with pytest.raises(UsageError, match="Ultralytics arguments"):
        fit(tiny, epochs=1, yolo_args={"mosaic": 0.5}, out=str(tmp_path / "a"), **TINY)
    with pytest.raises(UsageError, match="torchrun"):
        fit(tiny, epochs=1, out=str(tmp_path / "b"), **{**TINY, "device": "0,1"})


def test_a_second_run_to_the_same_folder_is_refused_not_overwritten(tiny, tmp_path, capsys):
    args = ["train", str(tiny), "--imgsz", "32", "--epochs", "1", "--device", "cpu", "--workers", "0",
            "--no-pretrained", "--out", str(tmp_path / "run")]
    assert cvft_cli.main(args) == 0
    before = (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes()
    assert cvft_cli.main(args) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes() == before
