"""Stream a connector's records into an Arrow ``DatasetDict`` on disk, in committed shards.

Plan: the records are cut into shards of consecutive records (a shard's size depends only on the
number of images, so a resumed run cuts the same shards). Each shard is written by one worker
process to its own Arrow file per split and committed by a manifest written last; the dataset is
the set of committed shards. Everything happens in ``.<out>.cvft-partial/`` beside the output; a
killed run leaves that folder, and running the same command again skips the committed shards.
When all shards are in, the ``save_to_disk`` layout is assembled (hard links, no copies) and renamed
into place, so ``out`` either does not exist or is complete.

Example:
    >>> import connectors, tempfile, pathlib
    >>> from cvft_data.sample import write_coco_sample
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> conn = connectors.get("coco")(write_coco_sample(tmp / "src", n_images=5), on_error="skip")
    >>> info = build_dataset(conn, tmp / "ds", BuildOptions(max_side=64))
    >>> info["images"], info["splits"]["train"]["images"]
    ({'storage': 'embedded', 'max_side': 64}, 4)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import xxhash

from . import __version__
from .assemble import assemble, cvft_json
from .errors import EmptyDatasetError, MalformedFileError, UsageError
from .guard import guarded, guarded_call, output_errors
from .ledger import ErrorPolicy, Ledger, LedgerEntry
from .outcome import refuse_empty
from .paths import prefetch
from .pool import start_pool
from .resume import chunk_digest, fsync_file, read_manifest, reusable
from .rows import RowContext, build_row, reset_caches, row_digest_text
from .schema import features_for
from .shards import committed, job_of, n_chunks, planned_chunks, read_plan, unit_jobs, unit_plan, write_job
from .shardwriter import ShardWriter, release_arenas
from .splits import SplitKey, assign_splits
from .stats import SplitStats
from .store import CVFT_JSON, LEDGER_JSONL, output_lock, partial_dir_for, replace_dir, write_text_atomic  # noqa: F401

log = logging.getLogger(__name__)

_MOD128 = 1 << 128
#: Images whose reading the kernel is asked to start ahead of the one being written.
PREFETCH_IMAGES = 32


@dataclass
class BuildOptions:
    """How to build. ``workers=0`` means one per CPU core; 1 writes in this process. ``on_error``
    is the connector's policy (left None, or the same)."""

    on_error: str | None = None
    reference: bool = False
    max_side: int | None = None
    split_ratios: dict[str, float] | None = None
    seed: int = 0
    workers: int = 1
    overwrite: bool = False
    progress: bool = False
    shard_size: int | None = None
    connector_options: dict[str, Any] = field(default_factory=dict)
    #: (I, N): write only shard I of N into the partial folder and stop (``--shard I/N``)
    shard: tuple[int, int] | None = None
    #: publish the shards already written (``--commit``)
    commit: bool = False


def shard_size_for(n_images: int) -> int:
    """Images per shard: about 64 shards, between 128 (a shard costs a task, a file and a manifest:
    smaller ones cost more than they save; measured in ``bench/``) and 1,000 images (bounded memory
    and fine-grained resume on millions of images)."""
    return max(128, min(1000, math.ceil(n_images / 64)))


# --- the worker side ------------------------------------------------------------------------

