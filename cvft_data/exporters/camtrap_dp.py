"""Export a camera-trap dataset as a Camtrap DP 1.0.2 package (TDWG), the format camtrapR,
camtraptor and GBIF's IPT read.

::

    PKG/
    ├── datapackage.json      profile, created, contributors, project, spatial, temporal, taxonomic
    ├── deployments.csv       one row per deployment (the camera folder or the deployments sheet's row)
    ├── media.csv             one row per image: timezone-aware timestamp, filePath media/..., EXIF
    ├── observations.csv      media-level (labels, boxes) and event-level (sequences) observations
    └── media/<deployment>/<image>

Times come from the deployments sheet (``cvft-ingest --deployments``): an image without a true,
timezone-aware time cannot be in a package and is left out (ledgered); nothing is invented. What a
strict package needs and the dataset lacks (coordinates, contributors, sampling design) is listed in
the summary's ``missing``. Project metadata: ``options`` (``cvft export --option KEY=VALUE``) or a
YAML file (``--option metadata=project.yaml``).
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

from ..errors import EmptyDatasetError, UsageError
from ..imageinfo import sniff_extension
from ..paths import safe_folder_name
from ._common import ExportContext, NameAllocator, write_image

VERSION = "1.0.2"
BASE = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}"
PROFILE = f"{BASE}/camtrap-dp-profile.json"
SCHEMAS = Path(__file__).parent / "camtrap_dp_schemas"
OPTIONS = {"title": "project title (default: the dataset folder's name)",
           "contributor": "'Name <email>' of the contact (repeat with ; for several)",
           "sampling_design": "simpleRandom|systematicRandom|clusteredRandom|experimental|targeted|opportunistic",
           "capture_method": "activityDetection (default) or timeLapse",
           "individual_animals": "true if individuals are identified (default false)",
           "file_public": "true if the media may be published (default false)",
           "predictions": "a `cvft predict --format dataset` output: its labels become machine observations of "
                          "the images this dataset leaves unlabeled",
           "metadata": "a YAML file holding any of these keys"}
_MEDIATYPE = {".jpg": "image/jpeg", ".png": "image/png", ".tif": "image/tiff", ".bmp": "image/bmp",
              ".gif": "image/gif", ".webp": "image/webp"}
_HUMAN, _VEHICLE = {"human", "person", "people"}, {"vehicle", "car", "truck"}


def table_fields(name: str) -> list[str]:
    """The column names of a Camtrap DP table, from the schema kept in the project."""
    return [f["name"] for f in json.loads((SCHEMAS / f"{name}-table-schema.json").read_text())["fields"]]


def export_camtrap_dp(dataset_dir: Path, out: Path, *, overwrite: bool = False, options: dict | None = None) -> dict:
    opts = _options(options or {})
    ctx = ExportContext(dataset_dir, out, overwrite)
    task = ctx.info["task"]
    if task not in ("classification", "multilabel", "detection"):
        ctx.abort()
        raise UsageError(f"Camtrap DP holds image labels and boxes; a {task} dataset cannot be written to it")
    try:
        tables = _Tables(ctx, opts, task)
        for split in ctx.dataset:
            for row in ctx.rows(split):
                tables.add(row)
        if not tables.media:
            raise EmptyDatasetError("no image has a timezone-aware time: ingest with --deployments SHEET (timezone "
                                    "column) so the package can say when each image was taken", file=str(dataset_dir),
                                    item="camtrap-dp", expected="images with meta.timestamp",
                                    ledger=[e.to_dict() for e in ctx.ledger])
        tables.events()
        missing = tables.write(ctx.staging)
        descriptor = _descriptor(ctx, opts, tables)
        missing += [k for k in ("contributors",) if not descriptor.get(k)]
        missing += [f"project.{k}" for k in ("samplingDesign",) if not descriptor["project"].get(k)]
        (ctx.staging / "datapackage.json").write_text(json.dumps(descriptor, indent=2, ensure_ascii=False),
                                                      encoding="utf-8")
    except BaseException:
        ctx.abort()
        raise
    return ctx.finish({"format": "camtrap-dp", "images": len(tables.media), "objects": len(tables.observations),
                       "missing": sorted(set(missing))})


def _options(options: dict) -> dict:
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise UsageError(f"--to camtrap-dp does not take option(s) {sorted(unknown)}; it takes {sorted(OPTIONS)}")
    out = dict(options)
    if "metadata" in out:
        import yaml

        doc = yaml.safe_load(Path(out.pop("metadata")).read_text(encoding="utf-8")) or {}
        if not isinstance(doc, dict):
            raise UsageError("the metadata YAML must be a mapping of option names to values")
        out = {**{k: v for k, v in doc.items() if k in OPTIONS}, **out}
    return out


class _Tables:
    """The three tables, built row by row."""

    def __init__(self, ctx: ExportContext, opts: dict, task: str):
        self.ctx, self.opts, self.task = ctx, opts, task
        info = ctx.info.get("source", {}).get("info", {}).get("camera_trap", {})
        self.sheet = {d["id"]: d for d in info.get("deployments") or []}
        self.deployments: dict[str, dict] = {}
        self.media: list[dict] = []
        self.observations: list[dict] = []
        self.by_sequence: dict[str, list[tuple[dict, list[dict]]]] = {}
        self.names = NameAllocator()
        self.public = str(opts.get("file_public", "false")).lower() == "true"
        self.n_obs = 0
        self.predictions, self.prediction_names = _predictions(opts.get("predictions"), task)

    def add(self, row: dict) -> None:
        meta = row.get("meta") or {}
        predicted = self.predictions.get(row["image_id"]) if row["label_status"] == "unlabeled" else None
        if predicted is not None:   # the model's labels stand in, as machine observations
            row = {**row, **{k: predicted[k] for k in ("label", "labels", "objects") if k in predicted},
                   "label_status": "predicted", "meta": {**meta, "classifications": (predicted.get("meta") or {}).get(
                       "classifications")}}
        ts = meta.get("timestamp")
        if not ts:
            self.ctx.ledger.note(row["image_id"], "no_true_time", "dropped_image",
                                 "no timezone-aware time (no deployments row with a timezone, or no EXIF time)",
                                 annotations=_n_annotations(row, self.task))
            return
        dep_id = meta.get("deployment") or meta.get("camera") or "unknown"
        dep = self.deployments.setdefault(dep_id, {"deploymentID": dep_id, "_times": [], "_meta": meta})
        dep["_times"].append(ts)
        media_id = f"m{len(self.media) + 1:07d}"
        ext = sniff_extension(bytes(row["image"]["bytes"][:16])) if row["image"].get("bytes") else \
            Path(row["image"]["path"]).suffix.lower()
        rel = f"media/{safe_folder_name(dep_id.replace('/', '_'))}/" + \
            self.names.name(row["image_id"], row["image"]).replace("/", "__")
        write_image(row["image"], self.ctx.staging / rel)
        exif = {k: meta[k] for k in ("make", "model", "serial", "datetime") if meta.get(k)}
        self.media.append({"mediaID": media_id, "deploymentID": dep_id,
                           "captureMethod": self.opts.get("capture_method", "activityDetection"), "timestamp": ts,
                           "filePath": rel, "filePublic": "true" if self.public else "false",
                           "fileName": Path(row["image_id"]).name, "fileMediatype": _MEDIATYPE.get(ext, "image/jpeg"),
                           "exifData": json.dumps(exif) if exif else ""})
        obs = self._observations(row, media_id, dep_id, ts,
                                 self.prediction_names if predicted is not None else self.ctx.class_names)
        self.observations += obs
        if meta.get("sequence"):
            self.by_sequence.setdefault(meta["sequence"], []).append((self.media[-1], obs))

    def _observations(self, row: dict, media_id: str, dep_id: str, ts: str, names: list[str]) -> list[dict]:
        base = {"deploymentID": dep_id, "mediaID": media_id, "eventStart": ts, "eventEnd": ts,
                "observationLevel": "media"}
        machine = row["label_status"] == "predicted"
        status = row["label_status"]
        if status == "empty":
            return [self._obs(base, "blank", None, "human")]
        if status == "unlabeled":
            return [self._obs(base, "unclassified", None, None)]
        if self.task == "classification":
            prob = _probability((row.get("meta") or {}).get("classifications"), names[row["label"]]) if machine else None
            return [self._obs(base, None, names[row["label"]], "machine" if machine else "human", prob)] \
                if row["label"] is not None else [self._obs(base, "unclassified", None, None)]
        if self.task == "multilabel":
            return [self._obs(base, None, names[i], "machine" if machine else "human") for i in row["labels"] or []] \
                or [self._obs(base, "unclassified", None, None)]
        out = []
        o, w, h = row["objects"], row["width"], row["height"]
        for i, (x, y, bw, bh) in enumerate(o["bbox"]):
            attrs = row["object_attributes"][i] or {}
            conf = attrs.get("confidence", attrs.get("score"))
            obs = self._obs(base, None, names[o["category"][i]], "machine" if conf is not None or machine else "human",
                            conf)
            obs.update({"count": 1, "bboxX": _unit(x / w), "bboxY": _unit(y / h),
                        "bboxWidth": _unit(bw / w, 1e-15), "bboxHeight": _unit(bh / h, 1e-15)})
            out.append(obs)
        return out or [self._obs(base, "unclassified", None, None)]

    def _obs(self, base: dict, kind: str | None, name: str | None, method: str | None, prob=None) -> dict:
        if kind is None:
            low = (name or "").lower()
            kind = "human" if low in _HUMAN else "vehicle" if low in _VEHICLE else "animal"
        self.n_obs += 1
        obs = {**base, "observationID": f"o{self.n_obs:07d}", "observationType": kind}
        if kind == "animal" and name:
            obs["scientificName"] = name
        elif name:   # the class name of a human or vehicle, so the package reads back into the same classes
            obs["observationTags"] = f"class:{name}"
        if method:
            obs["classificationMethod"] = method
        if prob is not None:
            obs["classificationProbability"] = round(float(prob), 6)
        return obs

    def events(self) -> None:
        """Event-level observations: one per sequence and species (or blank), the count the largest
        number of that species seen in one image of the event."""
        for seq, items in sorted(self.by_sequence.items()):
            per_kind: dict[tuple, int] = {}
            for _, obs in items:
                seen: dict[tuple, int] = {}
                for o in obs:
                    key = (o["observationType"], o.get("scientificName")
                           or (o.get("observationTags") or "").removeprefix("class:") or None)
                    seen[key] = seen.get(key, 0) + 1
                for key, n in seen.items():
                    per_kind[key] = max(per_kind.get(key, 0), n)
            times = sorted(m["timestamp"] for m, _ in items)
            event_id = safe_folder_name(seq.replace("/", "_").replace("#", "_"))
            for k, ((kind, name), n) in enumerate(sorted(per_kind.items(), key=str)):
                obs = {"observationID": f"{event_id}-{k}", "deploymentID": items[0][0]["deploymentID"], "eventID": event_id,
                       "eventStart": times[0], "eventEnd": times[-1], "observationLevel": "event",
                       "observationType": kind}
                if name and kind == "animal":
                    obs["scientificName"] = name
                elif name:
                    obs["observationTags"] = f"class:{name}"
                if kind in ("animal", "human", "vehicle"):
                    obs["count"] = n
                self.observations.append(obs)
            for _, obs in items:
                for o in obs:
                    o["eventID"] = event_id

    def write(self, staging: Path) -> list[str]:
        missing = []
        deps = []
        for dep_id, d in sorted(self.deployments.items()):
            sheet = self.sheet.get(dep_id, {})
            meta = d["_meta"]
            row = {"deploymentID": dep_id, "locationID": "/".join(str(meta[k]) for k in ("site", "subsite") if meta.get(k))
                   or dep_id, "locationName": sheet.get("location_name") or meta.get("site") or "",
                   "latitude": sheet.get("latitude"), "longitude": sheet.get("longitude"),
                   "coordinateUncertainty": sheet.get("coordinate_uncertainty"),
                   "deploymentStart": _window(sheet.get("start"), sheet.get("timezone")) or min(d["_times"]),
                   "deploymentEnd": _window(sheet.get("end"), sheet.get("timezone")) or max(d["_times"]),
                   "cameraID": sheet.get("camera_id") or meta.get("serial"),
                   "cameraModel": sheet.get("camera_model") or " ".join(str(meta[k]) for k in ("make", "model") if meta.get(k)),
                   "cameraHeight": sheet.get("camera_height"),
                   "baitUse": {True: "true", False: "false"}.get(sheet.get("bait"), ""),
                   "featureType": sheet.get("feature_type"), "habitat": sheet.get("habitat"),
                   "deploymentGroups": "|".join(f"{k}:{meta[k]}" for k in ("year", "set", "site") if meta.get(k)),
                   "deploymentTags": "|".join(f"{k}:{v}" if v else k for k, v in (sheet.get("tags") or {}).items()),
                   "deploymentComments": sheet.get("comments")}
            if row["latitude"] is None or row["longitude"] is None:
                missing.append(f"deployments.latitude/longitude ({dep_id})")
            deps.append(row)
        _write_csv(staging / "deployments.csv", table_fields("deployments"), deps)
        _write_csv(staging / "media.csv", table_fields("media"), self.media)
        _write_csv(staging / "observations.csv", table_fields("observations"), self.observations)
        self.deployment_rows = deps
        return missing


def _descriptor(ctx: ExportContext, opts: dict, tables: _Tables) -> dict:
    contributors = []
    for c in str(opts.get("contributor", "")).split(";"):
        c = c.strip()
        if c:
            name, _, email = c.partition("<")
            contributors.append({"title": name.strip(), **({"email": email.rstrip(">").strip()} if email else {}),
                                 "role": "contact" if not contributors else "contributor"})
    points = [[d["longitude"], d["latitude"]] for d in tables.deployment_rows
              if d["latitude"] is not None and d["longitude"] is not None]
    times = sorted(m["timestamp"] for m in tables.media)
    species = sorted({o["scientificName"] for o in tables.observations if o.get("scientificName")})
    project = {"title": opts.get("title") or ctx.out.name, "captureMethod": [opts.get("capture_method", "activityDetection")],
               "individualAnimals": str(opts.get("individual_animals", "false")).lower() == "true",
               "observationLevel": ["media", "event"] if tables.by_sequence else ["media"]}
    if opts.get("sampling_design"):
        project["samplingDesign"] = opts["sampling_design"]
    desc = {"profile": PROFILE, "name": safe_folder_name(ctx.out.name.lower()).replace(" ", "-"),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "contributors": contributors,
            "project": project,
            "spatial": {"type": "MultiPoint", "coordinates": points} if points else None,
            "temporal": {"start": times[0][:10], "end": times[-1][:10]},
            "taxonomic": [{"scientificName": s} for s in species],
            "resources": [{"name": n, "path": f"{n}.csv", "profile": "tabular-data-resource", "format": "csv",
                           "mediatype": "text/csv", "encoding": "utf-8",
                           "schema": f"{BASE}/{n}-table-schema.json"} for n in ("deployments", "media", "observations")]}
    return {k: v for k, v in desc.items() if v is not None and v != []} | {"resources": desc["resources"]}


def _predictions(path: str | None, task: str) -> tuple[dict[str, dict], list[str]]:
    """{image_id: row} and the class names of a ``cvft predict --format dataset`` output."""
    if not path:
        return {}, []
    from ..store import open_dataset, read_info, rows

    info = read_info(path)
    if info["task"] != task:
        raise UsageError(f"the predictions at {path} are {info['task']}, this dataset is {task}")
    columns = ["image_id", "label", "labels", "objects", "object_attributes", "meta", "label_status", "width", "height"]
    found = {r["image_id"]: r for ds in open_dataset(path).values() for r in rows(ds, columns)
             if r["label_status"] == "predicted"}
    return found, list(info["classes"])


def _window(text: str | None, zone: str | None) -> str | None:
    if not text or not zone:
        return None
    from datetime import datetime

    from connectors.deployments import parse_timezone

    t = datetime.fromisoformat(text)
    return (t if t.tzinfo else t.replace(tzinfo=parse_timezone(zone))).isoformat()


def _unit(v: float, lo: float = 0.0) -> float:
    return round(min(1.0, max(lo, v)), 6)


def _probability(classifications, name: str):
    for c, s in classifications or []:
        if c == name:
            return s
    return None


def _n_annotations(row: dict, task: str) -> int:
    if task == "detection":
        return len(row["objects"]["bbox"])
    if task == "multilabel":
        return len(row["labels"] or [])
    return int(row.get("label") is not None)


def _write_csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r[k]) for k in fields})
    path.write_text(buf.getvalue(), encoding="utf-8")
