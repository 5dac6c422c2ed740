"""Pull a Weed-AI dataset, check it, split it by agcontext (field collection), export it to YOLO
segmentation and fine-tune a YOLO segmenter; then paint the same polygons into semantic masks
(``cvft convert --to semantic``) and train a torchvision segmenter on them (weed mapping is mostly
semantic segmentation: which pixels are weed, crop or soil), reporting mIoU.

    python examples/weedai_segmentation.py DATASET_ID            # online: fetches from Weed-AI
    python examples/weedai_segmentation.py --zip weedcoco.zip    # offline: a downloaded zip
    python examples/weedai_segmentation.py                       # offline: a generated WeedCOCO set

The shell equivalent: ``cvft-ingest weedai:DATASET_ID --out weeds``, ``cvft check weeds``,
``cvft split weeds --out weeds_split --by group``, ``cvft train weeds_split --model yolo11n-seg.pt``,
``cvft convert weeds_split --to semantic --out weeds_sem``,
``cvft train weeds_sem --model deeplabv3_mobilenet_v3_large``,
``cvft predict runs/sem field_photos/ --out weed_maps --format masks``.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import cvft_data
from cvft_data.download import fetch_weedai
from cvft_train import fit


def generated_weedcoco(root: Path, n: int = 24) -> Path:
    rng = random.Random(0)
    images, anns = [], []
    for i in range(n):
        im = Image.fromarray(np.full((96, 128, 3), (110, 80, 50), np.uint8))
        d = ImageDraw.Draw(im)
        cx, cy, r = rng.randint(25, 100), rng.randint(25, 70), rng.randint(10, 20)
        poly = [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 9)[:-1]]
        d.polygon(poly, fill=(40, 160 + 40 * (i % 2), 40))
        p = root / "images" / f"{i:04d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        im.save(p)
        images.append({"id": i, "file_name": f"images/{i:04d}.png", "width": 128, "height": 96, "agcontext_id": i % 4})
        anns.append({"id": i, "image_id": i, "category_id": i % 2, "iscrowd": 0,
                     "segmentation": [[round(v, 1) for xy in poly for v in xy]]})
    (root / "weedcoco.json").write_text(json.dumps({
        "images": images, "annotations": anns, "info": {"description": "generated", "metadata": {"name": "demo"}},
        "categories": [{"id": 0, "name": "weed: lolium rigidum"}, {"id": 1, "name": "crop: triticum aestivum"}],
        "agcontexts": [{"id": k, "agcontext_name": f"field_{k}", "crop_type": "wheat"} for k in range(4)]}))
    return root


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset_id", nargs="?")
    ap.add_argument("--zip")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--model", default="yolo11n-seg.yaml", help="yolo11n-seg.pt with internet (pretrained)")
    ap.add_argument("--segmenter", default="lraspp_mobilenet_v3_large",
                    help="the semantic model (deeplabv3_mobilenet_v3_large, deeplabv3_resnet50, fcn_resnet50...)")
    ap.add_argument("--pretrained", action="store_true", help="start the segmenter from ImageNet (needs internet)")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cvft-weedai-"))
    src = fetch_weedai(a.dataset_id) if a.dataset_id else Path(a.zip) if a.zip else generated_weedcoco(work / "wc")
    cvft_data.ingest(src, work / "weeds", format="weedai", on_error="skip", workers=0)
    print(cvft_data.check(work / "weeds", cvft_data.CheckOptions(min_images_per_class=10)))
    cvft_data.split(work / "weeds", work / "weeds_split", "0.75,0.25", by="group")   # agcontext never straddles
    summary = cvft_data.export(work / "weeds_split", "yolo", work / "weeds_yolo")
    print(f"YOLO layout: {summary['images']} images, {summary['objects']} label lines")
    m = fit(work / "weeds_split", model=a.model, epochs=a.epochs, imgsz=128, batch=8, workers=0,
            out=str(work / "run"), pretrained=a.model.endswith(".pt"))
    print(f"mask mAP50: {m['final'].get('mask_map50', 0):.3f}, box mAP50: {m['final'].get('map50', 0):.3f}; run: {work / 'run'}")
    # the same annotation as semantic masks: background (soil) + the Weed-AI classes, one index per pixel
    sem = cvft_data.convert(work / "weeds_split", "semantic", work / "weeds_sem")
    print(f"semantic masks: classes {sem['classes']}")
    s = fit(work / "weeds_sem", model=a.segmenter, epochs=a.epochs, imgsz=128, batch=8, workers=0,
            out=str(work / "run_sem"), pretrained=a.pretrained)
    per_class = ", ".join(f"{k} {v['iou']:.3f}" for k, v in s["final"].get("per_class", {}).items())
    print(f"mIoU: {s['final'].get('miou', 0):.3f} (per class: {per_class}); run: {work / 'run_sem'}")


if __name__ == "__main__":
    main()