def write_shard(index: int, records: list, ctx: RowContext, on_error: str, work: Path) -> dict:
    """Write one shard (one Arrow file per split) and commit it with its manifest. Runs in a worker."""
    features = features_for(ctx.task, list(ctx.class_names))
    reset_caches()
    policy = ErrorPolicy(on_error, Ledger())
    writers: dict[str, Any] = {}
    stats: dict[str, SplitStats] = {}
    digest_sum = 0  # sum of row digests mod 2**128: independent of how the rows were cut into shards
    tmp_files: dict[str, Path] = {}
    try:
        for i, rec in enumerate(records):
            if i % PREFETCH_IMAGES == 0:
                _prefetch(records[i + PREFETCH_IMAGES:i + 2 * PREFETCH_IMAGES] if i else records[:2 * PREFETCH_IMAGES])
            split = rec.split
            if split not in writers:
                tmp_files[split] = work / f"shard-{index:06d}.{split}.arrow.tmp"
                writers[split] = ShardWriter(tmp_files[split], features)
                stats[split] = SplitStats(ctx.task)
            row = build_row(rec, ctx, policy, writers[split].arena)
            if row is None:
                continue
            digest_sum = (digest_sum + xxhash.xxh3_128_intdigest(split.encode() + b"\0"
                                                                 + row_digest_text(row).encode())) % _MOD128
            stats[split].add(row)
            del row["_xxh3"]
            writers[split].write(row)
        files = {}
        for split, w in writers.items():
            n = w.close()
            fsync_file(tmp_files[split])
            final = work / f"shard-{index:06d}.{split}.arrow"
            os.replace(tmp_files[split], final)
            files[split] = {"file": final.name, "rows": n, "bytes": final.stat().st_size}
    except BaseException:
        for w in writers.values():
            w.abort()
        for p in tmp_files.values():
            p.unlink(missing_ok=True)
        raise
    manifest = {"index": index, "files": files,
                "stats": {s: st.to_manifest()[0] for s, st in stats.items()},
                "class_counts": {s: st.to_manifest()[1] for s, st in stats.items()},
                "ledger": [e.to_dict() for e in policy.ledger], "digest_sum": f"{digest_sum:032x}",
                "records_digest": chunk_digest(records)}
    tmp = work / f"shard-{index:06d}.json.tmp"
    tmp.write_text(json.dumps(manifest), encoding="utf-8")
    fsync_file(tmp)
    os.replace(tmp, work / f"shard-{index:06d}.json")  # the commit
    return manifest


def _prefetch(records: list) -> None:
    """Start reading these records' image files (see :func:`~cvft_data.paths.prefetch`): on a cold
    page cache the disk works while this worker hashes and writes."""
    prefetch(rec.path for rec in records if rec.path is not None and rec.member is None and rec.data is None)


# --- the main side ---------------------------------------------------------------------------

def _chunks(it: Iterator, size: int) -> Iterator[list]:
    chunk: list = []
    for x in it:
        chunk.append(x)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _split_key(rec) -> SplitKey:
    if rec.label is not None:
        classes: tuple[str, ...] = (rec.label,)
    else:
        classes = tuple(sorted(set(rec.labels or []) | {o.category for o in rec.objects}
                               | {s.category for s in rec.segments}))
    return SplitKey(rec.image_id, rec.group, classes, rec.label_status == "empty")


def _fresh_records(connector, setup_entries: list[LedgerEntry]) -> Iterator:
    """A pass over the records whose ledger holds only what the connector noted while setting up
    (reading its configuration), so a second pass does not repeat the first one's entries."""
    connector.policy.ledger = Ledger(list(setup_entries))
    return guarded(connector.records(), source=str(connector.given), connector=connector.name)


def _plan_fingerprint(connector, opts: BuildOptions, n_images: int, shard_size: int) -> str:
    plan = {"cvft": __version__, "connector": connector.name, "root": str(Path(connector.root).resolve()),
            "options": opts.connector_options, "on_error": opts.on_error, "reference": opts.reference,
            "max_side": opts.max_side, "split_ratios": opts.split_ratios, "seed": opts.seed,
            "images": n_images, "shard_size": shard_size, "classes": list(connector.categories()),
            "task": connector.task}
    return hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()


