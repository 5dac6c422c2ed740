"""Evaluate, predict and export: the fine-tuned model goes back onto raw images."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

import cvft_data
from cvft_data.cli import main as cvft_cli
from cvft_data.errors import UsageError
from shapes import write_shapes

torch = pytest.importorskip("torch", reason="the train extra is not installed")

TINY = dict(model="resnet18", imgsz=32, batch=8, device="cpu", workers=0, pretrained=False, seed=0, lr=3e-3)


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
    from cvft_train import fit

    root = tmp_path_factory.mktemp("clsrun")
    write_shapes(root / "src", {"train": 60, "val": 30})
    cvft_data.ingest(root / "src", root / "ds")
    metrics = fit(root / "ds", epochs=3, out=str(root / "run"), **TINY)
    return root, metrics


@pytest.fixture
def raw_folder(tmp_path, classifier_run):
    """The validation images as a raw folder, with one corrupt file and one non-image."""
    root = classifier_run[0]
    images = tmp_path / "raw"
    for p in sorted((root / "src" / "val").rglob("*.png")):
        dst = images / p.relative_to(root / "src" / "val")
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(p.read_bytes())
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (images / "notes.txt").write_text("not an image")
    return images


def test_evaluate_gives_the_figure_training_reported(classifier_run, tmp_path, capsys):
    from cvft_train import evaluate

    root, metrics = classifier_run
    report = evaluate(root / "run", root / "ds", split="validation", device="cpu", out=tmp_path / "eval")
    assert report["top1"] == pytest.approx(metrics["best"]["value"])
    assert set(report["per_class"]["circle"]) == {"precision", "recall", "f1"}
    assert sum(map(sum, report["confusion_matrix"])) == 30
    assert (tmp_path / "eval" / "confusion_matrix.png").stat().st_size > 1000
    assert json.loads((tmp_path / "eval" / "evaluation.json").read_text())["top1"] == report["top1"]
    assert cvft_cli.main(["evaluate", str(root / "run"), str(root / "ds"), "--split", "validation", "--json",
                          "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["top1"] == report["top1"]
    with pytest.raises(UsageError, match="split 'test' is not in"):
        evaluate(root / "run", root / "ds", split="test", device="cpu")


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_predict_writes_every_image_once_in_each_format(classifier_run, raw_folder, tmp_path):
    from cvft_train.predict_run import predict_to

    root = classifier_run[0]
    images = sorted(p.relative_to(raw_folder).as_posix() for p in raw_folder.rglob("*") if p.suffix in (".png", ".jpg"))
    out = tmp_path / "out"
    s = predict_to(root / "run", raw_folder, out / "p.csv", device="cpu", batch=7)
    assert (s["images"], s["failed"]) == (31, 1)
    rows = _rows(out / "p.csv")
    assert [r["image"] for r in rows] == images
    bad = next(r for r in rows if r["image"] == "broken.jpg")
    assert bad["label"] == "" and bad["error"].startswith("cannot decode")
    assert all(r["label"] in ("circle", "square", "triangle") for r in rows if r["image"] != "broken.jpg")

    predict_to(root / "run", raw_folder, out / "md.json", fmt="megadetector", device="cpu")
    md = json.loads((out / "md.json").read_text())
    assert [i["file"] for i in md["images"]] == images and md["info"]["format_version"] == "1.4"
    assert md["classification_categories"] == {"1": "circle", "2": "square", "3": "triangle"}
    ok = [i for i in md["images"] if "failure" not in i]
    assert len(ok) == 30 and all(len(i["detections"][0]["classifications"]) == 3 for i in ok)

    predict_to(root / "run", raw_folder, out / "coco.json", fmt="coco", device="cpu")
    coco = json.loads((out / "coco.json").read_text())
    assert sorted(r["file_name"] for r in coco) == [i for i in images if i != "broken.jpg"]
    ledger = [json.loads(line) for line in (out / "coco.json.ledger.jsonl").read_text().splitlines()]
    assert [e["item"] for e in ledger] == ["broken.jpg"], "COCO results cannot hold it: the ledger does"
    assert {r["category_name"] for r in coco} <= {"circle", "square", "triangle"}

    predict_to(root / "run", raw_folder, out / "ds", fmt="dataset", device="cpu")
    ds = cvft_data.load(out / "ds")["train"]
    assert sorted(ds["image_id"]) == [i for i in images if i != "broken.jpg"]
    assert set(ds["label_status"]) == {"predicted"}
    led = list(cvft_data.read_ledger(out / "ds"))
    assert [e.item for e in led] == ["broken.jpg"], "the corrupt image is ledgered, not lost silently"
    by_file = {r["image"]: r for r in rows}
    names = ds.features["label"].names
    for row in ds.select_columns(["image_id", "label", "meta"]):
        assert names[row["label"]] == by_file[row["image_id"]]["label"]
        assert row["meta"]["classifications"][0][1] == pytest.approx(float(by_file[row["image_id"]]["score"]))


def test_a_killed_predict_resumes_to_the_same_output(classifier_run, raw_folder, tmp_path, monkeypatch):
    from cvft_train import predict_run

    root = classifier_run[0]
    predict_run.predict_to(root / "run", raw_folder, tmp_path / "full.csv", device="cpu", batch=4)
    real = predict_run.predict

    def killed(*args, **kwargs):
        for i, r in enumerate(real(*args, **kwargs)):
            if i == 13:
                raise KeyboardInterrupt("killed")
            yield r

    monkeypatch.setattr(predict_run, "predict", killed)
    with pytest.raises(KeyboardInterrupt):
        predict_run.predict_to(root / "run", raw_folder, tmp_path / "part.csv", device="cpu", batch=4)
    assert not (tmp_path / "part.csv").exists(), "no output until every image is done"
    journal = tmp_path / ".part.csv.cvft-predict.jsonl"
    with open(journal, "ab") as f:
        f.write(b'{"file": "cut by the kill')   # a line the kill interrupted
    monkeypatch.setattr(predict_run, "predict", real)
    s = predict_run.predict_to(root / "run", raw_folder, tmp_path / "part.csv", device="cpu", batch=4)
    assert s["predicted_now"] == 31 - 12 and s["images"] == 31
    assert (tmp_path / "part.csv").read_text() == (tmp_path / "full.csv").read_text()
    assert not journal.exists()


def test_predict_refuses_what_it_should(classifier_run, raw_folder, tmp_path):
    from cvft_train.predict_run import predict_to

    root = classifier_run[0]
    with pytest.raises(UsageError, match="inside the source"):
        predict_to(root / "run", raw_folder, raw_folder / "p.csv", device="cpu")
    (tmp_path / "exists.csv").write_text("x")
    with pytest.raises(UsageError, match="already exists"):
        predict_to(root / "run", raw_folder, tmp_path / "exists.csv", device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no image"):
        predict_to(root / "run", tmp_path / "empty", tmp_path / "none.csv", device="cpu")


def test_predict_on_a_zip_and_a_dataset_keeps_relative_names(classifier_run, raw_folder, tmp_path):
    import zipfile

    from cvft_train import predict

    root = classifier_run[0]
    with zipfile.ZipFile(tmp_path / "imgs.zip", "w") as z:
        z.writestr("a/one.png", (raw_folder / "circle" / "0.png").read_bytes())
        z.writestr("../escape.png", (raw_folder / "circle" / "0.png").read_bytes())
    got = list(predict(root / "run", tmp_path / "imgs.zip", device="cpu"))
    assert [r["file"] for r in got] == ["../escape.png", "a/one.png"]
    assert "failure" in got[0] and got[1]["classifications"][0][0] in ("circle", "square", "triangle")
    from_ds = list(predict(root / "run", root / "ds", device="cpu"))
    assert len(from_ds) == 90 and {r["split"] for r in from_ds} == {"train", "validation"}


def test_onnx_export_gives_the_checkpoint_top1(classifier_run, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import numpy as np
    from PIL import Image

    from cvft_train import evaluate
    from cvft_train.augment import transforms_for
    from cvft_train.config import TrainConfig

    root, _ = classifier_run
    assert cvft_cli.main(["export-model", str(root / "run"), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    meta = json.loads((tmp_path / "m.onnx.json").read_text())
    assert meta["classes"] == ["circle", "square", "triangle"] and meta["imgsz"] == 32 and len(meta["mean"]) == 3
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    val = cvft_data.load(root / "ds")["validation"]
    t = transforms_for(TrainConfig(imgsz=meta["imgsz"]), False)
    x = np.stack([t(Image.open(io.BytesIO(r["image"]["bytes"])).convert("RGB")).numpy()
                  for r in val.cast_column("image", __import__("datasets").Image(decode=False))])
    logits = session.run(None, {"images": x})[0]          # one batch of 30: the batch dimension is dynamic
    top1 = float((logits.argmax(1) == np.asarray(val["label"])).mean())
    assert top1 == pytest.approx(evaluate(root / "run", root / "ds", split="validation", device="cpu")["top1"])


@pytest.fixture(scope="module")
def yolo_run(tmp_path_factory):
    pytest.importorskip("ultralytics")
    import os

    from cvft_train import fit
    from shapes import yolo_dataset

    root = tmp_path_factory.mktemp("yolorun")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(root / "ulcfg"))
    os.environ["CVFT_CACHE"] = str(root / "cache")
    ds = yolo_dataset(root)
    metrics = fit(ds, model="yolo11n.yaml", pretrained=False, epochs=2, imgsz=64, batch=4, device="cpu", workers=0,
                  out=str(root / "run"))
    return root, ds, metrics


@pytest.mark.slow
def test_yolo_megadetector_output_reads_back_through_the_connector(yolo_run, tmp_path):
    from cvft_train.predict_run import predict_to

    root, ds, _ = yolo_run
    images = root / "coco" / "images"
    s = predict_to(root / "run", images, tmp_path / "md" / "md.json", fmt="megadetector", conf=0.0001, device="cpu")
    assert s["images"] == 8
    md = json.loads((tmp_path / "md" / "md.json").read_text())
    assert sorted(md["detection_categories"].values()) == ["a", "b"]
    boxes = {i["file"]: i["detections"] for i in md["images"]}
    assert sum(map(len, boxes.values())) > 0, "the tiny detector found something at conf 0.0001"
    cvft_data.ingest(images, tmp_path / "back", format="megadetector", megadetector=str(tmp_path / "md" / "md.json"),
                     threshold="0")
    back = cvft_data.load(tmp_path / "back")["train"]
    names = cvft_data.info(tmp_path / "back")["classes"]
    for row in back.select_columns(["image_id", "width", "height", "objects"]):
        theirs = sorted((names[c], *[v / s for v, s in zip(b, (row["width"], row["height"]) * 2)])
                        for c, b in zip(row["objects"]["category"], row["objects"]["bbox"]))
        ours = sorted((md["detection_categories"][d["category"]], *d["bbox"]) for d in boxes[row["image_id"]])
        assert len(theirs) == len(ours)
        for t, o in zip(theirs, ours):
            assert t[0] == o[0] and all(abs(a - b) < 1e-6 for a, b in zip(t[1:], o[1:])), (t, o)


@pytest.mark.slow
def test_yolo_evaluate_and_csv(yolo_run, tmp_path):
    from cvft_train import evaluate
    from cvft_train.predict_run import predict_to

    root, ds, metrics = yolo_run
    report = evaluate(root / "run", ds, split="validation", device="cpu")
    assert report["map50_95"] == pytest.approx(metrics["final"]["map50_95"], abs=1e-6)
    predict_to(root / "run", root / "coco" / "images", tmp_path / "boxes.csv", conf=0.0001, device="cpu")
    rows = _rows(tmp_path / "boxes.csv")
    assert {r["image"] for r in rows} == {f"{i}.jpg" for i in range(8)}, "every image, boxes or not"
    assert all(r["category"] in ("a", "b", "") for r in rows)


def test_camera_trap_archive_keeps_paths_groups_times_and_sequences(classifier_run, tmp_path):
    from cvft_data.sample import write_camera_trap_sample
    from cvft_train.predict_run import predict_to

    root = classifier_run[0]
    archive = write_camera_trap_sample(tmp_path / "ct", n_sites=2, per_camera=6)["archive"]
    s = predict_to(root / "run", archive, tmp_path / "out" / "labels.csv", device="cpu")
    assert s["source_kind"] == "camera_trap"
    rows = _rows(tmp_path / "out" / "labels.csv")
    files = sorted(p.relative_to(archive).as_posix() for p in archive.rglob("*.JPG"))
    assert sorted(r["image"] for r in rows) == files and len(rows) == s["images"]
    assert all(r["group"] and r["datetime"] and r["sequence"].startswith(r["image"].rsplit("/", 1)[0] + "#")
               for r in rows)
    seqs = _rows(tmp_path / "out" / "labels.csv.sequences.csv")
    assert sum(int(q["images"]) for q in seqs) == len(rows)
    for q in seqs:   # the burst's label is its most confident image's
        members = [r for r in rows if r["sequence"] == q["sequence"]]
        best = max(members, key=lambda r: float(r["score"]))
        assert (q["label"], float(q["score"])) == (best["label"], float(best["score"]))


@pytest.mark.slow
def test_yolo_exports_through_ultralytics_with_a_dynamic_batch(yolo_run, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    import numpy as np

    from cvft_train import export_model

    root, _, _ = yolo_run
    meta = export_model(root / "run", "onnx", tmp_path / "det.onnx")
    assert meta["kind"] == "yolo" and meta["classes"] == ["a", "b"] and meta["imgsz"] == 64
    session = ort.InferenceSession(str(tmp_path / "det.onnx"))
    name = session.get_inputs()[0].name
    assert session.run(None, {name: np.zeros((3, 3, 64, 64), np.float32)})[0].shape[0] == 3
    assert not list((root / "run" / "yolo" / "weights").glob("*.onnx")), "nothing left beside the weights"


def test_resume_with_other_options_is_refused(classifier_run, raw_folder, tmp_path, monkeypatch):
    from cvft_train import predict_run

    root = classifier_run[0]

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed")
        yield

    monkeypatch.setattr(predict_run, "predict", killed)
    with pytest.raises(KeyboardInterrupt):
        predict_run.predict_to(root / "run", raw_folder, tmp_path / "p.csv", device="cpu", topk=2)
    monkeypatch.undo()
    with pytest.raises(UsageError, match="interrupted predict run with other options"):
        predict_run.predict_to(root / "run", raw_folder, tmp_path / "p.csv", device="cpu", topk=3)
