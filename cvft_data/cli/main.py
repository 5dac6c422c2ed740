"""``cvft``: work with cvft datasets (``info``, ``export``, ``check``, ``report``, ``split``) and the
models trained on them (``train``, ``evaluate``, ``predict``, ``export-model``).

Example::

    cvft info datasets/sharks            # for people
    cvft info datasets/sharks --json     # for scripts
    cvft export datasets/sharks --to yolo --out exports/sharks_yolo
    cvft check datasets/sharks --fail-on error --json
    cvft report datasets/sharks --out sharks.html
    cvft view datasets/sharks                 # a local web app: http://127.0.0.1:8765
    cvft split datasets/sharks --out datasets/sharks_resplit --ratios 0.8,0.1,0.1 --seed 1
    cvft convert datasets/weeds_instances --to semantic --out datasets/weeds_semantic
    cvft train datasets/sharks --epochs 30 --out runs/sharks
    cvft evaluate runs/sharks datasets/sharks --split test --out runs/sharks/eval
    cvft predict runs/sharks archive/2024 --out labels.json --format megadetector
    cvft export-model runs/sharks --format onnx --out sharks.onnx
"""

from __future__ import annotations

import argparse
import json
import sys

from ._output import EXIT_OK, print_summary, quiet_broken_pipe, run_guarded


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cvft", description="Inspect and export cvft datasets.")
    sub = p.add_subparsers(dest="command", required=True)
    i = sub.add_parser("info", help="what a dataset holds")
    i.add_argument("dir")
    i.add_argument("--json", action="store_true", help="one JSON object: task, classes, splits, ledger")
    e = sub.add_parser("export", help="write a dataset as YOLO, COCO, ImageFolder, a labels CSV or Camtrap DP")
    e.add_argument("dir")
    e.add_argument("--to", required=True, choices=("yolo", "coco", "imagefolder", "csv", "camtrap-dp", "masks"))
    e.add_argument("--out", required=True)
    e.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="exporter option (camtrap-dp: title, contributor, sampling_design, capture_method, "
                        "individual_animals, file_public, metadata=project.yaml; masks: layout=masks|voc)")
    e.add_argument("--overwrite", action="store_true")
    c = sub.add_parser("check", help="class balance, null images, corrupt files, duplicates, leakage, geometry")
    c.add_argument("dir")
    _check_options(c)
    c.add_argument("--json", action="store_true", help="one JSON object with a findings list")
    c.add_argument("--fail-on", default="", metavar="CHECKS",
                   help="comma-separated check names or severities (error, warning) that make the exit code 1")
    r = sub.add_parser("report", help="a self-contained HTML page of plots, findings and previews")
    r.add_argument("dir")
    r.add_argument("--out", required=True, help="the HTML file to write (the preview PNG goes beside it)")
    r.add_argument("--preview", type=int, default=12, help="sample images in the preview grid")
    _check_options(r)
    cv = sub.add_parser("convert", help="a new dataset of another task: instance or panoptic -> semantic masks")
    cv.add_argument("dir")
    cv.add_argument("--to", required=True, choices=("semantic",))
    cv.add_argument("--out", required=True)
    cv.add_argument("--overwrite", action="store_true")
    v = sub.add_parser("view", help="browse the dataset in a local web app (thumbnails, labels, findings)")
    v.add_argument("dir")
    v.add_argument("--port", type=int, default=8765, help="port to listen on (0: any free one)")
    v.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    v.add_argument("--predictions", metavar="DATASET", help="a `cvft predict --format dataset` output to show beside")
    v.add_argument("--no-check", action="store_true", help="skip the checks (no finding filter; starts faster)")
    v.add_argument("--no-browser", action="store_true", help="do not open a browser")
    _check_options(v)
    s = sub.add_parser("split", help="re-split by group, stratified by class, into a new dataset")
    s.add_argument("dir")
    s.add_argument("--out", required=True)
    s.add_argument("--ratios", default="0.8,0.1,0.1")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--by", choices=("group", "none"), default="group")
    s.add_argument("--stratify", action=argparse.BooleanOptionalAction, default=True)
    s.add_argument("--overwrite", action="store_true")
    for command in plugin_commands():
        command.add_arguments(sub.add_parser(command.name, help=command.help))
    for parser in sub.choices.values():
        if not any("--quiet" in a.option_strings for a in parser._actions):
            parser.add_argument("--quiet", action="store_true", help="no progress bars (they show on a terminal only)")
    return p


def _check_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-images", type=int, default=1000, help="images per class below which to warn (1000)")
    p.add_argument("--max-imbalance", type=float, default=10.0, help="largest/smallest class ratio to warn above")
    p.add_argument("--null-tolerance", type=float, default=0.15, help="null-share gap across splits to warn above")
    p.add_argument("--near-distance", type=int, default=4, help="perceptual-hash bits for near duplicates (0-7)")
    p.add_argument("--min-box-side", type=float, default=2.0, help="boxes with a smaller side are tiny (px)")
    p.add_argument("--no-decode", action="store_true", help="skip the full decode (corrupt/near-duplicate checks)")
    p.add_argument("--workers", type=int, default=0, help="decode processes (default: one per core)")
    p.add_argument("--camera-gap-days", type=float, default=7.0,
                   help="camera traps: days without a trigger that count as a gap (7)")
    p.add_argument("--independence-minutes", type=float, default=30.0,
                   help="camera traps: detections of a species further apart are independent (30)")


