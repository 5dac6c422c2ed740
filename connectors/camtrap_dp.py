"""Camtrap DP packages (TDWG 1.0.2; Agouti, TRAPPER, Wildlife Insights, ``cvft export --to camtrap-dp``)
read into a classification, multi-label or detection dataset.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Iterator

from cvft_data.errors import MalformedFileError, MissingImageError, SourceError
from cvft_data.paths import safe_relative

from ._csv import read_rows
from .base import Confidence, Connector, ImageRecord, ObjectRecord, Score, register

_KIND_CLASS = {"human": "human", "vehicle": "vehicle"}


def read_table(path: Path) -> list[dict[str, str]]:
    """A Camtrap DP CSV table as dicts (header names as written)."""
    if not path.is_file():
        raise MalformedFileError("table missing", file=str(path), item=path.name, expected=f"{path.name} in the package")
    rows = read_rows(path.read_text(encoding="utf-8-sig"), file=path.name)
    if not rows:
        return []
    header = rows[0]
    return [dict(zip(header, r + [""] * (len(header) - len(r)))) for r in rows[1:]]


def _class_of(obs: dict) -> str | None:
    """The class an observation names: its scientific name, or (human, vehicle) the original class
    cvft kept in ``observationTags`` (``class:person``), or the observation type."""
    for tag in (obs.get("observationTags") or "").split("|"):
        if tag.startswith("class:"):
            return tag[len("class:"):]
    if obs.get("scientificName"):
        return obs["scientificName"]
    return _KIND_CLASS.get(obs.get("observationType", ""))


@register
class CamtrapDpConnector(Connector):
    """A Camtrap DP package with local media.

    ::

        PKG/
        ├── datapackage.json     profile .../camtrap-dp-profile.json
        ├── deployments.csv      deploymentID -> group
        ├── media.csv            mediaID, deploymentID, timestamp, filePath (inside the package)
        ├── observations.csv     media-level: species and boxes (bboxX/Y/Width/Height in 0..1)
        └── media/...

    Media-level observations label their image (boxes make a detection dataset); an image with only
    event-level observations takes those of its deployment whose event spans its timestamp. ``blank``
    is a null image, ``unclassified``/``unknown`` unlabeled. ``deploymentID`` is the group, the
    ``eventID`` the sequence, the timestamp kept in ``meta``. Media given as URLs are ledgered (cvft
    reads local files only).
    """

    name = "camtrap_dp"
    accepts_file = True
    summary = "Camtrap DP 1.0.x package (datapackage.json + deployments/media/observations CSV)"

    def __init__(self, root, **kwargs):
        super().__init__(root, **kwargs)
        self._tables: tuple[list, list, list] | None = None

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        p = root if root.is_file() else root / "datapackage.json"
        if p.name != "datapackage.json" or not p.is_file():
            return Confidence(Score.NO, "no datapackage.json")
        head = p.read_bytes()[:65536].decode("utf-8", "replace")
        if "camtrap-dp" in head:
            return Confidence(Score.SPECIFIC, "datapackage.json with the Camtrap DP profile")
        return Confidence(Score.NO, "datapackage.json without the Camtrap DP profile")

    def _load(self) -> tuple[list, list, list]:
        if self._tables is None:
            try:
                json.loads((self.root / "datapackage.json").read_bytes())
            except ValueError as exc:
                raise MalformedFileError(f"invalid JSON ({exc})", file="datapackage.json", item="datapackage.json",
                                         expected="a Data Package descriptor") from None
            self._tables = (read_table(self.root / "deployments.csv"), read_table(self.root / "media.csv"),
                            read_table(self.root / "observations.csv"))
        return self._tables

    def _media_observations(self) -> tuple[dict[str, list[dict]], dict[str, list[dict]]]:
        per_media: dict[str, list[dict]] = defaultdict(list)
        events: dict[str, list[dict]] = defaultdict(list)
        for o in self._load()[2]:
            if o.get("observationLevel") == "event":
                events[o.get("deploymentID", "")].append(o)
            elif o.get("mediaID"):
                per_media[o["mediaID"]].append(o)
        return per_media, events

    @property
    def task(self) -> str:
        per_media, events = self._media_observations()
        if any(o.get("bboxX") for obs in per_media.values() for o in obs):
            return "detection"
        several = any(len({_class_of(o) for o in obs if _class_of(o)}) > 1 for obs in per_media.values())
        return "multilabel" if several else "classification"

    def categories(self) -> list[str]:
        return sorted({c for o in self._load()[2] if (c := _class_of(o))})

    def source_info(self) -> dict:
        return {"camtrap_dp": {"deployments": self._load()[0]}}

    def records(self) -> Iterator[ImageRecord]:
        _, media, _ = self._load()
        per_media, events = self._media_observations()
        task = self.task
        for m in media:
            file_path = m.get("filePath", "")
            try:
                if "://" in file_path:
                    raise MissingImageError("media given as a URL", file="media.csv", item=m.get("mediaID", "?"),
                                            expected="a file inside the package (cvft reads local media)")
                rel = safe_relative(file_path, file="media.csv", item=m.get("mediaID", "?"))
            except SourceError as exc:
                self.policy.handle(exc, action="dropped_image", annotations=len(per_media.get(m.get("mediaID"), [])))
                continue
            obs = per_media.get(m.get("mediaID", "")) or self._event_observations(m, events)
            meta = {"deployment": m.get("deploymentID"), "timestamp": m.get("timestamp"),
                    "camtrap_dp": {"mediaID": m.get("mediaID"), "fileName": m.get("fileName")}}
            event = next((o.get("eventID") for o in obs if o.get("eventID")), None)
            if event:
                meta["sequence"] = event
            rec = ImageRecord(image_id=rel.as_posix(), path=self.root / rel, group=m.get("deploymentID") or None,
                              meta=meta, source_file="media.csv")
            self._label(rec, obs, task)
            yield rec

    @staticmethod
    def _event_observations(m: dict, events: dict[str, list[dict]]) -> list[dict]:
        ts = m.get("timestamp", "")
        return [o for o in events.get(m.get("deploymentID", ""), [])
                if o.get("eventStart", "") <= ts <= o.get("eventEnd", "")]

    def _label(self, rec: ImageRecord, obs: list[dict], task: str) -> None:
        classes = [c for o in obs if (c := _class_of(o))]
        if task == "detection":
            for k, o in enumerate(obs):
                if not (_class_of(o) and o.get("bboxX")):
                    continue
                try:
                    box = tuple(float(o[f"bbox{a}"]) for a in ("X", "Y", "Width", "Height"))
                except (KeyError, ValueError):
                    self.policy.handle(MalformedFileError("bbox values are not numbers", file="observations.csv",
                                                          item=o.get("observationID", f"#{k}"),
                                                          expected="bboxX/Y/Width/Height in 0..1"),
                                       action="dropped_annotation")
                    continue
                attrs = {"confidence": float(o["classificationProbability"])} \
                    if o.get("classificationMethod") == "machine" and o.get("classificationProbability") else {}
                rec.objects.append(ObjectRecord(_class_of(o), bbox=box, normalized=True, attributes=attrs,
                                                ref=o.get("observationID", f"observation {k}")))
        elif task == "multilabel":
            rec.labels = sorted(set(classes))
        elif classes:
            rec.label = classes[0]
        if rec.objects or rec.labels or rec.label:
            rec.label_status = "labeled"
        elif obs and all(o.get("observationType") == "blank" for o in obs):
            rec.label_status = "empty"
        else:
            rec.label_status = "unlabeled"
