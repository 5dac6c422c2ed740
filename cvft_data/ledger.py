"""The ledger: every image or annotation that was dropped or changed, with its reason.

Nothing is dropped silently. Connectors and the builder report through an :class:`ErrorPolicy`;
under ``raise`` a :class:`~cvft_data.errors.SourceError` propagates, under ``skip`` it becomes a
:class:`LedgerEntry` and the caller drops or mends the item. Changes that are not errors (a box
clipped by less than a pixel is not one; a derived bbox is) are recorded with :meth:`Ledger.note`.

Example:
    >>> from cvft_data.ledger import ErrorPolicy
    >>> from cvft_data.errors import UnknownClassError
    >>> policy = ErrorPolicy("skip")
    >>> policy.handle(UnknownClassError("class id 7 not in names", file="a.txt", item="a.jpg#0"),
    ...               action="dropped_annotation")
    >>> policy.ledger.summary()["by_reason"]
    {'unknown_class': 1}
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

from .errors import SourceError, UsageError

PolicyName = Literal["raise", "skip"]

#: What happened to the item. ``dropped_*`` removed it; the others kept it in another form.
ACTIONS = (
    "dropped_image",        # the image and all its annotations are not in the dataset
    "dropped_annotation",   # one annotation is not in the dataset
    "clipped",              # geometry clipped to the image
    "converted",            # kept in another form (rotated box -> polygon, RLE -> polygon on export...)
    "derived",              # a missing field computed from the others (bbox from a polygon)
    "kept",                 # kept unchanged, but something about it deserves a look
    "ignored_file",         # a file in the source tree that is not part of the dataset
    "dropped_class",        # a declared class left out of the class list (e.g. Roboflow's synthetic root)
    "filtered",             # machine output below the threshold the user chose (MegaDetector confidence)
    "unlabeled",            # image kept, its annotations could not be read
)


@dataclass(frozen=True)
class LedgerEntry:
    """One dropped or changed item. ``item`` names the image (and annotation), ``reason`` is a
    short code, ``action`` one of :data:`ACTIONS`, ``detail`` the human sentence."""

    item: str
    reason: str
    action: str
    detail: str = ""
    file: str | None = None
    annotations: int = 0  # annotations lost with this item (a dropped image, an unreadable file)

    def to_dict(self) -> dict:
        d = {"item": self.item, "reason": self.reason, "action": self.action}
        if self.detail:
            d["detail"] = self.detail
        if self.file:
            d["file"] = self.file
        if self.annotations:
            d["annotations"] = self.annotations
        return d


@dataclass
class Ledger:
    """An append-only list of :class:`LedgerEntry`."""

    entries: list[LedgerEntry] = field(default_factory=list)

    def add(self, entry: LedgerEntry) -> None:
        self.entries.append(entry)

    def note(self, item: str, reason: str, action: str, detail: str = "", *, file: str | None = None,
             annotations: int = 0) -> None:
        """Record a change that is not an error (it is recorded under both policies)."""
        self.add(LedgerEntry(item, reason, action, detail, file, annotations))

    def extend(self, entries: Iterable[LedgerEntry]) -> None:
        self.entries.extend(entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)

    def summary(self) -> dict:
        """Counts by reason and by action, plus the annotations lost with dropped images."""
        return {
            "entries": len(self.entries),
            "by_reason": dict(sorted(Counter(e.reason for e in self.entries).items())),
            "by_action": dict(sorted(Counter(e.action for e in self.entries).items())),
            # one per dropped annotation, plus those lost with an image or a whole file
            "annotations_dropped": sum(1 for e in self.entries if e.action == "dropped_annotation")
            + sum(e.annotations for e in self.entries if e.action != "dropped_annotation"),
            "images_dropped": sum(1 for e in self.entries if e.action == "dropped_image"),
        }

    def write_jsonl(self, path: Path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            for e in self.entries:
                f.write(json.dumps(e.to_dict(), ensure_ascii=False) + "\n")

    @classmethod
    def read_jsonl(cls, path: Path) -> Ledger:
        ledger = cls()
        if Path(path).exists():
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        ledger.add(LedgerEntry(**json.loads(line)))
        return ledger


class ErrorPolicy:
    """Decides what a :class:`SourceError` does: ``raise`` it, or ``skip`` the item and ledger it."""

    def __init__(self, name: PolicyName = "raise", ledger: Ledger | None = None):
        if name not in ("raise", "skip"):
            raise UsageError(f"--on-error must be 'raise' or 'skip', not {name!r}")
        self.name: PolicyName = name
        self.ledger = ledger if ledger is not None else Ledger()

    @property
    def skipping(self) -> bool:
        return self.name == "skip"

    def handle(self, error: SourceError, *, action: str, annotations: int = 0) -> None:
        """Raise ``error`` under ``raise``; under ``skip`` write it to the ledger and return,
        after which the caller carries out ``action`` (drop or mend the item)."""
        if self.name == "raise":
            raise error
        self.ledger.add(LedgerEntry(
            item=error.item or error.file or "?", reason=error.code, action=action,
            detail=error.message + (f" (expected {error.expected})" if error.expected else ""),
            file=error.file, annotations=annotations,
        ))

    def note(self, *args, **kwargs) -> None:
        self.ledger.note(*args, **kwargs)


def as_policy(on_error: PolicyName | ErrorPolicy) -> ErrorPolicy:
    return on_error if isinstance(on_error, ErrorPolicy) else ErrorPolicy(on_error)


@dataclass
class IngestContext:
    """What an ingest hands its connector, made once and never swapped: the error policy (and its
    ledger), the connector's options, and while the builder lists records, its worker pool.

    >>> ctx = IngestContext.make("skip", threshold="0.3")
    >>> ctx.policy.skipping, ctx.options
    (True, {'threshold': '0.3'})
    """

    policy: ErrorPolicy
    options: dict = field(default_factory=dict)
    executor: Any = None   # a concurrent.futures.Executor while the builder lists records

    @classmethod
    def make(cls, on_error: PolicyName | ErrorPolicy = "raise", **options: Any) -> IngestContext:
        return cls(as_policy(on_error), dict(options))
