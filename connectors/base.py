"""The connector contract: records, confidence, the base class and the registry.

A connector turns one source layout into a stream of :class:`ImageRecord`. It never touches Arrow
or ``datasets``: the builder (``cvft_data.builder``) reads the image bytes, checks geometry against
the real image size, assigns class ids and writes the dataset.

Writing one::

    @register
    class MyFormat(Connector):
        '''My tool's export.

        root/
        ├── labels.json
        └── pictures/*.jpg
        '''
        name = "myformat"
        summary = "My tool's JSON export"

        @classmethod
        def sniff(cls, root):
            ok = (root / "labels.json").is_file()
            return Confidence(Score.MARKED if ok else Score.NO, "labels.json found" if ok else "no labels.json")

        def categories(self): ...
        def records(self): ...
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator

from cvft_data.imageinfo import IMAGE_EXTENSIONS
from cvft_data.ledger import ErrorPolicy, IngestContext, PolicyName
from cvft_data.records import (  # noqa: F401 (re-exported)
    ImageRecord,
    LedgerNote,
    ObjectRecord,
    SegmentRecord,
    label_status_of,
)

from ._files import is_hidden, walk_files  # noqa: F401 (re-exported: connectors.base.walk_files)


class Score:
    """The named confidence levels a ``sniff`` answers with, weakest first. Ranking compares them,
    so two connectors that can both claim a source must answer at different levels."""

    NO = 0.0
    FALLBACK = 0.05        # any folder of images (the class-per-folder reader)
    HINT = 0.3             # a file name or extension suggests the format
    LAYOUT = 0.4           # the folder layout matches (years at the top of a camera-trap archive)
    PLAUSIBLE = 0.5        # the expected files are there; their content was not checked
    LIKELY = 0.6           # the expected files are there and their first bytes look right
    STRUCTURE = 0.7        # the file's structure (root tag, top-level keys) is the format's
    TOOL_STRUCTURE = 0.75  # ... and marks of the tool that wrote it (a Roboflow README, CVAT meta)
    MARKED = 0.8           # a key or tag only this format has
    SPECIFIC = 0.85        # the tool's own name pattern or marker, unmistakable


@dataclass(frozen=True)
class Confidence:
    """How sure a connector is that it can read a source (a :class:`Score` level), and why."""

    score: float
    reason: str

    def __bool__(self) -> bool:
        return self.score > 0


class Connector(ABC):
    """Base class of every connector. Subclasses set ``name``, ``summary`` and implement
    :meth:`sniff`, :meth:`categories` and :meth:`records`; ``task`` is decided per instance
    (a YOLO export can be detection or segmentation)."""

    name: ClassVar[str]
    summary: ClassVar[str]
    #: Options the connector accepts (name -> help), shown by ``cvft-ingest --list-formats``.
    options_help: ClassVar[dict[str, str]] = {}
    #: options promoted to flags of cvft-ingest (``--species SHEET``): option -> argparse keywords
    #: (``help`` defaults to ``options_help``); the CLI builds them from here, nothing is hard-coded
    cli_flags: ClassVar[dict[str, dict[str, Any]]] = {}
    #: True for formats whose source may be named by its annotation file (``md.json``, a makesense
    #: export): the root is then the file's folder, and :attr:`given` the file itself
    accepts_file: ClassVar[bool] = False

    def __init__(self, root: str | os.PathLike, *, context: IngestContext | None = None,
                 on_error: PolicyName | ErrorPolicy = "raise", **options: Any):
        """``context`` (made once by the ingest, see :class:`~cvft_data.ledger.IngestContext`), or
        ``on_error`` and options to make one from."""
        self.given = Path(root)
        self.root = self.given.parent if self.accepts_file and self.given.is_file() else self.given
        self.context = context if context is not None else IngestContext.make(on_error, **options)
        unknown = set(self.context.options) - set(self.options_help)
        if unknown:
            from cvft_data.errors import UsageError
            raise UsageError(f"connector {self.name!r} does not take option(s) {sorted(unknown)}; "
                             f"it takes {sorted(self.options_help) or 'none'}")

    @property
    def policy(self) -> ErrorPolicy:
        """Raise or skip-and-ledger (the context's)."""
        return self.context.policy

    @property
    def options(self) -> dict[str, Any]:
        return self.context.options

    @property
    def executor(self) -> Executor | None:
        """The builder's worker pool while it reads the records (None otherwise). A connector that
        reads every image's header while listing (camera-trap EXIF) submits those reads here, so
        they run on every core instead of in the main process (picklable, module-level functions)."""
        return self.context.executor

    def open_source(self):
        """The source root as a folder or a zip read in place (:mod:`connectors._source`); zip members
        with unsafe names are refused, each reported to the policy (never silently skipped)."""
        from cvft_data.errors import MalformedFileError

        from ._source import open_source

        source = open_source(self.root)
        for name in source.refused:   # a fault of the archive itself: its ledger reason stays malformed_file
            self.policy.handle(MalformedFileError("zip member with an unsafe name refused", file=str(self.root),
                                                  item=name, expected="a relative name without '..'"),
                               action="ignored_file")
        return source

    def image_roots(self) -> list[Path]:
        """The folders this source's images may be read from: the source root, and the ``images``
        folder the user named (an option). The builder refuses any image file outside them (a
        symlink that leads out of the source), whichever connector listed it."""
        roots = [self.root]
        if self.options.get("images"):
            roots.append(Path(self.options["images"]))
        return roots

    def find_image(self, name: str, folder: Path, *, file: str, annotations: int = 0,
                   expected: str | None = None, within: Path | None = None) -> Path | None:
        """The image an annotation file calls ``name`` (relative to ``folder``, case-insensitive), or
        None after the policy raised or ledgered why not: a name that escapes the source, a file
        that is not there, a symlink that leads out of the source (``within``: the folder the user
        named for the images, default the source root)."""
        from cvft_data.errors import MissingImageError, SourceError, UnsafePathError
        from cvft_data.paths import inside, safe_relative

        try:
            rel = safe_relative(name, file=file, item=name)
            path = find_case_insensitive(folder / rel.parent, rel.name)
            if path is None:
                raise MissingImageError(f"image {name!r} not found", file=file, item=name,
                                        expected=expected or f"the file {name} in {folder}")
            if not inside(within or self.root, path):
                raise UnsafePathError(f"image {name!r} is a link that leads out of the source", file=file, item=name,
                                      expected="an image inside the source folder")
        except SourceError as exc:
            self.policy.handle(exc, action="dropped_image", annotations=annotations)
            return None
        return path

    @classmethod
    @abstractmethod
    def sniff(cls, root: Path) -> Confidence:
        """Cheap look at names, a root tag or top-level keys; never reads the whole source."""

    @property
    @abstractmethod
    def task(self) -> str:
        """One of :data:`cvft_data.vocabulary.TASKS`."""

    @abstractmethod
    def categories(self) -> list[str]:
        """Class names in the source's declared order."""

    @abstractmethod
    def records(self) -> Iterator[ImageRecord]:
        """Records, sorted and deterministic."""

    def category_info(self) -> list[dict]:
        """Per-class extras kept in ``cvft.json`` (source ids, supercategory, isthing...)."""
        return [{"name": n} for n in self.categories()]

    def source_info(self) -> dict:
        """Source-level metadata kept in ``cvft.json`` (licences, info blocks...)."""
        return {}


_REGISTRY: dict[str, type[Connector]] = {}


def register(cls: type[Connector]) -> type[Connector]:
    """Class decorator adding a connector to the registry (names must be unique)."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"connector name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def registry() -> dict[str, type[Connector]]:
    return dict(_REGISTRY)


# --- shared helpers for connectors -------------------------------------------------------------

def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def find_case_insensitive(directory: Path, name: str) -> Path | None:
    """``directory/name``, or the one entry whose name matches ignoring case (VOC ``0AF.jpg``)."""
    exact = directory / name
    if exact.is_file():
        return exact
    low = name.lower()
    try:
        for e in os.scandir(directory):
            if e.name.lower() == low and e.is_file():
                return Path(e.path)
    except (FileNotFoundError, NotADirectoryError):
        pass
    return None


def read_prefix(path: Path, n: int = 65536) -> str:
    with open(path, "rb") as f:
        return f.read(n).decode("utf-8", errors="replace")
