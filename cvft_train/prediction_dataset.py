"""Predictions as a cvft dataset: the source images with machine labels (``label_status``
``predicted``), ready for ``cvft check``, review and re-training.

A classifier's top-1 becomes ``label`` (multi-label: every label above 0.5) and its top-k go to
``meta.classifications``; a detector's boxes become objects with their ``score`` in the object
attributes. The source's groups and camera-trap facts (capture time, sequence) stay in ``group`` and
``meta``. Images that could not be decoded are ledgered by the builder as at any ingest.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from connectors.base import Confidence, Connector, ImageRecord, ObjectRecord

from .sources import open_source
from .trained import Trained


class PredictionsConnector(Connector):
    """The images of a predict source joined with their results (both in source order);
    ``results`` is a callable that returns a fresh iterator of them."""

    name = "cvft_predictions"
    summary = "images with cvft predict's machine labels"

    def __init__(self, source: Path, results, trained: Trained, layout: str | None = None):
        super().__init__(source, on_error="skip")
        self.results = results
        self.trained = trained
        self.layout = layout

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        return Confidence(0, "made by cvft predict, never detected")

    @property
    def task(self) -> str:
        return self.trained.task

    def categories(self) -> list[str]:
        return list(self.trained.classes)

    def source_info(self) -> dict:
        return {"predictions": {"model": str(self.trained.path), "kind": self.trained.kind}}

    def records(self) -> Iterator[ImageRecord]:
        _, images = open_source(self.root, layout=self.layout)
        by_file = None
        results = iter(self.results())
        for item in images:
            r = next(results, None)
            if r is None or r["file"] != item.file:   # the source changed since predict: join by name
                if by_file is None:
                    by_file = {x["file"]: x for x in self.results()}
                r = by_file.get(item.file)
            if r is None or (item.path is None and item.data is None):
                continue
            rec = ImageRecord(image_id=item.file, path=item.path, data=item.data, group=item.group,
                              meta=dict(item.meta), label_status="predicted")
            rec.meta.pop("split", None)
            if item.meta.get("split"):
                rec.split = item.meta["split"]
            if r.get("classifications"):
                rec.meta["classifications"] = r["classifications"]
                if self.trained.task == "multilabel":
                    rec.labels = [c for c, s in r["classifications"] if s >= 0.5]
                else:
                    rec.label = r["classifications"][0][0]
            for d in r.get("detections", []):
                rec.objects.append(ObjectRecord(category=d["category"], bbox=tuple(d["bbox"]), normalized=True,
                                                attributes={"score": d["conf"]}, ref=f"{item.file}#prediction"))
            yield rec


def write_dataset(results, source: str | os.PathLike, out: Path, trained: Trained, *, layout: str | None = None,
                  workers: int = 0) -> dict:
    from cvft_data.builder import BuildOptions, build_dataset

    conn = PredictionsConnector(Path(source), results, trained, layout)
    return build_dataset(conn, out, BuildOptions(on_error="skip", workers=workers, overwrite=True))