def _options(args):
    from ..checks import CheckOptions
    from ..errors import UsageError

    if not 0 <= args.near_distance <= 7:
        raise UsageError("--near-distance must be between 0 and 7")
    return CheckOptions(min_images_per_class=args.min_images, max_imbalance_ratio=args.max_imbalance,
                        null_share_tolerance=args.null_tolerance, near_duplicate_distance=args.near_distance,
                        min_box_side=args.min_box_side, decode=not args.no_decode, workers=args.workers,
                        camera_gap_days=args.camera_gap_days, independence_minutes=args.independence_minutes)


def _info(args) -> int:
    import cvft_data

    info = cvft_data.info(args.dir)
    ledger = list(cvft_data.read_ledger(args.dir))
    if args.json:
        doc = {
            "path": args.dir,
            "task": info["task"],
            "classes": info["classes"],
            "splits": {s: {k: v[k] for k in ("images", "objects", "empty", "unlabeled", "labeled")} | {
                "class_counts": v.get("class_counts", {})} for s, v in info["splits"].items()},
            "ledger": [e.to_dict() for e in ledger],
            "ledger_summary": info["ledger"],
            "source": info["source"],
            "images": info["images"],
            "content_hash": info["content_hash"],
            "schema_version": info["schema_version"],
        }
        json.dump(doc, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print_summary(info, ledger_entries=ledger, path=args.dir)
    return EXIT_OK


def _export(args) -> int:
    import cvft_data

    from ..errors import UsageError

    options = {}
    for kv in args.option:
        if "=" not in kv:
            raise UsageError(f"--option {kv!r}: expected KEY=VALUE")
        k, v = kv.split("=", 1)
        options[k.strip()] = v
    summary = cvft_data.export(args.dir, args.to, args.out, overwrite=args.overwrite, options=options)
    led = summary["ledger"]
    print(f"exported {summary['images']} images, {summary['objects']} annotations to {args.out} ({args.to})")
    if summary.get("missing"):
        print("a strict package also needs: " + "; ".join(summary["missing"]))
    if led["entries"]:
        print(f"export ledger: {led['entries']} entries ({args.out}/export_ledger.jsonl)")
        for reason, n in led["by_reason"].items():
            print(f"  {reason:<28}{n:>7}")
    return EXIT_OK


def _check(args) -> int:
    from ..checks import CHECKS, SEVERITIES, check
    from ..errors import UsageError

    fail_on = [x.strip() for x in args.fail_on.split(",") if x.strip()]
    unknown = [x for x in fail_on if x not in CHECKS and x not in SEVERITIES]
    if unknown:
        raise UsageError(f"--fail-on: unknown {unknown}; use severities {SEVERITIES} or checks {sorted(CHECKS)}")
    report = check(args.dir, _options(args))
    if args.json:
        doc = report.to_dict()
        doc.pop("stats")
        doc["failed"] = bool(report.failed(fail_on))
        json.dump(doc, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print(report)
    return 1 if report.failed(fail_on) else EXIT_OK


def _report(args) -> int:
    from ..report import write_report

    page = write_report(args.dir, args.out, _options(args), preview=args.preview)
    print(f"wrote {page} and {page.with_name(page.stem + '_preview.png')}")
    return EXIT_OK


def _convert(args) -> int:
    from ..convert import convert

    info = convert(args.dir, args.to, args.out, overwrite=args.overwrite)
    print_summary(info, path=args.out)
    dropped = info["converted"]["ledger"]
    if dropped["entries"]:
        print(f"  conversion: {dropped['entries']} objects could not be painted (boxes without a mask); see ledger.jsonl")
    return EXIT_OK


def _view(args) -> int:
    from ..store import require_dataset
    from ..view import serve
    from ._output import log_to_stderr

    require_dataset(args.dir)
    if args.predictions:
        require_dataset(args.predictions)
    log_to_stderr(args.quiet)
    try:
        serve(args.dir, host=args.host, port=args.port, predictions=args.predictions, options=_options(args),
              findings=not args.no_check, open_browser=not args.no_browser)
    except KeyboardInterrupt:   # Ctrl-C is how a viewer stops: not an interruption to resume
        return EXIT_OK
    except OSError as exc:   # the port is taken, the address is not this machine's
        from ..errors import UsageError
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}; pick another --port") from None
    return EXIT_OK


def _split(args) -> int:
    from ..splits import split

    info = split(args.dir, args.out, args.ratios, seed=args.seed, by=args.by, stratify=args.stratify,
                 overwrite=args.overwrite)
    print_summary(info, path=args.out)
    for cls, splits in info["split"]["unplaced_classes"].items():
        print(f"  class {cls!r} could not be placed in: {', '.join(splits)} (too few groups carry it)")
    return EXIT_OK


def plugin_commands() -> list:
    """Sub-commands other packages add through the ``cvft.commands`` entry point (the trainer's
    train, evaluate, predict, export-model): objects with ``name``, ``help``, ``add_arguments(parser)``
    and ``run(args) -> int``. Found by name, so this package never imports the trainer."""
    from importlib.metadata import entry_points

    found = []
    for ep in sorted(entry_points(group="cvft.commands"), key=lambda e: e.name):
        found.extend(ep.load())
    return found


@quiet_broken_pipe
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quiet:
        from ..progress import set_quiet
        set_quiet(True)
    commands = {"info": _info, "export": _export, "check": _check, "report": _report, "split": _split, "view": _view,
                "convert": _convert,
                **{c.name: c.run for c in plugin_commands()}}
    return run_guarded(lambda: commands[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
