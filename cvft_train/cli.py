"""The trainer's commands of ``cvft``: ``train``, ``evaluate``, ``predict``, ``export-model``.

``cvft`` (:mod:`cvft_data.cli.main`) finds them through the ``cvft.commands`` entry point
(:data:`COMMANDS`), so the data package never imports the trainer. Each train option maps to a
:class:`~cvft_train.config.TrainConfig` field of the same name; an option not given stays unset, so
``--config FILE`` and, on ``--resume``, the run's saved ``config.yaml`` supply it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from typing import Callable, NamedTuple

import yaml

from .config import CHOICES


class Command(NamedTuple):
    """A ``cvft`` sub-command: its name, one-line help, argument builder and body."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]

# (flag, type, help); booleans get --flag/--no-flag
OPTIONS: list[tuple[str, type, str]] = [
    ("model", str, "resnet18 | vit_b_16 | any torchvision classifier | yolo11n.pt | yolo11n-seg.yaml "
                   "(default: resnet18, or yolo11n(-seg).pt for detection)"),
    ("epochs", int, "epochs in all (on --resume: more than before extends the run)"),
    ("imgsz", int, "input size in pixels"),
    ("batch", int, "images per batch and process"),
    ("weights", str, "a local checkpoint to start from: state dict, safetensors, Lightning/DDP/timm/cvft "
                     "checkpoint, or a YOLO .pt (read with weights_only=True)"),
    ("pretrained", bool, "start from torchvision's / Ultralytics' pretrained weights (default; "
                         "--no-pretrained: random weights)"),
    ("lr", float, "peak learning rate (default 1e-3 AdamW, 1e-2 SGD; YOLO: Ultralytics' choice)"),
    ("optimizer", str, "adamw | sgd"),
    ("weight_decay", float, "weight decay (default 0.05; never on norm layers and biases)"),
    ("decay_norm_bias", bool, "apply weight decay to norm layers and biases too"),
    ("scheduler", str, "cosine | constant, after a linear warm-up"),
    ("warmup_epochs", float, "linear warm-up length in epochs (default 1; YOLO 3)"),
    ("label_smoothing", float, "label smoothing (0-1)"),
    ("clip_grad", float, "clip the gradient norm at this value (0: off)"),
    ("accumulate", int, "batches per optimizer step (gradient accumulation)"),
    ("ema_decay", float, "keep an exponential moving average of the weights (e.g. 0.9998; 0: off)"),
    ("compile", bool, "torch.compile the model"),
    ("hflip", float, "horizontal flip probability (default 0.5; 0 for text or asymmetric objects)"),
    ("vflip", float, "vertical flip probability (default 0; aerial and microscope images may want 0.5)"),
    ("crop_scale", float, "random resized crop: smallest share of the image kept (default 0.6)"),
    ("color_jitter", float, "brightness/contrast/saturation jitter strength (0: off)"),
    ("auto_augment", str, "none | trivialaugment | randaugment | autoaugment"),
    ("random_erasing", float, "random erasing probability"),
    ("device", str, "auto | cpu | cuda | cuda:0 | mps | 0,1 (YOLO multi-GPU)"),
    ("workers", int, "DataLoader workers (default: one per core of this process, at most 8)"),
    ("amp", str, "auto | off | bf16 | fp16"),
    ("channels_last", bool, "channels-last memory format on CUDA"),
    ("balance", str, "none | weights (class-weighted loss) | sampler (class-balanced sampler)"),
    ("patience", int, "stop after N epochs without a better validation score (needs a validation split)"),
    ("seed", int, "random seed"),
    ("train_split", str, "split to train on (default train)"),
    ("val_split", str, "split to validate on (default validation)"),
    ("out", str, "the run folder: config.yaml, checkpoints/, metrics.json (default runs/cvft)"),
    ("resume", bool, "continue the run in --out from its last checkpoint and saved config "
                     "(starts it when there is none)"),
    ("wandb", bool, "log to Weights & Biases (WANDB_MODE=offline works)"),
    ("wandb_project", str, "W&B project"),
]


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", help="the cvft dataset")
    p.add_argument("--config", help="YAML file of training options (command-line options override it)")
    for name, kind, text in OPTIONS:
        flag = "--" + name.replace("_", "-")
        choices = [c for c in CHOICES.get(name, ()) if c]
        if kind is bool:
            p.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            p.add_argument(flag, dest=name, type=kind, default=None, help=text, choices=choices or None)
    p.add_argument("--yolo-arg", dest="yolo_args", action="append", default=[], metavar="KEY=VALUE",
                   help="an Ultralytics train() argument passed as it is (repeatable), e.g. mosaic=0.5")
    p.add_argument("--model-arg", dest="model_args", action="append", default=[], metavar="KEY=VALUE",
                   help="mask2former: a config value of the model built offline (repeatable), e.g. num_queries=50, "
                        "hidden_dim=128, embed_dim=48 (Swin backbone)")