def build_dataset(connector, out: str | os.PathLike, options: BuildOptions | None = None,
                  on_progress: Callable[[int], None] | None = None) -> dict:
    """Build the cvft dataset of ``connector``'s source at ``out``; returns the ``cvft.json`` content.

    Raises :class:`~cvft_data.errors.SourceError` under ``on_error="raise"`` at the first bad item,
    :class:`~cvft_data.errors.UsageError` if ``out`` exists and ``overwrite`` is false.
    """
    opts = options or BuildOptions()
    out = Path(out)
    if opts.shard and opts.commit:
        raise UsageError("--shard writes one shard, --commit publishes them all: give one of them")
    with contextlib.ExitStack() as locks:
        # the shards of one ingest share the output's lock (one-shot runs and the commit need it alone);
        # the same shard twice at once is refused
        locks.enter_context(output_lock(out, shared=bool(opts.shard)))
        if opts.shard:
            locks.enter_context(output_lock(out.parent / f"{out.name}.shard-{opts.shard[0]}"))
        return _build_locked(connector, out, opts, on_progress)


def _build_locked(connector, out: Path, opts: BuildOptions, on_progress) -> dict:
    if out.exists() and not opts.overwrite:
        raise UsageError(f"{out} already exists; pass --overwrite to replace it")
    policy = connector.policy.name   # the connector's context was made once; it is never swapped
    if opts.on_error not in (None, policy):
        raise UsageError(f"the connector was made with on_error={policy!r}, the build asks for {opts.on_error!r}; "
                         "make the connector with the policy the build should use")
    opts = replace(opts, on_error=policy)
    class_names = guarded_call(connector.categories, source=str(out_source := connector.given), connector=connector.name)
    if len(set(class_names)) != len(class_names):
        dupes = sorted(n for n, c in Counter(class_names).items() if c > 1)
        raise MalformedFileError(f"the source declares class names more than once: {dupes}", file=str(connector.given),
                                 item=str(dupes[0]), expected="each class name declared once")
    task = guarded_call(lambda: connector.task, source=str(out_source), connector=connector.name)
    setup_entries = list(connector.policy.ledger)
    ctx = RowContext(task=task, class_names=tuple(class_names), reference=opts.reference, max_side=opts.max_side,
                     image_roots=tuple(str(r) for r in connector.image_roots()),
                     ignore_index=getattr(connector, "ignore_index", 255))

    if opts.commit:
        with output_errors(out):
            return _commit(connector, out, opts, task, class_names)
    workers = opts.workers or os.cpu_count() or 1
    pool = start_pool(workers) if workers > 1 else None  # its start-up overlaps the first pass
    connector.context.executor = pool  # header reads while listing (camera-trap EXIF) run on the workers too
    try:
        with output_errors(out):
            return _build(_Build(connector, out, opts, on_progress, class_names, task, setup_entries, ctx, workers, pool))
    finally:
        connector.context.executor = None
        release_arenas()  # shards written in this process: do not keep their buffers after the build
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class _Build:
    """One build in progress: what :func:`build_dataset` settled before the two passes."""

    connector: Any
    out: Path
    opts: BuildOptions
    on_progress: Callable[[int], None] | None
    class_names: list[str]
    task: str
    setup_entries: list[LedgerEntry]
    ctx: RowContext
    workers: int
    pool: ProcessPoolExecutor | None


