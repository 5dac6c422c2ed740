"""``cvft``: work with cvft datasets (``info``, ``export``).

Example::

    cvft info datasets/sharks            # for people
    cvft info datasets/sharks --json     # for scripts
    cvft export datasets/sharks --to yolo --out exports/sharks_yolo
"""

from __future__ import annotations

import argparse
import json
import sys

from ._output import EXIT_OK, print_summary, run_guarded


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cvft", description="Inspect and export cvft datasets.")
    sub = p.add_subparsers(dest="command", required=True)
    i = sub.add_parser("info", help="what a dataset holds")
    i.add_argument("dir")
    i.add_argument("--json", action="store_true", help="one JSON object: task, classes, splits, ledger")
    e = sub.add_parser("export", help="write a dataset as YOLO, COCO or ImageFolder")
    e.add_argument("dir")
    e.add_argument("--to", required=True, choices=("yolo", "coco", "imagefolder"))
    e.add_argument("--out", required=True)
    e.add_argument("--overwrite", action="store_true")
    return p


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

    summary = cvft_data.export(args.dir, args.to, args.out, overwrite=args.overwrite)
    led = summary["ledger"]
    print(f"exported {summary['images']} images, {summary['objects']} annotations to {args.out} ({args.to})")
    if led["entries"]:
        print(f"export ledger: {led['entries']} entries ({args.out}/export_ledger.jsonl)")
        for reason, n in led["by_reason"].items():
            print(f"  {reason:<28}{n:>7}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_guarded(lambda: {"info": _info, "export": _export}[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
