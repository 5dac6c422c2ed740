"""Round trip of the real exports in ``../shared/fixtures/real``: ingest (skip) -> export (yolo,
coco) -> re-ingest, counting annotations that changed without a ledger entry ("silent changes").

For each source and exporter: the dataset's annotations per class (objects, or images for
classification), what the export ledger says it dropped, what the re-ingest kept and ledgered. A
silent change is an annotation missing (or appearing) that no ledger accounts for: with nothing
ledgered, the per-class difference; otherwise the difference of the totals.

    python bench/roundtrip_real.py              # prints one table per exporter
    python bench/roundtrip_real.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "fixtures" / "real"
sys.path.insert(0, str(ROOT / "tests"))   # the fixture list the tests use, one place


def _counts(info: dict) -> Counter:
    c: Counter = Counter()
    for s in info["splits"].values():
        c.update({k: v for k, v in s["class_counts"].items() if v})
    return c


def _images(info: dict) -> int:
    return sum(s["images"] for s in info["splits"].values())


def roundtrip(src: Path, fmt: str | None, to: str, work: Path) -> dict:
    import cvft_data
    from cvft_data.errors import CvftError

    row: dict = {"source": str(src.relative_to(REAL)), "exporter": to}
    try:
        info = cvft_data.ingest(src, work / "ds", format=fmt, on_error="skip")
    except CvftError as exc:
        return {**row, "status": f"ingest refused: {type(exc).__name__}"}
    try:
        summary = cvft_data.export(work / "ds", to, work / to)
    except CvftError as exc:
        return {**row, "status": f"export refused: {str(exc)[:60]}"}
    try:
        back = cvft_data.ingest(work / to, work / "back", on_error="skip")
    except CvftError as exc:
        return {**row, "status": f"re-ingest failed: {type(exc).__name__}: {str(exc)[:80]}"}
    a, b = _counts(info), _counts(back)
    exported_dropped = summary["ledger"]["annotations_dropped"]
    back_dropped = back["ledger"]["annotations_dropped"]
    ledgered = exported_dropped + back_dropped
    if ledgered == 0:
        silent = sum(abs(a[k] - b[k]) for k in set(a) | set(b))
    else:
        silent = abs(sum(a.values()) - ledgered - sum(b.values()))
    images_silent = abs(_images(info) - summary["ledger"]["images_dropped"] - back["ledger"]["images_dropped"]
                        - _images(back))
    return {**row, "status": "ok", "images": _images(info), "annotations": sum(a.values()),
            "export_ledgered": exported_dropped, "reingested": sum(b.values()), "reingest_ledgered": back_dropped,
            "silent_annotations": silent, "silent_images": images_silent,
            "export_ledger": summary["ledger"]["by_reason"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args()
    if not REAL.is_dir():
        print(f"no real fixtures at {REAL}", file=sys.stderr)
        return 1
    from test_real_fixtures import EXPECTED_CONNECTOR

    rows = []
    for to in ("yolo", "coco"):
        for rel, fmt in sorted(EXPECTED_CONNECTOR.items()):
            with tempfile.TemporaryDirectory() as tmp:
                rows.append(roundtrip(REAL / rel, fmt, to, Path(tmp)))
    for to in ("yolo", "coco"):
        print(f"\n## export to {to}\n")
        print("| source | images | annotations | export ledgered | re-ingested | re-ingest ledgered | silent |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            if r["exporter"] != to:
                continue
            if r["status"] != "ok":
                print(f"| {r['source']} | {r['status']} | | | | | |")
                continue
            print(f"| {r['source']} | {r['images']} | {r['annotations']} | {r['export_ledgered']} | {r['reingested']} "
                  f"| {r['reingest_ledgered']} | {r['silent_annotations'] + r['silent_images']} |")
        total = sum(r.get("silent_annotations", 0) + r.get("silent_images", 0) for r in rows if r["exporter"] == to)
        print(f"\nsilent changes through {to}: {total}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
