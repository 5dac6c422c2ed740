"""``cvft-ingest SRC --out DIR``: read a source with its connector, write a cvft dataset.

Example::

    cvft-ingest exports/roboflow_coco --out datasets/sharks
    cvft-ingest camera_traps/ --out datasets/ct --on-error skip --max-side 1024 --split 0.8,0.1,0.1
    cvft-ingest SRC --list-formats          # how each connector rates SRC, and why
"""

from __future__ import annotations

import argparse
import sys

from ..errors import UsageError
from ._output import (
    EXIT_OK,
    EXIT_USAGE,
    add_scale_out_arguments,
    log_to_stderr,
    print_split_audit,
    print_summary,
    quiet_broken_pipe,
    run_guarded,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cvft-ingest", description="Ingest images and annotations into a cvft dataset "
                                "(Hugging Face datasets on disk + cvft.json).")
    p.add_argument("src", nargs="?", help="source folder, zip or annotation file; weedai:<id>; "
                                          "roboflow:<workspace>/<project>/<version> (needs the roboflow package)")
    p.add_argument("--out", help="output dataset folder (written atomically)")
    p.add_argument("--format", help="connector name; detected when omitted (see --list-formats)")
    p.add_argument("--list-formats", action="store_true", help="list connectors (ranked for SRC when given) and exit")
    p.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                   help="raise: stop at the first bad item (default); skip: drop or mend it and ledger it")
    p.add_argument("--max-side", type=int, help="store images downscaled so the longer side is N px (boxes scaled)")
    p.add_argument("--reference", action="store_true", help="keep paths to the source images instead of their bytes")
    p.add_argument("--split", metavar="RATIOS", help="re-split, e.g. 0.8,0.1,0.1 (default: keep the source's splits)")
    p.add_argument("--seed", type=int, default=0, help="seed of --split (default 0)")
    p.add_argument("--workers", type=int, default=0, help="worker processes (default: one per core)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_scale_out_arguments(p, work="build", finish="--commit", default_shards="the cluster's CPUs",
                            finish_help="publish the shards built with --shard (all N must be there)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="connector option (repeatable), e.g. --option labelmap=labelmap.txt")
    p.set_defaults(connector_flags=_connector_flags(p))   # which parsed values are connector options
    p.add_argument("--roboflow-format", default="coco",
                   help="export format for roboflow:<workspace>/<project>/<version> sources (default coco)")
    p.add_argument("--weedai-url", help="Weed-AI base URL for weedai:<id> sources (default: Weed-AI's site, "
                                        "or CVFT_WEEDAI_URL)")
    p.add_argument("--sha256", help="pin a downloaded source (weedai:<id>): refuse an archive with another SHA-256")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _connector_flags(p: argparse.ArgumentParser) -> list[str]:
    """The flags connectors declare (``Connector.cli_flags``), one group per connector; returns the
    option names (a flag two connectors declare is added once)."""
    import connectors

    names: list[str] = []
    for name, cls in sorted(connectors.available().items()):
        if not cls.cli_flags:
            continue
        group = p.add_argument_group(f"{cls.summary} (--format {name.replace('_', '-')})")
        for option, kw in cls.cli_flags.items():
            if option in names:
                continue
            names.append(option)
            group.add_argument("--" + option.replace("_", "-"), dest=option,
                               **{"help": cls.options_help.get(option, ""), **kw})
    return names


def _list_formats(src: str | None) -> int:
    import connectors

    width = max(len(n) for n in connectors.available()) + 2   # the longest name never runs into its text
    if src:
        for cls, conf in connectors.rank(src):
            print(f"{cls.name:<{width}}{conf.score:>5.2f}  {conf.reason}")
        return EXIT_OK
    for name, cls in sorted(connectors.available().items()):
        print(f"{name:<{width}}{cls.summary}")
        for opt, text in cls.options_help.items():
            print(f"{'':<{width + 2}}--option {opt}=...  {text}")
    return EXIT_OK


@quiet_broken_pipe
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_formats:
        return _list_formats(args.src)
    if not args.src or not args.out:
        print("error: SRC and --out are required (or --list-formats)", file=sys.stderr)
        return EXIT_USAGE

    def body() -> int:
        import cvft_data

        log_to_stderr(args.quiet)
        if args.quiet:
            from ..progress import set_quiet
            set_quiet(True)
        options = {k: getattr(args, k) for k in args.connector_flags if getattr(args, k, None) is not None}
        for kv in args.option:
            if "=" not in kv:
                raise UsageError(f"--option {kv!r}: expected KEY=VALUE")
            k, v = kv.split("=", 1)
            options[k.strip()] = v
        src, fmt = args.src, args.format
        if args.sha256 and not src.startswith("weedai:"):
            raise UsageError("--sha256 pins a downloaded source (weedai:<id>); a local SRC is not downloaded")
        if src.startswith("roboflow:"):
            from ..download import fetch_roboflow
            src = str(fetch_roboflow(src.split(":", 1)[1], fmt=args.roboflow_format))
        elif src.startswith("weedai:"):
            from ..download import fetch_weedai
            src = str(fetch_weedai(src.split(":", 1)[1], base_url=args.weedai_url, progress=not args.quiet,
                                   sha256=args.sha256))
            fmt = fmt or "weedai"
        if args.executor == "ray":
            if args.shard or args.commit:
                raise UsageError("--executor ray runs every shard and the commit itself: drop --shard/--commit")
            from ..executors import ray_ingest

            info = ray_ingest(src, args.out, shards=args.shards, address=args.ray_address, format=fmt,
                              on_error=args.on_error, reference=args.reference, max_side=args.max_side,
                              split=args.split, seed=args.seed, overwrite=args.overwrite, **options)
        else:
            info = cvft_data.ingest(src, args.out, format=fmt, on_error=args.on_error, reference=args.reference,
                                    max_side=args.max_side, split=args.split, seed=args.seed, workers=args.workers,
                                    overwrite=args.overwrite, progress=not args.quiet, shard=args.shard,
                                    commit=args.commit, **options)
        if args.shard:
            print(f"shard {args.shard}: {info['images']} images in {len(info['chunks'])} chunks written to "
                  f"{info['partial']}; run the same command with --commit (instead of --shard) when all are done")
            return EXIT_OK
        print_summary(info, ledger_entries=list(cvft_data.read_ledger(args.out)), path=args.out)
        if args.split:
            print_split_audit(args.out)
        return EXIT_OK

    hint = "run with --on-error skip to drop such items and list them in the ledger" if args.on_error == "raise" else ""
    return run_guarded(body, hint=hint)


if __name__ == "__main__":
    sys.exit(main())
