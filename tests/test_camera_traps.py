"""Camera-trap archives, species sheets, MegaDetector and COCO Camera Traps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import connectors
import cvft_data
from builders import ARCHIVE, H, W, make_archive, write_image, write_json
from connectors.camera_traps import clock_problems, parse_layout, sequences
from cvft_data.cli import ingest as ingest_cli


def by_id(path, split="train"):
    ds = cvft_data.load(path)
    return {r["image_id"]: r for s in ds for r in ds[s]} if split is None else {r["image_id"]: r for r in ds[split]}


def test_layout_sequences_and_clocks():
    from datetime import datetime as dt

    assert parse_layout("{year}/{set}/{site}/{subsite}") == ["year", "set", "site", "subsite"]
    with pytest.raises(cvft_data.UsageError):
        parse_layout("{year}/site")
    t = [dt(2019, 1, 1, 10, 0, 0), dt(2019, 1, 1, 10, 0, 30), dt(2019, 1, 1, 10, 5), None, dt(2019, 1, 1, 9)]
    assert sequences(t, 60) == [0, 0, 1, 2, 3]
    now = dt(2024, 1, 1)
    assert clock_problems([dt(1999, 1, 1), dt(2030, 1, 1), dt(2020, 1, 2), dt(2020, 1, 1)], now) == \
        ["before_2000", "in_future", None, "backwards"]


def test_archive_with_species_sheet(tmp_path):
    src = make_archive(tmp_path)
    assert connectors.detect(src).name == "camera_trap"
    info = cvft_data.ingest(src, tmp_path / "ds", format="camera-trap", species=str(tmp_path / "species.csv"))
    assert info["task"] == "multilabel", "cam2/IMG_0001 has two species"
    assert info["classes"] == ["echidna", "fox", "wallaby"]
    rows = by_id(tmp_path / "ds")
    names = info["classes"]
    lab = lambda rel: sorted(names[i] for i in rows[rel]["labels"])  # noqa: E731
    assert lab("2019/set_01/site_A/cam1/IMG_0001.JPG") == ["wallaby"]
    assert lab("2019/set_01/site_A/cam2/IMG_0001.JPG") == ["fox", "wallaby"], "same file name, other camera"
    assert rows["2019/set_01/site_A/cam1/IMG_0003.JPG"]["label_status"] == "empty"        # "none"
    assert rows["2019/set_01/site_B/cam1/IMG_0001.JPG"]["label_status"] == "empty"        # blank cell
    assert rows["2020/set_02/site_C/cam1/IMG_0001.JPG"]["label_status"] == "unlabeled"    # no record
    s = info["splits"]["train"]
    assert (s["images"], s["labeled"], s["empty"], s["unlabeled"]) == (10, 6, 2, 2)  # cam2/IMG_0002, site_C: no record
    r = rows["2019/set_01/site_A/cam1/IMG_0002.JPG"]
    m = r["meta"]
    assert (m["year"], m["set"], m["site"], m["subsite"]) == ("2019", "set_01", "site_A", "cam1")
    assert m["datetime"] == "2019-05-01T10:00:02" and m["model"] == "HF2 PRO COVERT" and m["make"] == "RECONYX"
    assert r["group"] == "site_A"
    seq = {rel: rows[rel]["meta"]["sequence"] for rel, _ in ARCHIVE}
    a = "2019/set_01/site_A/cam1/"
    assert seq[a + "IMG_0001.JPG"] == seq[a + "IMG_0002.JPG"] == seq[a + "IMG_0003.JPG"] != seq[a + "IMG_0004.JPG"]
    assert seq["2019/set_01/site_A/cam2/IMG_0001.JPG"] != seq[a + "IMG_0001.JPG"], "sequences are per camera"
    ledger = {(e.reason, e.item) for e in cvft_data.read_ledger(tmp_path / "ds")}
    assert ("clock_backwards", "2019/set_01/site_B/cam1/IMG_0002.JPG") in ledger
    assert ("clock_before_2000", "2019/set_01/site_B/cam1/IMG_0003.JPG") in ledger
    assert ("no_capture_time", "2020/set_02/site_C/cam1/IMG_0001.JPG") in ledger
    assert ("record_without_image", "2019/set_01/site_b/cam9/img_0001.jpg") in ledger


def test_group_by_and_split_audit(tmp_path, capsys):
    src = make_archive(tmp_path)
    code = ingest_cli.main([str(src), "--format", "camera-trap", "--out", str(tmp_path / "ds"), "--quiet",
                            "--species", str(tmp_path / "species.csv"), "--group-by", "site",
                            "--split", "0.34,0.33,0.33", "--seed", "3"])
    assert code == 0
    out = capsys.readouterr().out
    assert "split audit" in out and "groups" in out
    ds = cvft_data.load(tmp_path / "ds")
    sites = {}
    for split in ds:
        for g in ds[split]["group"]:
            sites.setdefault(g, set()).add(split)
    assert all(len(v) == 1 for v in sites.values()), "no site in two splits"
    info = cvft_data.ingest(src, tmp_path / "seq", format="camera_trap", group_by="sequence",
                            species=str(tmp_path / "species.csv"))
    groups = set(cvft_data.load(tmp_path / "seq")["train"]["group"])
    assert len(groups) == 7 and info["source"]["info"]["camera_trap"]["group_by"] == "sequence"


def test_sheet_by_file_name_alone_is_refused_when_names_repeat(tmp_path):
    src = make_archive(tmp_path)
    (tmp_path / "bad.csv").write_text("File,Species\nIMG_0001.JPG,fox\n")
    with pytest.raises(cvft_data.UsageError, match="several cameras"):
        cvft_data.ingest(src, tmp_path / "ds", format="camera_trap", species=str(tmp_path / "bad.csv"))


def test_sheet_by_site_and_file_name_from_excel(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")

    src = make_archive(tmp_path)
    wb = openpyxl.Workbook()
    wb.active.append(["Site", "FileName", "Common Name"])
    wb.active.append(["site_C", "IMG_0001.JPG", "emu"])
    wb.save(tmp_path / "sheet.xlsx")
    info = cvft_data.ingest(src, tmp_path / "ds", format="camera_trap", species=str(tmp_path / "sheet.xlsx"),
                            species_column="Common Name")
    assert info["classes"] == ["emu"] and info["splits"]["train"]["labeled"] == 1


REAL_MD = "camera_traps/megadetector_output_mdtools"


@pytest.mark.real_fixtures
def test_real_megadetector_output_boxes_in_pixels(real, tmp_path):
    doc = json.loads((real / REAL_MD / "test_folder_output.json").read_text())
    for img in doc["images"]:
        write_image(tmp_path / "imgs" / img["file"], 2048, 1440)
    md = str(real / REAL_MD / "test_folder_output.json")
    assert connectors.detect(real / REAL_MD / "test_folder_output.json").name == "megadetector"
    info = cvft_data.ingest(md, tmp_path / "ds", images=str(tmp_path / "imgs"))
    assert info["classes"] == ["animal", "person", "vehicle"]
    rows = by_id(tmp_path / "ds")
    # by hand: RCNX0395 bbox [0.3271, 0.3951, 0.229, 0.2034] on 2048 x 1440
    assert rows["RCNX0395.JPG"]["objects"]["bbox"] == [pytest.approx([669.9008, 568.944, 468.992, 292.896], abs=1e-3)]
    # ... the same numbers mdtools wrote in its COCO conversion of the same output
    coco = json.loads((real / REAL_MD / "test_folder_output_coco.json").read_text())
    for a in coco["annotations"]:
        if a.get("bbox") and a["confidence"] >= 0.2:
            got = rows[a["image_id"] + ".JPG"]["objects"]["bbox"]
            assert any(b == pytest.approx(a["bbox"], abs=1e-2) for b in got), a["id"]
    expected = sum(1 for i in doc["images"] for d in i["detections"] or [] if d["conf"] >= 0.2)
    assert info["splits"]["train"]["objects"] == expected


@pytest.mark.real_fixtures
def test_real_cct_style_file(real, tmp_path):
    src = real / REAL_MD / "test_folder_output_coco.json"
    assert connectors.detect(src).name == "coco_camera_traps"
    with pytest.raises(cvft_data.EmptyDatasetError, match="coco_camera_traps holds no images") as caught:
        cvft_data.ingest(src, tmp_path / "ds", on_error="skip")
    doc = json.loads(src.read_text())
    dropped = [e for e in caught.value.ledger if e["action"] == "dropped_image"]
    assert len(dropped) == len(doc["images"]), "no images here: each one is ledgered"
    assert not (tmp_path / "ds").exists()


def test_megadetector_with_species_builds_species_boxes(tmp_path):
    src = make_archive(tmp_path)
    dets = {
        "2019/set_01/site_A/cam1/IMG_0001.JPG": [{"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.5, 0.5]},
                                                 {"category": "1", "conf": 0.01, "bbox": [0.6, 0.6, 0.1, 0.1]}],
        "2019/set_01/site_A/cam2/IMG_0001.JPG": [{"category": "1", "conf": 0.8, "bbox": [0.2, 0.2, 0.3, 0.3]}],
        "2019/set_01/site_A/cam1/IMG_0003.JPG": [{"category": "1", "conf": 0.7, "bbox": [0.2, 0.2, 0.3, 0.3]}],
        "2019/set_01/site_A/cam1/IMG_0004.JPG": [],
        "2019/set_01/site_B/cam1/IMG_0002.JPG": [{"category": "2", "conf": 0.95, "bbox": [0, 0, 0.5, 1.0]},
                                                 {"category": "1", "conf": 0.6, "bbox": [0.5, 0.5, 0.5, 0.5]}],
    }
    md = {"info": {"format_version": "1.4", "detector_metadata": {"typical_detection_threshold": 0.2}},
          "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
          "images": [{"file": "D:\\\\traps\\\\" + k.replace("/", "\\\\"), "detections": v} for k, v in dets.items()]
          + [{"file": "2019/set_01/site_B/cam1/IMG_0003.JPG", "failure": "Failure image access"}]}
    write_json(tmp_path / "md.json", md)
    info = cvft_data.ingest(src, tmp_path / "ds", format="camera_trap", species=str(tmp_path / "species.csv"),
                            megadetector=str(tmp_path / "md.json"))
    assert info["task"] == "detection" and info["classes"] == ["echidna", "fox", "wallaby", "person"]
    rows = by_id(tmp_path / "ds")
    names = info["classes"]
    cats = lambda rel: [names[c] for c in rows[rel]["objects"]["category"]]  # noqa: E731
    assert cats("2019/set_01/site_A/cam1/IMG_0001.JPG") == ["wallaby"], "the low-confidence box is cut"
    assert rows["2019/set_01/site_A/cam1/IMG_0001.JPG"]["objects"]["bbox"][0] == pytest.approx([2.4, 1.6, 12, 8])
    assert cats("2019/set_01/site_B/cam1/IMG_0002.JPG") == ["person", "echidna"]
    assert rows["2019/set_01/site_A/cam2/IMG_0001.JPG"]["label_status"] == "unlabeled", "two species, one box"
    assert rows["2019/set_01/site_A/cam1/IMG_0003.JPG"]["label_status"] == "empty", "the sheet says none"
    assert rows["2019/set_01/site_A/cam1/IMG_0004.JPG"]["label_status"] == "unlabeled", "fox, but no box"
    reasons = info["ledger"]["by_reason"]
    for r in ("md_below_threshold", "several_species", "md_animals_on_blank", "species_without_detection",
              "md_failure"):
        assert r in reasons, r


def test_coco_camera_traps(tmp_path):
    src = tmp_path / "cct"
    for i in range(4):
        write_image(src / "loc1" / f"{i}.jpg", seed=i)
    write_json(src / "lila.json", {
        "images": [{"id": f"im{i}", "file_name": f"loc1/{i}.jpg", "location": "L1" if i < 2 else 7,
                    "datetime": "2022-12-31 09:52:50", "seq_id": f"s{i // 2}", "frame_num": i % 2,
                    "width": W, "height": H} for i in range(4)],
        "categories": [{"id": 0, "name": "empty"}, {"id": 1, "name": "deer"}, {"id": 2, "name": "fox"}],
        "annotations": [{"id": "a0", "image_id": "im0", "category_id": 1, "sequence_level_annotation": True},
                        {"id": "a1", "image_id": "im1", "category_id": 1, "sequence_level_annotation": True},
                        {"id": "a2", "image_id": "im2", "category_id": 0},
                        {"id": "a3", "image_id": "im3", "category_id": 2}]})
    assert connectors.detect(src).name == "coco_camera_traps"
    info = cvft_data.ingest(src, tmp_path / "ds", format="coco-camera-traps")
    assert info["task"] == "classification" and info["classes"] == ["deer", "fox"]
    rows = by_id(tmp_path / "ds")
    assert rows["loc1/2.jpg"]["label_status"] == "empty"
    r = rows["loc1/0.jpg"]
    assert r["group"] == "L1" and r["meta"]["datetime"] == "2022-12-31T09:52:50" and r["meta"]["sequence"] == "s0"
    assert r["meta"]["sequence_level"] == ["deer"]
    assert rows["loc1/3.jpg"]["group"] == "7" and "sequence_level" not in rows["loc1/3.jpg"]["meta"]


def _ingest_cmd(src, out, species):
    exe = str(Path(sys.executable).parent / "cvft-ingest")
    return [exe, str(src), "--format", "camera-trap", "--out", str(out), "--workers", "2", "--quiet",
            "--option", f"species={species}"]


@pytest.mark.slow
def test_sigkill_and_resume_gives_the_same_dataset(tmp_path):
    from builders import camera_jpeg
    from cvft_data.builder import shard_size_for

    src = tmp_path / "big"
    rows = ["RelativePath,File,Species"]
    n = 2560
    shards = -(-n // shard_size_for(n))
    for i in range(n):
        rel = f"2021/s1/site{i % 6}/cam{i % 2}"
        p = src / rel / f"IMG_{i:05d}.JPG"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(camera_jpeg(f"2021:03:0{1 + i % 9} 10:{i % 60:02d}:00", seed=i, w=64, h=48))
        rows.append(f"{rel},IMG_{i:05d}.JPG,{('fox', 'emu', 'none')[i % 3]}")
    (tmp_path / "sheet.csv").write_text("\n".join(rows) + "\n")
    clean = subprocess.run(_ingest_cmd(src, tmp_path / "clean", tmp_path / "sheet.csv"), capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr
    out = tmp_path / "killed"
    partial = out.parent / f".{out.name}.cvft-partial"
    proc = subprocess.Popen(_ingest_cmd(src, out, tmp_path / "sheet.csv"), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(partial.glob("shard-*.json"))) < 3:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    committed = len(list(partial.glob("shard-*.json")))
    assert 3 <= committed < shards and not out.exists(), "killed part-way: some shards committed, no dataset yet"
    again = subprocess.run(_ingest_cmd(src, out, tmp_path / "sheet.csv"), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    a, b = cvft_data.info(tmp_path / "clean"), cvft_data.info(out)
    assert a["content_hash"] == b["content_hash"] and a["splits"] == b["splits"]
    assert not partial.exists()


def test_clock_problems_are_in_the_html_report(tmp_path):
    from cvft_data.report import write_report

    src = make_archive(tmp_path)
    cvft_data.ingest(src, tmp_path / "ds", format="camera_trap", species=str(tmp_path / "species.csv"))
    page = write_report(tmp_path / "ds", tmp_path / "r.html", cvft_data.CheckOptions(min_images_per_class=1, workers=1),
                        preview=4).read_text()
    assert "clock_backwards" in page and "clock_before_2000" in page and "Ingest ledger" in page
