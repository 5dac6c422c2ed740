"""``cvft predict``: :func:`~cvft_train.predict.predict` over a source, written to a file or dataset,
resumable after a kill (see :mod:`cvft_train.prediction_output`).

Example:
    >>> import tempfile, pathlib, torch
    >>> from PIL import Image
    >>> from cvft_train.models import build_model
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> (tmp / "images").mkdir()
    >>> for i in range(3):
    ...     Image.new("RGB", (40, 30), (80 * i, 0, 0)).save(tmp / "images" / f"{i}.jpg")
    >>> net, _ = build_model("squeezenet1_1", 2, imgsz=64, pretrained=False)
    >>> torch.save({"model": net.state_dict(), "model_name": "squeezenet1_1", "classes": ["cat", "dog"],
    ...             "imgsz": 64}, tmp / "best.pt")
    >>> summary = predict_to(tmp / "best.pt", tmp / "images", tmp / "out" / "labels.csv", device="cpu")
    >>> summary["images"], summary["failed"], (tmp / "out" / "labels.csv").read_text().splitlines()[0][:17]
    (3, 0, 'image,label,score')
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from cvft_data.errors import UsageError
from cvft_data.progress import bar as progress_bar

from .devices import pick_device
from .predict import predict
from .prediction_output import (
    FORMATS,
    Journal,
    write_coco,
    write_csv,
    write_megadetector,
    write_sequences,
)
from .sources import open_source
from .trained import load_trained

log = logging.getLogger(__name__)


def predict_to(weights: str | os.PathLike, source: str | os.PathLike, out: str | os.PathLike, *, fmt: str = "csv",
               conf: float = 0.1, batch: int = 32, device: str = "auto", workers: int | None = None, topk: int = 5,
               layout: str | None = None, overwrite: bool = False, amp: str = "auto", progress=None,
               shard: tuple[int, int] | None = None) -> dict[str, Any]:
    """Predict every image of ``source`` into ``out`` (``fmt``: csv, megadetector, coco, dataset)
    and return a summary: images, failed, seconds, images_per_s, out. ``shard=(I, N)``: predict
    only the images at positions ``k % N == I`` into a shard journal beside ``out`` and stop;
    :func:`cvft_train.predict_shards.merge_predictions` writes ``out`` from all N."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown prediction format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise UsageError(f"{out} already exists; pass --overwrite to replace it")
    if Path(source).resolve() == out.resolve() or out.resolve().is_relative_to(Path(source).resolve()) \
            and Path(source).is_dir():
        raise UsageError(f"{out} is inside the source {source}: write predictions elsewhere (sources are read-only)")
    device = pick_device(device)
    signature, trained, kind = signature_of(weights, source, fmt=fmt, conf=conf, topk=topk, layout=layout, amp=amp,
                                            device=device)
    if shard is not None:
        from .prediction_output import shard_done, shard_journal_out

        if shard_done(out, *shard).exists():   # a retried array task: the shard is already there
            return {"shard": list(shard), "images": None, "out": str(shard_done(out, *shard)), "format": fmt}
        journal = Journal(shard_journal_out(out, *shard), {**signature, "shard": list(shard)})
    else:
        journal = Journal(out, signature)
    done = journal.open()
    if done:
        log.info("resuming: %d images already predicted in %s", len(done), journal.path)
    t0 = time.perf_counter()
    fresh = 0
    try:
        buffer: list[dict] = []
        only = (lambda k: k % shard[1] == shard[0]) if shard is not None else None
        shown = progress_bar(desc="predict", initial=len(done))
        for r in predict(trained, source, conf=conf, batch=batch, device=device, workers=workers, topk=topk,
                         layout=layout, skip=done, amp=amp, only=only):
            buffer.append(r)
            fresh += 1
            shown.update(1)
            if len(buffer) >= batch:
                journal.append(buffer)
                buffer = []
                if progress:
                    progress(len(done) + fresh)
        journal.append(buffer)
        shown.close()
        seconds = time.perf_counter() - t0
        total = len(done) + fresh
        if shard is not None:   # this shard's results are kept for the merge, which writes out
            journal.close()
            os.replace(journal.path, shard_done(out, *shard))
            return {"shard": list(shard), "images": total, "predicted_now": fresh, "seconds": round(seconds, 3),
                    "out": str(shard_done(out, *shard)), "format": fmt}
    except BaseException:
        journal.close()
        raise
    return publish(journal, out, trained, source, kind, fmt=fmt, conf=conf, topk=topk, layout=layout, workers=workers,
                   total=total, fresh=fresh, seconds=seconds)


