"""Ingest shards as a public contract (``--shard I/N`` then ``--commit``): separate processes build
the same dataset as a one-shot ingest, byte for byte."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import cvft_data
from cvft_data.errors import UsageError
from cvft_data.sample import write_coco_sample

N_IMAGES = 300   # three chunks of 128 (the smallest chunk), so three shards have work


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return write_coco_sample(tmp_path_factory.mktemp("src") / "coco", n_images=N_IMAGES, size=(64, 48))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cvft_data.cli.ingest", *args, "--quiet", "--workers", "1"],
                          capture_output=True, text=True, timeout=300)


def _arrow_bytes(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*.arrow"))}


def test_three_shards_in_separate_processes_then_commit_equal_a_one_shot_ingest(source, tmp_path):
    one = cvft_data.ingest(source, tmp_path / "one", workers=1)
    procs = [subprocess.Popen([sys.executable, "-m", "cvft_data.cli.ingest", str(source), "--out", str(tmp_path / "ds"),
                               "--shard", f"{i}/3", "--quiet", "--workers", "1"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(3)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert "--commit" in out
    assert not (tmp_path / "ds").exists(), "a shard never publishes"
    r = _cli(str(source), "--out", str(tmp_path / "ds"), "--commit")
    assert r.returncode == 0, r.stderr
    sharded = cvft_data.info(tmp_path / "ds")
    assert sharded["content_hash"] == one["content_hash"]
    assert sharded["splits"] == one["splits"] and sharded["ledger"] == one["ledger"]
    assert _arrow_bytes(tmp_path / "ds") == _arrow_bytes(tmp_path / "one")


def test_a_shard_run_twice_is_harmless(source, tmp_path):
    one = cvft_data.ingest(source, tmp_path / "one", workers=1)
    for i in (0, 1, 1, 2):   # a retried array task
        done = cvft_data.ingest(source, tmp_path / "ds", shard=f"{i}/3", workers=1)
        assert done["shard"] == [i, 3]
    info = cvft_data.ingest(source, tmp_path / "ds", commit=True)
    assert info["content_hash"] == one["content_hash"]
    assert _arrow_bytes(tmp_path / "ds") == _arrow_bytes(tmp_path / "one")


def test_commit_with_a_missing_shard_is_refused_by_name(source, tmp_path):
    for i in (0, 2):
        cvft_data.ingest(source, tmp_path / "ds", shard=f"{i}/3", workers=1)
    with pytest.raises(UsageError, match=r"shard\(s\) 1/3 not built"):
        cvft_data.ingest(source, tmp_path / "ds", commit=True)
    r = _cli(str(source), "--out", str(tmp_path / "ds"), "--commit")
    assert r.returncode == 2 and "1/3" in r.stderr
    with pytest.raises(UsageError, match="no shard"):
        cvft_data.ingest(source, tmp_path / "nothing", commit=True)


def test_bad_shard_specs_are_usage_errors(source, tmp_path):
    for spec in ("3/3", "-1/3", "a/b", "1"):
        with pytest.raises(UsageError):
            cvft_data.ingest(source, tmp_path / "ds", shard=spec)
    with pytest.raises(UsageError, match="one of them"):
        cvft_data.ingest(source, tmp_path / "ds", shard="0/2", commit=True)


def test_a_one_shot_run_is_refused_while_shards_run(source, tmp_path):
    from cvft_data.errors import OutputError
    from cvft_data.store import output_lock

    with output_lock(tmp_path / "ds", shared=True):   # a shard of another process, still running
        with pytest.raises(OutputError, match="another cvft run"):
            cvft_data.ingest(source, tmp_path / "ds")
        cvft_data.ingest(source, tmp_path / "ds", shard="0/3", workers=1)   # shards run side by side


def test_camera_trap_shards_take_whole_folders_and_list_only_their_own(tmp_path, monkeypatch):
    """By folder: every camera folder is written by one shard, which reads the EXIF of its own
    folders only; side-file orphans (sheet rows, MegaDetector entries, deployment rows without
    images) are ledgered once, by the commit; the result equals a one-shot ingest byte for byte."""
    from collections import Counter

    import connectors._exif as exif_module
    import connectors.camera_traps as ct
    from cvft_data.sample import write_camera_trap_sample

    sample = write_camera_trap_sample(tmp_path / "sample", n_sites=3, per_camera=7)
    with (sample["species"]).open("a") as f:
        f.write("2024/set_01/site_99/cam_A,IMG_0001.JPG,fox\n")            # a record without an image
    with (sample["deployments"]).open("a") as f:
        f.write("2024/set_01/site_99/cam_A,-33.9,151.0,Australia/Sydney,0,X,woodland\n")
    opts = dict(format="camera-trap", species=str(sample["species"]), deployments=str(sample["deployments"]),
                megadetector=str(sample["megadetector"]), on_error="skip", workers=1)
    one = cvft_data.ingest(sample["archive"], tmp_path / "one", **opts)
    read = Counter()
    real = exif_module.read_exif

    def counted(path):
        read[str(Path(path).parent)] += 1
        return real(path)

    monkeypatch.setattr(ct, "read_exif", counted)
    folders_per_shard = []
    for i in range(3):
        read.clear()
        done = cvft_data.ingest(sample["archive"], tmp_path / "ds", shard=f"{i}/3", **opts)
        folders_per_shard.append(set(read))
        assert sum(read.values()) == done["images"], "a shard reads the EXIF of its own images only"
    assert all(folders_per_shard) and not (folders_per_shard[0] & folders_per_shard[1])
    info = cvft_data.ingest(sample["archive"], tmp_path / "ds", commit=True, **{k: v for k, v in opts.items()
                                                                                   if k != "workers"})
    assert info["content_hash"] == one["content_hash"] and info["ledger"] == one["ledger"]
    assert list(cvft_data.read_ledger(tmp_path / "ds")) == list(cvft_data.read_ledger(tmp_path / "one"))
    assert _arrow_bytes(tmp_path / "ds") == _arrow_bytes(tmp_path / "one")
    assert {"record_without_image", "deployment_without_images"} <= set(info["ledger"]["by_reason"])