@contextlib.contextmanager
def _messages_to(stream):
    """The trainer's log messages (package ``cvft_train``) printed to ``stream`` while a command runs."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    pkg = logging.getLogger("cvft_train")
    pkg.addHandler(handler)
    pkg.setLevel(logging.INFO)
    try:
        yield
    finally:
        pkg.removeHandler(handler)


def parse_yolo_args(items: list[str]) -> dict:
    from cvft_data.errors import UsageError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{item!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


def run_train(args: argparse.Namespace) -> int:
    """The body of ``cvft train``: prints the epochs as they end and the final figures."""
    from .config import read_yaml
    from .fit import fit

    with _messages_to(sys.stdout):
        given = read_yaml(args.config) if args.config else {}
        given.update({name: getattr(args, name) for name, _, _ in OPTIONS if getattr(args, name) is not None})
        if args.yolo_args:
            given["yolo_args"] = {**given.get("yolo_args", {}), **parse_yolo_args(args.yolo_args)}
        if args.model_args:
            given["model_args"] = {**given.get("model_args", {}), **parse_yolo_args(args.model_args)}
        metrics = fit(args.dir, given)
    final = {k: v for k, v in metrics.get("final", {}).items() if isinstance(v, (int, float))}
    best = metrics.get("best") or {}
    print(f"run {given.get('out') or 'runs/cvft'}: " + ", ".join(
        f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in final.items()))
    if best:
        weights = metrics["weights"]
        shown = ", ".join(f"{k} {v}" for k, v in weights.items()) if isinstance(weights, dict) else weights
        print(f"best {best['metric']} {best['value']:.4f} at epoch {best['epoch']}; weights: {shown}")
    return 0


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("weights", help="a checkpoint (best.pt, a YOLO .pt) or a cvft run folder")
    p.add_argument("dir", help="the cvft dataset")
    p.add_argument("--split", help="the split to measure (default: test, else validation)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", help="folder for evaluation.json and confusion_matrix.png")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int)
    p.add_argument("--resolution", choices=("original", "training"), default="original",
                   help="segmenters: measure at each mask's original size (default) or at the training size")


def run_evaluate(args: argparse.Namespace) -> int:
    import json

    from .evaluate import evaluate

    report = evaluate(args.weights, args.dir, split=args.split, device=args.device, batch=args.batch,
                      workers=args.workers, out=args.out, resolution=args.resolution)
    if args.json:
        print(json.dumps(report))
        return 0
    figures = {k: v for k, v in report.items() if isinstance(v, float)}
    print(f"{report['task']} on {report['split']} ({report.get('images', '?')} images): "
          + ", ".join(f"{k} {v:.4f}" for k, v in figures.items()))
    per_class = report.get("per_class", {})
    if per_class:
        keys = list(next(iter(per_class.values())))
        print(f"  {'class':<24}" + "".join(f"{k:>12}" for k in keys))
        for name, row in per_class.items():
            print(f"  {name[:24]:<24}" + "".join(f"{row[k]:>12}" if isinstance(row[k], int) else f"{row[k]:>12.4f}"
                                                 for k in keys))
    if args.out:
        print(f"wrote {args.out}/evaluation.json" + (" and confusion_matrix.png" if "confusion_matrix" in report else ""))
    return 0


def add_predict_arguments(p: argparse.ArgumentParser) -> None:
    from .prediction_output import FORMATS

    p.add_argument("weights", help="a checkpoint (best.pt, a YOLO .pt) or a cvft run folder")
    p.add_argument("source", help="a folder or camera-trap archive of images, a zip, or a cvft dataset")
    p.add_argument("--out", required=True, help="the output file (a folder for --format dataset, masks and coco_panoptic)")
    p.add_argument("--format", dest="fmt", choices=FORMATS, default="csv")
    p.add_argument("--conf", type=float, default=0.1, help="detector confidence threshold (default 0.1)")
    p.add_argument("--topk", type=int, default=5, help="labels kept per image for classifiers")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, help="decoding threads (default: every core)")
    p.add_argument("--layout", help="camera-trap folder pattern, e.g. {year}/{set}/{site}/{subsite}")
    p.add_argument("--amp", choices=("auto", "off", "bf16", "fp16"), default="auto",
                   help="classifier precision: auto = bf16 where the hardware has it (CUDA, AVX512-BF16/AMX "
                        "CPUs), off = float32")
    p.add_argument("--overwrite", action="store_true")
    from cvft_data.cli._output import add_scale_out_arguments

    add_scale_out_arguments(p, work="predict", finish="--merge", default_shards="the cluster's GPUs, else CPUs",
                            finish_help="write --out from the N finished shards")

def run_predict(args: argparse.Namespace) -> int:
    from cvft_data.errors import UsageError
    from cvft_data.shards import parse_shard

    from .predict_run import predict_to
    from .predict_shards import merge_predictions

    if sum(bool(x) for x in (args.shard, args.merge, args.executor == "ray")) > 1:
        raise UsageError("--shard, --merge and --executor ray are three ways to run: give one")
    common = dict(fmt=args.fmt, conf=args.conf, topk=args.topk, layout=args.layout, amp=args.amp)
    with _messages_to(sys.stderr):
        if args.executor == "ray":
            from .predict_ray import ray_predict

            s = ray_predict(args.weights, args.source, args.out, shards=args.shards, address=args.ray_address,
                            batch=args.batch, overwrite=args.overwrite, workers=args.workers, **common)
        elif args.merge:
            s = merge_predictions(args.weights, args.source, args.out, overwrite=args.overwrite,
                                  workers=args.workers, **common)
        else:
            s = predict_to(args.weights, args.source, args.out, batch=args.batch, device=args.device,
                           workers=args.workers, overwrite=args.overwrite,
                           shard=parse_shard(args.shard) if args.shard else None, **common)
    if s.get("shard"):
        print(f"shard {s['shard'][0]}/{s['shard'][1]}: {s['images'] if s['images'] is not None else 'already'} "
              f"images predicted -> {s['out']}; run the same command with --merge when all are done")
        return 0
    print(f"predicted {s['images']} images ({s['predicted_now']} now, {s['images_per_s']} images/s) -> {s['out']} "
          f"({s['format']})" + (f"; {s['failed']} could not be read: {s['ledger'] or s['out'] + '/ledger.jsonl'}"
                                if s["failed"] else ""))
    return 0


def add_export_model_arguments(p: argparse.ArgumentParser) -> None:
    from .export_model import EXPORT_FORMATS

    p.add_argument("weights", help="a checkpoint (best.pt, a YOLO .pt) or a cvft run folder")
    p.add_argument("--format", dest="fmt", choices=EXPORT_FORMATS, required=True)
    p.add_argument("--out", required=True, help="the model file (class names and preprocessing go to OUT.json)")
    p.add_argument("--overwrite", action="store_true")


def run_export_model(args: argparse.Namespace) -> int:
    from .export_model import export_model

    meta = export_model(args.weights, args.fmt, args.out, overwrite=args.overwrite)
    print(f"wrote {args.out} ({args.fmt}, {len(meta['classes'])} classes, {meta['imgsz']} px) and {args.out}.json")
    return 0


def _needs_torch(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def checked(args: argparse.Namespace) -> int:
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            from cvft_data.errors import UsageError
            raise UsageError(f"{args.command} needs the train extra: pip install 'cvft[train]' ({exc})") from None
        return run(args)
    return checked


#: What the ``cvft.commands`` entry point hands to ``cvft``.
COMMANDS = [
    Command("train", "fine-tune a torchvision classifier or segmenter, an Ultralytics YOLO model or Mask2Former",
            add_train_arguments,
            _needs_torch(run_train)),
    Command("evaluate", "measure a trained model on a dataset split", add_evaluate_arguments,
            _needs_torch(run_evaluate)),
    Command("predict", "run a trained model over raw images (folder, camera-trap archive, zip, dataset)",
            add_predict_arguments, _needs_torch(run_predict)),
    Command("export-model", "a trained model as ONNX or TorchScript", add_export_model_arguments,
            _needs_torch(run_export_model)),
]


def main(argv: list[str] | None = None) -> int:
    """``python -m cvft_train.launch DATASET [options]``: ``cvft train`` without the ``cvft`` front."""
    from cvft_data.cli._output import run_guarded

    p = argparse.ArgumentParser(prog="cvft train", description=COMMANDS[0].help)
    add_train_arguments(p)
    args = p.parse_args(argv)
    args.command = "train"
    return run_guarded(lambda: COMMANDS[0].run(args))
