"""Torch datasets over cvft's Arrow datasets, for cvft's own loops and for users' training code.

Images are decoded from the stored bytes with PIL's DCT-domain reduction (``draft``) when the model
input is much smaller than the image: a JPEG decodes 1.5-3x faster at 1/2, 1/4 or 1/8 size.

A ``DataLoader`` asks for a whole batch at once (``__getitems__``): the rows are read from Arrow in
one call and the images decoded on a thread pool (Pillow's decoder releases the GIL), then the
transforms run in order in the calling thread, so random augmentations stay reproducible. In the
main process (``num_workers=0``) that pool uses every core; inside DataLoader worker processes,
which already run in parallel, one thread.

Example:
    >>> import pathlib, tempfile, cvft_data
    >>> from cvft_data.sample import write_coco_sample
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = cvft_data.ingest(write_coco_sample(tmp / "src", n_images=8), tmp / "ds")
    >>> ds = DetectionDataset(cvft_data.load(tmp / "ds")["train"])
    >>> image, target = ds[1]
    >>> tuple(image.shape), sorted(target)
    ((3, 120, 160), ['boxes', 'image_id', 'labels'])
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageOps

from cvft_data.store import bytes_view


def decode(image: dict, target_side: int | None = None) -> Image.Image:
    """Stored image (``{"bytes", "path"}``) -> upright RGB PIL image, decoded at reduced size when
    the shorter side only needs to reach ``target_side``."""
    return decode_sized(image, target_side)[0]


def decode_sized(image: dict, target_side: int | None = None, *,
                 long_side: bool = False) -> tuple[Image.Image, tuple[int, int]]:
    """:func:`decode`, and the image's full displayed size (after EXIF orientation). With
    ``long_side`` the longer side is the one that must reach ``target_side`` (as a YOLO letterbox
    scales it)."""
    src = io.BytesIO(image["bytes"]) if image.get("bytes") is not None else image["path"]
    im = Image.open(src)
    w, h = im.size
    if target_side and im.format == "JPEG":
        # draft keeps the needed side at least target_side, so quality is not lost
        scale = target_side / (max(w, h) if long_side else min(w, h))
        if scale < 0.5:
            im.draft("RGB", (max(1, int(w * scale)), max(1, int(h * scale))))
    stored = im.size
    im = ImageOps.exif_transpose(im, in_place=True) or im  # in place: no copy when upright already
    im.load()   # decode here (on the caller's thread), not later wherever the pixels are first read
    turned = im.size != stored   # a quarter turn swaps the sides: no second EXIF parse to know it
    rgb = im if im.mode == "RGB" else im.convert("RGB")  # convert() copies even to the same mode
    return rgb, ((h, w) if turned else (w, h))


_POOL: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, threads, pool): threads do not survive fork


def decode_threads() -> int:
    """Threads for decoding a batch: every core in the main process, one in a DataLoader worker."""
    try:
        from torch.utils.data import get_worker_info
        if get_worker_info() is not None:
            return 1
    except ImportError:
        pass
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def decode_many(images: list[dict], target_side: int | None = None, threads: int | None = None) -> list[Image.Image]:
    """:func:`decode` of each image, on ``threads`` threads (default :func:`decode_threads`), in order."""
    global _POOL
    threads = threads or decode_threads()
    if threads <= 1 or len(images) <= 1:
        return [decode(im, target_side) for im in images]
    if _POOL is None or _POOL[0] != os.getpid() or _POOL[1] != threads:
        _POOL = (os.getpid(), threads, ThreadPoolExecutor(threads, thread_name_prefix="cvft-decode"))
    return list(_POOL[2].map(decode, images, [target_side] * len(images)))


def loaders(cfg, train_ds, val_ds, *, sampler=None, world: int = 1, rank: int = 0, **extra):
    """The training and validation ``DataLoader`` of a torch trainer: the training one shuffled by a
    generator seeded from ``cfg.seed`` unless ``sampler`` orders it, the validation one sharded
    across DDP ranks (None without a validation set). ``extra`` goes to both (``collate_fn``) or,
    for ``drop_last``, to the training one. Workers start anew each epoch (not persistent): their
    random state then depends on the epoch alone, which is what makes a resumed run replay an
    uninterrupted one."""
    import torch
    from torch.utils.data import DataLoader

    from .devices import default_workers
    from .samplers import ShardSampler

    drop_last = extra.pop("drop_last", False)
    kw = {"num_workers": default_workers() if cfg.workers is None else cfg.workers,
          "pin_memory": torch.cuda.is_available(), **extra}
    train = DataLoader(train_ds, batch_size=cfg.batch, shuffle=sampler is None, sampler=sampler, drop_last=drop_last,
                       generator=torch.Generator().manual_seed(cfg.seed), **kw)
    val = None
    if val_ds is not None and len(val_ds):
        val = DataLoader(val_ds, batch_size=cfg.batch, shuffle=False,
                         sampler=ShardSampler(len(val_ds), rank, world) if world > 1 else None, **kw)
    return train, val


class ClassificationDataset:
    """``(image_tensor, target)`` pairs: ``target`` is the class index, or a multi-hot float vector
    for multi-label datasets. Rows without a label (null or unlabeled) get ``null_label`` or are
    skipped when it is None.

    Usable with any ``torch.utils.data.DataLoader`` (worker processes included).
    """

    def __init__(self, ds, transform: Callable | None = None, imgsz: int | None = None, null_label: int | None = None):
        self.ds = bytes_view(ds)
        self.transform = transform
        self.imgsz = imgsz
        self.multilabel = "labels" in self.ds.features
        col = "labels" if self.multilabel else "label"
        self.num_classes = len(self.ds.features[col].feature.names if self.multilabel else self.ds.features[col].names)
        from cvft_data.store import column

        labels = column(self.ds, col)
        statuses = column(self.ds, "label_status")
        self.index = [i for i, (lab, st) in enumerate(zip(labels, statuses))
                      if st != "unlabeled" and (self.multilabel or lab is not None or null_label is not None)]
        self.targets = []
        for i in self.index:
            lab = labels[i]
            if self.multilabel:
                self.targets.append(list(lab or []))
            else:
                self.targets.append(lab if lab is not None else null_label)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int):
        return self._item(k, decode(self.ds[self.index[k]]["image"], self.imgsz))

    def __getitems__(self, ks: list[int]) -> list:
        """A batch: one Arrow read, images decoded in parallel, transforms in order."""
        images = self.ds[[self.index[k] for k in ks]]["image"]
        return [self._item(k, im) for k, im in zip(ks, decode_many(images, self.imgsz))]

    def _item(self, k: int, im: Image.Image):
        import torch

        x = self.transform(im) if self.transform else torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)
        if self.multilabel:
            y = torch.zeros(self.num_classes)
            y[self.targets[k]] = 1.0
        else:
            y = int(self.targets[k])
        return x, y


class DetectionDataset:
    """``(image_tensor, target)`` in torchvision's detection format: ``boxes`` (xyxy float32),
    ``labels`` (int64), ``image_id``, and ``masks`` (uint8 N x H x W) when ``with_masks``.
    Use :func:`collate_detection` as the DataLoader's ``collate_fn``."""

    def __init__(self, ds, transforms: Callable | None = None, with_masks: bool = False):
        self.ds = bytes_view(ds)
        self.transforms = transforms
        self.with_masks = with_masks
        from cvft_data.store import column

        self.index = [i for i, st in enumerate(column(self.ds, "label_status")) if st != "unlabeled"]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> tuple[Any, dict]:
        row = self.ds[self.index[k]]
        return self._item(row, decode(row["image"]))

    def __getitems__(self, ks: list[int]) -> list:
        """A batch: one Arrow read, images decoded in parallel, transforms in order."""
        batch = self.ds[[self.index[k] for k in ks]]
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        return [self._item(row, im) for row, im in zip(rows, decode_many(batch["image"]))]

    def _item(self, row: dict, im: Image.Image) -> tuple[Any, dict]:
        import torch
        from torchvision import tv_tensors

        o = row["objects"]
        xyxy = [[x, y, x + w, y + h] for x, y, w, h in o["bbox"]]
        h_, w_ = im.height, im.width
        target: dict[str, Any] = {
            "boxes": tv_tensors.BoundingBoxes(torch.tensor(xyxy, dtype=torch.float32).reshape(-1, 4),
                                              format="XYXY", canvas_size=(h_, w_)),
            "labels": torch.tensor(o["category"], dtype=torch.int64),
            "image_id": row["image_id"],
        }
        if self.with_masks:
            from cvft_data import masks

            ms = []
            for s in o["segmentation"]:
                if s["rle"] is not None:
                    ms.append(masks.decode(s["rle"]))
                elif s["polygons"]:
                    ms.append(masks.decode(masks.polygons_to_rle(s["polygons"], h_, w_)))
                else:
                    ms.append(np.zeros((h_, w_), np.uint8))
            target["masks"] = tv_tensors.Mask(torch.from_numpy(np.stack(ms)) if ms else
                                              torch.zeros((0, h_, w_), dtype=torch.uint8))
        image = tv_tensors.Image(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1))
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target


def collate_detection(batch):
    """Images and targets as tuples (detection models take lists of variable-size images)."""
    return tuple(zip(*batch))
