"""A CVAT export -> cvft -> YOLO layout -> one tiny Ultralytics epoch on CPU, no label lost."""

from __future__ import annotations

import pytest

import cvft_data
from builders import write_image


def make_cvat_boxes(root, n=8):
    images = []
    for i in range(n):
        write_image(root / "images" / f"f{i}.jpg", 64, 48, seed=i)
        x = 4 + 3 * i
        images.append(f'<image id="{i}" name="f{i}.jpg" width="64" height="48">'
                      f'<box label="{"car" if i % 2 else "person"}" xtl="{x}" ytl="6" xbr="{x + 20}" ybr="30"/>'
                      + ('<polygon label="car" points="40,30;60,30;60,44"/>' if i % 3 == 0 else "") + "</image>")
    (root / "annotations.xml").write_text(
        "<annotations><version>1.1</version><meta><task><labels><label><name>car</name></label>"
        "<label><name>person</name></label></labels></task></meta>" + "".join(images) + "</annotations>")
    return root


@pytest.mark.slow
def test_cvat_to_yolo_trains_one_epoch(tmp_path, monkeypatch):
    ultralytics = pytest.importorskip("ultralytics", reason="the train extra is not installed")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ulcfg"))
    src = make_cvat_boxes(tmp_path / "cvat")
    info = cvft_data.ingest(src, tmp_path / "ds", split="0.75,0.25", seed=0)
    objects = sum(s["objects"] for s in info["splits"].values())
    summary = cvft_data.export(tmp_path / "ds", "yolo", tmp_path / "yolo")
    lines = sum(len(p.read_text().splitlines()) for p in (tmp_path / "yolo" / "labels").rglob("*.txt"))
    assert lines == objects == summary["objects"], "every object is one YOLO label line"

    model = ultralytics.YOLO("yolo11n-seg.yaml" if info["task"] == "instance_segmentation" else "yolo11n.yaml")
    results = model.train(data=str(tmp_path / "yolo" / "data.yaml"), epochs=1, imgsz=64, batch=4, device="cpu",
                          workers=0, plots=False, project=str(tmp_path / "runs"), name="t", exist_ok=True,
                          verbose=False, amp=False)
    assert results is not None and "metrics/mAP50(B)" in results.results_dict
    assert (tmp_path / "runs" / "t" / "weights" / "last.pt").is_file()
