"""``cvft predict --shard I/N`` and ``--merge``: predict over an archive on many GPUs (one SLURM
array task or Ray task per shard), then write the one output.

Shard I predicts the images at positions ``k % N == I`` of the source (every shard lists the same
source in the same order) into ``.<out>.shard-I-of-N.done.jsonl`` beside the output. The merge
takes the N shard journals round-robin, which restores the source's order, so the merged output is
the one a single ``cvft predict`` writes.

Example:
    >>> from pathlib import Path
    >>> shard_done(Path("preds/labels.csv"), 1, 4).name
    '.labels.csv.shard-00001-of-00004.done.jsonl'
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

from cvft_data.errors import UsageError

from .prediction_output import shard_done, shard_journal_out  # noqa: F401 (re-exported)

_DONE = re.compile(r"^\.(?P<out>.+)\.shard-(?P<i>\d{5})-of-(?P<n>\d{5})\.done\.jsonl$")


def finished_shards(out: Path) -> dict[int, Path]:
    """{shard: journal} of the finished shards of ``out``; raises when they disagree on N."""
    found: dict[int, Path] = {}
    counts = set()
    for p in sorted(out.parent.glob(f".{out.name}.shard-*-of-*.done.jsonl")):
        m = _DONE.match(p.name)
        if m and m.group("out") == out.name:
            found[int(m.group("i"))] = p
            counts.add(int(m.group("n")))
    if len(counts) > 1:
        raise UsageError(f"shards of {out} were run with different N ({sorted(counts)}); run them with one N")
    if not found:
        raise UsageError(f"nothing to merge: no finished shard of {out} (run cvft predict ... --shard I/N first)")
    n = counts.pop()
    missing = sorted(set(range(n)) - set(found))
    if missing:
        raise UsageError(f"cannot merge: shard(s) {', '.join(f'{i}/{n}' for i in missing)} of {out} not finished; "
                         "run them, then --merge again")
    return found


def _results(path: Path) -> tuple[dict, Iterator[dict]]:
    f = open(path, "rb")
    header = json.loads(f.readline())["cvft_predict"]

    def rows() -> Iterator[dict]:
        with f:
            for line in f:
                yield json.loads(line)
    return header, rows()


def interleave(paths: list[Path], signature: dict[str, Any]) -> Iterator[dict]:
    """The shards' results round-robin (shard 0's first, shard 1's first, ..., shard 0's second...):
    the source's order. Each shard must have been run with ``signature``."""
    streams = []
    for i, p in enumerate(paths):
        header, rows = _results(p)
        if {k: v for k, v in header.items() if k != "shard"} != signature or header.get("shard") != [i, len(paths)]:
            raise UsageError(f"{p.name} was predicted with other options ({header}); run the shards and the merge "
                             "with the same weights, source and options")
        streams.append(rows)
    while streams:
        alive = []
        for rows in streams:
            r = next(rows, None)
            if r is not None:
                yield r
                alive.append(rows)
        streams = alive


def merge_predictions(weights: str | os.PathLike, source: str | os.PathLike, out: str | os.PathLike, *,
                      fmt: str = "csv", conf: float = 0.1, topk: int = 5, layout: str | None = None,
                      overwrite: bool = False, amp: str = "auto", workers: int | None = None) -> dict[str, Any]:
    """Write ``out`` from the finished shards of ``cvft predict ... --shard I/N`` (the options must be
    the shards'), then remove the shard journals. Returns the summary :func:`predict_to` returns."""
    from .predict_run import publish, signature_of

    out = Path(out)
    if out.exists() and not overwrite:
        raise UsageError(f"{out} already exists; pass --overwrite to replace it")
    shards = finished_shards(out)
    signature, trained, kind = signature_of(weights, source, fmt=fmt, conf=conf, topk=topk, layout=layout, amp=amp)
    from .prediction_output import Journal

    journal = Journal(out, signature)
    if journal.path.exists():
        journal.path.unlink()   # a merge interrupted before: the shards still hold everything
    journal.open()
    try:
        batch: list[dict] = []
        total = 0
        for r in interleave([shards[i] for i in sorted(shards)], signature):
            batch.append(r)
            total += 1
            if len(batch) >= 1000:
                journal.append(batch)
                batch = []
        journal.append(batch)
    except BaseException:
        journal.close()
        raise
    summary = publish(journal, out, trained, source, kind, fmt=fmt, conf=conf, topk=topk, layout=layout,
                      workers=workers, total=total, fresh=0, seconds=0.0)
    for p in shards.values():
        p.unlink(missing_ok=True)
    return {**summary, "shards": len(shards)}
