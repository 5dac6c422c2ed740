r"""Deployment sheets of camera-trap archives (CSV or Excel): where and when each camera stood, its
time zone and clock error. Pure reading and time arithmetic; the camera-trap connector joins the
rows to its folders.

Columns: ``deployment`` (the deployment folder relative to the archive root, e.g.
``2019/set1/site00/A``, or a layout field value such as the subsite), ``latitude``, ``longitude``,
``timezone`` (an IANA name such as ``Australia/Sydney``, or ``+10:00``), and optional
``clock_offset`` (seconds to add to the camera's clock to get the true local time), ``start`` /
``end`` (the deployment window, local times), ``camera_model``, ``camera_height``, ``bait``,
``habitat``, ``feature_type``, ``tags`` (``key:value|key:value``), ``comments``.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "deployments.csv"
    >>> _ = p.write_text("deployment,latitude,longitude,timezone,clock_offset\n2019/s1/a/cam1,-33.9,151.2,Australia/Sydney,3600\n")
    >>> dep = read_deployments(p)["2019/s1/a/cam1"]
    >>> from datetime import datetime
    >>> true_time(datetime(2019, 7, 1, 6, 30), dep).isoformat()
    '2019-07-01T07:30:00+10:00'
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

from cvft_data.errors import MalformedFileError

COLUMNS = ("deployment", "latitude", "longitude", "timezone", "clock_offset", "start", "end", "camera_model",
           "camera_height", "bait", "habitat", "feature_type", "tags", "comments", "location_name",
           "coordinate_uncertainty", "camera_id")
REQUIRED = ("deployment",)
_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}


@dataclass(frozen=True)
class Deployment:
    """One row of the sheet, checked."""

    id: str
    latitude: float | None = None
    longitude: float | None = None
    timezone: str | None = None            # as written: an IANA name or ±HH:MM
    clock_offset_s: float = 0.0
    start: str | None = None               # local times, as written (ISO 8601)
    end: str | None = None
    extra: dict = field(default_factory=dict)   # camera_model, camera_height, bait, habitat, tags...

    @property
    def tz(self) -> tzinfo | None:
        return parse_timezone(self.timezone) if self.timezone else None

    def window(self) -> tuple[datetime | None, datetime | None]:
        """The deployment's start and end as aware datetimes (None where not given or no zone)."""
        return (_localize(self.start, self.tz), _localize(self.end, self.tz))


def parse_timezone(text: str) -> tzinfo:
    """An IANA zone (``Europe/Paris``) or a fixed offset (``+10:00``, ``-0330``, ``UTC``)."""
    t = text.strip()
    m = re.fullmatch(r"(?:UTC|GMT)?\s*([+-])(\d{1,2}):?(\d{2})?", t)
    if m:
        minutes = int(m.group(2)) * 60 + int(m.group(3) or 0)
        if minutes > 14 * 60:
            raise ValueError(f"offset {t} is beyond ±14:00")
        return timezone(timedelta(minutes=minutes if m.group(1) == "+" else -minutes))
    if t.upper() in ("UTC", "Z", "GMT"):
        return timezone.utc
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(t)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {t!r} (an IANA name such as Australia/Sydney, or +10:00)") from None


def true_time(camera_time: datetime, dep: Deployment) -> datetime | None:
    """The camera's clock reading corrected by the deployment's clock offset, in its zone (daylight
    saving applied by the IANA zone); None when the deployment has no zone."""
    tz = dep.tz
    if tz is None:
        return None
    local = camera_time.replace(tzinfo=None) + timedelta(seconds=dep.clock_offset_s)
    return local.replace(tzinfo=tz)


def _localize(text: str | None, tz: tzinfo | None) -> datetime | None:
    if not text or tz is None:
        return None
    t = datetime.fromisoformat(text)
    return t if t.tzinfo is not None else t.replace(tzinfo=tz)


def _number(value: str, lo: float, hi: float, what: str) -> float | None:
    if value in ("", None):
        return None
    v = float(value)
    if not lo <= v <= hi:
        raise ValueError(f"{what} {v} is outside [{lo}, {hi}]")
    return v


def _bool(value: str) -> bool | None:
    v = (value or "").strip().lower()
    if not v:
        return None
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"{value!r} is not true/false")


