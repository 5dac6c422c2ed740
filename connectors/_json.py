"""JSON loading with errors that name the file, line and column."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cvft_data.errors import MalformedFileError


def load_json(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except json.JSONDecodeError as exc:
        raise MalformedFileError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                                 file=str(path), item=path.name, expected="a valid JSON document") from None
    except UnicodeDecodeError as exc:
        raise MalformedFileError(f"not UTF-8 text ({exc.reason})", file=str(path), item=path.name,
                                 expected="a UTF-8 JSON document") from None
