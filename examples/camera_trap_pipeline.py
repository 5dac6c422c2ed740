"""Camera-trap archive + species sheet (+ MegaDetector) -> checked, site-split datasets -> a species
classifier and an animal detector.

    python examples/camera_trap_pipeline.py [ARCHIVE SPECIES.csv [MD.json]] [--epochs 3]

Without arguments it generates a small archive (EXIF times, bursts, blanks), so it runs offline.
The same steps from the shell:

    cvft-ingest ARCHIVE --format camera-trap --out ct_cls --option species=SPECIES.csv --split 0.7,0.15,0.15
    cvft check ct_cls && cvft train ct_cls --model resnet18 --epochs 10 --out runs/ct_cls
    cvft-ingest ARCHIVE --format camera-trap --out ct_det --option species=SPECIES.csv \\
        --option megadetector=MD.json --split 0.7,0.15,0.15
    cvft train ct_det --model yolo11n.pt --epochs 50 --out runs/ct_det
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cvft_data
from cvft_data.sample import write_camera_trap_sample
from cvft_train import fit


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("archive", nargs="?")
    ap.add_argument("species", nargs="?")
    ap.add_argument("megadetector", nargs="?")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=True,
                    help="start from ImageNet / COCO weights (needs internet once; --no-pretrained offline)")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cvft-ct-"))
    if a.archive:
        paths = {"archive": Path(a.archive), "species": Path(a.species), "megadetector": a.megadetector}
    else:
        paths = write_camera_trap_sample(work / "sample")
    common = dict(format="camera-trap", species=str(paths["species"]), split="0.5,0.25,0.25", seed=0,
                  on_error="skip", workers=0)
    cls = cvft_data.ingest(paths["archive"], work / "ct_cls", **common)
    print({s: v["class_counts"] | {"empty": v["empty"]} for s, v in cls["splits"].items()})
    print(cvft_data.check(work / "ct_cls", cvft_data.CheckOptions(min_images_per_class=10)))
    m = fit(work / "ct_cls", model="resnet18", epochs=a.epochs, imgsz=96, batch=16, out=str(work / "run_cls"),
            balance="weights", workers=0, pretrained=a.pretrained)
    print(f"species classifier: validation top-1 {m['final'].get('top1', 0):.2f}")
    if paths.get("megadetector"):
        cvft_data.ingest(paths["archive"], work / "ct_det", megadetector=str(paths["megadetector"]), **common)
        m = fit(work / "ct_det", epochs=1, imgsz=160, batch=8, out=str(work / "run_det"), workers=0,
                pretrained=a.pretrained)   # yolo11n.pt, or yolo11n.yaml with --no-pretrained
        print(f"species detector: mAP50 {m['final'].get('map50', 0):.3f}")
    print(f"everything is in {work}")


if __name__ == "__main__":
    main()
