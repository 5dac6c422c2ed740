"""Pure functions: box conversions, masks, paths, split names, split assignment, schema."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from cvft_data import boxes, masks
from cvft_data.errors import UnsafePathError
from cvft_data.paths import safe_relative
from cvft_data.schema import canonical_split, features_for
from cvft_data.splits import SplitKey, assign_splits, parse_ratios


def test_yolo_round_trip():
    b = (3.25, 1.5, 10.0, 4.0)
    back = boxes.yolo_to_xywh(*boxes.xywh_to_yolo(*b, width=24, height=16), width=24, height=16)
    assert back == pytest.approx(b, abs=1e-9)


def test_voc_is_one_based_inclusive():
    assert boxes.voc_to_xywh(1, 1, 24, 16) == (0.0, 0.0, 24.0, 16.0)
    assert boxes.xywh_to_voc(*boxes.voc_to_xywh(5.5, 2, 20, 16)) == pytest.approx((5.5, 2, 20, 16))


def test_centre_box_and_polygons():
    assert boxes.centre_to_xywh(10, 10, 4, 2) == (8.0, 9.0, 4.0, 2.0)
    assert boxes.polygons_bbox([[2, 2, 8, 2, 8, 8], [10, 10, 12, 12, 10, 12]]) == (2, 2, 10, 10)
    assert boxes.polygon_area([0, 0, 4, 0, 4, 3, 0, 3]) == 12.0
    assert boxes.out_of_bounds((-2, 0, 5, 5), 24, 16) and not boxes.out_of_bounds((-0.5, 0, 5, 5), 24, 16)
    assert boxes.clip_box((-2, 0, 30, 5), 24, 16) == (0.0, 0.0, 24.0, 5.0)


def test_rle_forms_decode_to_the_same_pixels():
    m = np.zeros((16, 24), np.uint8)
    m[3:7, 5:20] = 1
    rle = masks.encode(m)
    listed = {"size": [16, 24], "counts": masks.to_uncompressed_counts(rle)}
    assert (masks.decode(listed) == m).all()
    assert (masks.decode(masks.to_compressed(listed)) == m).all()
    assert masks.area(rle) == m.sum()
    assert masks.bbox(rle) == (5.0, 3.0, 15.0, 4.0)
    with pytest.raises(ValueError):
        masks.to_compressed({"size": [16, 24], "counts": [1, 2]})


def test_unsafe_names_are_refused():
    assert str(safe_relative("a/./b.jpg")) == "a/b.jpg"
    for bad in ("../x.jpg", "a/../../x.jpg", "/etc/passwd", "C:\\x\\y.jpg", ""):
        with pytest.raises(UnsafePathError):
            safe_relative(bad)


def test_split_names():
    assert [canonical_split(s) for s in ("train", "Val", "valid", "validation", "TEST", "minival")] == \
        ["train", "validation", "validation", "validation", "test", "minival"]


def test_ratios():
    assert parse_ratios("8,1,1") == pytest.approx({"train": 0.8, "validation": 0.1, "test": 0.1})
    for bad in ("a,b", "0.5,-1", "1,1,1,1"):
        with pytest.raises(ValueError):
            parse_ratios(bad)


def test_split_assignment_is_grouped_stratified_and_seeded():
    keys = [SplitKey(f"img{i}", group=f"site{i % 40}", classes=("rare",) if i % 40 < 4 else ("common",),
                     empty=False) for i in range(800)]
    a = assign_splits(keys, parse_ratios("0.8,0.1,0.1"), seed=3).splits
    assert a == assign_splits(keys, parse_ratios("0.8,0.1,0.1"), seed=3).splits
    site_splits: dict[str, set] = {}
    for k, s in zip(keys, a):
        site_splits.setdefault(k.group, set()).add(s)
    assert all(len(v) == 1 for v in site_splits.values()), "a group straddles two splits"
    counts = Counter(a)
    assert 560 <= counts["train"] <= 720 and counts["validation"] >= 40 and counts["test"] >= 40
    rare = Counter(s for k, s in zip(keys, a) if k.classes == ("rare",))
    assert set(rare) == {"train", "validation", "test"}, "the rare class must reach every split"


def test_features_for_every_task():
    for task, col in (("classification", "label"), ("multilabel", "labels"), ("detection", "objects"),
                      ("instance_segmentation", "objects"), ("panoptic", "segments_info")):
        f = features_for(task, ["a", "b"])
        assert col in f and "label_status" in f and "group" in f and "meta" in f
    with pytest.raises(ValueError):
        features_for("pose", [])
