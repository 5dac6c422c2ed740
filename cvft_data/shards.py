"""Ingest shards as a public contract: ``cvft-ingest SRC --out DS --shard I/N`` writes only shard I
of N (its share of the build's chunks) into the partial folder and exits; ``cvft-ingest SRC --out
DS --commit`` checks that every shard is there and publishes the dataset. SLURM job arrays and
Ray run the shards; nothing here schedules anything.

A connector that lists its source in units (``Connector.units``: the camera folders of a camera-trap
archive, with their image counts, from file names alone) is chunked by unit (no chunk holds two
units), the units are shared out whole (contiguous runs of about the same number of images), and a
shard lists only its own units (``only_units``: only their EXIF is read), so a camera's sequences
and clock checks stay in one shard; the orphans of the side files (sheet rows, MegaDetector entries
no image matches) are ledgered by the commit. Other sources are listed whole by every shard, which
writes the chunks ``k`` with ``k * N // chunks == I``. Either way the chunks are the ones a one-shot
ingest writes, so the committed dataset is the same, file for file, with the same content hash. A
shard run twice reuses what it committed (verified). Each shard leaves ``job-I-of-N.json``: its
chunks and what its listing ledgered, which the commit publishes in shard order.

Example:
    >>> parse_shard("2/8"), job_of(5, 10, 3)
    ((2, 8), 1)
"""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path
from typing import Iterator

from .errors import UsageError
from .ledger import LedgerEntry
from .resume import read_manifest
from .store import write_text_atomic


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` (0 <= I < N) -> (I, N)."""
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise UsageError(f"--shard {text!r}: expected I/N, e.g. 0/8 (I from 0 to N-1)") from None
    if not (n >= 1 and 0 <= i < n):
        raise UsageError(f"--shard {text!r}: I must be between 0 and N-1 (SLURM: --array=0-{max(n - 1, 0)})")
    return i, n


def job_of(chunk: int, n_chunks: int, n_jobs: int) -> int:
    """The shard that writes ``chunk`` (contiguous runs of chunks per shard)."""
    return chunk * n_jobs // max(n_chunks, 1)


def n_chunks(n_images: int, shard_size: int) -> int:
    return -(-n_images // shard_size)


def job_file(work: Path, shard: int, of: int) -> Path:
    return work / f"job-{shard:05d}-of-{of:05d}.json"


def write_job(work: Path, shard: int, of: int, chunks: list[int], listing: list[LedgerEntry], scope: str) -> None:
    """Record that shard ``shard`` of ``of`` is done, with what its listing ledgered (``scope``:
    ``units`` when it listed only its own units, ``all`` when it listed the whole source)."""
    write_text_atomic(job_file(work, shard, of), json.dumps(
        {"shard": shard, "of": of, "chunks": chunks, "scope": scope, "listing": [e.to_dict() for e in listing]}))


def read_plan(work: Path) -> dict:
    try:
        return json.loads((work / "plan.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UsageError(f"nothing to commit: no shard has been built into {work} (run --shard I/N first)") from None


def committed(work: Path, fingerprint: str) -> tuple[dict[int, dict], list[dict]]:
    """The manifests of every chunk and the shards' job records (in shard order), after checking
    that every shard ran for this source and options and that every chunk file is whole; raises
    naming the shards that are missing or damaged."""
    plan = read_plan(work)
    if plan.get("fingerprint") != fingerprint:
        raise UsageError(f"the shards in {work} were built from another source or other options; run the "
                         "shards again with the same command, or remove the folder")
    jobs = sorted((json.loads(p.read_text(encoding="utf-8")) for p in work.glob("job-*-of-*.json")),
                  key=lambda j: j["shard"])
    if not jobs:
        raise UsageError(f"nothing to commit: no shard has finished in {work}")
    of = {j["of"] for j in jobs}
    if len(of) != 1:
        raise UsageError(f"shards of different counts ({sorted(of)}) in {work}; build them with one N")
    total = of.pop()
    chunks = plan.get("chunks", n_chunks(plan["images"], plan["shard_size"]))
    owner = {k: j["shard"] for j in jobs for k in j["chunks"]}
    manifests: dict[int, dict] = {}
    bad: set[int] = set(range(total)) - {j["shard"] for j in jobs}
    for k in range(chunks):
        m = read_manifest(work, k)
        if m is None:
            bad.add(owner.get(k, job_of(k, chunks, total)))
        else:
            manifests[k] = m
    if bad:
        names = ", ".join(f"{i}/{total}" for i in sorted(bad))
        raise UsageError(f"cannot commit: shard(s) {names} not built (or damaged) in {work}; run them with "
                         "--shard I/N, then --commit again")
    return manifests, jobs


# --- units: connectors that can list part of a source (camera folders) ------------------------------

def unit_plan(units: list[tuple[str, int]], shard_size: int) -> list[tuple[int, int]]:
    """(unit index, records) per chunk: each unit cut into pieces of at most ``shard_size``; no chunk
    holds two units, so a unit's chunks can all go to one shard."""
    plan = []
    for u, (_, count) in enumerate(units):
        for start in range(0, count, shard_size):
            plan.append((u, min(shard_size, count - start)))
    return plan


def unit_jobs(units: list[tuple[str, int]], n_jobs: int) -> list[int]:
    """The shard of each unit: contiguous runs of units holding about the same number of records."""
    total = max(1, sum(c for _, c in units))
    out, before = [], 0
    for _, count in units:
        out.append(min(n_jobs - 1, before * n_jobs // total))
        before += count
    return out


def planned_chunks(records, plan: list[tuple[int, int]], wanted) -> Iterator[tuple[int, list]]:
    """(chunk index, records) following ``plan``; ``wanted(k)`` False for chunks whose records the
    listing left out (another shard's units). A unit that yields another count than its file names
    said (the source changed while sharding) is an error."""
    from .errors import MalformedFileError

    it = iter(records)
    for k, (unit, n) in enumerate(plan):
        if not wanted(k):
            continue
        chunk = list(islice(it, n))
        if len(chunk) != n:
            raise MalformedFileError(f"unit {unit} listed {len(chunk)} images where {n} were planned",
                                     file="(source)", item=f"chunk {k}",
                                     expected="a source that does not change while it is ingested")
        yield k, chunk
    # run the listing to its end (a connector notes what no image matched after its last record)
    for rec in it:
        raise MalformedFileError("the source listed more images than its file names said", file="(source)",
                                 item=getattr(rec, "image_id", "?"),
                                 expected="a source that does not change while it is ingested")