def signature_of(weights, source, *, fmt: str, conf: float, topk: int, layout: str | None, amp: str,
                 device: str = "cpu") -> tuple[dict[str, Any], Any, str]:
    """(what a run's journal must match, the loaded model, the source kind): the same weights file,
    source and options, so an interrupted run or a shard is never mixed with another."""
    kind, _ = open_source(source, layout=layout)   # refuses what is not a source before any model loads
    trained = load_trained(weights, device=device)
    from .prediction_output import KIND_FORMATS
    if fmt not in KIND_FORMATS.get(trained.kind, ()):
        raise UsageError(f"--format {fmt}: a {trained.task} model writes {' or '.join(KIND_FORMATS[trained.kind])}")
    st = trained.path.stat()   # a run retrained since the interruption must not be mixed with it
    signature = {"weights": str(trained.path.resolve()), "weights_file": [st.st_size, int(st.st_mtime)],
                 "source": str(Path(source).resolve()), "format": fmt, "conf": conf, "topk": topk, "layout": layout,
                 "amp": amp}
    return signature, trained, kind


def publish(journal: Journal, out: Path, trained, source, kind: str, *, fmt: str, conf: float, topk: int,
            layout: str | None, workers: int | None, total: int, fresh: int, seconds: float) -> dict[str, Any]:
    """Write ``out`` from a complete journal, then remove the journal; returns the summary."""
    try:
        if total == 0:
            raise UsageError(f"{source} holds no image to predict on")
        _write(fmt, journal, out, trained, source, kind, conf=conf, topk=topk, layout=layout, workers=workers)
        # this run's failures and the interrupted one's; a dataset keeps them in its own ledger
        failed, ledger = _failures(journal, out, write=fmt != "dataset")
    finally:
        journal.close()
    journal.finish()
    return {"images": total, "failed": failed, "predicted_now": fresh, "seconds": round(seconds, 3),
            "images_per_s": round(fresh / seconds, 1) if seconds else 0.0, "out": str(out), "format": fmt,
            "source_kind": kind, "model": str(trained.path), "ledger": str(ledger) if ledger else None}


def _failures(journal: Journal, out: Path, *, write: bool) -> tuple[int, Path | None]:
    """How many images could not be predicted and, when there are any and ``write``,
    ``OUT.ledger.jsonl`` naming each and why (COCO results have no place for them; in the other
    formats they are in the output too)."""
    from cvft_data.ledger import Ledger

    ledger = Ledger()
    for r in journal.results():
        if r.get("failure"):
            ledger.note(r["file"], "not_predicted", "dropped_image", r["failure"])
    if not len(ledger) or not write:
        return len(ledger), None
    path = out.with_name(out.name + ".ledger.jsonl")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    ledger.write_jsonl(tmp)
    os.replace(tmp, path)
    return len(ledger), path


def _write(fmt: str, journal: Journal, out: Path, trained, source, kind: str, *, conf: float, topk: int,
           layout: str | None, workers: int | None) -> None:
    if fmt == "csv":
        write_csv(journal.results(), out, kind=trained.kind, topk=topk)
    elif fmt == "megadetector":
        write_megadetector(journal.results(), out, classes=trained.classes, kind=trained.kind, conf=conf,
                           model=trained.path.name)
    elif fmt == "coco":
        write_coco(journal.results(), out, classes=trained.classes, kind=trained.kind)
    elif fmt == "masks":
        from .prediction_masks import write_masks
        write_masks(journal.results(), out, classes=trained.classes)
    elif fmt == "coco_panoptic":
        from .prediction_masks import write_coco_panoptic
        write_coco_panoptic(journal.results(), out, classes=trained.classes, things=trained.extra["isthing"])
    else:
        from .prediction_dataset import write_dataset
        write_dataset(journal.results, source, out, trained, layout=layout, workers=workers or 0)
    sequences = out.with_name(out.name + ".sequences.csv")
    n = write_sequences(journal.results(), sequences)   # camera traps: the burst's most confident label
    if n:
        log.info("%d sequences summarised in %s", n, sequences)
