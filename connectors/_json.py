"""JSON loading with errors that name the file, line and column, and integers kept to what a
dataset can hold (64 bits: Arrow and the JSON reader of ``datasets`` refuse bigger ones, so such a
document is refused here instead of producing a dataset that cannot be read back).

Example:
    >>> loads_json(b'{"id": 3}', file="a.json")
    {'id': 3}
    >>> try:
    ...     loads_json(b'{"id": 123456789012345678901234567890}', file="a.json")
    ... except Exception as exc:
    ...     print(type(exc).__name__, "64 bits" in str(exc))
    MalformedFileError True
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cvft_data.errors import MalformedFileError

_LIMIT = 1 << 63


class _TooBig(ValueError):
    pass


def _int(text: str) -> int:
    value = int(text)
    if not -_LIMIT <= value < _LIMIT:
        raise _TooBig(text)
    return value


def _float(text: str) -> float:
    return float(text)


def loads_json(data: bytes | str, *, file: str, item: str | None = None) -> Any:
    """Parse ``data`` (a JSON document read from ``file``); a syntax error, bad UTF-8 or an
    integer beyond 64 bits is a :class:`MalformedFileError` naming the file."""
    item = item or Path(file).name
    try:
        return json.loads(data, parse_int=_int)
    except json.JSONDecodeError as exc:
        raise MalformedFileError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                                 file=file, item=item, expected="a valid JSON document") from None
    except UnicodeDecodeError as exc:
        raise MalformedFileError(f"not UTF-8 text ({exc.reason})", file=file, item=item,
                                 expected="a UTF-8 JSON document") from None
    except _TooBig as exc:
        raise MalformedFileError(f"integer {str(exc)[:40]} is beyond 64 bits", file=file, item=item,
                                 expected="integers between -2**63 and 2**63-1") from None
    except RecursionError:
        raise MalformedFileError("JSON nested too deeply", file=file, item=item,
                                 expected="a JSON document of reasonable depth") from None


def load_json(path: Path) -> Any:
    with open(path, "rb") as f:
        return loads_json(f.read(), file=str(path), item=Path(path).name)
