"""Camera-trap archive + species sheet + deployments sheet (+ MegaDetector) -> checked, site-split
datasets -> a species classifier and an animal detector -> a Camtrap DP package for ecologists, with
the classifier's predictions on the images nobody labelled as machine observations.

    python examples/camera_trap_pipeline.py [ARCHIVE SPECIES.csv DEPLOYMENTS.csv [MD.json]] [--epochs 3]

Without arguments it generates a small archive (EXIF times, bursts, blanks, unlabeled images, one
camera's clock an hour behind), so it runs offline. The same steps from the shell:

    cvft-ingest ARCHIVE --format camera-trap --out ct_cls --species SPECIES.csv --deployments DEPLOYMENTS.csv \\
        --split 0.7,0.15,0.15
    cvft check ct_cls && cvft train ct_cls --model resnet18 --epochs 10 --out runs/ct_cls
    cvft predict runs/ct_cls ct_cls --format dataset --out ct_predictions
    cvft export ct_cls --to camtrap-dp --out ct_package --option predictions=ct_predictions \\
        --option title="Wildcount 2024" --option contributor="Ada <ada@example.org>" --option sampling_design=targeted
    cvft-ingest ARCHIVE --format camera-trap --out ct_det --species SPECIES.csv \\
        --megadetector MD.json --split 0.7,0.15,0.15
    cvft train ct_det --model yolo11n.pt --epochs 50 --out runs/ct_det
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cvft_data
from cvft_data.sample import write_camera_trap_sample
from cvft_train import fit, predict_to


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("archive", nargs="?")
    ap.add_argument("species", nargs="?")
    ap.add_argument("deployments", nargs="?")
    ap.add_argument("megadetector", nargs="?")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=True,
                    help="start from ImageNet / COCO weights (needs internet once; --no-pretrained offline)")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cvft-ct-"))
    if a.archive:
        paths = {"archive": Path(a.archive), "species": Path(a.species), "deployments": Path(a.deployments),
                 "megadetector": a.megadetector}
    else:
        paths = write_camera_trap_sample(work / "sample", unlabeled_every=6)
    common = dict(format="camera-trap", species=str(paths["species"]), deployments=str(paths["deployments"]),
                  split="0.5,0.25,0.25", seed=0, on_error="skip", workers=0)
    cls = cvft_data.ingest(paths["archive"], work / "ct_cls", **common)
    print({s: v["class_counts"] | {"empty": v["empty"]} for s, v in cls["splits"].items()})
    print(cvft_data.check(work / "ct_cls", cvft_data.CheckOptions(min_images_per_class=10)))
    m = fit(work / "ct_cls", model="resnet18", epochs=a.epochs, imgsz=96, batch=16, out=str(work / "run_cls"),
            balance="weights", workers=0, pretrained=a.pretrained)
    print(f"species classifier: validation top-1 {m['final'].get('top1', 0):.2f}")
    # back to the ecologists: the model labels what nobody did, and the package says which is which
    predict_to(work / "run_cls", work / "ct_cls", work / "ct_predictions", fmt="dataset", workers=0)
    package = cvft_data.export(work / "ct_cls", "camtrap-dp", work / "ct_package", options={
        "predictions": str(work / "ct_predictions"), "title": "cvft camera-trap example",
        "contributor": "Example Ecologist <ecologist@example.org>", "sampling_design": "targeted"})
    machine = sum(1 for line in (work / "ct_package" / "observations.csv").read_text().splitlines()
                  if ",media,animal," in line and ",machine," in line)
    print(f"Camtrap DP package: {package['images']} media, {machine} machine observations, "
          f"missing: {package['missing'] or 'nothing'}")
    if paths.get("megadetector"):
        cvft_data.ingest(paths["archive"], work / "ct_det", megadetector=str(paths["megadetector"]), **common)
        m = fit(work / "ct_det", epochs=1, imgsz=160, batch=8, out=str(work / "run_det"), workers=0,
                pretrained=a.pretrained)   # yolo11n.pt, or yolo11n.yaml with --no-pretrained
        print(f"species detector: mAP50 {m['final'].get('map50', 0):.3f}")
    print(f"everything is in {work}")


if __name__ == "__main__":
    main()
