"""A mutation fuzzer over every connector's fake layout (hypothesis).

Each example takes a connector's fake source (``test_connector_contract.FAKES``), mutates one of
its annotation files (a number swapped for a hostile value, a byte flipped, the file cut short,
junk inserted) and ingests it under both policies. The invariant:

- the ingest ends in a dataset or in a cvft error (``CvftError``) that names a file or an item,
  never in a library's exception; and
- under ``skip``, where the input's annotations can be counted (COCO JSON, YOLO label lines, VOC
  objects), the annotations in the dataset plus those the ledger says were dropped equal the input's.

Bounded for CI (``CVFT_FUZZ_EXAMPLES`` examples per connector, 10 by default, derandomized); run
``CVFT_FUZZ_EXAMPLES=300 CVFT_FUZZ_RANDOM=1 pytest tests/test_fuzz_connectors.py`` to search longer.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from test_connector_contract import FAKES  # noqa: E402

import cvft_data  # noqa: E402
from builders import ledger_summary  # noqa: E402
from cvft_data.errors import CvftError, EmptyDatasetError, SourceError  # noqa: E402
from cvft_data.ledger import LedgerEntry  # noqa: E402

EXAMPLES = int(os.environ.get("CVFT_FUZZ_EXAMPLES", "10"))
TEXT_SUFFIXES = {".json", ".xml", ".txt", ".csv", ".yaml", ".yml", ".names", ".data"}
#: what a number in an annotation file is replaced with
HOSTILE = ["NaN", "-1", "0", "1e309", "-1e309", "99999999999999999999999999", "[]", "{}", "null", '"x"', "true",
           "1.5", "-0", "65536", "3"]
NUMBER = re.compile(rb"-?\d+(?:\.\d+)?")


def annotation_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES
                  and not p.name.startswith("README"))


@st.composite
def mutations(draw, n_files: int):
    """(file index, kind, position, payload): a mutation of one annotation file."""
    index = draw(st.integers(0, max(0, n_files - 1)))
    kind = draw(st.sampled_from(["number", "number", "number", "flip", "cut", "insert"]))
    position = draw(st.integers(0, 1 << 16))
    payload = draw(st.sampled_from(HOSTILE)) if kind == "number" else draw(st.binary(min_size=1, max_size=8))
    return index, kind, position, payload


def mutate(data: bytes, kind: str, position: int, payload) -> bytes:
    if kind == "number":
        spots = list(NUMBER.finditer(data))
        if not spots:
            return data
        m = spots[position % len(spots)]
        return data[:m.start()] + payload.encode() + data[m.end():]
    if not data:
        return payload
    at = position % len(data)
    if kind == "flip":
        return data[:at] + bytes([data[at] ^ (payload[0] or 1)]) + data[at + 1:]
    if kind == "cut":
        return data[:at]
    return data[:at] + payload + data[at:]


# --- counting the input's annotations ---------------------------------------------------------------

def _coco_count(root: Path) -> int | None:
    files = [p for p in root.rglob("*.json") if p.is_file()]
    total = 0
    for p in files:
        try:
            doc = json.loads(p.read_bytes())
        except ValueError:
            return None
        if not isinstance(doc, dict) or not isinstance(doc.get("annotations"), list):
            return None
        total += len(doc["annotations"])
    return total


def _yolo_count(root: Path) -> int | None:
    # lines as Ultralytics reads them (str.splitlines: \v, \f and \x1c-\x1e end lines too)
    return sum(1 for p in (root / "labels").rglob("*.txt")
               for ln in p.read_bytes().decode("utf-8", "replace").splitlines() if ln.strip())


def _voc_count(root: Path) -> int | None:
    return sum(p.read_bytes().count(b"<object>") for p in root.rglob("*.xml"))


COUNTERS = {"coco": _coco_count, "roboflow_coco": _coco_count, "weedai": _coco_count,
            "yolo": _yolo_count, "roboflow_yolo": _yolo_count, "voc": _voc_count}


def outcome(root: Path, out: Path, name: str, policy: str):
    """(cvft.json or None, ledger entries, error or None); a non-cvft exception propagates."""
    try:
        info = cvft_data.ingest(root, out, format=name, on_error=policy)
    except EmptyDatasetError as exc:
        return None, [LedgerEntry(**e) for e in exc.ledger], exc
    except CvftError as exc:
        if isinstance(exc, SourceError):
            assert exc.file or exc.item, f"{type(exc).__name__} names neither file nor item: {exc}"
        return None, [], exc
    return info, list(cvft_data.read_ledger(out)), None


def assert_no_empty_image_lost_annotations(ds_path: Path, ledger: list, what: str) -> None:
    """An image whose annotations were all rejected is unlabeled, never empty (a null image)."""
    dropped = {e.item.split("#", 1)[0] for e in ledger if e.action == "dropped_annotation" and "#" in e.item}
    if not dropped:
        return
    for split in cvft_data.load(ds_path).values():
        for image_id, status in zip(split["image_id"], split["label_status"]):
            assert not (status == "empty" and image_id in dropped), f"{what}: {image_id} lost annotations but is 'empty'"


def kept_annotations(info: dict) -> int:
    return sum(s["objects"] for s in info["splits"].values())


@pytest.mark.parametrize("name", sorted(FAKES))
def test_mutated_sources_end_in_a_dataset_or_a_clear_error(name, tmp_path_factory):
    base = tmp_path_factory.mktemp(f"fuzz-{name}")
    pristine = FAKES[name](base / "src")
    files = annotation_files(pristine)
    if not files:
        pytest.skip(f"{name}: no annotation file to mutate")
    runs = iter(range(1 << 30))

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("CVFT_FUZZ_RANDOM"),
              suppress_health_check=list(HealthCheck), database=None)
    @given(m=mutations(len(files)))
    def check(m):
        index, kind, position, payload = m
        k = next(runs)
        root = base / f"case{k}"
        shutil.copytree(pristine, root, symlinks=True)
        target = root / files[index].relative_to(pristine)
        target.write_bytes(mutate(target.read_bytes(), kind, position, payload))
        for policy in ("raise", "skip"):
            info, ledger, error = outcome(root, base / f"out{k}-{policy}", name, policy)
            if policy == "skip" and info is not None:
                assert_no_empty_image_lost_annotations(base / f"out{k}-{policy}", ledger, f"{name} {kind} {payload!r}")
            if policy == "skip" and name in COUNTERS and (error is None or isinstance(error, EmptyDatasetError)):
                expected = COUNTERS[name](root)
                if expected is not None:
                    kept = kept_annotations(info) if info is not None else 0
                    dropped = ledger_summary(ledger)["annotations_dropped"]
                    assert kept + dropped == expected, (
                        f"{name} {kind} {payload!r} in {target.name}: {kept} kept + {dropped} ledgered != {expected}")
        shutil.rmtree(root, ignore_errors=True)

    check()
