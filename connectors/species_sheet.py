r"""Species sheets of camera-trap archives (CSV or Excel, e.g. a Timelapse export): pure reading of
the columns that name the image (relative path, or file name plus site) and its species.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "sheet.csv"
    >>> _ = p.write_text("RelativePath,File,Species\n2019/s1/site_a/cam1,IMG_1.JPG,fox\n2019/s1/site_a/cam1,IMG_2.JPG,none\n")
    >>> kind, species, _ = read_species_sheet(p)
    >>> kind, species["2019/s1/site_a/cam1/img_1.jpg"], species["2019/s1/site_a/cam1/img_2.jpg"]
    ('relpath', ['fox'], [])
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from cvft_data.errors import (
    MalformedFileError,
    UsageError,
)

DEFAULT_BLANKS = ("", "none", "empty", "blank", "nothing", "no animal", "no animals", "null", "nan")
_PATH_COLUMNS = ("relativepath", "relative_path", "path", "filepath", "file_path", "image_path")
_FILE_COLUMNS = ("file", "filename", "file_name", "image", "image_name", "img")
_SPECIES_COLUMNS = ("species", "common_name", "commonname", "label", "class", "animal", "taxon", "scientific_name")
_SITE_COLUMNS = ("site", "site_id", "location", "camera", "station", "subsite")


def _norm(s: Any) -> str:
    return str(s).replace("\\", "/").strip().strip("/").lower() if s is not None else ""


def _pick(columns: list[str], wanted: tuple[str, ...], explicit: str | None, what: str, file: str) -> str | None:
    if explicit:
        if explicit not in columns:
            raise UsageError(f"{file}: no column {explicit!r} for the {what}; columns are {columns}")
        return explicit
    low = {c.lower().replace(" ", "_"): c for c in columns}
    return next((low[w] for w in wanted if w in low), None)


def read_species_sheet(path: Path, *, path_column=None, file_column=None, species_column=None, site_column=None,
                       blanks=DEFAULT_BLANKS) -> tuple[str, dict[Any, list[str]], dict[Any, str]]:
    """A species sheet (CSV or Excel) -> (key kind, {key: [species, ...]}, {key: row description}).

    Keys are ``relpath`` (lower-cased relative path), ``site_file`` ((site, file name)) or ``file``.
    A blank species (``blanks``) gives an empty list: a verified null image. Several rows, or a
    cell with ``;``/``,``/``|``, give several species.
    """
    import polars as pl

    name = path.name
    try:
        if path.suffix.lower() in (".xlsx", ".xls", ".xlsm", ".ods"):
            df = pl.read_excel(path, infer_schema_length=0)
        else:
            df = pl.read_csv(path, infer_schema_length=0, truncate_ragged_lines=True)
    except Exception as exc:  # polars raises many types; all mean "not a readable table"
        raise MalformedFileError(f"cannot read the species sheet ({type(exc).__name__}: {exc})", file=str(path),
                                 item=name, expected="a CSV or Excel table with a header row") from None
    cols = df.columns
    pcol = _pick(cols, _PATH_COLUMNS, path_column, "relative path", name)
    fcol = _pick(cols, _FILE_COLUMNS, file_column, "file name", name)
    scol = _pick(cols, _SPECIES_COLUMNS, species_column, "species", name)
    site = _pick(cols, _SITE_COLUMNS, site_column, "site", name)
    if scol is None:
        raise MalformedFileError(f"no species column (looked for {', '.join(_SPECIES_COLUMNS)})", file=str(path),
                                 item="header", expected="a species column, or --option species_column=NAME")
    if pcol is None and fcol is None:
        raise MalformedFileError(f"no file column (looked for {', '.join(_PATH_COLUMNS + _FILE_COLUMNS)})",
                                 file=str(path), item="header", expected="a path or file-name column")
    blank = {b.lower() for b in blanks}
    entries: dict[Any, list[str]] = {}
    where: dict[Any, str] = {}
    if pcol and fcol and pcol != fcol:
        kind = "relpath"
        keys = [f"{_norm(d)}/{_norm(f)}".strip("/") for d, f in zip(df[pcol].to_list(), df[fcol].to_list())]
    elif pcol and "/" in "".join(_norm(v) for v in df[pcol].to_list()[:1000]):
        kind = "relpath"
        keys = [_norm(v) for v in df[pcol].to_list()]
    elif site:
        kind = "site_file"
        files = df[fcol or pcol].to_list()
        keys = [(_norm(s), PurePosixPath(_norm(f)).name) for s, f in zip(df[site].to_list(), files)]
    else:
        kind = "file"
        keys = [PurePosixPath(_norm(v)).name for v in df[fcol or pcol].to_list()]
    for i, (key, sp) in enumerate(zip(keys, df[scol].to_list()), start=2):
        names = [s.strip() for s in re.split(r"[;,|]", sp or "") if s.strip()]
        names = [s for s in names if s.lower() not in blank]
        lst = entries.setdefault(key, [])
        lst.extend(s for s in names if s not in lst)
        where.setdefault(key, f"{name} line {i}")
    return kind, entries, where
