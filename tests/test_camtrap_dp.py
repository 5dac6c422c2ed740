"""Camera-trap deliverables: a deployments sheet (places, zones, clock errors), true times, and
Camtrap DP 1.0.2 packages out (validated offline) and back in."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import pytest
from dsfactory import row, scene, write_dataset

import cvft_data
from builders import make_archive
from cvft_data.errors import MalformedFileError, UsageError

DEPLOYMENTS = ("deployment,latitude,longitude,timezone,clock_offset,camera_model,start,end\n"
               "2019/set_01/site_A/cam1,-33.9,151.2,Australia/Sydney,3600,HF2,2019-04-01T00:00:00,2019-06-01T00:00:00\n"
               "2019/set_01/site_A/cam2,-33.8,151.1,Australia/Sydney,0,,,\n"
               "site_B,-33.7,151.0,+10:00,0,,2019-05-03T12:30:00,2019-05-10T00:00:00\n"
               "2021/nowhere/cam9,-33.0,150.0,Australia/Sydney,0,,,\n")
OPTIONS = {"title": "Wildcount test", "contributor": "Ada Ecologist <ada@example.org>", "sampling_design": "targeted"}


def _archive(tmp_path, deployments: str = DEPLOYMENTS) -> tuple[Path, Path]:
    src = make_archive(tmp_path / "a")
    (tmp_path / "deployments.csv").write_text(deployments)
    return src, tmp_path / "deployments.csv"


def _ingest(tmp_path, out="ds", **kw):
    src, deps = _archive(tmp_path)
    return cvft_data.ingest(src, tmp_path / out, format="camera_trap", species=str(tmp_path / "a" / "species.csv"),
                            deployments=str(deps), on_error="skip", **kw)


def _rows(path) -> dict[str, dict]:
    return {r["image_id"]: r for s in cvft_data.load(path).values() for r in s}


def test_a_camera_an_hour_behind_gets_corrected_times_and_the_raw_exif_stays(tmp_path):
    info = _ingest(tmp_path)
    rows = _rows(tmp_path / "ds")
    r = rows["2019/set_01/site_A/cam1/IMG_0001.JPG"]
    assert r["meta"]["datetime"] == "2019-05-01T10:00:00"            # the camera's clock, never rewritten
    assert r["meta"]["timestamp"] == "2019-05-01T11:00:00+10:00"     # + clock_offset, in the zone
    assert rows["2019/set_01/site_A/cam2/IMG_0001.JPG"]["meta"]["timestamp"] == "2019-05-02T08:00:00+10:00"
    by_reason = info["ledger"]["by_reason"]
    assert by_reason["no_deployment_row"] == 1                # 2020/set_02/site_C/cam1
    assert by_reason["deployment_without_images"] == 1        # 2021/nowhere/cam9
    # site_B's window starts 12:30: its 12:00 image is outside it
    assert by_reason["clock_outside_deployment"] == 1


def test_daylight_saving_comes_from_the_iana_zone():
    from connectors.deployments import Deployment, true_time

    dep = Deployment(id="x", timezone="Europe/Paris")
    assert true_time(datetime(2024, 1, 15, 12, 0), dep).isoformat() == "2024-01-15T12:00:00+01:00"
    assert true_time(datetime(2024, 7, 15, 12, 0), dep).isoformat() == "2024-07-15T12:00:00+02:00"


def test_a_bad_deployments_sheet_names_the_row_and_suggests_the_column(tmp_path):
    with pytest.raises(MalformedFileError, match="did you mean 'latitude'"):
        _ingest_sheet(tmp_path, "deployment,latitud\nx,1\n")
    with pytest.raises(MalformedFileError, match="line 2"):
        _ingest_sheet(tmp_path, "deployment,latitude,longitude,timezone\nx,95,0,UTC\n")
    with pytest.raises(MalformedFileError, match="unknown time zone"):
        _ingest_sheet(tmp_path, "deployment,timezone\nx,Mars/Olympus\n")


def _ingest_sheet(tmp_path, text):
    from connectors.deployments import read_deployments

    p = tmp_path / "d.csv"
    p.write_text(text)
    return read_deployments(p)


def _validate(pkg: Path) -> list:
    """Validate a package offline with frictionless against the schemas kept in the project (the
    package itself names the official schema URLs)."""
    frictionless = pytest.importorskip("frictionless")
    from cvft_data.exporters.camtrap_dp import SCHEMAS

    desc = json.loads((pkg / "datapackage.json").read_text())
    desc["profile"] = "data-package"
    for r in desc["resources"]:
        r["schema"] = json.loads((SCHEMAS / f"{r['name']}-table-schema.json").read_text())
    local = pkg / "datapackage.local.json"
    local.write_text(json.dumps(desc))
    try:
        report = frictionless.validate(str(local))
    finally:
        local.unlink()
    return report.flatten(["type", "message"])


def test_the_exported_package_has_every_required_field_and_validates_offline(tmp_path):
    _ingest(tmp_path)
    summary = cvft_data.export(tmp_path / "ds", "camtrap-dp", tmp_path / "pkg", options=OPTIONS)
    pkg = tmp_path / "pkg"
    assert _validate(pkg) == []
    desc = json.loads((pkg / "datapackage.json").read_text())
    assert desc["profile"].endswith("/1.0.2/camtrap-dp-profile.json")
    for key in ("created", "contributors", "project", "spatial", "temporal", "taxonomic", "resources"):
        assert desc[key], key
    assert {r["name"] for r in desc["resources"]} == {"deployments", "media", "observations"}
    assert all(r["schema"].startswith("https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/") for r in desc["resources"])
    assert desc["project"]["samplingDesign"] == "targeted" and desc["project"]["observationLevel"] == ["media", "event"]
    required = {"deployments": ["deploymentID", "latitude", "longitude", "deploymentStart", "deploymentEnd"],
                "media": ["mediaID", "deploymentID", "timestamp", "filePath", "filePublic", "fileMediatype"],
                "observations": ["observationID", "deploymentID", "eventStart", "eventEnd", "observationLevel",
                                 "observationType"]}
    for table, fields in required.items():
        rows = list(csv.DictReader((pkg / f"{table}.csv").open()))
        assert rows and all(r[f] for r in rows for f in fields), table
    media = list(csv.DictReader((pkg / "media.csv").open()))
    assert all((pkg / m["filePath"]).is_file() and not m["filePath"].startswith(("/", ".")) for m in media)
    assert summary["missing"] == []
    obs = list(csv.DictReader((pkg / "observations.csv").open()))
    kinds = {o["observationType"] for o in obs}
    assert {"animal", "blank", "unclassified"} <= kinds
    assert any(o["observationLevel"] == "event" and o["eventID"] for o in obs)
    assert "no_true_time" in summary["ledger"]["by_reason"]   # the image without EXIF time is left out, by name


def test_the_package_reads_back_into_the_same_labels(tmp_path):
    info = _ingest(tmp_path)
    summary = cvft_data.export(tmp_path / "ds", "camtrap-dp", tmp_path / "pkg", options=OPTIONS)
    back = cvft_data.ingest(tmp_path / "pkg", tmp_path / "back")
    assert back["source"]["connector"] == "camtrap_dp" and back["task"] == info["task"]
    assert back["classes"] == info["classes"]
    left_out = summary["ledger"]["images_dropped"]
    before = info["splits"]["train"]
    after = back["splits"]["train"]
    assert after["images"] == before["images"] - left_out
    assert after["class_counts"] == before["class_counts"]
    original = {(r["meta"].get("timestamp"), r["label_status"], tuple(sorted(r["labels"] or [])))
                for r in _rows(tmp_path / "ds").values() if r["meta"].get("timestamp")}
    again = {(r["meta"]["timestamp"], r["label_status"], tuple(sorted(r["labels"] or [])))
             for r in _rows(tmp_path / "back").values()}
    assert original == again


def test_machine_boxes_carry_their_probability_and_round_trip(tmp_path):
    meta = {"deployment": "cam1", "timestamp": "2024-03-01T12:00:00+01:00", "sequence": "cam1#0"}
    r1 = row("cam1/a.jpg", scene(1), boxes=[(0, [10, 8, 30, 20])])
    r1["object_attributes"] = [{"confidence": 0.87}]
    r2 = row("cam1/b.jpg", scene(2), boxes=[(1, [4, 4, 12, 10])])
    r1["meta"], r2["meta"] = meta, {**meta, "timestamp": "2024-03-01T12:00:02+01:00"}
    write_dataset(tmp_path / "ds", {"train": [r1, r2]}, ["deer", "person"])
    summary = cvft_data.export(tmp_path / "ds", "camtrap-dp", tmp_path / "pkg", options=OPTIONS)
    assert "deployments.latitude/longitude (cam1)" in summary["missing"], "coordinates are reported, never invented"
    obs = [o for o in csv.DictReader((tmp_path / "pkg" / "observations.csv").open()) if o["observationLevel"] == "media"]
    deer = next(o for o in obs if o["scientificName"] == "deer")
    assert deer["classificationMethod"] == "machine" and float(deer["classificationProbability"]) == pytest.approx(0.87)
    assert float(deer["bboxX"]) == pytest.approx(10 / 96, abs=1e-5) and float(deer["bboxWidth"]) == pytest.approx(30 / 96, abs=1e-5)
    person = next(o for o in obs if o["observationType"] == "human")
    assert person["classificationMethod"] == "human" and not person["scientificName"]
    back = cvft_data.ingest(tmp_path / "pkg", tmp_path / "back")
    assert back["task"] == "detection" and back["classes"] == ["deer", "person"]
    boxes = sorted(v for r in _rows(tmp_path / "back").values() for b in r["objects"]["bbox"] for v in b)
    assert boxes == pytest.approx(sorted([4, 4, 12, 10, 10, 8, 30, 20]), abs=0.01)


def test_options_are_checked(tmp_path):
    _ingest(tmp_path)
    with pytest.raises(UsageError, match="does not take"):
        cvft_data.export(tmp_path / "ds", "camtrap-dp", tmp_path / "p1", options={"colour": "red"})
    with pytest.raises(UsageError, match="takes no options"):
        cvft_data.export(tmp_path / "ds", "coco", tmp_path / "p2", options={"title": "x"})


def test_without_deployments_there_is_no_package(tmp_path):
    src = make_archive(tmp_path / "a")
    cvft_data.ingest(src, tmp_path / "ds", format="camera_trap", species=str(tmp_path / "a" / "species.csv"),
                     on_error="skip")
    with pytest.raises(cvft_data.EmptyDatasetError, match="--deployments"):
        cvft_data.export(tmp_path / "ds", "camtrap-dp", tmp_path / "pkg", options=OPTIONS)
    assert not (tmp_path / "pkg").exists()


def test_the_cli_exports_with_options_and_reports_what_is_missing(tmp_path, capsys):
    from cvft_data.cli import main as cli

    _ingest(tmp_path)
    rc = cli.main(["export", str(tmp_path / "ds"), "--to", "camtrap-dp", "--out", str(tmp_path / "pkg"),
                   "--option", "title=t"])
    out = capsys.readouterr().out
    assert rc == 0 and "contributors" in out and "samplingDesign" in out


# --- camera health ---------------------------------------------------------------------------------------


def _jpeg(when: str, *, grey: bool, seed: int, dark: bool = False) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 15 if dark else 255, (16, 24, 3), dtype=np.uint8)
    if grey:
        arr[..., 1] = arr[..., 2] = arr[..., 0]
    exif = Image.Exif()
    exif.get_ifd(0x8769)[36867] = when
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()


def _camera(root: Path, name: str, shots: list[tuple[str, bool]], dark: bool = False) -> None:
    for k, (when, grey) in enumerate(shots):
        p = root / "2024" / "set1" / "siteA" / name / f"IMG_{k:04d}.JPG"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(_jpeg(when, grey=grey, seed=k + 100 * len(name), dark=dark))


def test_camera_health_flags_a_gap_a_day_night_swap_and_dark_frames(tmp_path):
    from cvft_data.checks import CheckOptions, check

    src = tmp_path / "archive"
    days = [f"2024:03:{d:02d} " for d in (1, 2, 3, 4)]
    # a healthy camera: colour by day, grey (infrared) at night, no gap
    _camera(src, "good", [(d + "12:00:00", False) for d in days] + [(d + "02:00:00", True) for d in days])
    # a swapped clock: colour at "night", grey by "day"
    _camera(src, "swapped", [(d + "12:00:00", True) for d in days] + [(d + "02:00:00", False) for d in days])
    # a dead battery: ten days without a trigger
    _camera(src, "gap", [("2024:03:01 12:00:00", False), ("2024:03:02 12:00:00", False),
                         ("2024:03:13 12:00:00", False)])
    # night frames without infrared: near-black
    _camera(src, "noir", [(d + "01:00:00", False) for d in days], dark=True)
    cvft_data.ingest(src, tmp_path / "ds", format="camera_trap")
    report = check(tmp_path / "ds", CheckOptions(min_images_per_class=1, workers=1))
    by_check = {}
    for f in report.findings:
        by_check.setdefault(f.check, []).append(f)
    assert [f.details["deployment"] for f in by_check["day_night"]] == ["2024/set1/siteA/swapped"]
    gap = by_check["camera_gap"]
    assert [f.details["deployment"] for f in gap] == ["2024/set1/siteA/gap"] and "2024-03-02 to 2024-03-13" in gap[0].message
    assert [f.details["deployment"] for f in by_check["camera_dark_frames"]] == ["2024/set1/siteA/noir"]
    deployments = report.stats["deployments"]
    assert deployments["2024/set1/siteA/good"]["active_days"] == 4


def test_independent_detections_use_a_thirty_minute_gap():
    from datetime import datetime, timedelta

    from cvft_data.camera_health import Capture, independent_detections

    t = lambda h, m: datetime(2024, 1, 1, h, m)  # noqa: E731
    caps = [Capture("a", t(10, 0), "labeled", ["fox"]), Capture("b", t(10, 20), "labeled", ["fox"]),
            Capture("c", t(11, 0), "labeled", ["fox", "deer"]), Capture("d", t(11, 5), "labeled", ["deer"])]
    assert independent_detections(caps) == {"fox": 2, "deer": 1}
    assert independent_detections(caps, timedelta(minutes=10)) == {"fox": 3, "deer": 1}


def test_the_report_shows_deployments_species_and_independent_detections(tmp_path):
    from cvft_data.report import write_report

    _ingest(tmp_path)
    page = write_report(tmp_path / "ds", tmp_path / "r.html", preview=2).read_text()
    assert "<h2>Deployments</h2>" in page and "independent detections" in page
    assert "2019/set_01/site_A/cam1" in page and "wallaby 2" in page and "Camera activity" in page


def test_predictions_label_the_unlabeled_images_as_machine_observations(tmp_path):
    meta = lambda t: {"deployment": "cam1", "timestamp": f"2024-03-01T12:00:0{t}+01:00"}  # noqa: E731
    rows = [row("cam1/a.jpg", scene(1), task="classification", label=0), row("cam1/b.jpg", scene(2), task="classification",
                                                                               status="unlabeled")]
    for k, r in enumerate(rows):
        r["meta"] = meta(k)
    write_dataset(tmp_path / "ds", {"train": rows}, ["deer", "fox"], task="classification")
    pred = row("cam1/b.jpg", scene(2), task="classification", label=1, status="predicted")
    pred["meta"] = {"classifications": [["fox", 0.93], ["deer", 0.07]]}
    write_dataset(tmp_path / "preds", {"train": [pred]}, ["deer", "fox"], task="classification")
    cvft_data.export(tmp_path / "ds", "camtrap-dp", tmp_path / "pkg", options={**OPTIONS, "predictions": str(tmp_path / "preds")})
    obs = {o["mediaID"]: o for o in csv.DictReader((tmp_path / "pkg" / "observations.csv").open())}
    human, machine = obs["m0000001"], obs["m0000002"]
    assert (human["scientificName"], human["classificationMethod"]) == ("deer", "human")
    assert (machine["scientificName"], machine["classificationMethod"]) == ("fox", "machine")
    assert float(machine["classificationProbability"]) == pytest.approx(0.93)
