"""CSV reading shared by the CSV-based connectors: header detection, stripped cells, clear errors."""

from __future__ import annotations

import csv
import io

from cvft_data.errors import MalformedFileError


def read_rows(text: str, *, file: str) -> list[list[str]]:
    try:
        return [[c.strip() for c in row] for row in csv.reader(io.StringIO(text)) if any(c.strip() for c in row)]
    except csv.Error as exc:
        raise MalformedFileError(f"invalid CSV: {exc}", file=file, item=file, expected="comma-separated values") from None


def column_index(header: list[str], aliases: dict[str, tuple[str, ...]], *, file: str) -> dict[str, int]:
    """Map canonical column names to positions, accepting any alias (case-insensitive)."""
    low = [h.lower() for h in header]
    out = {}
    for key, names in aliases.items():
        for n in names:
            if n.lower() in low:
                out[key] = low.index(n.lower())
                break
        else:
            raise MalformedFileError(f"no {key} column (looked for {', '.join(names)})", file=file, item="header",
                                     expected=f"a header with one of {', '.join(names)}")
    return out