def _normalise_header(columns: list[str], file: str) -> dict[str, str]:
    """{sheet column: canonical name}; an unknown column raises with a "did you mean"."""
    out = {}
    for c in columns:
        key = c.strip().lower().replace(" ", "_").replace("-", "_")
        key = {"deployment_id": "deployment", "deploymentid": "deployment", "lat": "latitude", "lon": "longitude",
               "lng": "longitude", "tz": "timezone", "time_zone": "timezone", "offset": "clock_offset",
               "deployment_start": "start", "deployment_end": "end"}.get(key, key)
        if key not in COLUMNS:
            close = difflib.get_close_matches(key, COLUMNS, n=1)
            raise MalformedFileError(f"unknown column {c!r}" + (f"; did you mean {close[0]!r}?" if close else ""),
                                     file=file, item=c, expected="columns among " + ", ".join(COLUMNS))
        out[c] = key
    for r in REQUIRED:
        if r not in out.values():
            raise MalformedFileError(f"no {r!r} column", file=file, item="header",
                                     expected="a deployment column (the folder path or a layout field value)")
    return out


def read_deployments(path: Path) -> dict[str, Deployment]:
    """The sheet at ``path`` (CSV or Excel) -> {deployment: Deployment}; a bad cell raises
    :class:`MalformedFileError` naming the row and the column."""
    import polars as pl

    name = path.name
    try:
        if path.suffix.lower() in (".xlsx", ".xls", ".xlsm", ".ods"):
            df = pl.read_excel(path, infer_schema_length=0)
        else:
            df = pl.read_csv(path, infer_schema_length=0)
    except Exception as exc:  # polars raises many types; all mean "not a readable table"
        raise MalformedFileError(f"cannot read the deployments sheet ({type(exc).__name__}: {exc})", file=str(path),
                                 item=name, expected="a CSV or Excel table with a header row") from None
    header = _normalise_header(df.columns, str(path))
    out: dict[str, Deployment] = {}
    for i, raw in enumerate(df.iter_rows(named=True), start=2):
        row = {header[k]: ("" if v is None else str(v).strip()) for k, v in raw.items()}
        dep_id = row["deployment"].replace("\\", "/").strip("/")
        item = f"{name} line {i}"
        if not dep_id:
            raise MalformedFileError("empty deployment cell", file=str(path), item=item, expected="a deployment id")
        if dep_id in out:
            raise MalformedFileError(f"deployment {dep_id!r} appears twice", file=str(path), item=item,
                                     expected="one row per deployment")
        try:
            out[dep_id] = _deployment(dep_id, row)
        except ValueError as exc:
            raise MalformedFileError(str(exc), file=str(path), item=f"{item} ({dep_id})",
                                     expected="latitude in [-90, 90], longitude in [-180, 180], a known time zone, "
                                              "numbers for clock_offset/camera_height, ISO 8601 start/end") from None
    return out


def _deployment(dep_id: str, row: dict[str, str]) -> Deployment:
    tz = row.get("timezone") or None
    if tz:
        parse_timezone(tz)
    start, end = row.get("start") or None, row.get("end") or None
    for t in (start, end):
        if t:
            datetime.fromisoformat(t)
    extra: dict[str, Any] = {}
    for k in ("camera_model", "habitat", "feature_type", "comments", "location_name", "camera_id"):
        if row.get(k):
            extra[k] = row[k]
    if row.get("camera_height"):
        extra["camera_height"] = _number(row["camera_height"], 0, 100, "camera_height")
    if row.get("coordinate_uncertainty"):
        extra["coordinate_uncertainty"] = int(float(row["coordinate_uncertainty"]))
    if row.get("bait"):
        extra["bait"] = _bool(row["bait"])
    if row.get("tags"):
        extra["tags"] = dict(t.split(":", 1) if ":" in t else (t, "") for t in row["tags"].split("|") if t.strip())
    return Deployment(id=dep_id, latitude=_number(row.get("latitude", ""), -90, 90, "latitude"),
                      longitude=_number(row.get("longitude", ""), -180, 180, "longitude"), timezone=tz,
                      clock_offset_s=float(row.get("clock_offset") or 0), start=start, end=end, extra=extra)


def as_dict(dep: Deployment) -> dict:
    """The deployment as plain JSON (kept in ``cvft.json`` for exports)."""
    return {"id": dep.id, "latitude": dep.latitude, "longitude": dep.longitude, "timezone": dep.timezone,
            "clock_offset_s": dep.clock_offset_s, "start": dep.start, "end": dep.end, **dep.extra}


def deployment_of(rel_dir: str, fields: dict[str, str], deployments: dict[str, Deployment]) -> Deployment | None:
    """The row for a camera folder: its path relative to the archive, else the value of its deepest
    layout field that names a row (the subsite, then the site...)."""
    if rel_dir in deployments:
        return deployments[rel_dir]
    for value in reversed(list(fields.values())):
        if value in deployments:
            return deployments[value]
    return None
