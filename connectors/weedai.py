"""Weed-AI: WeedCOCO (COCO + ``agcontexts`` + schema.org metadata), as a folder, the zip Weed-AI
serves, or the upload layout (``coco.json`` + ``agcontext.json`` + ``metadata.json``)."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from cvft_data.errors import MalformedFileError, MissingImageError, SourceError
from cvft_data.vocabulary import canonical_split

from ._json import loads_json
from ._source import Source, open_source
from .base import Confidence, Connector, ImageRecord, Score, register
from .coco import add_annotations, annotations_by_image, parse_categories
from .coco_parse import sanitize_ids

#: ``weed: lolium rigidum``, ``crop: daucus carota``, ``weed: UNSPECIFIED``, ``weed: lolium perenne (growing point)``
CATEGORY = re.compile(r"^(?:(?P<role>crop|weed): (?P<taxon>[A-Za-z][A-Za-z. ]*)|(?P<bare>crop|weed|none))"
                      r"(?: \((?P<sub>[^)]+)\))?$")


def parse_category_name(name: str) -> dict[str, str | None]:
    """``"weed: lolium perenne (growing point)"`` -> role, taxon, subcategory.

    >>> parse_category_name("weed: lolium perenne (growing point)")
    {'role': 'weed', 'taxon': 'lolium perenne', 'subcategory': 'growing point'}
    >>> parse_category_name("crop")
    {'role': 'crop', 'taxon': None, 'subcategory': None}
    """
    m = CATEGORY.match(name.strip())
    if not m:
        return {"role": None, "taxon": None, "subcategory": None}
    return {"role": m.group("role") or m.group("bare"), "taxon": m.group("taxon"), "subcategory": m.group("sub")}


@register
class WeedAIConnector(Connector):
    """WeedCOCO from Weed-AI.

    ::

        dataset.zip (as Weed-AI serves it) or folder       upload layout
        ├── weedcoco.json     COCO + agcontexts + info      ├── coco.json
        └── images/<name or hash>.jpg                        ├── agcontext.json
            (zips may nest a top folder: weedcoco/...)       ├── metadata.json
                                                             └── images/...

    ``file_name`` may be a bare name, ``images/<hash>.jpg`` or another machine's absolute path: the
    image is found by its base name under ``images/`` (never outside the root). Category names stay
    as they are (``weed: lolium rigidum``) and are parsed into role, taxon and subcategory in the
    category list of ``cvft.json``. Each image's agcontext (crop, growth stage, camera, lighting...)
    is in ``meta.agcontext`` and is its ``group``, so a split never mixes one field collection into
    train and test. Licence and metadata go to ``cvft.json``.
    """

    name = "weedai"
    summary = "Weed-AI WeedCOCO (weedcoco.json + images/, the download zip, or the upload layout)"
    options_help = {"images": "folder holding the images when the export has none beside it"}

    def __init__(self, root, **kwargs):
        super().__init__(root, **kwargs)
        self.source: Source = self.open_source()
        self._doc: dict | None = None
        self._json_name: str | None = None

    @classmethod
    def _find_json(cls, src: Source) -> tuple[str | None, str]:
        names = src.files()
        for n in names:
            if PurePosixPath(n).name == "weedcoco.json" and n.count("/") <= 1:
                return n, "weedcoco"
        if any(PurePosixPath(n).name == "agcontext.json" for n in names):
            for n in names:
                if PurePosixPath(n).name in ("coco.json", "annotations.json") and n.count("/") <= 1:
                    return n, "upload"
        return None, ""

    @classmethod
    def sniff(cls, root: Path) -> Confidence:
        try:
            src = open_source(root)
        except MalformedFileError:
            return Confidence(Score.NO, "not a readable zip")
        if root.is_file() and not str(root).lower().endswith(".zip"):
            return Confidence(Score.NO, "not a folder or zip")
        name, kind = cls._find_json(src)
        if name:
            return Confidence(Score.SPECIFIC, f"{name}: Weed-AI {kind} layout")
        return Confidence(Score.NO, "no weedcoco.json (nor coco.json + agcontext.json)")

    def _load(self) -> dict:
        if self._doc is not None:
            return self._doc
        name, kind = self._find_json(self.source)
        if name is None:
            raise MalformedFileError("no weedcoco.json", file=str(self.root), item=self.root.name,
                                     expected="weedcoco.json, or coco.json with agcontext.json")
        self._json_name = name
        where = self.source.describe(name)
        doc = loads_json(self.source.read_bytes(name), file=where, item=name)
        if not isinstance(doc, dict) or not isinstance(doc.get("images", []), list):
            raise MalformedFileError("not a WeedCOCO document", file=where, item=name,
                                     expected="a JSON object with images, annotations and categories")
        if kind == "upload":
            base = str(PurePosixPath(name).parent)
            side = lambda f: f"{base}/{f}".lstrip("./") if base != "." else f  # noqa: E731
            ag = loads_json(self.source.read_bytes(side("agcontext.json")), file=self.source.describe(side("agcontext.json")))
            agcontexts = [ag] if isinstance(ag, dict) else ag
            if not (isinstance(agcontexts, list) and agcontexts and all(isinstance(a, dict) for a in agcontexts)):
                raise MalformedFileError("agcontext.json holds no agcontext object", file=self.source.describe(side(
                    "agcontext.json")), item="agcontext.json", expected="an object (or a list of objects)")
            doc.setdefault("agcontexts", agcontexts)
            for img in doc.get("images", []):
                if isinstance(img, dict):
                    img.setdefault("agcontext_id", agcontexts[0].get("id", 0))
            if self.source.exists(side("metadata.json")):
                doc.setdefault("metadata", loads_json(self.source.read_bytes(side("metadata.json")),
                                                      file=self.source.describe(side("metadata.json"))))
        doc = sanitize_ids(doc, file=self.source.describe(name), policy=self.policy)
        parse_categories(doc, self.source.describe(name))
        self._doc = doc
        return doc

    @property
    def task(self) -> str:
        for a in self._load().get("annotations") or []:
            if isinstance(a.get("segmentation"), list) and any(a["segmentation"]):
                return "instance_segmentation"
        return "detection"

    def categories(self) -> list[str]:
        return [c["name"] for c in self._load()["categories"]]

    def category_info(self) -> list[dict]:
        return [{"name": c["name"], "source_id": c["id"], **parse_category_name(c["name"]),
                 **{k: v for k, v in c.items() if k not in ("name", "id")}} for c in self._load()["categories"]]

    def source_info(self) -> dict:
        doc = self._load()
        return {"weedai": {k: doc[k] for k in ("info", "metadata", "license", "licenses") if k in doc}
                | {"file": self._json_name}}

    def _index_images(self) -> dict[str, list[str]]:
        by_name: dict[str, list[str]] = defaultdict(list)
        for n in self.source.files():
            parts = PurePosixPath(n).parts
            if "images" in parts[:-1]:
                by_name[parts[-1].lower()].append(n)
        return by_name

    def records(self) -> Iterator[ImageRecord]:
        doc = self._load()
        fname = self.source.describe(self._json_name or "weedcoco.json")
        cats = {c["id"]: c["name"] for c in doc["categories"]}
        agcontexts = {a.get("id"): a for a in doc.get("agcontexts") or []}
        by_image = annotations_by_image(doc, file=fname, policy=self.policy)
        index = self._index_images()
        extra = Path(self.options["images"]) if "images" in self.options else None
        for img in doc.get("images", []):
            anns = by_image.get(img.get("id"), [])
            fn = str(img.get("file_name", "")).replace("\\", "/")
            base = PurePosixPath(fn).name.lower()
            try:
                if not base:
                    raise MalformedFileError("image without file_name", file=fname, item=str(img.get("id")),
                                             expected="a file_name")
                hits = index.get(base, [])
                if len(hits) > 1:
                    stripped = fn.lstrip("/")
                    hits = [h for h in hits if h.endswith(stripped)] or hits[:1]
                if hits:
                    path, member = self.source.location(hits[0])
                    image_id = hits[0]
                elif extra is not None and (extra / PurePosixPath(fn).name).is_file():
                    path, member, image_id = extra / PurePosixPath(fn).name, None, f"images/{PurePosixPath(fn).name}"
                else:
                    raise MissingImageError(f"image {fn!r} not found", file=fname, item=fn,
                                            expected=f"images/{PurePosixPath(fn).name} in the dataset")
            except SourceError as exc:
                self.policy.handle(exc, action="dropped_image", annotations=len(anns))
                continue
            ag = agcontexts.get(img.get("agcontext_id"))
            meta: dict[str, Any] = {"weedai": {k: v for k, v in img.items() if k not in ("file_name", "width", "height")}}
            if ag is not None:
                meta["agcontext"] = ag
            group = (ag.get("agcontext_name") or f"agcontext-{ag.get('id')}") if ag else None
            declared = (int(img["width"]), int(img["height"])) if img.get("width") and img.get("height") else None
            rec = ImageRecord(image_id=image_id, path=path, member=member, split=canonical_split("train"),
                              group=group, meta=meta, declared_size=declared, source_file=fname)
            add_annotations(rec, anns, cats, file=fname, policy=self.policy)
            yield rec
