"""Panoptic segmentation: PQ as COCO defines it, Mask2Former trained from a small config offline,
evaluated and predicting COCO panoptic."""

from __future__ import annotations

import json

import numpy as np
import pytest

import cvft_data
from cvft_data.sample_panoptic import write_panoptic_sample
from cvft_train.panoptic_metrics import PQAccumulator

#: a Mask2Former small enough for a CPU test (Swin with one block per stage, a 2-layer decoder)
TINY = {"embed_dim": 16, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 1, 1], "window_size": 4, "hidden_dim": 32,
        "num_queries": 10, "decoder_layers": 2, "encoder_layers": 1, "dim_feedforward": 64,
        "encoder_feedforward_dim": 64, "num_attention_heads": 2, "train_num_points": 256}


def test_pq_agrees_with_a_hand_computed_example():
    """Two images, things and stuff, a void region and a crowd region, worked out by hand:

    image 1 (4x4): stuff "sky" (class 0) rows 0-1 (8 px), thing "cow" (class 1) instance A at rows
    2-3, cols 0-1 (4 px), void (id 0) at rows 2-3, cols 2-3 (4 px).
    prediction: sky rows 0-1 plus (2,2) (9 px: IoU 8/8 once the void pixel is left out = 1.0);
    cow A' at rows 2-3 cols 0-1 minus (3,1) (3 px: IoU 3/4 = 0.75); a cow at (2,3),(3,2),(3,3)
    lying on void (3 of 3 px): not a false positive.
    image 2 (2x4): cow B (cols 0-1), a crowd of cows (cols 2-3). prediction: a cow on the crowd
    (ignored) and nothing on B (a false negative).

    sky: TP 1, IoU 1.0 -> PQ 1.0, SQ 1.0, RQ 1.0
    cow: TP 1 (IoU 0.75), FN 1 -> PQ 0.75 / 1.5 = 0.5, SQ 0.75, RQ 1 / 1.5 = 0.667
    overall: PQ 0.75, SQ 0.875, RQ 0.833; things (cow) PQ 0.5; stuff (sky) PQ 1.0
    """
    acc = PQAccumulator(2)
    gt1 = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [2, 2, 0, 0], [2, 2, 0, 0]])
    pr1 = np.array([[5, 5, 5, 5], [5, 5, 5, 5], [6, 6, 5, 7], [6, 0, 7, 7]])
    acc.add(gt1, {1: (0, False), 2: (1, False)}, pr1, {5: 0, 6: 1, 7: 1})
    gt2 = np.array([[3, 3, 4, 4], [3, 3, 4, 4]])
    pr2 = np.array([[0, 0, 8, 8], [0, 0, 8, 8]])
    acc.add(gt2, {3: (1, False), 4: (1, True)}, pr2, {8: 1})
    r = acc.result(things=[False, True])
    assert r["per_class"][0] == {"pq": 1.0, "sq": 1.0, "rq": 1.0, "tp": 1, "fp": 0, "fn": 0}
    assert r["per_class"][1]["pq"] == pytest.approx(0.5) and r["per_class"][1]["sq"] == pytest.approx(0.75)
    assert (r["per_class"][1]["tp"], r["per_class"][1]["fp"], r["per_class"][1]["fn"]) == (1, 0, 1)
    assert r["pq"] == pytest.approx(0.75) and r["sq"] == pytest.approx(0.875) and r["rq"] == pytest.approx(5 / 6)
    assert r["pq_things"] == pytest.approx(0.5) and r["pq_stuff"] == pytest.approx(1.0)


def test_pq_needs_an_iou_above_one_half():
    acc = PQAccumulator(1)
    gt = np.array([[1, 1, 0, 0]])
    acc.add(gt, {1: (0, False)}, np.array([[2, 3, 3, 3]]), {2: 0, 3: 0})   # IoU 1/2 exactly: no match
    assert acc.result([True])["per_class"][0] == {"pq": 0.0, "sq": 0.0, "rq": 0.0, "tp": 0, "fp": 1, "fn": 1}


def test_mask2former_trains_evaluates_and_predicts_coco_panoptic(tmp_path):
    from cvft_train import evaluate, fit, predict_to

    info = cvft_data.ingest(write_panoptic_sample(tmp_path / "src", n_images=12), tmp_path / "ds")
    assert info["task"] == "panoptic"
    m = fit(tmp_path / "ds", model="mask2former", pretrained=False, model_args=TINY, epochs=1, imgsz=64, batch=4,
            workers=0, device="cpu", out=str(tmp_path / "run"))
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert doc["task"] == "panoptic" and doc["primary_metric"] == "pq"
    for key in ("pq", "sq", "rq", "pq_things", "pq_stuff"):
        assert 0.0 <= doc["final"][key] <= 1.0
    assert doc["final"]["train_loss"] > 0
    r = evaluate(tmp_path / "run", tmp_path / "ds", split="validation", device="cpu")
    assert r["pq"] == pytest.approx(m["final"]["pq"]) and "pq_stuff" in r
    s = predict_to(tmp_path / "run", tmp_path / "src" / "images", tmp_path / "pan", fmt="coco_panoptic", device="cpu")
    out = json.loads((tmp_path / "pan" / "panoptic.json").read_text())
    assert s["images"] == 12 and len(out["images"]) == 12
    assert [(c["name"], c["isthing"]) for c in out["categories"]] == [("sky", 0), ("ground", 0), ("animal", 1)]
    assert all((tmp_path / "pan" / "panoptic" / a["file_name"]).is_file() for a in out["annotations"])
    with pytest.raises(cvft_data.UsageError, match="panoptic segmentation trains mask2former"):
        fit(tmp_path / "ds", model="resnet18", model_args={"hidden_dim": 8}, out=str(tmp_path / "r2"))
