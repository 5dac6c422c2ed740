"""From a folder of images to a trained classifier, checked on the way.

    python examples/train_classifier.py [SRC] [--epochs 5]

Without SRC it generates a small learnable set (coloured shapes), so it runs anywhere, offline.
"""

from __future__ import annotations

import argparse
import io
import random
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

import cvft_data
from cvft_train import fit


def make_shapes(root: Path, n: int = 300) -> Path:
    rng = random.Random(0)
    for i in range(n):
        kind = ("circle", "square", "triangle")[i % 3]
        im = Image.new("RGB", (64, 64), (rng.randint(0, 80),) * 3)
        d = ImageDraw.Draw(im)
        r, cx, cy = rng.randint(10, 18), rng.randint(20, 44), rng.randint(20, 44)
        fill = (rng.randint(150, 255), rng.randint(150, 255), rng.randint(150, 255))
        if kind == "circle":
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        elif kind == "square":
            d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
        else:
            d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
        p = root / kind / f"{i}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        im.save(buf, "PNG")
        p.write_bytes(buf.getvalue())
    return root


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("src", nargs="?")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=True,
                    help="start from torchvision's ImageNet weights (needs internet once; --no-pretrained offline)")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cvft-example-"))
    src = Path(a.src) if a.src else make_shapes(work / "shapes")
    cvft_data.ingest(src, work / "ds", split="0.8,0.2", seed=0)        # a source without splits: re-split
    report = cvft_data.check(work / "ds", cvft_data.CheckOptions(min_images_per_class=50))
    print(report)
    metrics = fit(work / "ds", model=a.model, epochs=a.epochs, imgsz=64, batch=32, out=str(work / "run"),
                  balance="weights", pretrained=a.pretrained)
    print(f"validation top-1: {metrics['final']['top1']:.3f}; run folder: {work / 'run'}")


if __name__ == "__main__":
    main()
