"""Where a library error from hostile input becomes a cvft error that names the file and item.

Connectors parse untrusted bytes with many libraries (json, zipfile, PIL, polars, defusedxml); each
checks what it can, and whatever still escapes as a ``KeyError``, ``TypeError``, ``OverflowError``
or ``BadZipFile`` is caught at the boundary, here, and reported as a
:class:`~cvft_data.errors.MalformedFileError` naming the source and the last item read (exit 1).
Writing the output is the other boundary: a full disk or a read-only folder is an
:class:`~cvft_data.errors.OutputError` naming the output, not a traceback.

Example:
    >>> def broken():
    ...     yield from ({"id": [1]}[k] for k in ["id", "name"])
    >>> try:
    ...     list(guarded(broken(), source="coco.json", connector="coco"))
    ... except Exception as exc:
    ...     print(type(exc).__name__, "KeyError" in str(exc))
    MalformedFileError True
"""

from __future__ import annotations

import contextlib
import errno
import os
from typing import Any, Callable, Iterator

from .errors import CvftError, MalformedFileError, OutputError

#: Errors of the output's file system (not of the source).
_OUTPUT_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG}


def _unexpected(exc: BaseException) -> bool:
    return isinstance(exc, Exception) and not isinstance(exc, (CvftError, MemoryError, RecursionError))


def _as_source_error(exc: Exception, *, source: str, connector: str, item: str | None) -> MalformedFileError:
    text = str(exc)[:200] or type(exc).__name__
    return MalformedFileError(f"the {connector} reader could not make sense of the source ({type(exc).__name__}: "
                              f"{text})", file=source, item=item or source,
                              expected=f"a {connector} source as its format describes it")


def guarded(records: Iterator, *, source: str, connector: str) -> Iterator:
    """``records``, with any unexpected library error turned into a :class:`MalformedFileError`
    naming ``source`` and the last record read before it."""
    last = None
    it = iter(records)
    while True:
        try:
            rec = next(it)
        except StopIteration:
            return
        except Exception as exc:
            if not _unexpected(exc):
                raise
            raise _as_source_error(exc, source=source, connector=connector,
                                   item=f"after {last}" if last else None) from exc
        last = getattr(rec, "image_id", None)
        yield rec


def guarded_call(fn: Callable[[], Any], *, source: str, connector: str) -> Any:
    """``fn()`` (a connector reading its configuration), with library errors reported as above."""
    try:
        return fn()
    except Exception as exc:
        if not _unexpected(exc):
            raise
        raise _as_source_error(exc, source=source, connector=connector, item=None) from exc


@contextlib.contextmanager
def output_errors(out: os.PathLike | str):
    """Report a full disk, a read-only or forbidden output folder as an :class:`OutputError`."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _OUTPUT_ERRNOS:
            raise
        raise OutputError(f"cannot write {out}: {exc.strerror} ({exc.filename or out}); free space or choose "
                          "another --out") from None
