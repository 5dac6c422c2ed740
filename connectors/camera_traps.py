"""Camera-trap archives: ``year/set/site/subsite`` trees with EXIF times, species sheets and
MegaDetector output; and COCO Camera Traps JSON (LILA).

Pure parsing: :func:`parse_layout`, :func:`layout_fields`, :func:`sequences`, :func:`clock_problems`;
the species sheet in :mod:`connectors.species_sheet`, COCO Camera Traps in
:mod:`connectors.coco_camera_traps`.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict, deque
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from cvft_data.errors import (
    UsageError,
)
from cvft_data.paths import relpath_posix

from ._exif import read_exif, read_exifs
from ._json import load_json
from .base import (
    Confidence,
    Connector,
    ImageRecord,
    ObjectRecord,
    Score,
    is_hidden,
    is_image_name,
    register,
)
from .deployments import as_dict, deployment_of, read_deployments, true_time
from .megadetector import MdIndex, parse_megadetector, threshold_of
from .species_sheet import DEFAULT_BLANKS, read_species_sheet

DEFAULT_LAYOUT = "{year}/{set}/{site}/{subsite}"
DEFAULT_SEQUENCE_GAP_S = 60.0
#: Images per EXIF task sent to the builder's workers, and how many such tasks run ahead of the
#: folder being turned into records (bounded: results are small, but a folder can hold 100,000 images).
EXIF_TASK_IMAGES = 64
EXIF_TASKS_AHEAD = 16


def parse_layout(pattern: str) -> list[str]:
    """``"{year}/{set}/{site}/{subsite}"`` -> ``["year", "set", "site", "subsite"]``."""
    parts = [p for p in pattern.strip("/").split("/") if p]
    names = []
    for p in parts:
        m = re.fullmatch(r"\{(\w+)\}", p)
        if not m:
            raise UsageError(f"layout part {p!r} is not a {{name}} placeholder; e.g. {DEFAULT_LAYOUT}")
        names.append(m.group(1))
    return names


def layout_fields(rel_dir: str, fields: list[str]) -> dict[str, str]:
    parts = [p for p in rel_dir.split("/") if p]
    return {f: parts[i] for i, f in enumerate(fields) if i < len(parts)}


def sequences(times: list[datetime | None], gap_s: float) -> list[int]:
    """Sequence index of each capture (in the given order, one camera): a new sequence starts when
    the time since the previous capture exceeds ``gap_s`` or goes backwards; unknown times stand alone."""
    out, seq, prev = [], -1, None
    for t in times:
        if t is None or prev is None or (t - prev).total_seconds() > gap_s or t < prev:
            seq += 1
        out.append(seq)
        prev = t
    return out


def clock_problems(times: list[datetime | None], now: datetime) -> list[str | None]:
    """Per capture: ``before_2000``, ``in_future``, ``backwards`` (earlier than the previous file of
    the same camera), or None."""
    out, prev = [], None
    for t in times:
        p = None
        if t is not None:
            if t.year < 2000:
                p = "before_2000"
            elif t > now + timedelta(days=1):
                p = "in_future"
            elif prev is not None and t < prev:
                p = "backwards"
            if p in (None, "backwards"):  # implausible times do not become the reference
                prev = t
        out.append(p)
    return out


def _walk_dirs(root: Path) -> Iterator[tuple[Path, list[str]]]:
    """(folder, sorted image file names) for every folder, in sorted order."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not is_hidden(d))
        files = sorted(f for f in filenames if not is_hidden(f) and is_image_name(f))
        if files:
            yield Path(dirpath), files


