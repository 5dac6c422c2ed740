"""Printing what a command did: summaries for people, exit codes for scripts."""

from __future__ import annotations

import sys
from typing import Callable

from ..errors import CvftError, EmptyDatasetError, FormatDetectionError, SourceError, UsageError

EXIT_OK, EXIT_DATA, EXIT_USAGE = 0, 1, 2
#: Ledger entries an empty ingest prints.
LEDGER_LINES = 10


def log_to_stderr(quiet: bool = False) -> None:
    """Show the library's progress messages (``logging``, package ``cvft_data``) on stderr, as a
    command's own output; ``quiet`` keeps warnings only."""
    import logging

    pkg = logging.getLogger("cvft_data")
    if not any(getattr(h, "cvft_cli", False) for h in pkg.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.cvft_cli = True
        pkg.addHandler(handler)
    pkg.setLevel(logging.WARNING if quiet else logging.INFO)


def add_scale_out_arguments(p, *, work: str, finish: str, finish_help: str, default_shards: str) -> None:
    """The flags that run a command as shards (``--shard I/N``, then ``finish``: ``--commit`` or
    ``--merge``) or as Ray tasks (``--executor ray``): one set for ingest and predict."""
    p.add_argument("--shard", metavar="I/N", help=f"{work} only shard I of N (0 <= I < N; one SLURM array or Ray "
                                                   f"task each), then {finish}")
    p.add_argument(finish, action="store_true", help=finish_help)
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help=f"ray: run --shards N shards as Ray tasks, then {finish[2:]} (pip install 'cvft[ray]')")
    p.add_argument("--ray-address", help="a running Ray cluster (default: start a local one)")
    p.add_argument("--shards", type=int, help=f"shards for --executor ray (default: {default_shards})")


def plural(n: int, word: str) -> str:
    """``1 class``, ``2 classes``, ``1 image``, ``3 images``.

    >>> plural(1, "class"), plural(2, "class"), plural(0, "image")
    ('1 class', '2 classes', '0 images')
    """
    if n == 1:
        return f"1 {word}"
    return f"{n} {word}es" if word.endswith(("s", "sh", "ch", "x")) else f"{n} {word}s"


def quiet_broken_pipe(main: Callable[..., int]) -> Callable[..., int]:
    """Wrap a command's ``main`` so that output piped into ``head`` (which closes the pipe early)
    ends quietly, with the shell's 141 (killed by SIGPIPE), instead of a BrokenPipeError traceback."""
    import functools
    import os

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            code = main(*args, **kwargs)
            sys.stdout.flush()
            return code
        except BrokenPipeError:
            # stdout is gone: point it at /dev/null so the interpreter's own flush at exit is silent too
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 141

    return wrapper


def run_guarded(fn: Callable[[], int], *, hint: str = "") -> int:
    """Run a command body; turn cvft errors into one clear message and an exit code."""
    try:
        return fn()
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FormatDetectionError as exc:
        print(f"error: {exc}\nname the format with --format (see --list-formats)", file=sys.stderr)
        return EXIT_DATA
    except EmptyDatasetError as exc:   # the hint does not help: print what the ledger holds instead
        print(f"error: {exc}", file=sys.stderr)
        for e in exc.ledger[:LEDGER_LINES]:
            print(f"  {e['reason']:<20} {e['item']}: {e.get('detail', '')}", file=sys.stderr)
        if len(exc.ledger) > LEDGER_LINES:
            print(f"  ... and {len(exc.ledger) - LEDGER_LINES} more ledger entries", file=sys.stderr)
        return EXIT_DATA
    except SourceError as exc:
        print(f"error: {exc}" + (f"\n{hint}" if hint else ""), file=sys.stderr)
        return EXIT_DATA
    except CvftError as exc:  # DownloadError and the like
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DATA
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130


def print_summary(info: dict, *, out=None, ledger_entries=None, path: str | None = None) -> None:
    """The closing summary: images, objects and classes per split, empty/unlabeled, the ledger."""
    w = (out or sys.stdout).write
    head = f"{info['task']} dataset" + (f" at {path}" if path else "")
    w(f"{head}: {plural(len(info['classes']), 'class')}, source {info['source']['connector']}\n")
    w(f"  {'split':<12}{'images':>9}{'objects':>9}{'classes':>9}{'empty':>8}{'unlabeled':>11}\n")
    for split, s in info["splits"].items():
        present = sum(1 for v in s.get("class_counts", {}).values() if v)
        w(f"  {split:<12}{s['images']:>9}{s['objects']:>9}{present:>9}{s['empty']:>8}{s['unlabeled']:>11}\n")
    led = info["ledger"]
    if not led["entries"]:
        w("ledger: nothing dropped or changed\n")
        return
    w(f"ledger: {led['entries']} entries, {led['images_dropped']} images and {led['annotations_dropped']} "
      f"annotations dropped\n")
    for reason, n in led["by_reason"].items():
        example = next((e for e in ledger_entries or [] if e.reason == reason), None)
        w(f"  {reason:<28}{n:>7}" + (f"   e.g. {example.item}: {example.detail}" if example else "") + "\n")
    if path:
        w(f"  every entry: {path}/ledger.jsonl\n")


def print_split_audit(path: str, *, out=None) -> None:
    """Per split: images, groups, null share and class counts; and whether any group straddles splits."""
    from ..api import info as read_info
    from ..api import load
    from ..store import column

    w = (out or sys.stdout).write
    info = read_info(path)
    dsd = load(path)
    groups = {s: set(g for g in column(dsd[s], "group") if g) for s in dsd}
    w(f"split audit (seed {info['split']['seed'] if info.get('split') else '-'}):\n")
    w(f"  {'split':<12}{'images':>8}{'groups':>8}{'null share':>12}  classes\n")
    for s, v in info["splits"].items():
        share = v["empty"] / v["images"] if v["images"] else 0.0
        top = ", ".join(f"{k} {n}" for k, n in sorted(v["class_counts"].items(), key=lambda kv: -kv[1])[:6] if n)
        w(f"  {s:<12}{v['images']:>8}{len(groups.get(s, ())):>8}{share:>12.0%}  {top}\n")
    shared = set()
    names = list(groups)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared |= groups[a] & groups[b]
    w(f"  groups in more than one split: {len(shared)}" + (f" ({', '.join(sorted(shared)[:5])})" if shared else "") + "\n")
