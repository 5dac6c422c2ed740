"""Scale-out on engines users already run: predict shards + merge equal one predict; the same
shards (ingest and predict) as Ray tasks on a local Ray the test starts."""

from __future__ import annotations

from pathlib import Path

import pytest

import cvft_data
from cvft_data.errors import UsageError
from cvft_data.sample import write_coco_sample
from shapes import write_shapes

torch = pytest.importorskip("torch", reason="the train extra is not installed")


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory) -> Path:
    """A checkpoint built from config (no training: predictions only need to be deterministic)."""
    from cvft_train.models import build_model

    root = tmp_path_factory.mktemp("clf")
    net, _ = build_model("squeezenet1_1", 2, imgsz=32, pretrained=False)
    torch.save({"model": net.state_dict(), "model_name": "squeezenet1_1", "classes": ["circle", "square"],
                "imgsz": 32}, root / "best.pt")
    return root / "best.pt"


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("imgs")
    write_shapes(root / "src", {"train": 23})
    (root / "src" / "train" / "circle" / "broken.png").write_bytes(b"\x89PNG not really")
    return root / "src" / "train"


@pytest.mark.parametrize("fmt", ["csv", "megadetector"])
def test_predict_shards_merged_equal_one_predict(tiny_classifier, images, tmp_path, fmt):
    from cvft_train.predict_run import predict_to
    from cvft_train.predict_shards import merge_predictions

    one = predict_to(tiny_classifier, images, tmp_path / "one" / "out", fmt=fmt, device="cpu", workers=1)
    for i in (2, 0, 1, 1):   # any order; a retried task is harmless
        s = predict_to(tiny_classifier, images, tmp_path / "sharded" / "out", fmt=fmt, device="cpu", workers=1,
                       shard=(i, 3))
        assert s["shard"] == [i, 3]
    assert not (tmp_path / "sharded" / "out").exists()
    merged = merge_predictions(tiny_classifier, images, tmp_path / "sharded" / "out", fmt=fmt)
    assert merged["images"] == one["images"] == 24 and merged["failed"] == one["failed"] == 1
    a = (tmp_path / "one" / "out").read_text()
    b = (tmp_path / "sharded" / "out").read_text()
    if fmt == "megadetector":   # the run's date differs; everything else is the same
        import json
        a, b = (json.loads(x) for x in (a, b))
        for d in (a, b):
            d["info"].pop("detection_completion_time", None)
    assert a == b
    assert not list((tmp_path / "sharded").glob(".out.shard-*"))


def test_merge_names_the_missing_shards(tiny_classifier, images, tmp_path):
    from cvft_train.predict_run import predict_to
    from cvft_train.predict_shards import merge_predictions

    predict_to(tiny_classifier, images, tmp_path / "out.csv", device="cpu", workers=1, shard=(1, 3))
    with pytest.raises(UsageError, match=r"shard\(s\) 0/3, 2/3"):
        merge_predictions(tiny_classifier, images, tmp_path / "out.csv")
    with pytest.raises(UsageError, match="nothing to merge"):
        merge_predictions(tiny_classifier, images, tmp_path / "other.csv")


def test_the_predict_cli_runs_a_shard_and_the_merge(tiny_classifier, images, tmp_path, capsys):
    from cvft_data.cli import main as cvft_cli

    for i in range(2):
        assert cvft_cli.main(["predict", str(tiny_classifier), str(images), "--out", str(tmp_path / "p.csv"),
                              "--shard", f"{i}/2", "--device", "cpu"]) == 0
    assert "--merge" in capsys.readouterr().out
    assert cvft_cli.main(["predict", str(tiny_classifier), str(images), "--out", str(tmp_path / "p.csv"),
                          "--merge"]) == 0
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 25


# --- Ray ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def local_ray():
    import os

    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'cvft[ray]')")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ray_ingest_equals_one_shot_and_ray_predict_equals_one_predict(local_ray, tiny_classifier, images, tmp_path):
    from cvft_data.executors import ray_ingest
    from cvft_train.predict_ray import ray_predict
    from cvft_train.predict_run import predict_to

    src = write_coco_sample(tmp_path / "coco", n_images=300, size=(64, 48))
    one = cvft_data.ingest(src, tmp_path / "one", workers=1)
    info = ray_ingest(src, tmp_path / "ray", shards=3)
    assert info["content_hash"] == one["content_hash"] and info["splits"] == one["splits"]
    single = predict_to(tiny_classifier, images, tmp_path / "one.csv", device="cpu", workers=1)
    merged = ray_predict(tiny_classifier, images, tmp_path / "ray.csv", shards=3)
    assert merged["images"] == single["images"] and merged["failed"] == single["failed"] == 1
    assert _rows(tmp_path / "ray.csv") == _rows(tmp_path / "one.csv")


