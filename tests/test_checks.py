"""Checks find each planted problem, and nothing on a clean dataset; splits; balancing; report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from dsfactory import row, scene, write_dataset

import cvft_data
from cvft_data.checks import CheckOptions, check
from cvft_data.cli import main as cvft_cli

CLASSES = ["fox", "cat", "owl"]
OPTS = CheckOptions(min_images_per_class=3, max_imbalance_ratio=5, workers=1)


def clean_rows(split: str, n: int, start: int, group_prefix: str):
    rows = []
    for i in range(n):
        k = start + i
        boxes = [] if i % 4 == 3 else [((k % 3), (5.0, 5.0, 20.0, 15.0))]
        rows.append(row(f"{split}/{k}.jpg", scene(k), boxes=boxes, group=f"{group_prefix}{i % 3}"))
    return rows


def make_clean(path):
    return write_dataset(path, {"train": clean_rows("train", 24, 0, "a"), "validation": clean_rows("validation", 12, 100, "b")},
                         CLASSES)


def test_clean_dataset_has_no_findings(tmp_path):
    report = check(make_clean(tmp_path / "ds"), OPTS)
    assert report.findings == [], str(report)


def test_each_planted_problem_is_found(tmp_path):
    train = clean_rows("train", 24, 0, "a")
    val = clean_rows("validation", 12, 100, "b")
    train = [r for r in train if r["label_status"] != "empty"]                      # no null images in train
    val.append(row("validation/dup.jpg", train[0]["image"]["bytes"], boxes=[(0, (1, 1, 5, 5))], group="b9"))
    train.append(row("train/near.jpg", scene(1, quality=55), boxes=[(1, (1, 1, 5, 5))], group="a9"))
    data = scene(500)
    train.append(row("train/truncated.jpg", data[: len(data) // 2], boxes=[(0, (1, 1, 5, 5))], group="a8"))
    train.append(row("train/oob.jpg", scene(501), boxes=[(0, (80.0, 50.0, 40.0, 30.0))], group="a7"))
    val.append(row("validation/leaky.jpg", scene(502), boxes=[(1, (2, 2, 9, 9))], group="a0"))   # group a0 is in train
    owl = [r for r in train if r["objects"]["category"] == [2]]
    for r in owl[2:]:
        train.remove(r)                                                             # owl: 2 train images
    for r in val:
        if r["objects"]["category"] == [2]:
            r["objects"]["category"] = [0]
    path = write_dataset(tmp_path / "ds", {"train": train, "validation": val}, CLASSES)
    report = check(path, OPTS)
    found = {(f.check, tuple(sorted(f.image_ids))) for f in report.findings}
    checks = Counter(f.check for f in report.findings)

    def has(check_name, image_id=None):
        return any(c == check_name and (image_id is None or image_id in ids) for c, ids in found)

    assert has("leakage", "validation/dup.jpg") and has("leakage", "train/0.jpg"), "duplicate across splits"
    assert has("near_duplicate", "train/near.jpg") and has("near_duplicate", "train/1.jpg"), "re-encoded copy"
    assert has("corrupt_image", "train/truncated.jpg")
    assert has("box_out_of_bounds", "train/oob.jpg#object 0")
    assert any(f.check == "class_balance" and "owl (2)" in f.message for f in report.findings)
    assert any(f.check == "null_images" and f.message.startswith("train has no null") for f in report.findings)
    assert any(f.check == "leakage" and f.details.get("kind") == "group" and "a0" in f.details["groups"]
               for f in report.findings)
    assert checks["corrupt_image"] == 1 and all(f.severity in ("error", "warning", "info") for f in report.findings)


def test_cli_check_json_and_fail_on(tmp_path, capsys):
    path = make_clean(tmp_path / "ds")
    assert cvft_cli.main(["check", str(path), "--json", "--min-images", "3", "--fail-on", "error"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["findings"] == [] and doc["failed"] is False
    assert cvft_cli.main(["check", str(path), "--json", "--fail-on", "class_balance"]) == 1  # 1000 per class advice
    doc = json.loads(capsys.readouterr().out)
    f = doc["findings"][0]
    assert set(f) >= {"check", "severity", "message", "image_ids"} and f["check"] == "class_balance"
    assert cvft_cli.main(["check", str(path), "--fail-on", "nonsense"]) == 2


def camera_trap_keys(n_sites=20, species=8, per_site=60, empty=0.3, seed=0):
    from cvft_data.splits import SplitKey

    rng = np.random.default_rng(seed)
    keys = []
    for s in range(n_sites):
        local = rng.choice(species, size=4, replace=False)      # each site sees a few species
        for i in range(per_site):
            if rng.random() < empty:
                keys.append(SplitKey(f"site{s}/{i}.jpg", f"site{s}", (), True))
            else:
                keys.append(SplitKey(f"site{s}/{i}.jpg", f"site{s}", (f"sp{rng.choice(local)}",), False))
    return keys


def test_grouped_split_on_a_camera_trap_dataset():
    from cvft_data.splits import assign_splits, parse_ratios

    keys = camera_trap_keys()
    a = assign_splits(keys, parse_ratios("0.7,0.15,0.15"), seed=0)
    sites: dict[str, set] = {}
    for k, s in zip(keys, a.splits):
        sites.setdefault(k.group, set()).add(s)
    assert all(len(v) == 1 for v in sites.values()), "no site in two splits"
    whole = Counter(k.classes[0] if k.classes else "empty" for k in keys)
    tolerance = 0.10  # stated: each class's share of a split within 10 points of its share of the whole
    for split in ("train", "validation", "test"):
        members = [k for k, s in zip(keys, a.splits) if s == split]
        share = Counter(k.classes[0] if k.classes else "empty" for k in members)
        for cls, n in whole.items():
            assert abs(share[cls] / len(members) - n / len(keys)) <= tolerance, (split, cls)
    assert a.unplaced == {}


def test_split_reports_classes_it_cannot_place():
    from cvft_data.splits import SplitKey, assign_splits

    keys = [SplitKey(f"{i}", f"g{i % 10}", ("common",)) for i in range(100)] + [SplitKey("r", "rare_site", ("rare",))]
    a = assign_splits(keys, {"train": 0.8, "validation": 0.1, "test": 0.1})
    assert set(a.unplaced["rare"]) == {"validation", "test"} or len(a.unplaced["rare"]) == 2


def test_split_dataset_never_mutates_the_input(tmp_path, capsys):
    path = make_clean(tmp_path / "ds")
    before = sorted(p.stat().st_mtime_ns for p in path.rglob("*") if p.is_file())
    assert cvft_cli.main(["split", str(path), "--out", str(tmp_path / "re"), "--ratios", "0.5,0.5", "--seed", "2"]) == 0
    assert sorted(p.stat().st_mtime_ns for p in path.rglob("*") if p.is_file()) == before
    info = cvft_data.info(tmp_path / "re")
    assert info["split"]["seed"] == 2 and sum(s["images"] for s in info["splits"].values()) == 36
    ds = cvft_data.load(tmp_path / "re")
    groups = {s: set(ds[s]["group"]) for s in ds}
    assert not groups["train"] & groups["validation"]
    b = cvft_data.split(path, tmp_path / "re2", "0.5,0.5", seed=2)
    assert b["splits"] == info["splits"], "seeded: the same split again"


def test_balancing_helpers(tmp_path):
    rows = [row(f"{i}.jpg", scene(i), boxes=[(0 if i < 12 else 1, (1, 1, 5, 5))]) for i in range(16)]
    rows += [row(f"e{i}.jpg", scene(100 + i)) for i in range(8)]
    ds = cvft_data.load(write_dataset(tmp_path / "ds", {"train": rows}, CLASSES))["train"]
    w = cvft_data.class_weights(ds)
    assert w[1] == pytest.approx(3 * w[0]) and w[2] == 0
    sw = cvft_data.sample_weights(ds)
    assert sw[0] == pytest.approx(w[0]) and sw[13] == pytest.approx(w[1])
    sub = cvft_data.subsample_nulls(ds, 0.2, seed=1)
    nulls = sum(1 for s in sub["label_status"] if s == "empty")
    assert nulls == 4 and len(sub) == 20 and len(ds) == 24
    sampler = cvft_data.weighted_sampler(ds, num_samples=4000)
    drawn = Counter(int(i) for i in sampler)
    fox = sum(v for k, v in drawn.items() if k < 12)
    cat = sum(v for k, v in drawn.items() if 12 <= k < 16)
    assert 0.7 < fox / cat < 1.4, "the sampler sees both classes about equally"


def test_report_renders_in_headless_chromium(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    from PIL import Image

    path = make_clean(tmp_path / "ds")
    assert cvft_cli.main(["report", str(path), "--out", str(tmp_path / "r" / "report.html"), "--min-images", "3"]) == 0
    page = tmp_path / "r" / "report.html"
    assert (tmp_path / "r" / "report_preview.png").is_file()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    import re
    m = re.search(r"<title>cvft report: (\d+)/(\d+) images rendered</title>", dom.stdout)
    assert m and m.group(1) == m.group(2) and int(m.group(1)) >= 4, "every plot and the preview decoded"
    shots = Path(os.environ.get("CVFT_TEST_OUTPUT", Path(__file__).resolve().parents[1] / "test-output")) / "report"
    shots.mkdir(parents=True, exist_ok=True)
    shot = shots / "report.png"   # kept for people: what the page looks like
    r = subprocess.run([chromium, *flags, "--window-size=1200,2000", f"--screenshot={shot}", page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and shot.is_file()
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (2000, 1200)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500, "plots and images are drawn, not a blank page"


def test_a_class_missing_from_a_split_is_found(tmp_path):
    train = clean_rows("train", 24, 0, "a")
    val = [r for r in clean_rows("validation", 12, 100, "b") if r["objects"]["category"] != [2]]
    report = check(write_dataset(tmp_path / "ds", {"train": train, "validation": val}, CLASSES), OPTS)
    missing = [f for f in report.findings if f.check == "class_missing_from_split"]
    assert len(missing) == 1 and missing[0].details == {"split": "validation", "classes": ["owl"]}
    assert "cannot be measured" in missing[0].message


def test_classification_has_no_null_image_warning_or_plot(tmp_path):
    from cvft_data.report_plots import plots

    splits = {s: [row(f"{s}/{k}.jpg", scene(k + 50 * j), task="classification", label=k % 3, group=f"{s}{k % 3}")
                  for k in range(12)] for j, s in enumerate(("train", "validation"))}
    report = check(write_dataset(tmp_path / "ds", splits, CLASSES, task="classification"), OPTS)
    assert not [f for f in report.findings if f.check == "null_images"], str(report)
    assert "Null images" not in [title for title, _ in plots(report)]


def test_near_duplicates_come_as_pairs_not_one_chained_group(tmp_path):
    """Frames that drift a few bits at a time chain into one cluster under union-find; as pairs,
    each one names two images a person can compare."""
    from cvft_data.check_rules import near_pairs

    chain = [("train", f"f{k}", (1 << k) - 1) for k in range(8)]   # neighbours 1 bit apart, ends 7 bits apart
    pairs = near_pairs(chain, 2)
    assert (0, 1, 1) in pairs and (0, 7, 7) not in pairs and all(bits <= 2 for *_, bits in pairs)
    assert len(pairs) == 13   # 7 pairs one bit apart, 6 two bits apart
