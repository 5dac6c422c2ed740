"""Training throughput: cvft's classifier loop vs a bare torchvision loop, and a YOLO epoch through
cvft vs bare Ultralytics, on the same generated data and the same device.

    python bench/train_speed.py [--images 600] [--size 640x480] [--device auto] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_tree(root: Path, n: int, size: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        arr = np.asarray(Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)).resize(size, Image.BICUBIC))
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "JPEG", quality=90)
        p = root / f"class{i % 4}" / f"{i}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(buf.getvalue())


def classifier_epoch(loader, device, model_name: str, n_classes: int, cfg=None) -> float:
    """Images/s of one training epoch of cvft's loop (its optimizer, schedule, EMA, accumulation and
    clipping as ``cfg`` sets them)."""
    import torch
    import torchvision

    from cvft_train.classify import train_one_epoch
    from cvft_train.config import TrainConfig
    from cvft_train.devices import amp_dtype
    from cvft_train.optim import build_ema, build_optimizer, build_scheduler

    cfg = cfg or TrainConfig(model=model_name)
    model = torchvision.models.get_model(model_name, num_classes=n_classes).to(device)
    if device.startswith("cuda"):
        model = model.to(memory_format=torch.channels_last)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, max(1, len(loader) // cfg.accumulate))
    dtype = amp_dtype(device, "auto")
    scaler = torch.amp.GradScaler(enabled=dtype == torch.float16)
    ema = build_ema(model, cfg.ema_decay)
    crit = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    t0 = time.perf_counter()
    r = train_one_epoch(model, loader, crit, opt, sched, device=device, dtype=dtype, scaler=scaler,
                        channels_last=device.startswith("cuda"), accumulate=cfg.accumulate, clip_grad=cfg.clip_grad,
                        ema=ema, bare=model)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return r["steps"] and (len(loader.dataset) / (time.perf_counter() - t0))


#: every quality option of the classifier loop switched on, for the "options on" figure
ALL_ON = dict(ema_decay=0.9998, accumulate=2, clip_grad=1.0, label_smoothing=0.1, auto_augment="trivialaugment",
              color_jitter=0.2, random_erasing=0.25, vflip=0.5)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=600)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--skip-yolo", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    import torchvision
    from torch.utils.data import DataLoader

    import cvft_data
    from cvft_train import ClassificationDataset
    from cvft_train.augment import transforms_for
    from cvft_train.config import TrainConfig
    from cvft_train.devices import pick_device

    device = pick_device(a.device)
    w, h = (int(v) for v in a.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="cvft-train-bench-"))
    results = []
    try:
        make_tree(work / "src", a.images, (w, h))
        cvft_data.ingest(work / "src", work / "ds")
        kw = {"batch_size": 64, "num_workers": a.workers, "shuffle": True, "pin_memory": device.startswith("cuda")}
        plain, on = TrainConfig(model=a.model), TrainConfig(model=a.model, **ALL_ON)
        cv = DataLoader(ClassificationDataset(cvft_data.load(work / "ds")["train"], transforms_for(plain, True),
                                              imgsz=224), **kw)
        cv_on = DataLoader(ClassificationDataset(cvft_data.load(work / "ds")["train"], transforms_for(on, True),
                                                 imgsz=224), **kw)
        bare = DataLoader(torchvision.datasets.ImageFolder(str(work / "src"), transforms_for(plain, True)), **kw)
        for name, loader, cfg in (("torchvision ImageFolder", bare, plain), ("cvft", cv, plain),
                                  ("cvft, every option on", cv_on, on)):
            classifier_epoch(loader, device, a.model, 4, cfg)  # warm-up: cuDNN autotune, worker start
            ips = classifier_epoch(loader, device, a.model, 4, cfg)
            results.append({"tool": name, "stage": f"{a.model} train epoch 224px", "images": a.images,
                            "device": device, "images_per_s": round(ips, 1)})
            print(f"{name:<26}{a.model} epoch: {ips:8.1f} img/s on {device}")
        if not a.skip_yolo:
            os.environ.setdefault("YOLO_CONFIG_DIR", str(work / "ulcfg"))
            from ultralytics import YOLO

            from cvft_data.sample import write_coco_sample
            src = write_coco_sample(work / "coco", n_images=a.images, size=(w, h))
            cvft_data.ingest(src, work / "det")
            os.environ["CVFT_CACHE"] = str(work / "cache")
            from cvft_train.yolo import yolo_layout
            t0 = time.perf_counter()
            layout = yolo_layout(work / "det")
            export_s = time.perf_counter() - t0
            common = dict(epochs=1, imgsz=640, batch=16, workers=a.workers, plots=False, verbose=False, val=False,
                          device="0" if device.startswith("cuda") else device, exist_ok=True)
            t0 = time.perf_counter()
            YOLO("yolo11n.yaml").train(data=str(layout / "data.yaml"), project=str(work / "bare"), **common)
            bare_s = time.perf_counter() - t0
            from cvft_train import fit
            t0 = time.perf_counter()
            fit(work / "det", model="yolo11n.yaml", epochs=1, imgsz=640, batch=16, workers=a.workers, pretrained=False,
                device=a.device, out=str(work / "cvftrun"), yolo_args={"val": False, "verbose": False})
            cvft_s = time.perf_counter() - t0
            for name, s in (("ultralytics", bare_s), ("cvft (cached layout)", cvft_s)):
                results.append({"tool": name, "stage": "yolo11n epoch 640px", "images": a.images, "device": device,
                                "seconds": round(s, 2), "images_per_s": round(a.images * 0.8 / s, 1)})
                print(f"{name:<26}yolo11n epoch: {s:8.1f} s")
            print(f"{'cvft export (once)':<26}{export_s:8.1f} s")
        if a.json:
            Path(a.json).write_text(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
