"""Prediction outputs, written as predict goes and resumable after a kill.

Every result is appended to a journal beside the output (``.OUT.cvft-predict.jsonl``, one JSON line
per image, flushed each batch, locked against a second run). A killed run keeps its journal; the
same command run again skips the images already in it. When every image is done the journal is
turned into the output format in a temporary file that is renamed into place, then removed:

- ``csv``: a classifier writes one row per image (``image``, top-k labels and scores); a detector one
  row per box (``image``, ``category``, ``conf``, normalised ``x, y, w, h``), and one row with an
  empty category for an image without boxes, so every image is in the file;
- ``megadetector``: MegaDetector batch output 1.4 (Timelapse, AddaxAI and cvft's megadetector
  connector read it); a classifier's labels are the ``classifications`` of one whole-image detection;
- ``coco``: COCO results (``image_id``, ``category_id``, ``bbox`` in pixels, ``score``) with the file
  name and category name on each result;
- ``dataset``: a cvft dataset of the images with the predictions as annotations, ``label_status``
  ``predicted`` and the scores in ``meta`` / object attributes (see :mod:`cvft_train.prediction_dataset`).

A camera-trap source also gets ``OUT.sequences.csv``: per sequence (burst) the most confident label.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any, Iterator

from cvft_data.errors import UsageError

FORMATS = ("csv", "megadetector", "coco", "dataset", "masks", "coco_panoptic")
#: the formats each kind of model can write
KIND_FORMATS = {"classifier": ("csv", "megadetector", "coco", "dataset"),
                "yolo": ("csv", "megadetector", "coco", "dataset"),
                "segmenter": ("masks", "csv"), "mask2former": ("coco_panoptic", "csv")}


class Journal:
    """The append-only record of a predict run at ``out`` (see the module docstring)."""

    def __init__(self, out: Path, signature: dict[str, Any]):
        self.out = out
        self.path = out.parent / f".{out.name}.cvft-predict.jsonl"
        self.signature = signature
        self._file = None

    def open(self) -> set[str]:
        """Lock the journal and return the files it already holds (a partial last line is dropped)."""
        import fcntl

        self.out.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        self._file = open(self.path, "a+b")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.close()
            raise UsageError(f"another cvft predict is writing {self.out} ({self.path} is locked)") from None
        if fresh:
            self._write([{"cvft_predict": self.signature}])
            return set()
        self._file.seek(0)
        done: set[str] = set()
        good = 0
        for i, line in enumerate(self._file):
            try:
                doc = json.loads(line)
            except ValueError:
                break   # a line cut by the kill: everything after it is rewritten
            if not line.endswith(b"\n"):
                break
            if i == 0:
                if doc.get("cvft_predict") != self.signature:
                    self.close()
                    raise UsageError(f"{self.path} holds an interrupted predict run with other options "
                                     f"({doc.get('cvft_predict')}); run it again as it was, or delete that file")
            else:
                done.add(doc["file"])
            good += len(line)
        self._file.truncate(good)
        return done

    def _write(self, docs: list[dict]) -> None:
        self._file.seek(0, os.SEEK_END)
        self._file.write(b"".join(json.dumps(d, ensure_ascii=False).encode() + b"\n" for d in docs))
        self._file.flush()

    def append(self, results: list[dict]) -> None:
        self._write(results)

    def results(self) -> Iterator[dict]:
        with open(self.path, "rb") as f:
            next(f, None)
            for line in f:
                yield json.loads(line)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def finish(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


def shard_journal_out(out: Path, shard: int, of: int) -> Path:
    """The name a shard's (resumable) journal is kept under while it runs."""
    return out.with_name(f"{out.name}.shard-{shard:05d}-of-{of:05d}")


def shard_done(out: Path, shard: int, of: int) -> Path:
    return out.parent / f".{out.name}.shard-{shard:05d}-of-{of:05d}.done.jsonl"


def _tmp(out: Path) -> Path:
    return out.parent / f".{out.name}.{os.getpid()}.tmp"


def write_csv(results: Iterator[dict], out: Path, *, kind: str, topk: int) -> None:
    extra = ["group", "datetime", "sequence", "split", "error"]
    if kind in ("segmenter", "mask2former"):   # one row per image: each class's share of the pixels
        head = ["image", "class_pixels"]
    elif kind == "classifier":
        head = ["image", "label", "score"] + [f"{k}_{i}" for i in range(2, topk + 1) for k in ("label", "score")]
    else:
        head = ["image", "category", "conf", "x", "y", "w", "h"]
    tmp = _tmp(out)
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(head + extra)
        for r in results:
            tail = [r.get("group", ""), r.get("datetime", ""), r.get("sequence", ""), r.get("split", ""),
                    r.get("failure", "")]
            if kind in ("segmenter", "mask2former"):
                w.writerow([r["file"], json.dumps(r.get("class_pixels", {})), *tail])
            elif kind == "classifier":
                cells = [c for pair in r.get("classifications", []) for c in pair]
                w.writerow([r["file"], *cells, *[""] * (len(head) - 1 - len(cells)), *tail])
            elif r.get("detections"):
                for d in r["detections"]:
                    w.writerow([r["file"], d["category"], d["conf"], *d["bbox"], *tail])
            else:
                w.writerow([r["file"], "", "", "", "", "", "", *tail])
    os.replace(tmp, out)


