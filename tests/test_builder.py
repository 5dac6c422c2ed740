"""The builder: bytes kept as they came, EXIF orientation, reference mode, downscaling, parallel
workers, resume after a crash, atomic output, re-splitting."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import connectors
import cvft_data
from builders import H, W, make_coco, make_folder, write_image, write_json
from cvft_data import builder, masks
from cvft_data.builder import BuildOptions, build_dataset
from cvft_data.imageinfo import content_hash


def test_image_bytes_are_stored_byte_identical(tmp_path):
    src = make_folder(tmp_path / "src")
    cvft_data.ingest(src, tmp_path / "ds")
    from datasets import Image as HFImage
    ds = cvft_data.load(tmp_path / "ds")["train"].cast_column("image", HFImage(decode=False))
    for row in ds:
        assert content_hash(row["image"]["bytes"]) == content_hash((src / row["image_id"]).read_bytes())


def test_load_from_disk_and_features(tmp_path):
    import datasets

    make_coco(tmp_path / "src")
    cvft_data.ingest(tmp_path / "src", tmp_path / "ds")
    ds = datasets.load_from_disk(str(tmp_path / "ds"))
    assert ds["train"].features == cvft_data.features_for("instance_segmentation", ["cat", "dog"])
    assert ds["train"][0]["image"].size == (W, H)


def test_exif_orientation_gives_the_displayed_size(tmp_path):
    write_image(tmp_path / "src" / "cat" / "rot.jpg", orientation=6)  # stored 24x16, displayed 16x24
    write_image(tmp_path / "src" / "cat" / "plain.jpg")
    cvft_data.ingest(tmp_path / "src", tmp_path / "ds")
    rows = {r["image_id"]: r for r in cvft_data.load(tmp_path / "ds")["train"]}
    assert (rows["cat/rot.jpg"]["width"], rows["cat/rot.jpg"]["height"]) == (H, W)
    assert rows["cat/rot.jpg"]["image"].size == (H, W), "datasets applies the orientation when it decodes"
    assert (rows["cat/plain.jpg"]["width"], rows["cat/plain.jpg"]["height"]) == (W, H)


def test_reference_mode_keeps_paths(tmp_path):
    src = make_folder(tmp_path / "src")
    info = cvft_data.ingest(src, tmp_path / "ds", reference=True)
    assert info["images"]["storage"] == "reference"
    from datasets import Image as HFImage
    ds = cvft_data.load(tmp_path / "ds")["train"]
    raw = ds.cast_column("image", HFImage(decode=False))[0]["image"]
    assert raw["bytes"] is None and raw["path"] == str((src / ds[0]["image_id"]).resolve())
    assert ds[0]["image"].size == (W, H)


def test_max_side_scales_boxes_polygons_and_masks(tmp_path):
    src = tmp_path / "src"
    write_image(src / "big.jpg", 200, 100, orientation=6)  # displayed 100 x 200
    m = np.zeros((200, 100), np.uint8)
    m[40:120, 20:60] = 1
    write_json(src / "coco.json", {
        "images": [{"id": 1, "file_name": "big.jpg", "width": 100, "height": 200}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 20, 40, 80], "segmentation": [[10, 20, 50, 20, 50, 100]]},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [20, 40, 40, 80], "iscrowd": 1,
             "segmentation": masks.encode(m)}],
        "categories": [{"id": 1, "name": "a"}]})
    cvft_data.ingest(src, tmp_path / "ds", max_side=50)
    row = cvft_data.load(tmp_path / "ds")["train"][0]
    assert (row["width"], row["height"]) == (25, 50)
    assert row["image"].size == (25, 50), "stored upright: orientation applied before encoding"
    assert row["meta"]["original_size"] == [100, 200]
    o = row["objects"]
    assert o["bbox"][0] == pytest.approx([2.5, 5, 10, 20])
    assert o["segmentation"][0]["polygons"][0] == pytest.approx([2.5, 5, 12.5, 5, 12.5, 25])
    small = masks.decode(o["segmentation"][1]["rle"])
    assert small.shape == (50, 25) and small[10:30, 5:15].all() and small.sum() == 200


def test_workers_give_the_same_dataset(tmp_path):
    from cvft_data.sample import write_coco_sample

    src = write_coco_sample(tmp_path / "src", n_images=80, size=(48, 32))
    a = cvft_data.ingest(src, tmp_path / "one", workers=1)
    b = build_dataset(connectors.get("coco")(src), tmp_path / "two", BuildOptions(workers=2, shard_size=8))
    assert a["content_hash"] == b["content_hash"] and a["splits"] == b["splits"]
    rows_a = [r["image_id"] for r in cvft_data.load(tmp_path / "one")["train"]]
    assert rows_a == [r["image_id"] for r in cvft_data.load(tmp_path / "two")["train"]]


def test_resume_after_a_crash_skips_committed_shards(tmp_path, monkeypatch):
    from cvft_data.sample import write_coco_sample

    src = write_coco_sample(tmp_path / "src", n_images=40, size=(48, 32))
    reference = build_dataset(connectors.get("coco")(src), tmp_path / "ref", BuildOptions(shard_size=4))

    real_write = builder.write_shard
    calls: list[int] = []

    def crashing(index, *args):
        if index == 5:
            raise KeyboardInterrupt("killed")
        calls.append(index)
        return real_write(index, *args)

    monkeypatch.setattr(builder, "write_shard", crashing)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(connectors.get("coco")(src), tmp_path / "ds", BuildOptions(shard_size=4))
    assert not (tmp_path / "ds").exists() and builder.partial_dir_for(tmp_path / "ds").exists()
    assert calls == [0, 1, 2, 3, 4]

    calls.clear()
    monkeypatch.setattr(builder, "write_shard", lambda index, *a: (calls.append(index), real_write(index, *a))[1])
    resumed = build_dataset(connectors.get("coco")(src), tmp_path / "ds", BuildOptions(shard_size=4))
    assert calls == [5, 6, 7, 8, 9], "committed shards are not written again"
    assert resumed["content_hash"] == reference["content_hash"]
    assert not builder.partial_dir_for(tmp_path / "ds").exists()


def test_changed_options_do_not_reuse_stale_shards(tmp_path, monkeypatch):
    from cvft_data.sample import write_coco_sample

    src = write_coco_sample(tmp_path / "src", n_images=20, size=(48, 32))
    real_write = builder.write_shard

    def crashing(index, *args):
        if index == 2:
            raise KeyboardInterrupt
        return real_write(index, *args)

    monkeypatch.setattr(builder, "write_shard", crashing)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(connectors.get("coco")(src), tmp_path / "ds", BuildOptions(shard_size=4))
    monkeypatch.setattr(builder, "write_shard", real_write)
    info = build_dataset(connectors.get("coco")(src), tmp_path / "ds", BuildOptions(shard_size=4, max_side=16))
    assert all(r["width"] <= 16 for r in cvft_data.load(tmp_path / "ds")["train"])
    assert info["images"]["max_side"] == 16


def test_output_is_never_half_written(tmp_path):
    make_coco(tmp_path / "src")
    cvft_data.ingest(tmp_path / "src", tmp_path / "ds")
    before = (tmp_path / "ds" / "cvft.json").read_text()
    with pytest.raises(cvft_data.UsageError, match="already exists"):
        cvft_data.ingest(tmp_path / "src", tmp_path / "ds")
    (tmp_path / "src" / "images" / "train" / "2.jpg").unlink()
    with pytest.raises(cvft_data.MissingImageError):
        cvft_data.ingest(tmp_path / "src", tmp_path / "ds", overwrite=True)
    assert (tmp_path / "ds" / "cvft.json").read_text() == before, "a failed overwrite keeps the old dataset"
    info = cvft_data.ingest(tmp_path / "src", tmp_path / "ds", overwrite=True, on_error="skip")
    assert info["splits"]["train"]["images"] == 3


def test_source_is_never_modified(tmp_path):
    src = make_coco(tmp_path / "src")
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    cvft_data.ingest(src, tmp_path / "ds", max_side=10)
    cvft_data.export(tmp_path / "ds", "yolo", tmp_path / "y")
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before


def test_resplit_is_grouped_and_seeded(tmp_path):
    src = tmp_path / "src"
    for i in range(60):
        write_image(src / ("cat" if i % 3 else "dog") / f"{i}.jpg", seed=i)
    a = cvft_data.ingest(src, tmp_path / "a", split="0.6,0.2,0.2", seed=1)
    b = cvft_data.ingest(src, tmp_path / "b", split="0.6,0.2,0.2", seed=1)
    assert a["content_hash"] == b["content_hash"]
    assert list(a["splits"]) == ["train", "validation", "test"]
    assert a["splits"]["train"]["images"] == 36
    for s in a["splits"].values():
        assert s["class_counts"]["dog"] > 0 and s["class_counts"]["cat"] > 0
    assert a["split"] == {"ratios": {"train": 0.6, "validation": 0.2, "test": 0.2}, "seed": 1}


def test_png_and_other_formats_are_kept_as_they_are(tmp_path):
    write_image(tmp_path / "src" / "a" / "x.png", fmt="PNG")
    write_image(tmp_path / "src" / "a" / "y.webp", fmt="WEBP")
    cvft_data.ingest(tmp_path / "src", tmp_path / "ds")
    from datasets import Image as HFImage
    ds = cvft_data.load(tmp_path / "ds")["train"].cast_column("image", HFImage(decode=False))
    formats = {r["image_id"]: Image.open(io.BytesIO(r["image"]["bytes"])).format for r in ds}
    assert formats == {"a/x.png": "PNG", "a/y.webp": "WEBP"}


def test_the_connector_context_is_made_once_and_never_swapped(tmp_path):
    import connectors
    from cvft_data.builder import BuildOptions, build_dataset
    from cvft_data.errors import UsageError
    from cvft_data.ledger import IngestContext
    from cvft_data.sample import write_coco_sample

    src = write_coco_sample(tmp_path / "src", n_images=4)
    ctx = IngestContext.make("skip")
    conn = connectors.get("coco")(src, context=ctx)
    policy = conn.policy
    build_dataset(conn, tmp_path / "ds", BuildOptions())
    assert conn.policy is policy and conn.context is ctx and conn.executor is None
    with pytest.raises(UsageError, match="made with on_error='raise', the build asks for 'skip'"):
        build_dataset(connectors.get("coco")(src), tmp_path / "ds2", BuildOptions(on_error="skip"))
