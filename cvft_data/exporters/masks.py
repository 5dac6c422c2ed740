"""Export a semantic segmentation dataset as a mask folder or a Pascal VOC segmentation tree.

``masks`` (default): ``images/<split>/<name>`` + ``masks/<split>/<stem>.png`` + ``classes.txt``, which
``cvft-ingest`` (``mask_folder``), segmentation_models_pytorch-style loaders and MMSegmentation's
custom datasets read. ``--option layout=voc``: ``JPEGImages/`` + ``SegmentationClass/`` (palette PNGs
in VOC's colours) + ``ImageSets/Segmentation/<split>.txt`` + ``labelmap.txt``. Image bytes are
copied as stored; masks too, except that VOC needs palette PNGs (the indices are unchanged).
"""

from __future__ import annotations

import io
from pathlib import Path, PurePosixPath

from ..errors import UsageError
from ._common import ExportContext, NameAllocator, split_dir, write_image

LAYOUTS = ("masks", "voc")


def _voc_png(data: bytes, palette: list[int]) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if im.mode == "P":
            return data
        p = im.convert("L").convert("P") if im.mode != "L" else im.convert("P")
        p.putpalette(palette)
        out = io.BytesIO()
        p.save(out, "PNG")
        return out.getvalue()


def export_masks(dataset_dir: Path, out: Path, *, overwrite: bool = False, options: dict | None = None) -> dict:
    """Write the dataset at ``dataset_dir`` as a mask folder (or, ``layout=voc``, a VOC tree)."""
    from connectors._labelmap import VOC_VOID, voc_colormap

    layout = (options or {}).get("layout", "masks")
    if layout not in LAYOUTS:
        raise UsageError(f"--option layout={layout!r}: expected one of {', '.join(LAYOUTS)}")
    ctx = ExportContext(dataset_dir, out, overwrite)
    if ctx.info["task"] != "semantic_segmentation":
        ctx.abort()
        raise UsageError(f"--to masks needs a semantic_segmentation dataset, this one is {ctx.info['task']}; "
                         "cvft convert DS --to semantic --out NEW makes one from instance or panoptic masks")
    colours = voc_colormap(256)
    ignore = ctx.info.get("ignore_index", 255)
    colours[ignore] = VOC_VOID
    palette = [v for c in colours for v in c]
    n = 0
    try:
        lists: dict[str, list[str]] = {}
        names = NameAllocator()
        for split in ctx.dataset:
            for row in ctx.rows(split):
                if not row.get("mask"):
                    ctx.ledger.note(row["image_id"], "unlabeled_not_exported", "dropped_image",
                                    "no mask: a mask folder has no place for an image without one")
                    continue
                name = names.name(row["image_id"], row["image"])
                stem = str(PurePosixPath(name).with_suffix(""))
                if layout == "masks":
                    write_image(row["image"], ctx.staging / "images" / split_dir(split) / name)
                    write_image(row["mask"], ctx.staging / "masks" / split_dir(split) / f"{stem}.png")
                else:
                    flat = stem.replace("/", "__")
                    write_image(row["image"], ctx.staging / "JPEGImages" / (flat + PurePosixPath(name).suffix))
                    png = _voc_png(row["mask"]["bytes"], palette)
                    (ctx.staging / "SegmentationClass").mkdir(parents=True, exist_ok=True)
                    (ctx.staging / "SegmentationClass" / f"{flat}.png").write_bytes(png)
                    lists.setdefault(split_dir(split), []).append(flat)
                n += 1
        if layout == "masks":
            (ctx.staging / "classes.txt").write_text("".join(f"{c}\n" for c in ctx.class_names), encoding="utf-8")
        else:
            sets = ctx.staging / "ImageSets" / "Segmentation"
            sets.mkdir(parents=True, exist_ok=True)
            for split, stems in lists.items():
                (sets / f"{split}.txt").write_text("".join(f"{s}\n" for s in stems), encoding="utf-8")
            (ctx.staging / "labelmap.txt").write_text(
                "# label:color_rgb:parts:actions\n" + "".join(
                    f"{c}:{','.join(str(v) for v in colours[i])}::\n" for i, c in enumerate(ctx.class_names)),
                encoding="utf-8")
    except BaseException:
        ctx.abort()
        raise
    return ctx.finish({"format": "masks" if layout == "masks" else "voc_segmentation", "images": n, "objects": 0})
