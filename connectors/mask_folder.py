"""Semantic segmentation sources: a mask folder (``images/`` beside ``masks/``, stems matching) and
Pascal VOC's ``SegmentationClass`` (or, with ``--option task=instance``, ``SegmentationObject`` as
instances).

Mask folder layouts: ``images/[split/]x.jpg`` + ``masks/[split/]x.png`` (``annotations/``,
``labels/``, ``SegmentationClass/`` name the mask folder too), or ``<split>/images`` +
``<split>/masks``. Class names, in index order: ``--option classes=a,b,c``, ``classes.txt`` (one per
line, optionally with ``r g b``) or ``labelmap.txt`` (``name:r,g,b::``, as CVAT and Datumaro write
it). Masks hold class indices (``L``/``P`` PNGs, kept byte for byte) or RGB colours mapped through
those files; 255 is "ignore" unless ``--option ignore_index=N``.

Example:
    >>> import pathlib, tempfile, numpy as np
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for d in ("images", "masks"): (root / d).mkdir()
    >>> Image.new("RGB", (8, 6)).save(root / "images" / "a.jpg")
    >>> Image.fromarray(np.ones((6, 8), np.uint8)).save(root / "masks" / "a.png")
    >>> _ = (root / "classes.txt").write_text("soil\\nweed\\n")
    >>> conn = MaskFolderConnector(root)
    >>> conn.task, conn.categories(), [r.mask_path.name for r in conn.records()]
    ('semantic_segmentation', ['soil', 'weed'], ['a.png'])
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from cvft_data.vocabulary import canonical_split, is_split_name

from ._labelmap import VOC_CLASSES, VOC_VOID, parse_classes_txt, parse_labelmap, voc_colormap
from .base import Confidence, Connector, ImageRecord, Score, is_image_name, register, walk_files

MASK_DIRS = ("masks", "mask", "annotations", "labels", "SegmentationClass", "segmentations")
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")


def _pairs_dir(root: Path) -> list[tuple[str | None, Path, Path]]:
    """(split or None, images folder, masks folder) of a mask-folder layout."""
    found = []
    if (root / "images").is_dir():
        for m in MASK_DIRS:
            if (root / m).is_dir():
                found.append((None, root / "images", root / m))
                break
    if not found and root.is_dir():
        for d in sorted(p for p in root.iterdir() if p.is_dir() and is_split_name(p.name)):
            for m in MASK_DIRS:
                if (d / "images").is_dir() and (d / m).is_dir():
                    found.append((canonical_split(d.name), d / "images", d / m))
                    break
    return found


def _stem_key(path: Path, top: Path) -> str:
    return path.relative_to(top).with_suffix("").as_posix().lower()


class _MaskSource(Connector):
    """What the mask connectors share: class names and colours, the ignore index, the records."""

    @property
    def task(self) -> str:
        return "semantic_segmentation"

    @property
    def ignore_index(self) -> int:
        try:
            return int(self.options.get("ignore_index", 255))
        except ValueError:
            from cvft_data.errors import UsageError
            raise UsageError(f"--option ignore_index={self.options['ignore_index']!r}: expected an integer") from None

    def _names_file(self) -> tuple[list[str], dict[tuple, int]] | None:
        given = self.options.get("classes")
        if given:
            return [c.strip() for c in str(given).split(",") if c.strip()], {}
        for name, parse in (("labelmap.txt", parse_labelmap), ("classes.txt", parse_classes_txt)):
            p = self.root / name
            if p.is_file():
                names, colours = parse(p.read_text(encoding="utf-8-sig"))
                if names:
                    return names, colours
        return None

    def categories(self) -> list[str]:
        return self._classes()[0]

    def colours(self) -> dict[tuple, int]:
        return self._classes()[1]

    def source_info(self) -> dict:
        return {"semantic": {"ignore_index": self.ignore_index}}

    def _record(self, image: Path, mask: Path | None, split: str, image_id: str) -> ImageRecord:
        return ImageRecord(image_id, image, split=split, label_status="labeled" if mask else "unlabeled",
                           mask_path=mask, mask_colours=self.colours() or None, source_file=str(mask) if mask else None)


@register
class MaskFolderConnector(_MaskSource):
    """Images beside masks of the same names::

        root/
        ├── classes.txt          soil / crop / weed, one per line (or labelmap.txt: name:r,g,b::)
        ├── images/[train/]plot_0001.jpg
        └── masks/[train/]plot_0001.png    class indices (255: not labelled), or RGB colours
    """

    name = "mask_folder"
    summary = "semantic masks: images/ beside masks/ (matching stems), classes.txt or labelmap.txt"
    options_help = {
        "classes": "comma-separated class names in index order (default: classes.txt or labelmap.txt)",
        "ignore_index": "the mask value that means 'not labelled' (default 255)",
    }

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        layout = _pairs_dir(root) if root.is_dir() else []
        if not layout:
            return Confidence(Score.NO, "no images/ beside a masks/ (or annotations/, labels/) folder")
        _, images, masks = layout[0]
        stems = {_stem_key(p, images) for p in list(walk_files(images))[:200] if is_image_name(p.name)}
        pngs = [p for p in list(walk_files(masks))[:200] if p.suffix.lower() in MASK_SUFFIXES]
        if not pngs or not any(_stem_key(p, masks) in stems for p in pngs):
            return Confidence(Score.NO, f"no mask in {masks.name}/ shares a name with an image in {images.name}/")
        named = any((root / n).is_file() for n in ("classes.txt", "labelmap.txt"))
        return Confidence(Score.STRUCTURE if named else Score.LIKELY,
                          f"{images.name}/ and {masks.name}/ hold images and masks of the same names"
                          + (" and the classes are named" if named else ""))

    def _classes(self) -> tuple[list[str], dict[tuple, int]]:
        found = self._names_file()
        if found is None:
            from cvft_data.errors import UsageError
            raise UsageError(f"{self.root}: the masks' classes are not named; add classes.txt (one name per line, "
                             "in index order) or labelmap.txt, or pass --option classes=background,crop,weed")
        return found

    def records(self) -> Iterator[ImageRecord]:
        from cvft_data.errors import AnnotationError

        for split, images, masks in _pairs_dir(self.root):
            by_stem = {}
            for p in walk_files(masks):
                if p.suffix.lower() in MASK_SUFFIXES:
                    by_stem[_stem_key(p, masks)] = p
            used = set()
            for img in walk_files(images):
                if not is_image_name(img.name):
                    continue
                rel = img.relative_to(images)
                part = rel.parts[0] if len(rel.parts) > 1 and is_split_name(rel.parts[0]) else None
                mask = by_stem.get(_stem_key(img, images))
                if mask is not None:
                    used.add(mask)
                yield self._record(img, mask, split or (canonical_split(part) if part else "train"),
                                   img.relative_to(self.root).as_posix())
            for stem, mask in sorted(by_stem.items()):
                if mask not in used:
                    self.policy.handle(AnnotationError("mask without an image", file=str(mask), item=stem,
                                                       expected=f"an image named {stem}.* in {images}"),
                                       action="ignored_file")


@register
class VocSegmentationConnector(_MaskSource):
    """Pascal VOC's segmentation masks::

        VOC2012/
        ├── JPEGImages/2008_000001.jpg
        ├── SegmentationClass/2008_000001.png     palette PNG: class index per pixel, 255 boundaries
        ├── SegmentationObject/2008_000001.png    instance ids (--option task=instance)
        ├── ImageSets/Segmentation/{train,val}.txt
        └── labelmap.txt                          optional (CVAT/Datumaro): name:r,g,b::
    """

    name = "voc_segmentation"
    summary = "Pascal VOC SegmentationClass masks (SegmentationObject as instances with --option task=instance)"
    options_help = {
        "task": "semantic (SegmentationClass, default) or instance (SegmentationObject + SegmentationClass)",
        "classes": "comma-separated class names in index order (default: labelmap.txt, else VOC's 21)",
        "ignore_index": "the mask value that means 'not labelled' (default 255, VOC's boundaries)",
    }

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        if not (root / "SegmentationClass").is_dir() or not (root / "JPEGImages").is_dir():
            return Confidence(Score.NO, "no SegmentationClass/ beside JPEGImages/")
        if (root / "Annotations").is_dir():   # the devkit holds boxes too: boxes stay the default reading
            return Confidence(Score.PLAUSIBLE, "SegmentationClass/ in a VOC devkit (boxes in Annotations/ win; "
                                               "--format voc_segmentation reads the masks)")
        return Confidence(Score.MARKED, "SegmentationClass/ beside JPEGImages/")

    @property
    def task(self) -> str:
        mode = self.options.get("task", "semantic")
        if mode not in ("semantic", "instance"):
            from cvft_data.errors import UsageError
            raise UsageError(f"--option task={mode!r}: expected semantic or instance")
        return "semantic_segmentation" if mode == "semantic" else "instance_segmentation"

    def _classes(self) -> tuple[list[str], dict[tuple, int]]:
        names, colours = self._names_file() or (list(VOC_CLASSES), {})
        if not colours:   # VOC's own colour map, and its "void" boundary colour
            colours = {c: i for i, c in enumerate(voc_colormap(len(names)))}
        colours.setdefault(VOC_VOID, self.ignore_index)
        return names, colours

    def _items(self) -> list[tuple[str, str]]:
        sets = self.root / "ImageSets" / "Segmentation"
        items = []
        if sets.is_dir():
            for f in sorted(sets.glob("*.txt")):
                if f.stem == "trainval" and (sets / "train.txt").is_file():
                    continue   # train + val listed again
                items += [(canonical_split(f.stem), line.split()[0]) for line in f.read_text().splitlines()
                          if line.strip()]
        else:
            items = [("train", p.stem) for p in sorted((self.root / "SegmentationClass").glob("*.png"))]
        return items

    def records(self) -> Iterator[ImageRecord]:
        from .voc_instances import instance_objects

        for split, stem in self._items():
            img = self.find_image(f"{stem}.jpg", self.root / "JPEGImages", file=str(self.root / "ImageSets"))
            if img is None:
                continue
            mask = self.root / "SegmentationClass" / f"{stem}.png"
            mask = mask if mask.is_file() else None
            image_id = img.relative_to(self.root).as_posix()
            if self.task == "semantic_segmentation":
                yield self._record(img, mask, split, image_id)
                continue
            rec = ImageRecord(image_id, img, split=split, label_status="unlabeled")
            objects = self.root / "SegmentationObject" / f"{stem}.png"
            if mask is not None and objects.is_file():
                rec.objects = instance_objects(objects, mask, self.categories(), self.colours(), self.ignore_index,
                                               ref=image_id)
                rec.label_status = "labeled" if rec.objects else "empty"
                rec.source_file = str(objects)
            yield rec