@register
class CameraTrapConnector(Connector):
    """A camera-trap archive: one folder per camera, species in a sheet, optionally MegaDetector boxes.

    ::

        root/                               (layout {year}/{set}/{site}/{subsite}, configurable)
        └── 2019/
            └── set_01/
                └── site_017/
                    ├── cam_A/IMG_0001.JPG  EXIF DateTimeOriginal, Make, Model, serial
                    └── cam_B/IMG_0001.JPG  (the same file name in every camera)

    Each path component goes to ``meta`` (``year``, ``set``, ``site``, ``subsite``), with the EXIF
    capture time (``datetime``, ISO 8601), camera make/model/serial, and the ``sequence`` (a burst:
    captures of one camera closer than ``sequence_gap`` seconds). ``group`` is the site by default
    (``group_by=subsite|sequence``). Clock problems (before 2000, in the future, going backwards
    within a camera) are ledgered, not hidden.

    With ``species=SHEET`` (CSV or Excel, joined by relative path, or file name plus site): one
    species -> classification, several -> multi-label, a blank name -> a null image, no record ->
    unlabeled, a record with no image -> ledgered. With ``megadetector=MD.json`` too: a species
    detection dataset (each animal box takes the image's species when it has exactly one).
    """

    name = "camera_trap"
    summary = "camera-trap archive (year/set/site/subsite, EXIF, species sheet, MegaDetector)"
    options_help = {
        "layout": f"folder pattern (default {DEFAULT_LAYOUT})",
        "species": "species sheet (CSV or Excel)",
        "deployments": "deployments sheet (CSV or Excel): deployment, latitude, longitude, timezone, clock_offset, "
                       "start, end, camera_model, ...",
        "megadetector": "MegaDetector batch output JSON",
        "md_threshold": "MegaDetector confidence cut (default: the file's typical threshold, else 0.2)",
        "group_by": "site (default) | subsite | sequence",
        "sequence_gap": f"seconds between captures that start a new sequence (default {DEFAULT_SEQUENCE_GAP_S:g})",
        "blank_values": "comma-separated species names meaning 'nothing there' (default: none,empty,blank,...)",
        "path_column": "sheet column with the relative path", "file_column": "sheet column with the file name",
        "species_column": "sheet column with the species", "site_column": "sheet column with the site",
    }

    cli_flags = {"layout": {}, "species": {"metavar": "SHEET"}, "deployments": {"metavar": "SHEET"}, "megadetector": {"metavar": "MD.json"},
                 "md_threshold": {"type": float}, "group_by": {"choices": ("site", "subsite", "sequence")},
                 "sequence_gap": {"type": float}}

    def __init__(self, root, **kwargs):
        super().__init__(root, **kwargs)
        self.fields = parse_layout(self.options.get("layout", DEFAULT_LAYOUT))
        self.group_by = self.options.get("group_by", "site")
        if self.group_by not in ("site", "subsite", "sequence"):
            raise UsageError(f"group_by must be site, subsite or sequence, not {self.group_by!r}")
        self.gap = float(self.options.get("sequence_gap", DEFAULT_SEQUENCE_GAP_S))
        self.now = datetime.now()
        self._sheet = None
        self._md = None
        self._deployments: dict | None = None
        #: camera folders to list (a shard's units); None: all of them
        self.only_units: set[str] | None = None

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        if not root.is_dir():
            return Confidence(Score.NO, "not a folder")
        top = [p.name for p in root.iterdir() if p.is_dir() and not is_hidden(p.name)]
        if top and all(re.fullmatch(r"(19|20)\d\d", n) for n in top):
            return Confidence(Score.LAYOUT, f"top-level folders are years ({', '.join(sorted(top)[:3])})")
        return Confidence(Score.NO, "top-level folders are not years (name the format: --format camera-trap)")

    # -- side files ------------------------------------------------------------------------------------
    def sheet(self):
        if self._sheet is None and "species" in self.options:
            blanks = tuple(b.strip() for b in str(self.options["blank_values"]).split(",")) \
                if "blank_values" in self.options else DEFAULT_BLANKS
            self._sheet = read_species_sheet(Path(self.options["species"]), blanks=blanks,
                                             **{k: self.options.get(k) for k in ("path_column", "file_column",
                                                                                 "species_column", "site_column")})
        return self._sheet

    def deployments(self) -> dict:
        if self._deployments is None:
            self._deployments = read_deployments(Path(self.options["deployments"])) if "deployments" in self.options \
                else {}
        return self._deployments

    def md(self):
        if self._md is None and "megadetector" in self.options:
            p = Path(self.options["megadetector"])
            doc = load_json(p)
            thr = threshold_of(doc, self.options.get("md_threshold"))
            cats, images = parse_megadetector(doc, thr, file=p.name)
            self._md = (p.name, cats, {m.file: m for m in images}, thr, MdIndex([m.file for m in images]))
            below = sum(m.below for m in images)
            if below:
                self.policy.note(p.name, "md_below_threshold", "filtered",
                                 f"{below} detections under the confidence threshold {thr} were not used")
        return self._md

    @property
    def task(self) -> str:
        if self.md() is not None:
            return "detection"
        sheet = self.sheet()
        if sheet is None:
            return "classification"
        return "multilabel" if any(len(v) > 1 for v in sheet[1].values()) else "classification"

    def categories(self) -> list[str]:
        sheet, md = self.sheet(), self.md()
        species = sorted({s for v in sheet[1].values() for s in v}) if sheet else []
        if md is None:
            return species
        md_names = [md[1][k] for k in sorted(md[1], key=lambda k: int(k) if k.isdigit() else k)]
        if not sheet:
            return md_names
        used = {c for m in md[2].values() for c, _, _ in m.detections}
        return species + [n for n in md_names if n != "animal" and n in used]

    def source_info(self) -> dict:
        out: dict[str, Any] = {"camera_trap": {"layout": self.fields, "group_by": self.group_by,
                                               "sequence_gap_s": self.gap}}
        if self.md() is not None:
            out["megadetector"] = {"file": self.md()[0], "threshold": self.md()[3]}
        if self.deployments():
            out["camera_trap"]["deployments"] = [as_dict(d) for d in self.deployments().values()]
        return out

    # -- records ---------------------------------------------------------------------------------------
    def units(self) -> list[tuple[str, int]]:
        """The camera folders (path relative to the archive, image count) in record order, from names
        alone: what a sharded ingest gives whole to one shard (its sequences and clock checks, and
        its EXIF reads, stay in that shard)."""
        return [(self._rel_dir(folder), len(files)) for folder, files in _walk_dirs(self.root)]

    def _rel_dir(self, folder: Path) -> str:
        rel = relpath_posix(folder, self.root)
        return "" if rel == "." else rel

    def _dirs(self) -> Iterator[tuple[Path, list[str]]]:
        """The camera folders this listing covers: all, or a shard's (``only_units``)."""
        only = self.only_units
        for folder, files in _walk_dirs(self.root):
            if only is None or self._rel_dir(folder) in only:
                yield folder, files

    def count_records(self) -> int:
        """The number of records, from the file names alone (no EXIF read): one per image."""
        return sum(len(files) for _, files in _walk_dirs(self.root))

    def _sheet_key(self, kind: str, rel: str, meta: dict):
        if kind == "relpath":
            return rel.lower()
        name = PurePosixPath(rel).name.lower()
        if kind == "site_file":
            return (str(meta.get("site", "")).lower(), name)
        return name

    def records(self) -> Iterator[ImageRecord]:
        sheet, md = self.sheet(), self.md()
        task = self.task
        names = set(self.categories())
        file_counts: dict[str, int] = defaultdict(int)
        if sheet is not None and sheet[0] == "file":
            for _, files in _walk_dirs(self.root):
                for f in files:
                    file_counts[f.lower()] += 1
        for folder, files, exifs in self._folders_with_exif():
            rel_dir = relpath_posix(folder, self.root)
            rel_dir = "" if rel_dir == "." else rel_dir
            meta_dir = layout_fields(rel_dir, self.fields)
            dep = deployment_of(rel_dir, meta_dir, self.deployments()) if self.deployments() else None
            if self.deployments():
                self._note_deployment(rel_dir, dep, len(files))
            # the checks run on the true time when the deployment gives it (the raw EXIF stays in meta)
            true = [true_time(e["datetime"], dep) if dep is not None and e["datetime"] else None for e in exifs]
            times = [t.replace(tzinfo=None) if t else e["datetime"] for t, e in zip(true, exifs)]
            seqs = sequences(times, self.gap)
            clocks = clock_problems(times, self.now)
            window = dep.window() if dep is not None else (None, None)
            for f, ex, seq, clock, ts in zip(files, exifs, seqs, clocks, true):
                rel = f"{rel_dir}/{f}".strip("/")
                meta: dict[str, Any] = dict(meta_dir)
                if len(rel_dir.split("/")) < len(self.fields) or not rel_dir:
                    meta["layout_mismatch"] = True
                meta["datetime"] = ex["datetime"].isoformat() if ex["datetime"] else None
                meta["camera"] = rel_dir
                if dep is not None:
                    meta["deployment"] = dep.id
                    meta["timestamp"] = ts.isoformat() if ts else None
                    if ts and ((window[0] and ts < window[0]) or (window[1] and ts > window[1])):
                        clock = clock or "outside_deployment"
                meta["sequence"] = f"{rel_dir}#{seq}"
                for k in ("make", "model", "serial"):
                    if ex[k]:
                        meta[k] = ex[k]
                group = {"site": meta.get("site") or rel_dir, "subsite": rel_dir,
                         "sequence": meta["sequence"]}[self.group_by]
                rec = ImageRecord(image_id=rel, path=folder / f, group=group, meta=meta, header=ex["header"])
                if clock:
                    rec.note(f"clock_{clock}", "kept", f"capture time {meta['datetime']} ({clock.replace('_', ' ')})")
                if ex["datetime"] is None:
                    rec.note("no_capture_time", "kept", "no EXIF DateTimeOriginal: the image is its own sequence")
                species: list[str] | None = None
                if sheet is not None:
                    key = self._sheet_key(sheet[0], rel, meta)
                    if sheet[0] == "file" and file_counts[PurePosixPath(rel).name.lower()] > 1:
                        raise UsageError(f"{PurePosixPath(rel).name} exists in several cameras and the species sheet "
                                         "has no path or site column to tell them apart; add one (or "
                                         "--option path_column/site_column)")
                    if key in sheet[1]:
                        species = sheet[1][key]
                        rec.source_file = sheet[2][key]
                md_file = md[4].lookup(rel) if md is not None else None
                self._label(rec, species, md, md_file, task, names)
                yield rec
        if self.only_units is None:   # a shard's listing leaves them to the commit (orphan_notes)
            self.orphan_notes()

    def _note_deployment(self, rel_dir: str, dep, n_images: int) -> None:
        if dep is None:
            self.policy.note(rel_dir or ".", "no_deployment_row", "kept",
                             f"{n_images} images of a camera folder the deployments sheet has no row for: no "
                             "coordinates, time zone or clock correction", file=self.options["deployments"])

    def orphan_notes(self) -> None:
        """Ledger the side-file entries no image of the archive matches (deployment rows,
        MegaDetector entries, species records), from file names alone. Common (images moved, sheets
        of several seasons), so noted under every policy, never an error."""
        sheet, md, deployments = self.sheet(), self.md(), self.deployments()
        used_keys: set = set()
        used_deployments: set[str] = set()
        md_used: set[str] = set()
        for folder, files in _walk_dirs(self.root):
            rel_dir = self._rel_dir(folder)
            meta_dir = layout_fields(rel_dir, self.fields)
            if deployments:
                dep = deployment_of(rel_dir, meta_dir, deployments)
                if dep is not None:
                    used_deployments.add(dep.id)
            for f in files:
                rel = f"{rel_dir}/{f}".strip("/")
                if sheet is not None:
                    key = self._sheet_key(sheet[0], rel, meta_dir)
                    if key in sheet[1]:
                        used_keys.add(key)
                if md is not None:
                    hit = md[4].lookup(rel)
                    if hit:
                        md_used.add(hit)
        for dep_id in sorted(set(deployments) - used_deployments):
            self.policy.note(dep_id, "deployment_without_images", "ignored_file",
                             "deployments sheet row that no folder of the archive matches", file=self.options["deployments"])
        if md is not None:
            for f in sorted(set(md[2]) - md_used):
                self.policy.note(f, "md_entry_without_image", "dropped_image",
                                 "MegaDetector entry with no image in the archive", file=md[0],
                                 annotations=len(md[2][f].detections))
        if sheet is not None:
            for key in sorted(set(sheet[1]) - used_keys, key=str):
                self.policy.note(str(key), "record_without_image", "dropped_annotation",
                                 "species record with no image in the archive", file=sheet[2][key])

    def _folders_with_exif(self) -> Iterator[tuple[Path, list[str], list[dict]]]:
        """(folder, image names, their EXIF) for every folder. With the builder's pool
        (:attr:`executor`), the header reads run there, a few tasks ahead of the folder being
        labelled: reading ~10,000 headers a second, the main process would otherwise be the
        bottleneck of the whole ingest."""
        if self.executor is None:
            for folder, files in self._dirs():
                yield folder, files, [read_exif(folder / f) for f in files]
            return
        queued: deque = deque()  # (folder, files, futures), oldest first
        ahead = 0
        for folder, files in self._dirs():
            futures = [self.executor.submit(read_exifs, [folder / f for f in files[i:i + EXIF_TASK_IMAGES]])
                       for i in range(0, len(files), EXIF_TASK_IMAGES)]
            queued.append((folder, files, futures))
            ahead += len(futures)
            while ahead > EXIF_TASKS_AHEAD:
                folder, files, futures = queued.popleft()
                ahead -= len(futures)
                yield folder, files, [e for fut in futures for e in fut.result()]
        while queued:
            folder, files, futures = queued.popleft()
            yield folder, files, [e for fut in futures for e in fut.result()]

    def _label(self, rec: ImageRecord, species: list[str] | None, md, md_file, task: str, names: set[str]) -> None:
        if md is None:
            if species is None:
                rec.label_status = "unlabeled"
            elif not species:
                rec.label_status = "empty"
            elif task == "classification":
                rec.label, rec.label_status = species[0], "labeled"
            else:
                rec.labels, rec.label_status = list(species), "labeled"
            return
        m = md[2].get(md_file) if md_file else None
        if m is not None and m.failure:
            rec.note("md_failure", "kept", f"MegaDetector failed on it: {m.failure}")
        dets = m.detections if m is not None and not m.failure else []
        has_sheet = self._sheet is not None
        objs = []
        for k, (cat, conf, bbox) in enumerate(dets):
            name = cat
            if cat == "animal" and has_sheet:
                if species is None or len(species) != 1:
                    continue
                name = species[0]
            if name in names:
                objs.append(ObjectRecord(name, bbox=bbox, normalized=True, attributes={"confidence": conf,
                                                                                       "md_category": cat},
                                         ref=f"detection {k}"))
        animals = sum(1 for c, _, _ in dets if c == "animal")
        if not has_sheet:
            rec.objects = objs
            rec.label_status = "unlabeled" if m is None or m.failure else ("labeled" if objs else "empty")
            return
        if species is None:
            rec.label_status = "unlabeled"
            if dets:
                rec.note("md_boxes_without_record", "filtered", f"{len(dets)} detections, but no species record")
            return
        if not species:
            rec.label_status = "empty"
            if animals:
                rec.note("md_animals_on_blank", "filtered",
                         f"the sheet says nothing is there; {animals} MegaDetector animal boxes were not used")
            return
        if len(species) > 1 and animals:
            rec.note("several_species", "dropped_annotation",
                     f"{len(species)} species ({', '.join(species)}) for {animals} boxes: no box can be assigned")
        if species and not animals:
            rec.note("species_without_detection", "unlabeled",
                     f"the sheet says {', '.join(species)}, MegaDetector found no animal above the threshold")
        rec.objects = objs
        rec.label_status = "labeled" if any(o.category in species for o in objs) else "unlabeled"