def _build(b: _Build) -> dict:
    connector, out, opts, on_progress, ctx, pool = b.connector, b.out, b.opts, b.on_progress, b.ctx, b.pool
    class_names, task, setup_entries, workers = b.class_names, b.task, b.setup_entries, b.workers

    # pass 1: count (and collect split keys when re-splitting); bad annotations raise here, early.
    # A connector that can count without parsing (count_records) is asked instead when no split is wanted.
    n_images, keys, n_bytes = 0, [], 0
    # a connector that lists its source in units (camera folders) is chunked by unit: a unit's chunks
    # go to one shard, which lists only its own units
    units = guarded_call(connector.units, source=str(connector.given), connector=connector.name) \
        if hasattr(connector, "units") else None
    quick = getattr(connector, "count_records", None)
    sharding = bool(opts.shard and units is not None and not opts.split_ratios)
    first_pass = _fresh_records(connector, setup_entries) if not sharding and \
        (opts.split_ratios or quick is None or opts.progress) else iter(())
    if units is not None and not opts.split_ratios and (sharding or not opts.progress):
        n_images = sum(count for _, count in units)   # the units walk counted them: no second walk
    elif quick is not None and not opts.split_ratios and not opts.progress:
        n_images = guarded_call(quick, source=str(connector.given), connector=connector.name)
    for rec in first_pass:
        n_images += 1
        if opts.split_ratios:
            keys.append(_split_key(rec))
        if opts.progress and rec.path is not None and rec.member is None:
            try:
                n_bytes += rec.path.stat().st_size
            except OSError:
                pass  # reported as a missing image when its shard is written
    if opts.progress:
        stored = "paths only (--reference)" if opts.reference and not opts.max_side else \
            (f"at most ~{n_bytes / 2**20:,.0f} MB (downscaled to {opts.max_side} px)" if opts.max_side
             else f"~{n_bytes / 2**20:,.0f} MB of image bytes")
        log.info("ingesting %s images with %s: the dataset will hold %s", f"{n_images:,}", connector.name, stored)
    assignment = assign_splits(keys, opts.split_ratios, opts.seed).splits if opts.split_ratios else None
    del keys
    shard_size = opts.shard_size or shard_size_for(n_images)

    work = partial_dir_for(out)
    fingerprint = _plan_fingerprint(connector, opts, n_images, shard_size)
    plan_file = work / "plan.json"
    if work.exists():
        try:
            same = json.loads(plan_file.read_text())["fingerprint"] == fingerprint
        except (OSError, ValueError, KeyError):
            same = False
        if not same and opts.shard:   # other shards may be writing here: never wipe their work
            raise UsageError(f"{work} holds shards of another source or other options; finish or remove them first")
        if not same:
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    plan = unit_plan(units, shard_size) if units is not None else None
    total_chunks = len(plan) if plan is not None else n_chunks(n_images, shard_size)
    write_text_atomic(plan_file, json.dumps({"fingerprint": fingerprint, "images": n_images, "shard_size": shard_size,
                                             "chunks": total_chunks}))
    mine = _mine(opts, units, plan, total_chunks)
    if sharding:
        jobs = unit_jobs(units, opts.shard[1])
        connector.only_units = {units[u][0] for u, j in enumerate(jobs) if j == opts.shard[0]}

    manifests: dict[int, dict] = {}
    pending: dict[Future, int] = {}
    committed_before = _committed(work, total_chunks, mine)
    resumed = {i: sum(f["rows"] for f in m["files"].values()) for i, m in committed_before.items()}
    if resumed:
        log.info("resuming the interrupted ingest in %s: %s of %s images already written, starting from there",
                 work, f"{sum(resumed.values()):,}", f"{n_images:,}")
    bar = _progress(n_images, opts.progress, initial=sum(resumed.values()))
    try:
        records = _fresh_records(connector, setup_entries)
        if assignment is not None:
            records = _with_splits(records, assignment)
        chunks = planned_chunks(records, plan, mine if sharding else (lambda k: True)) if plan is not None \
            else enumerate(_chunks(records, shard_size))
        for index, chunk in chunks:
            if not mine(index):
                continue
            committed = work / f"shard-{index:06d}.json"
            if committed.exists():
                manifest = committed_before.get(index)
                if manifest is not None and reusable(manifest, chunk):
                    manifests[index] = manifest
                    _advance(None, on_progress, len(chunk))   # the bar counted it from the start
                    continue
                if bar is not None:   # counted as resumed, but its records changed: written again
                    bar.update(-resumed.get(index, 0))
                committed.unlink()
            if pool is None or n_images <= shard_size:  # one shard: written here, no process hop
                manifests[index] = write_shard(index, chunk, ctx, opts.on_error, work)
                _advance(bar, on_progress, len(chunk))
                continue
            pending[pool.submit(write_shard, index, chunk, ctx, opts.on_error, work)] = len(chunk)
            while len(pending) >= 2 * workers:  # bounded memory: at most 2 shards per worker in flight
                _collect(pending, manifests, bar, on_progress, FIRST_COMPLETED)
        while pending:
            _collect(pending, manifests, bar, on_progress, FIRST_COMPLETED)
    finally:
        if bar is not None:
            bar.close()

    if opts.shard:   # this shard is done: the commit publishes
        write_job(work, *opts.shard, sorted(manifests), list(connector.policy.ledger)[len(setup_entries):],
                  "units" if sharding else "all")
        return {"shard": list(opts.shard), "chunks": sorted(manifests), "partial": str(work),
                "images": sum(f["rows"] for m in manifests.values() for f in m["files"].values())}
    return _publish(connector, out, opts, task, class_names, manifests, Ledger(list(connector.policy.ledger)), work)


