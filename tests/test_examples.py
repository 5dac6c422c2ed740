"""The examples run end to end on generated data (offline)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_camera_trap_pipeline_example(tmp_path):
    pytest.importorskip("ultralytics")
    env = {"YOLO_CONFIG_DIR": str(tmp_path / "ul"), "CVFT_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path), "TMPDIR": str(tmp_path)}
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "camera_trap_pipeline.py"), "--epochs", "1",
                        "--no-pretrained"],
                       capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "species classifier: validation top-1" in r.stdout and "species detector: mAP50" in r.stdout
    import re
    machine = re.search(r"Camtrap DP package: (\d+) media, (\d+) machine observations, missing: nothing", r.stdout)
    assert machine and int(machine.group(2)) > 0, r.stdout[-2000:]


@pytest.mark.slow
def test_weedai_example_offline(tmp_path):
    pytest.importorskip("ultralytics")
    env = {"YOLO_CONFIG_DIR": str(tmp_path / "ul"), "CVFT_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path), "TMPDIR": str(tmp_path)}
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "weedai_segmentation.py")],
                       capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "YOLO layout: 24 images, 24 label lines" in r.stdout and "mask mAP50" in r.stdout
