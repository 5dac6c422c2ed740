"""Weights: every model family gets its head, checkpoints in the usual wrappers load and are
counted, files that pickle code or do not fit are refused, pretrained weights download (from a
local server here) or fail with one sentence that names --weights."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

import cvft_data
from cvft_data.errors import CheckpointError
from shapes import write_shapes

torch = pytest.importorskip("torch", reason="the train extra is not installed")


class Payload:
    """Unpickling it writes a file: proof that a checkpoint ran code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_vit_head_and_input_size():
    from cvft_train.models import build_model

    model, report = build_model("vit_b_32", 3, imgsz=64, pretrained=False)
    assert report is None and len(model.heads) == 1 and model.heads.head.out_features == 3
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 3)


def test_squeezenet_head_is_a_convolution():
    from cvft_train.models import build_model

    model, _ = build_model("squeezenet1_1", 5, imgsz=64, pretrained=False)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 5)


def test_vit_checkpoint_at_another_size_is_interpolated(tmp_path):
    from cvft_train.models import build_model

    src, _ = build_model("vit_b_32", 10, imgsz=224, pretrained=False)
    torch.save(src.state_dict(), tmp_path / "vit224.pth")
    model, report = build_model("vit_b_32", 3, imgsz=64, weights=str(tmp_path / "vit224.pth"))
    assert report.loaded == report.total - 2 and report.new_head == ["heads.head.weight", "heads.head.bias"]
    assert model.encoder.pos_embedding.shape == (1, 5, 768)


@pytest.mark.parametrize("wrap", ["plain", "cvft", "lightning", "ddp", "timm", "compiled", "safetensors"])
def test_checkpoint_wrappers_and_prefixes(tmp_path, wrap):
    from cvft_train.models import build_model

    src, _ = build_model("resnet18", 4, imgsz=32, pretrained=False)
    sd = src.state_dict()
    path = tmp_path / ("w.safetensors" if wrap == "safetensors" else "w.pt")
    if wrap == "safetensors":
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        doc = {"plain": sd, "cvft": {"model": sd, "classes": ["a", "b", "c", "d"], "epoch": 3},
               "lightning": {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 7},
               "ddp": {f"module.{k}": v for k, v in sd.items()},
               "timm": {"state_dict": sd, "arch": "resnet18", "epoch": 1},
               "compiled": {f"_orig_mod.{k}": v for k, v in sd.items()}}[wrap]
        torch.save(doc, path)
    model, report = build_model("resnet18", 4, imgsz=32, weights=str(path))
    assert (report.loaded, report.new_head) == (report.total, []), str(report)
    assert torch.equal(model.layer4[1].conv2.weight, src.layer4[1].conv2.weight)
    assert torch.equal(model.fc.weight, src.fc.weight), "same classes: the head is kept"


def test_a_cvft_checkpoint_of_other_classes_gets_a_new_head(tmp_path):
    from cvft_train.models import build_model

    src, _ = build_model("resnet18", 2, imgsz=32, pretrained=False)
    torch.save({"model": src.state_dict(), "classes": ["cat", "dog"]}, tmp_path / "best.pt")
    same, report = build_model("resnet18", 2, weights=str(tmp_path / "best.pt"), classes=["cat", "dog"])
    assert report.new_head == [] and torch.equal(same.fc.weight, src.fc.weight)
    other, report = build_model("resnet18", 2, weights=str(tmp_path / "best.pt"), classes=["fox", "owl"])
    assert report.new_head == ["fc.weight", "fc.bias"] and not torch.equal(other.fc.weight, src.fc.weight)


def test_whole_model_pickle_is_refused_with_a_sentence(tmp_path):
    from cvft_train.models import build_model

    src, _ = build_model("resnet18", 3, imgsz=32, pretrained=False)
    torch.save(src, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match=r"pickles Python objects \(torchvision.models.resnet.ResNet\).*state_dict"):
        build_model("resnet18", 3, weights=str(tmp_path / "model.pt"))


def test_checkpoint_that_runs_code_is_refused(tmp_path):
    from cvft_train.models import build_model

    src, _ = build_model("resnet18", 3, imgsz=32, pretrained=False)
    torch.save({"model": src.state_dict(), "evil": Payload(tmp_path / "ran")}, tmp_path / "ckpt.pt")
    with pytest.raises(CheckpointError, match="weights_only=True"):
        build_model("resnet18", 3, weights=str(tmp_path / "ckpt.pt"))
    assert not (tmp_path / "ran").exists()


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    from cvft_train.models import build_model

    other, _ = build_model("resnet50", 3, imgsz=32, pretrained=False)
    torch.save(other.state_dict(), tmp_path / "r50.pth")
    with pytest.raises(CheckpointError, match=r"does not fit ResNet: only \d+ of its 120 backbone tensors .* different: layer1.0.conv1.weight"):
        build_model("resnet18", 3, weights=str(tmp_path / "r50.pth"))


def test_cli_refuses_a_mismatched_checkpoint_with_exit_1(tmp_path, capsys):
    from cvft_data.cli import main as cvft_cli
    from cvft_train.models import build_model

    cvft_data.ingest(write_shapes(tmp_path / "src", {"train": 6}), tmp_path / "ds")
    torch.save(build_model("mobilenet_v3_small", 3, pretrained=False)[0].state_dict(), tmp_path / "m.pth")
    code = cvft_cli.main(["train", str(tmp_path / "ds"), "--weights", str(tmp_path / "m.pth"), "--imgsz", "32",
                          "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1 and "does not fit ResNet" in err and "Traceback" not in err


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def file_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Files(*a, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_pretrained_weights_are_downloaded_verified_and_counted(tmp_path, file_server, monkeypatch):
    import torchvision

    from cvft_train import models

    root, base = file_server
    src = torchvision.models.resnet18(num_classes=1000)
    blob = tmp_path / "blob.pth"
    torch.save(src.state_dict(), blob)
    name = f"resnet18-{hashlib.sha256(blob.read_bytes()).hexdigest()[:8]}.pth"   # torch hub checks this prefix
    (root / name).write_bytes(blob.read_bytes())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(models, "weights_url", lambda model: f"{base}/{name}")
    model, report = models.build_model("resnet18", 3, imgsz=32)
    assert report.loaded == report.total - 2 and report.new_head == ["fc.weight", "fc.bias"]
    assert torch.equal(model.conv1.weight, src.conv1.weight)
    assert (tmp_path / "torch" / "hub" / "checkpoints" / name).is_file(), "cached for the next run"


def test_offline_pretrained_is_one_sentence_naming_weights(tmp_path, monkeypatch):
    import socket

    from cvft_train import models

    with socket.socket() as s:   # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(models, "weights_url", lambda model: f"http://127.0.0.1:{port}/resnet18-f37072fd.pth")
    with pytest.raises(CheckpointError, match=r"could not fetch the pretrained weights of resnet18.*--weights PATH"):
        models.build_model("resnet18", 3)
