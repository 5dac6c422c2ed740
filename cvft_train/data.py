"""Torch datasets over cvft's Arrow datasets, for cvft's own loops and for users' training code.

Images are decoded from the stored bytes with PIL's DCT-domain reduction (``draft``) when the model
input is much smaller than the image: a JPEG decodes 2-3x faster at 1/2, 1/4 or 1/8 size.

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
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageOps


def decode(image: dict, target_side: int | None = None) -> Image.Image:
    """Stored image (``{"bytes", "path"}``) -> upright RGB PIL image, decoded at reduced size when
    the longer side only needs to reach ``target_side``."""
    src = io.BytesIO(image["bytes"]) if image.get("bytes") is not None else image["path"]
    im = Image.open(src)
    if target_side and im.format == "JPEG":
        # draft keeps the image at least target_side on its shorter side, so quality is not lost
        w, h = im.size
        scale = target_side / min(w, h)
        if scale < 0.5:
            im.draft("RGB", (max(1, int(w * scale)), max(1, int(h * scale))))
    im = ImageOps.exif_transpose(im)
    return im.convert("RGB")


def _raw(ds):
    from datasets import Image as HFImage

    return ds.cast_column("image", HFImage(decode=False)) if ds.features["image"].decode else ds


class ClassificationDataset:
    """``(image_tensor, target)`` pairs: ``target`` is the class index, or a multi-hot float vector
    for multi-label datasets. Rows without a label (null or unlabeled) get ``null_label`` or are
    skipped when it is None.

    Usable with any ``torch.utils.data.DataLoader`` (worker processes included).
    """

    def __init__(self, ds, transform: Callable | None = None, imgsz: int | None = None, null_label: int | None = None):
        self.ds = _raw(ds)
        self.transform = transform
        self.imgsz = imgsz
        self.multilabel = "labels" in self.ds.features
        col = "labels" if self.multilabel else "label"
        self.num_classes = len(self.ds.features[col].feature.names if self.multilabel else self.ds.features[col].names)
        from cvft_data.checks import column

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
        import torch

        row = self.ds[self.index[k]]
        im = decode(row["image"], self.imgsz)
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
        self.ds = _raw(ds)
        self.transforms = transforms
        self.with_masks = with_masks
        from cvft_data.checks import column

        self.index = [i for i, st in enumerate(column(self.ds, "label_status")) if st != "unlabeled"]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> tuple[Any, dict]:
        import torch
        from torchvision import tv_tensors

        row = self.ds[self.index[k]]
        im = decode(row["image"])
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
