"""Each long command draws a progress bar on a terminal and prints nothing extra when piped or
with ``--quiet``; an interrupted ingest that resumes says so."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

import cvft_data
from cvft_data.sample import write_coco_sample
from shapes import write_shapes

BIN = Path(sys.executable).parent
ENV = {**os.environ, "CVFT_PROGRESS": "", "COLUMNS": "120", "WANDB_MODE": "offline"}


def on_terminal(*argv: str) -> tuple[int, str]:
    """Run a command with stdout and stderr on a pseudo-terminal; what the terminal showed."""
    main, sub = pty.openpty()
    proc = subprocess.Popen(argv, stdout=sub, stderr=sub, stdin=subprocess.DEVNULL, env=ENV, close_fds=True)
    os.close(sub)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:   # EIO: the command closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    return proc.wait(timeout=600), b"".join(chunks).decode("utf-8", "replace")


def piped(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=600)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("progress")
    cvft_data.ingest(write_coco_sample(root / "src", n_images=40), root / "ds", split="0.7,0.15,0.15")
    return root / "ds"


def _commands(ds: Path, out: Path) -> dict[str, tuple[list[str], str]]:
    """command -> (argv, what its bar says)"""
    cvft = str(BIN / "cvft")
    return {
        "check": ([cvft, "check", str(ds), "--min-images", "1", "--workers", "1"], "check train"),
        "report": ([cvft, "report", str(ds), "--out", str(out / "r.html"), "--workers", "1"], "report: previews"),
        "split": ([cvft, "split", str(ds), "--out", str(out / "resplit"), "--overwrite"], "split: read labels"),
        "export": ([cvft, "export", str(ds), "--to", "coco", "--out", str(out / "coco"), "--overwrite"], "export train"),
    }


@pytest.mark.parametrize("name", ["check", "report", "split", "export"])
def test_a_bar_on_a_terminal_and_nothing_extra_when_piped(name, dataset, tmp_path):
    argv, bar = _commands(dataset, tmp_path)[name]
    code, shown = on_terminal(*argv)
    assert code in (0, 1), shown
    assert bar in shown and "100%|" in shown and "img/s" in shown, shown[-2000:]
    r = piped(*argv)
    assert r.returncode == code
    assert "%|" not in r.stderr and "\r" not in r.stderr and "%|" not in r.stdout, r.stderr[-2000:]
    code, quiet = on_terminal(*argv, "--quiet")
    assert "%|" not in quiet, quiet[-2000:]


def test_an_interrupted_ingest_says_it_resumes(tmp_path, monkeypatch):
    """The second run reuses the shards the first one committed and counts from there."""
    import logging

    import connectors
    from cvft_data import builder

    src = write_coco_sample(tmp_path / "src", n_images=30)
    real_write = builder.write_shard

    def dies_on_the_second_shard(index, *args):
        if index == 1:
            raise KeyboardInterrupt
        return real_write(index, *args)

    monkeypatch.setattr(builder, "write_shard", dies_on_the_second_shard)
    with pytest.raises(KeyboardInterrupt):
        builder.build_dataset(connectors.get("coco")(src), tmp_path / "ds", builder.BuildOptions(shard_size=10))
    monkeypatch.setattr(builder, "write_shard", real_write)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("cvft_data").addHandler(handler)
    logging.getLogger("cvft_data").setLevel(logging.INFO)
    try:
        info = builder.build_dataset(connectors.get("coco")(src), tmp_path / "ds", builder.BuildOptions(shard_size=10))
    finally:
        logging.getLogger("cvft_data").removeHandler(handler)
    said = [r.getMessage() for r in records if "resuming" in r.getMessage()]
    assert said and "10 of 30 images already written" in said[0], [r.getMessage() for r in records]
    assert sum(s["images"] for s in info["splits"].values()) == 30


@pytest.mark.slow
def test_training_and_predict_show_batches_on_a_terminal(tmp_path):
    cvft_data.ingest(write_shapes(tmp_path / "src", {"train": 64, "val": 16}), tmp_path / "ds")
    cvft = str(BIN / "cvft")
    code, shown = on_terminal(cvft, "train", str(tmp_path / "ds"), "--model", "squeezenet1_1", "--no-pretrained",
                              "--imgsz", "32", "--epochs", "1", "--batch", "16", "--workers", "0",
                              "--out", str(tmp_path / "run"))
    assert code == 0, shown[-3000:]
    assert "epoch 1/1" in shown and "batch/s" in shown or "s/batch" in shown, shown[-3000:]
    code, shown = on_terminal(cvft, "predict", str(tmp_path / "run"), str(tmp_path / "src" / "val"),
                              "--out", str(tmp_path / "p.csv"), "--format", "csv")
    assert code == 0 and "predict" in shown and "img/s" in shown, shown[-3000:]
