"""Whether a finished ingest holds anything: zero images, or images whose every annotation was
dropped, is an error that says why and which other formats could read the source, never an empty
dataset published with exit 0.

Example:
    >>> from cvft_data.ledger import Ledger
    >>> info = {"task": "detection", "splits": {"train": {"images": 0, "objects": 0, "class_counts": {}}}}
    >>> try:
    ...     refuse_empty(info, Ledger(), root="src", connector="coco")
    ... except Exception as exc:
    ...     print(type(exc).__name__, str(exc).split(";")[0])
    EmptyDatasetError src read as coco holds no images
"""

from __future__ import annotations

from pathlib import Path

from .errors import EmptyDatasetError
from .ledger import Ledger

#: Ledger reasons shown in the message (the rest are counted).
SHOWN_REASONS = 4


def refuse_empty(info: dict, ledger: Ledger, *, root: str | Path, connector: str) -> None:
    """Raise :class:`EmptyDatasetError` when ``info`` (a ``cvft.json`` being built) has no image,
    or when annotations were dropped and none is left; the error carries the ledger."""
    splits = info["splits"].values()
    images = sum(s["images"] for s in splits)
    kept = sum(sum(s.get("class_counts", {}).values()) for s in splits)
    summary = ledger.summary()
    if images and (kept or not summary["annotations_dropped"]):
        return
    what = "holds no images" if not images else \
        f"kept {images} images but dropped every annotation ({summary['annotations_dropped']})"
    why = ", ".join(f"{n} {reason}" for reason, n in
                    sorted(summary["by_reason"].items(), key=lambda kv: -kv[1])[:SHOWN_REASONS])
    example = next(iter(ledger), None)
    parts = [f"{root} read as {connector} {what}",
             f"the ledger says: {why}" if why else "nothing was ledgered: the source has no images this format reads"]
    if example is not None:
        parts.append(f"e.g. {example.item}: {example.detail or example.reason}")
    others = _other_formats(root, connector)
    if others:
        parts.append(f"formats that may fit better: {others} (--format NAME; --list-formats shows why)")
    raise EmptyDatasetError("; ".join(parts), file=str(root), expected="at least one image with its annotations",
                            ledger=[e.to_dict() for e in ledger])


def _other_formats(root: str | Path, used: str) -> str:
    import connectors

    try:
        ranked = connectors.rank(root)
    except Exception:  # a suggestion must never hide the real error
        return ""
    return ", ".join(f"{cls.name} ({conf.reason})" for cls, conf in ranked if conf.score > 0 and cls.name != used)[:400]
