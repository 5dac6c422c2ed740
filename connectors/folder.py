"""Class-per-folder image trees (torchvision ``ImageFolder``, Ultralytics and Roboflow classification)."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Iterator

from cvft_data.errors import MalformedFileError
from cvft_data.paths import relpath_posix
from cvft_data.vocabulary import canonical_split, is_split_name

from .base import Confidence, Connector, ImageRecord, Score, is_hidden, is_image_name, register, walk_files

DEFAULT_NULL_CLASSES = ("empty", "background")
#: Folder names and file types that mean "annotations live here": a tree holding them is another
#: format (Datumaro, VOC, a mask folder, DOTA...), which reading folders as classes would lose.
ANNOTATION_FOLDERS = {"labels", "annotations", "annotation", "masks", "mask", "segmentationclass",
                      "segmentationobject", "labeltxt", "gt", "ground_truth"}
ANNOTATION_SUFFIXES = {".json", ".xml", ".yaml", ".yml", ".csv", ".tsv"}
#: what ``cvft export --to imagefolder`` writes beside the class folders (not annotations)
CVFT_SIDECAR = "cvft_export.json"


def annotation_evidence(root: Path, limit: int = 3) -> list[str]:
    """Up to ``limit`` relative paths under ``root`` that look like annotations (see
    :data:`ANNOTATION_FOLDERS`, :data:`ANNOTATION_SUFFIXES`)."""
    seen: list[str] = []
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not is_hidden(d))
        rel = relpath_posix(Path(here), root)
        for d in dirs:
            if d.lower() in ANNOTATION_FOLDERS:
                seen.append(f"{d}/" if rel == "." else f"{rel}/{d}/")
        for f in sorted(files):
            if not is_hidden(f) and os.path.splitext(f)[1].lower() in ANNOTATION_SUFFIXES and f != CVFT_SIDECAR:
                seen.append(f if rel == "." else f"{rel}/{f}")
        if len(seen) >= limit:
            break
    return seen[:limit]


@register
class FolderConnector(Connector):
    """One folder per class, optionally under split folders; any depth below the class folder.

    ::

        root/                          root/
        ├── cat/                       ├── train/
        │   ├── a.jpg                  │   ├── cat/2024/x.JPG
        │   └── 2024/b.JPG             │   └── empty/y.jpg     <- null images (label_status "empty")
        ├── dog/c.png                  ├── val/ (or valid, validation)
        └── empty/d.jpg                └── test/

    Class names are the sorted class-folder names across all splits. Folders named ``empty`` or
    ``background`` (any case; option ``null_classes``) hold null images, not a class. Hidden files
    and folders are ignored; other non-image files are listed in the ledger. Images lying directly
    in the root (or a split folder) have no class: they are ``unlabeled``.
    """

    name = "folder"
    summary = "class-per-folder tree (ImageFolder), optional train/val/test top level"
    options_help = {"null_classes": "folder names that hold null (empty) images; default empty,background",
                    "annotations": "ignore: read the folders as classes even though the tree holds annotation "
                                   "files (JSON, XML, masks/); refused otherwise"}

    def __init__(self, root, **kwargs):
        super().__init__(root, **kwargs)
        nulls = self.options.get("null_classes", DEFAULT_NULL_CLASSES)
        if isinstance(nulls, str):
            nulls = [n for n in nulls.split(",") if n]
        self.null_classes = {n.lower() for n in nulls}
        self._names: list[str] | None = None

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        if not root.is_dir():
            return Confidence(Score.NO, "not a folder")
        for sub in sorted(root.iterdir()):
            if sub.is_dir() and not is_hidden(sub.name):
                for _, _, files in os.walk(sub):
                    if any(is_image_name(f) for f in files):
                        # the plain folder is always the lowest-confidence match
                        return Confidence(Score.FALLBACK, f"sub-folder {sub.name}/ holds images")
        return Confidence(Score.NO, "no sub-folder holds images")

    @property
    def task(self) -> str:
        return "classification"

    def _split_dirs(self) -> list[tuple[str, Path]]:
        subdirs = [p for p in sorted(self.root.iterdir()) if p.is_dir() and not is_hidden(p.name)]
        if subdirs and all(is_split_name(p.name) for p in subdirs):
            return [(canonical_split(p.name), p) for p in subdirs]
        return [("train", self.root)]

    def _refuse_annotated_tree(self) -> None:
        if str(self.options.get("annotations", "")).lower() == "ignore":
            return
        evidence = annotation_evidence(self.root)
        if evidence:
            raise MalformedFileError(
                f"the tree holds annotation files ({', '.join(evidence)}): reading its folders as classes "
                "would lose them", file=str(self.root), item=evidence[0],
                expected="a class-per-folder tree of images; name the format with --format (see --list-formats), "
                         "or --option annotations=ignore to read the folders as classes anyway")

    def categories(self) -> list[str]:
        if self._names is None:
            self._refuse_annotated_tree()
            names = set()
            for _, top in self._split_dirs():
                for p in top.iterdir():
                    if p.is_dir() and not is_hidden(p.name) and p.name.lower() not in self.null_classes:
                        names.add(p.name)
            self._names = sorted(names)
        return self._names

    def records(self) -> Iterator[ImageRecord]:
        for split, top in self._split_dirs():
            for path in walk_files(top):
                rel_to_split = PurePosixPath(relpath_posix(path, top))
                image_id = relpath_posix(path, self.root)
                if not is_image_name(path.name):
                    self.policy.note(image_id, "not_an_image", "ignored_file",
                                     f"{path.suffix or 'no extension'} is not an image extension")
                    continue
                rec = ImageRecord(image_id=image_id, path=path, split=split)
                if len(rel_to_split.parts) == 1:
                    rec.label_status = "unlabeled"
                else:
                    folder = rel_to_split.parts[0]
                    if folder.lower() in self.null_classes:
                        rec.label_status = "empty"
                        rec.meta = {"folder": folder}
                    else:
                        rec.label_status, rec.label = "labeled", folder
                yield rec
