"""Camera health and effort per deployment, from the capture times (true, timezone-aware ones when
the deployments sheet gave them) and, after the decode pass, each image's brightness and colour:
active days, trigger gaps (a dead battery, a full card), days with abnormal trigger counts
(vegetation moving in the wind), blank share, near-black frames at night (no infrared), and a
day/night sanity check (images bright and in colour at "night", grey by "day": an AM/PM or zone
error). Independent detections (events of a species separated by ``gap``) for the report.

Pure functions over plain lists; :mod:`cvft_data.check_rules` turns them into findings.

Example:
    >>> from datetime import datetime
    >>> days = [datetime(2024, 1, d, 12) for d in (1, 2, 3, 14, 15)]
    >>> [(str(a.date()), str(b.date())) for a, b in trigger_gaps(days, min_days=7)]
    [('2024-01-03', '2024-01-14')]
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import median

#: Local hours taken as night and as day by the day/night check.
NIGHT_HOURS = set(range(0, 4)) | {22, 23}
DAY_HOURS = set(range(10, 16))
#: Mean brightness (0..1) under which a frame is near-black; colourfulness over which an image is
#: a colour (daylight) image rather than an infrared one.
DARK = 0.06
COLOURFUL = 0.04


@dataclass
class Capture:
    """What the checks know of one image of a deployment."""

    image_id: str
    time: datetime | None
    status: str
    labels: list[str] = field(default_factory=list)
    brightness: float | None = None
    colour: float | None = None


def parse_time(meta: dict) -> datetime | None:
    """The true local time (``meta.timestamp``), else the camera's clock (``meta.datetime``), as a
    naive local datetime."""
    for key in ("timestamp", "datetime"):
        text = (meta or {}).get(key)
        if text:
            try:
                return datetime.fromisoformat(text).replace(tzinfo=None)
            except ValueError:
                continue
    return None


def trigger_gaps(times: list[datetime], min_days: float) -> list[tuple[datetime, datetime]]:
    """Consecutive captures further apart than ``min_days``."""
    ts = sorted(times)
    return [(a, b) for a, b in zip(ts, ts[1:]) if b - a > timedelta(days=min_days)]


def abnormal_days(times: list[datetime], factor: float = 5.0, floor: int = 50) -> dict[str, int]:
    """Days with more triggers than ``factor`` times the deployment's median day (and ``floor``)."""
    per_day = Counter(t.date().isoformat() for t in times)
    if len(per_day) < 3:
        return {}
    typical = median(per_day.values())
    return {d: n for d, n in sorted(per_day.items()) if n >= floor and n > factor * typical}


def day_night_evidence(captures: list[Capture], min_images: int = 3) -> dict | None:
    """Colour share of night-hour and day-hour images; returned when night images are mostly in
    colour while day images are mostly grey (the clock is likely 12 hours or a zone off)."""
    night = [c.colour for c in captures if c.time and c.time.hour in NIGHT_HOURS and c.colour is not None]
    day = [c.colour for c in captures if c.time and c.time.hour in DAY_HOURS and c.colour is not None]
    if len(night) < min_images or len(day) < min_images:
        return None
    night_colour = sum(v > COLOURFUL for v in night) / len(night)
    day_colour = sum(v > COLOURFUL for v in day) / len(day)
    if night_colour > 0.5 and day_colour < 0.5:
        return {"night_images": len(night), "night_in_colour": round(night_colour, 3),
                "day_images": len(day), "day_in_colour": round(day_colour, 3)}
    return None


def independent_detections(captures: list[Capture], gap: timedelta = timedelta(minutes=30)) -> Counter:
    """Per species, events separated by more than ``gap`` (the ecologists' independence rule)."""
    last: dict[str, datetime] = {}
    out: Counter = Counter()
    for c in sorted((c for c in captures if c.time), key=lambda c: c.time):
        for sp in set(c.labels):
            if sp not in last or c.time - last[sp] > gap:
                out[sp] += 1
            last[sp] = c.time
    return out


def summary(captures: list[Capture], gap: timedelta = timedelta(minutes=30)) -> dict:
    """Effort and outcome of one deployment: images, active days, span, blank share, species, and
    independent detections (events of a species more than ``gap`` apart)."""
    times = sorted(c.time for c in captures if c.time)
    species: Counter = Counter(sp for c in captures for sp in set(c.labels))
    return {"images": len(captures), "active_days": len({t.date() for t in times}),
            "first": times[0].isoformat() if times else None, "last": times[-1].isoformat() if times else None,
            "blank_share": round(sum(c.status == "empty" for c in captures) / len(captures), 3) if captures else 0.0,
            "species_images": dict(species.most_common()),
            "independent_detections": dict(independent_detections(captures, gap).most_common()),
            "per_day": dict(sorted(Counter(t.date().isoformat() for t in times).items()))}


def by_deployment(rows: list[tuple[str | None, Capture]]) -> dict[str, list[Capture]]:
    out: dict[str, list[Capture]] = defaultdict(list)
    for dep, cap in rows:
        if dep:
            out[dep].append(cap)
    return out
