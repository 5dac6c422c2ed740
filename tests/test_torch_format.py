"""``with_format("torch")`` works on every task's dataset (the schema keeps ``objects`` numeric:
per-object attributes sit beside it, in ``object_attributes``)."""

from __future__ import annotations

import pytest
import torch

import cvft_data
from builders import make_coco, make_folder, make_panoptic, make_roboflow_multilabel, make_voc


def make_masks(root):
    from cvft_data.sample import write_mask_sample
    return write_mask_sample(root, n_images=4)


BUILDERS = {"classification": make_folder, "multilabel": make_roboflow_multilabel, "detection": make_voc,
            "instance_segmentation": make_coco, "semantic_segmentation": make_masks, "panoptic": make_panoptic}


@pytest.mark.parametrize("task", list(BUILDERS))
def test_with_format_torch(task, tmp_path):
    info = cvft_data.ingest(BUILDERS[task](tmp_path / "src"), tmp_path / "ds", on_error="skip")
    assert info["task"] == task
    for ds in cvft_data.load(tmp_path / "ds").values():
        t = ds.with_format("torch")
        batch = t[: len(t)]   # a whole split at once, then each row
        assert len(batch["image_id"]) == len(ds)
        for i in range(len(t)):
            row = t[i]
            assert isinstance(row["image"], torch.Tensor) and row["image"].ndim == 3
            if "objects" in row:
                n = len(ds[i]["objects"]["bbox"])
                if n:
                    assert row["objects"]["bbox"].shape == (n, 4) and row["objects"]["bbox"].dtype == torch.float32
                    assert row["objects"]["category"].tolist() == ds[i]["objects"]["category"]
                assert len(row["object_attributes"]) == n
            if task == "semantic_segmentation":
                assert row["mask"].shape[-2:] == row["image"].shape[1:] and row["mask"].dtype == torch.uint8
            if task == "panoptic" and row["segments_info"]:
                assert isinstance(row["panoptic"], torch.Tensor)
            if task == "classification" and ds[i]["label"] is not None:
                assert int(row["label"]) == ds[i]["label"]


def test_a_schema_1_dataset_opens_as_schema_2(tmp_path):
    """A dataset written before ``object_attributes`` (attributes inside ``objects``) is upgraded on open."""
    import datasets
    from datasets import Json, List

    from cvft_data.schema import features_for

    cvft_data.ingest(make_coco(tmp_path / "src"), tmp_path / "ds", on_error="skip")
    new = cvft_data.load(tmp_path / "ds")["train"]
    f = features_for("detection", list(new.features["objects"]["category"].feature.names))
    old = dict(f)
    old["objects"] = dict(f["objects"], attributes=List(Json()))
    del old["object_attributes"]
    rows = []
    for r in new:
        r = dict(r)
        r["objects"] = dict(r["objects"], attributes=r.pop("object_attributes"))
        rows.append(r)
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows, features=datasets.Features(old))}).save_to_disk(
        str(tmp_path / "v1"))
    (tmp_path / "v1" / "cvft.json").write_text((tmp_path / "ds" / "cvft.json").read_text())
    up = cvft_data.load(tmp_path / "v1")["train"]
    assert "attributes" not in up.features["objects"]
    assert up["object_attributes"] == new["object_attributes"]
    assert up.with_format("torch")[0]["objects"]["bbox"].shape[1] == 4