def _rows(path: Path) -> list[dict]:
    """CSV rows with the error text reduced to its presence: which Pillow plugins a worker process
    has loaded changes the wording of "cannot decode", not the predictions."""
    import csv

    rows = list(csv.DictReader(path.open()))
    for r in rows:
        r["error"] = bool(r.get("error"))
    return rows


@pytest.mark.slow
def test_a_ray_shard_that_fails_twice_is_reported_by_number(local_ray, tmp_path):
    from cvft_data.executors import ShardFailed, run_on_ray

    with pytest.raises(ShardFailed, match="shard 1/2 failed twice"):
        run_on_ray(_fails_on_one, [((0,), {}), ((1,), {})])


def _fails_on_one(i: int) -> int:
    if i == 1:
        raise RuntimeError("disk full")
    return i


# --- SLURM: the example scripts, run through a stand-in sbatch -----------------------------------------

FAKE_SBATCH = r'''#!/usr/bin/env python3
"""A stand-in for sbatch: runs the script now, once per array index, and prints a job id."""
import os, subprocess, sys
args, array, script, rest = sys.argv[1:], None, None, []
for a in args:
    if script is None and a.startswith("--array="):
        lo, hi = a.split("=", 1)[1].split("-")
        array = range(int(lo), int(hi) + 1)
    elif script is None and a.startswith("--"):
        continue
    elif script is None:
        script = a
    else:
        rest.append(a)
for i in array if array is not None else [None]:
    env = dict(os.environ, SLURM_CPUS_PER_TASK="1", **({"SLURM_ARRAY_TASK_ID": str(i)} if i is not None else {}))
    r = subprocess.run(["bash", script, *rest], env=env, capture_output=True, text=True)
    if r.returncode:
        sys.stderr.write(r.stdout + r.stderr)
        sys.exit(r.returncode)
print(abs(hash((script, tuple(rest)))) % 100000)
'''


@pytest.mark.slow
def test_the_slurm_examples_ingest_commit_predict_and_merge(tiny_classifier, tmp_path):
    import os
    import shutil
    import subprocess
    import sys

    from cvft_data.sample import write_camera_trap_sample

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(FAKE_SBATCH.replace("#!/usr/bin/env python3", f"#!{sys.executable}"))
    (bin_dir / "sbatch").chmod(0o755)
    for tool in ("cvft", "cvft-ingest"):   # the venv's entry points, as a cluster's module load gives them
        os.symlink(shutil.which(tool) or str(Path(sys.executable).parent / tool), bin_dir / tool)
    sample = write_camera_trap_sample(tmp_path / "sample", n_sites=2, per_camera=6)
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    r = subprocess.run(["bash", str(root / "examples" / "hpc" / "submit.sh"), str(sample["archive"]),
                        str(tmp_path / "ds"), "3", str(tiny_classifier), str(tmp_path / "md.json"), "2"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    one = cvft_data.ingest(sample["archive"], tmp_path / "one", format="camera-trap", workers=1)
    assert cvft_data.info(tmp_path / "ds")["content_hash"] == one["content_hash"]
    import json
    md = json.loads((tmp_path / "md.json").read_text())
    assert len(md["images"]) == 24


# --- reading at scale: each torchrun rank streams its own part -----------------------------------------

STREAM_SCRIPT = r'''
import json, os, sys
import torch
from cvft_data.stream import node_split
part = node_split(sys.argv[1], "train", num_workers=2)
loader = torch.utils.data.DataLoader(part.select_columns(["image_id"]), batch_size=4, num_workers=2)
seen = [i for batch in loader for i in batch["image_id"]]
with open(f"{sys.argv[2]}/rank{os.environ['RANK']}.json", "w") as f:
    json.dump(seen, f)
'''


@pytest.mark.slow
def test_two_torchrun_processes_stream_disjoint_parts_that_cover_the_split(tmp_path):
    import json
    import subprocess
    import sys

    src = write_coco_sample(tmp_path / "src", n_images=64, size=(32, 24))
    cvft_data.ingest(src, tmp_path / "ds")
    (tmp_path / "stream.py").write_text(STREAM_SCRIPT)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
                        str(tmp_path / "stream.py"), str(tmp_path / "ds"), str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = (set(json.loads((tmp_path / f"rank{k}.json").read_text())) for k in (0, 1))
    everything = set(cvft_data.load(tmp_path / "ds")["train"]["image_id"])
    assert a and b and not (a & b) and a | b == everything