def write_megadetector(results: Iterator[dict], out: Path, *, classes: list[str], kind: str, conf: float,
                       model: str) -> None:
    """MegaDetector batch output 1.4, streamed image by image."""
    ids = {name: str(i + 1) for i, name in enumerate(classes)}
    info = {"format_version": "1.4", "detector": f"cvft:{model}",
            "detection_completion_time": dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
            "detector_metadata": {"typical_detection_threshold": conf}}
    if kind == "classifier":
        detection_categories = {"1": "image"}   # one whole-image "detection" carries the labels
        head = {"info": {**info, "classifier": f"cvft:{model}"}, "detection_categories": detection_categories,
                "classification_categories": {v: k for k, v in ids.items()}}
    else:
        head = {"info": info, "detection_categories": {v: k for k, v in ids.items()}}
    tmp = _tmp(out)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "images": [')
        for i, r in enumerate(results):
            entry: dict[str, Any] = {"file": r["file"]}
            if r.get("failure"):
                entry["failure"] = r["failure"]
            elif kind == "classifier":
                labels = r.get("classifications", [])
                entry["detections"] = [{"category": "1", "conf": labels[0][1] if labels else 0.0,
                                        "bbox": [0.0, 0.0, 1.0, 1.0],
                                        "classifications": [[ids[c], s] for c, s in labels]}]
            else:
                entry["detections"] = [{"category": ids[d["category"]], "conf": d["conf"], "bbox": d["bbox"]}
                                       for d in r.get("detections", [])]
            for key in ("datetime",):
                if r.get(key):
                    entry[key] = r[key]
            f.write(("," if i else "") + "\n" + json.dumps(entry, ensure_ascii=False))
        f.write("\n]}\n")
    os.replace(tmp, out)


def write_coco(results: Iterator[dict], out: Path, *, classes: list[str], kind: str) -> None:
    """COCO results (a list), image ids numbered in source order from 1, category ids from 1."""
    tmp = _tmp(out)
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("[")
        for image_id, r in enumerate(results, start=1):
            if r.get("failure"):
                continue
            w, h = r["width"], r["height"]
            rows = []
            if kind == "classifier":
                for c, s in r.get("classifications", [])[:1]:
                    rows.append({"category_id": classes.index(c) + 1, "score": s})
            for d in r.get("detections", []):
                x, y, bw, bh = d["bbox"]
                rows.append({"category_id": classes.index(d["category"]) + 1, "score": d["conf"],
                             "bbox": [round(x * w, 3), round(y * h, 3), round(bw * w, 3), round(bh * h, 3)]})
            for row in rows:
                row = {"image_id": image_id, "file_name": r["file"], **row,
                       "category_name": classes[row["category_id"] - 1]}
                f.write(("," if n else "") + "\n" + json.dumps(row, ensure_ascii=False))
                n += 1
        f.write("\n]\n")
    os.replace(tmp, out)


def top_label(r: dict) -> tuple[str, float] | None:
    """The most confident label of one image's result (a classifier's top-1, a detector's best box)."""
    if r.get("classifications"):
        c, s = r["classifications"][0]
        return c, s
    if r.get("detections"):
        d = max(r["detections"], key=lambda d: d["conf"])
        return d["category"], d["conf"]
    return None


def write_sequences(results: Iterator[dict], out: Path) -> int:
    """Per sequence: its images, first capture time, group and the most confident label of the burst
    (nothing is written when no result has a sequence)."""
    seqs: dict[str, dict] = {}
    for r in results:
        key = r.get("sequence")
        if not key:
            continue
        s = seqs.setdefault(key, {"images": 0, "group": r.get("group", ""), "start": r.get("datetime") or "",
                                  "label": "", "score": -1.0})
        s["images"] += 1
        if r.get("datetime") and (not s["start"] or r["datetime"] < s["start"]):
            s["start"] = r["datetime"]
        best = top_label(r)
        if best and best[1] > s["score"]:
            s["label"], s["score"] = best
    if not seqs:
        return 0
    tmp = _tmp(out)
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["sequence", "group", "start", "images", "label", "score"])
        for key in sorted(seqs):
            s = seqs[key]
            w.writerow([key, s["group"], s["start"], s["images"], s["label"], s["score"] if s["label"] else ""])
    os.replace(tmp, out)
    return len(seqs)
