"""Ingest shards as a public contract: ``cvft-ingest SRC --out DS --shard I/N`` writes only shard I
of N (its share of the build's chunks) into the partial folder and exits; ``cvft-ingest SRC --out
DS --commit`` checks that every shard is there and publishes the dataset. SLURM job arrays and
Ray run the shards; nothing here schedules anything.

Each shard lists the whole source (so sequences and clock checks of a camera stay whole whichever
shard writes it) and writes the chunks ``k`` with ``k * N // chunks == I``: contiguous runs of the
sorted records, so a camera folder lands in one shard unless it straddles a chunk boundary. The
chunks are the ones a one-shot ingest writes, so the committed dataset is the same, row for row,
with the same content hash. A shard run twice reuses what it committed (verified). Each shard
leaves ``job-I-of-N.json``: its chunks and the ledger of the listing, which the commit publishes.

Example:
    >>> parse_shard("2/8"), job_of(5, 10, 3)
    ((2, 8), 1)
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import UsageError
from .ledger import Ledger, LedgerEntry
from .resume import arrow_rows
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


def write_job(work: Path, shard: int, of: int, chunks: list[int], ledger: Ledger) -> None:
    """Record that shard ``shard`` of ``of`` is done, with the listing's ledger (the commit's)."""
    write_text_atomic(job_file(work, shard, of), json.dumps(
        {"shard": shard, "of": of, "chunks": chunks, "ledger": [e.to_dict() for e in ledger]}))


def read_plan(work: Path) -> dict:
    try:
        return json.loads((work / "plan.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UsageError(f"nothing to commit: no shard has been built into {work} (run --shard I/N first)") from None


def committed(work: Path, fingerprint: str) -> tuple[dict[int, dict], Ledger]:
    """The manifests of every chunk and the listing's ledger, after checking that every shard ran
    for this source and options and that every chunk file is whole; raises naming what is missing."""
    plan = read_plan(work)
    if plan.get("fingerprint") != fingerprint:
        raise UsageError(f"the shards in {work} were built from another source or other options; run the "
                         "shards again with the same command, or remove the folder")
    jobs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(work.glob("job-*-of-*.json"))]
    if not jobs:
        raise UsageError(f"nothing to commit: no shard has finished in {work}")
    of = {j["of"] for j in jobs}
    if len(of) != 1:
        raise UsageError(f"shards of different counts ({sorted(of)}) in {work}; build them with one N")
    total = of.pop()
    chunks = n_chunks(plan["images"], plan["shard_size"])
    manifests: dict[int, dict] = {}
    missing_jobs: set[int] = set()
    for k in range(chunks):
        m = _manifest(work, k)
        if m is None:
            missing_jobs.add(job_of(k, chunks, total))
        else:
            manifests[k] = m
    missing_jobs |= set(range(total)) - {j["shard"] for j in jobs}
    if missing_jobs:
        names = ", ".join(f"{i}/{total}" for i in sorted(missing_jobs))
        raise UsageError(f"cannot commit: shard(s) {names} not built (or damaged) in {work}; run them with "
                         "--shard I/N, then --commit again")
    ledger = Ledger([LedgerEntry(**e) for e in jobs[0]["ledger"]])
    return manifests, ledger


def _manifest(work: Path, k: int) -> dict | None:
    p = work / f"shard-{k:06d}.json"
    try:
        m = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for f in m.get("files", {}).values():
        q = work / f["file"]
        if not q.is_file() or q.stat().st_size != f.get("bytes") or arrow_rows(q) != f["rows"]:
            return None
    return m
