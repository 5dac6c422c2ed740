"""Predict throughput on the camera-trap corpus, side by side with the loops users would write
otherwise, and predict's peak memory at two archive sizes.

- classifier at 224 px (resnet18): a plain torchvision loop (``ImageFolder`` + ``DataLoader`` +
  the model, full decode) against ``cvft predict`` (reduced-size JPEG decode on threads, batching);
- YOLO at 640 px (yolo11n): Ultralytics' own ``predict`` on the folder against ``cvft predict``;
- memory: ``cvft predict`` in a fresh process on archives of small images of two sizes, peak
  resident memory of its process tree (it must not grow with the archive).

Models have random weights (built from their config: no download); throughput does not depend on
what they learned.

    python bench/predict_speed.py [--images 500] [--memory-sizes 2000,20000] [--device auto] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _corpus import SPECIES, make_corpus  # noqa: E402
from ingest_memory import make_tree, peak_tree_rss  # noqa: E402


def classifier_checkpoint(path: Path, imgsz: int, model: str = "resnet18") -> Path:
    import torch

    from cvft_train.models import build_model

    net, _ = build_model(model, len(SPECIES) + 1, imgsz=imgsz, pretrained=False)
    torch.save({"model": net.state_dict(), "model_name": model, "classes": [*SPECIES, "empty"], "imgsz": imgsz,
                "task": "classification"}, path)
    return path


def yolo_checkpoint(path: Path) -> Path:
    from ultralytics import YOLO

    model = YOLO("yolo11n.yaml")
    model.model.names = dict(enumerate(SPECIES))
    model.save(str(path))
    return path


def model_only(ckpt: Path, device: str, batch: int, bf16: bool) -> float:
    """The model alone on a batch already in memory: the ceiling of any predict loop."""
    import torch

    from cvft_train.trained import load_trained

    model = load_trained(ckpt, device=device).model.to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, 224, 224, device=device).to(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
        model(x)
        t0 = time.perf_counter()
        for _ in range(4):
            model(x).float().cpu()
    return 4 * batch / (time.perf_counter() - t0)


def plain_torchvision(classes_dir: Path, ckpt: Path, device: str, batch: int, workers: int) -> float:
    import torch
    import torchvision
    from torch.utils.data import DataLoader
    from torchvision import transforms as T

    state = torch.load(ckpt, weights_only=True)
    model = torchvision.models.get_model("resnet18", num_classes=len(state["classes"]))
    model.load_state_dict(state["model"])
    model.eval().to(device)
    tf = T.Compose([T.Resize(224), T.CenterCrop(224), T.ToTensor(), T.Normalize([0.485, 0.456, 0.406],
                                                                               [0.229, 0.224, 0.225])])
    loader = DataLoader(torchvision.datasets.ImageFolder(str(classes_dir), tf), batch_size=batch,
                        num_workers=workers, pin_memory=device.startswith("cuda"))
    n = 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for x, _ in loader:
            model(x.to(device)).softmax(1).topk(5).indices.cpu()
            n += len(x)
    return n / (time.perf_counter() - t0)


def ultralytics_predict(tree: Path, ckpt: Path, device: str, batch: int) -> float:
    from ultralytics import YOLO

    model = YOLO(str(ckpt))
    n = 0
    t0 = time.perf_counter()
    for _ in model.predict(source=f"{tree}/**/*.JPG", imgsz=640, conf=0.1, batch=batch, device=device, stream=True,
                           verbose=False):
        n += 1
    return n / (time.perf_counter() - t0)


def cvft_predict(ckpt: Path, tree: Path, out: Path, device: str, batch: int, fmt: str, amp: str = "auto") -> float:
    from cvft_train.predict_run import predict_to

    shutil.rmtree(out.parent, ignore_errors=True)
    t0 = time.perf_counter()
    s = predict_to(ckpt, tree, out, fmt=fmt, batch=batch, device=device, conf=0.1, amp=amp)
    return s["images"] / (time.perf_counter() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--memory-sizes", default="2000,20000")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the plain loop")
    ap.add_argument("--skip-yolo", action="store_true")
    ap.add_argument("--corpus", help="folder to keep the generated corpus in (default: a temp dir)")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="cvft-ul-"))
    from cvft_train.devices import pick_device

    device = pick_device(a.device)
    ul_device = "0" if device == "cuda" else device
    work = Path(tempfile.mkdtemp(prefix="cvft-predict-bench-"))
    corpus = make_corpus(Path(a.corpus) if a.corpus else work / "corpus", a.images)
    results = []

    def record(tool: str, stage: str, ips: float, **extra) -> None:
        results.append({"tool": tool, "stage": stage, "images": a.images, "device": device,
                        "images_per_s": round(ips, 1), **extra})
        print(f"{tool:<34}{stage:<28}{ips:>9.1f} img/s", flush=True)

    try:
        cls = classifier_checkpoint(work / "resnet18.pt", 224)
        record("model alone (float32)", "resnet18 224 px", model_only(cls, device, 32, False))
        record("model alone (bf16)", "resnet18 224 px", model_only(cls, device, 32, True))
        plain_torchvision(corpus["classes"], cls, device, 32, a.workers)   # warm-up: caches, cuDNN
        record("torchvision ImageFolder loop", "resnet18 224 px", plain_torchvision(corpus["classes"], cls, device,
                                                                                   32, a.workers))
        record("cvft predict (csv, float32)", "resnet18 224 px",
               cvft_predict(cls, corpus["tree"], work / "p" / "c.csv", device, 32, "csv", amp="off"))
        record("cvft predict (csv, --amp auto)", "resnet18 224 px",
               cvft_predict(cls, corpus["tree"], work / "p" / "c.csv", device, 32, "csv"))
        if not a.skip_yolo:
            yol = yolo_checkpoint(work / "yolo11n_bench.pt")
            ultralytics_predict(corpus["tree"], yol, ul_device, 16)   # warm-up
            record("Ultralytics predict", "yolo11n 640 px", ultralytics_predict(corpus["tree"], yol, ul_device, 16))
            record("cvft predict (megadetector)", "yolo11n 640 px",
                   cvft_predict(yol, corpus["tree"], work / "p" / "md.json", device, 16, "megadetector"))
        small = classifier_checkpoint(work / "resnet18_64.pt", 64)
        exe = str(Path(sys.executable).parent / "cvft")
        for n in (int(s) for s in a.memory_sizes.split(",") if s):
            tree = work / f"small_{n}"
            make_tree(tree, n)
            out = work / f"mem_{n}" / "p.csv"
            secs, peak, code = peak_tree_rss([exe, "predict", str(small), str(tree), "--out", str(out),
                                              "--device", device, "--batch", "64"])
            if code != 0:
                raise SystemExit(f"cvft predict failed with exit code {code}")
            results.append({"tool": "cvft predict", "stage": "peak memory, 160x120 images, resnet18 64 px",
                            "images": n, "device": device, "seconds": round(secs, 1),
                            "images_per_s": round(n / secs, 1), "peak_rss_mb": round(peak, 1)})
            print(f"{'cvft predict peak memory':<34}{n:>8} images {peak:>9.0f} MB ({n / secs:.0f} img/s)", flush=True)
            shutil.rmtree(tree, ignore_errors=True)
        if a.json:
            Path(a.json).write_text(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