def _commit(connector, out: Path, opts: BuildOptions, task: str, class_names: list[str]) -> dict:
    """Publish the shards in the partial folder (``--commit``) after checking every one is there."""
    work = partial_dir_for(out)
    plan = read_plan(work)
    manifests, jobs = committed(work, _plan_fingerprint(connector, opts, plan["images"], plan["shard_size"]))
    ledger = Ledger(list(connector.policy.ledger))   # what the connector said setting up
    if jobs[0].get("scope") == "units":   # each shard listed its own units: theirs in order, then the orphans
        for j in jobs:
            ledger.extend(LedgerEntry(**e) for e in j["listing"])
        before = len(connector.policy.ledger)
        connector.orphan_notes()
        ledger.extend(list(connector.policy.ledger)[before:])
    else:   # every shard listed the whole source: one listing is the listing
        ledger.extend(LedgerEntry(**e) for e in jobs[0]["listing"])
    return _publish(connector, out, opts, task, class_names, manifests, ledger, work)


def _publish(connector, out: Path, opts: BuildOptions, task: str, class_names: list[str], manifests: dict,
             ledger: Ledger, work: Path) -> dict:
    for i in sorted(manifests):
        ledger.extend(LedgerEntry(**e) for e in manifests[i]["ledger"])
    info = cvft_json(connector, opts, task, class_names, manifests, ledger)
    try:
        refuse_empty(info, ledger, root=connector.given, connector=connector.name)
    except EmptyDatasetError:
        shutil.rmtree(work, ignore_errors=True)  # nothing to resume: the next run starts over
        raise
    assemble(work, out, task, class_names, manifests, info, ledger, opts.overwrite)
    return info


def _mine(opts: BuildOptions, units, plan, total_chunks: int) -> Callable[[int], bool]:
    """Which chunks this run writes: all, or its shard's (by unit when the connector has units)."""
    if not opts.shard:
        return lambda k: True
    i, n = opts.shard
    if plan is None:
        return lambda k: job_of(k, total_chunks, n) == i
    jobs = unit_jobs(units, n)
    return lambda k: jobs[plan[k][0]] == i


def _with_splits(records: Iterator, assignment: list[str]) -> Iterator:
    for rec, split in zip(records, assignment):
        rec.split = split
        yield rec


def _progress(total: int, enabled: bool, initial: int = 0):
    if not enabled:
        return None
    from . import progress
    return progress.bar(total=total, desc="ingest (resumed)" if initial else "ingest", initial=initial)


def _committed(work: Path, total_chunks: int, mine) -> dict[int, dict]:
    """The whole shards a previous run committed, by index (:func:`read_manifest`): where a resumed
    ingest starts counting."""
    found = {}
    for index in range(total_chunks):
        if mine(index) and (work / f"shard-{index:06d}.json").exists():
            manifest = read_manifest(work, index)
            if manifest is not None:
                found[index] = manifest
    return found


def _advance(bar, on_progress, n: int) -> None:
    if bar is not None:
        bar.update(n)
    if on_progress is not None:
        on_progress(n)


def _collect(pending: dict, manifests: dict, bar, on_progress, how) -> None:
    done, _ = wait(list(pending), return_when=how)
    for fut in done:
        n = pending.pop(fut)
        m = fut.result()  # re-raises a worker's SourceError here, under the raise policy
        manifests[m["index"]] = m
        _advance(bar, on_progress, n)
