"""``cvft-ingest`` and ``cvft``, called through ``main(argv)`` and once as real console scripts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import datasets

from builders import make_coco, make_voc, make_yolo
from cvft_data.cli import ingest as ingest_cli
from cvft_data.cli import main as cvft_cli


def test_ingest_prints_a_summary_and_info_json(tmp_path, capsys):
    make_coco(tmp_path / "src")
    assert ingest_cli.main([str(tmp_path / "src"), "--out", str(tmp_path / "ds"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "instance_segmentation dataset" in out and "validation" in out and "nothing dropped" in out
    assert cvft_cli.main(["info", str(tmp_path / "ds"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["task"] == "instance_segmentation" and doc["classes"] == ["cat", "dog"]
    assert doc["splits"]["train"]["images"] == 4 and doc["splits"]["train"]["empty"] == 1
    assert doc["ledger"] == []
    assert isinstance(datasets.load_from_disk(str(tmp_path / "ds")), datasets.DatasetDict)


def test_ledger_is_printed_and_in_info_json(tmp_path, capsys):
    make_yolo(tmp_path / "src", extra_lines={"train/a": ["9 0.5 0.5 0.1 0.1"]})
    code = ingest_cli.main([str(tmp_path / "src"), "--out", str(tmp_path / "ds"), "--quiet", "--on-error", "skip"])
    assert code == 0
    out = capsys.readouterr().out
    assert "unknown_class" in out and "images/train/a.jpg#line 3" in out
    cvft_cli.main(["info", str(tmp_path / "ds"), "--json"])
    ledger = json.loads(capsys.readouterr().out)["ledger"]
    entry = next(e for e in ledger if e["reason"] == "unknown_class")
    assert entry["item"] == "images/train/a.jpg#line 3" and entry["action"] == "dropped_annotation"


def test_exit_codes(tmp_path, capsys):
    make_yolo(tmp_path / "src", extra_lines={"train/a": ["9 0.5 0.5 0.1 0.1"]})
    # 1: data error, named
    assert ingest_cli.main([str(tmp_path / "src"), "--out", str(tmp_path / "ds"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "class id 9" in err and "labels/train/a.txt" in err and "--on-error skip" in err
    # 2: usage errors
    assert ingest_cli.main([str(tmp_path / "src")]) == 2
    assert ingest_cli.main([str(tmp_path / "src"), "--out", str(tmp_path / "x"), "--format", "nope"]) == 2
    assert ingest_cli.main([str(tmp_path / "src"), "--out", str(tmp_path / "x"), "--split", "a,b"]) == 2
    assert ingest_cli.main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2
    assert cvft_cli.main(["info", str(tmp_path / "src")]) == 2
    capsys.readouterr()
    # 1: nothing recognised, with every reason
    (tmp_path / "empty").mkdir()
    assert ingest_cli.main([str(tmp_path / "empty"), "--out", str(tmp_path / "x")]) == 1
    assert "voc:" in capsys.readouterr().err


def test_existing_output_needs_overwrite(tmp_path, capsys):
    make_voc(tmp_path / "src")
    args = [str(tmp_path / "src"), "--out", str(tmp_path / "ds"), "--quiet"]
    assert ingest_cli.main(args) == 0
    assert ingest_cli.main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert ingest_cli.main(args + ["--overwrite", "--split", "0.5,0.5", "--max-side", "12"]) == 0


def test_list_formats(tmp_path, capsys):
    make_voc(tmp_path / "src")
    assert ingest_cli.main(["--list-formats"]) == 0
    out = capsys.readouterr().out
    for name in ("coco", "coco_panoptic", "folder", "voc", "yolo"):
        assert name in out
    assert ingest_cli.main([str(tmp_path / "src"), "--list-formats"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("voc") and "Annotations" in first


def test_export_command(tmp_path, capsys):
    make_coco(tmp_path / "src")
    ingest_cli.main([str(tmp_path / "src"), "--out", str(tmp_path / "ds"), "--quiet"])
    assert cvft_cli.main(["export", str(tmp_path / "ds"), "--to", "yolo", "--out", str(tmp_path / "y")]) == 0
    out = capsys.readouterr().out
    assert "exported 5 images" in out and "crowd_not_exported" in out
    assert cvft_cli.main(["export", str(tmp_path / "ds"), "--to", "yolo", "--out", str(tmp_path / "y")]) == 2


def test_console_scripts_are_installed(tmp_path):
    exe = shutil.which("cvft-ingest") or str(__import__("pathlib").Path(sys.executable).parent / "cvft-ingest")
    make_voc(tmp_path / "src")
    r = subprocess.run([exe, str(tmp_path / "src"), "--out", str(tmp_path / "ds"), "--workers", "2"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "detection dataset" in r.stdout
    cvft = str(__import__("pathlib").Path(exe).parent / "cvft")
    r = subprocess.run([cvft, "info", str(tmp_path / "ds")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "train" in r.stdout


def test_command_line_manners(tmp_path):
    """Piped into head: no traceback; a missing path says so; format names never run into their
    text; messages name flags; one class is "1 class"."""
    import subprocess
    import sys
    from pathlib import Path

    from builders import make_folder

    bindir = Path(sys.executable).parent
    r = subprocess.run(f"'{bindir / 'cvft-ingest'}' --list-formats | head -2", shell=True, capture_output=True,
                       text=True, timeout=120)
    assert r.stderr == "" and len(r.stdout.splitlines()) == 2, r.stderr
    listing = subprocess.run([str(bindir / "cvft-ingest"), "--list-formats"], capture_output=True, text=True).stdout
    names = [line.split()[0] for line in listing.splitlines() if line and not line.startswith(" ")]
    assert "coco_camera_traps" in names and "roboflow_createml" in names, "a long name ran into its summary"
    r = subprocess.run([str(bindir / "cvft"), "info", str(tmp_path / "nope")], capture_output=True, text=True)
    assert r.returncode == 2 and "does not exist" in r.stderr
    src = make_folder(tmp_path / "src")
    import shutil
    for d in (src / "train").iterdir():
        if d.name != "cat":
            shutil.rmtree(d)
    for split in ("val", "test"):
        shutil.rmtree(src / split, ignore_errors=True)
    r = subprocess.run([str(bindir / "cvft-ingest"), str(src), "--out", str(tmp_path / "ds"), "--quiet"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "1 class," in r.stdout, r.stdout + r.stderr
    r = subprocess.run([str(bindir / "cvft-ingest"), str(src), "--out", str(tmp_path / "ds")], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "--overwrite" in r.stderr and "overwrite=True" not in r.stderr, r.stderr
    assert "object at 0x" not in r.stderr and "PosixPath(" not in r.stderr
