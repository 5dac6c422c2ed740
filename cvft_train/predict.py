"""Run a trained model over raw images: stream, decode at reduced size, batch, yield results.

:func:`predict` yields one dict per image, in source order::

    {"file": "2019/set_01/site_017/cam_A/IMG_0001.JPG", "width": 1920, "height": 1080,
     "group": "site_017", "datetime": "2019-03-02T04:05:06", "sequence": "...#3",
     "classifications": [["wallaby", 0.93], ["fox", 0.04], ...]}          # a classifier (top-k)
     "detections": [{"category": "wallaby", "conf": 0.91, "bbox": [x, y, w, h]}, ...]   # a detector
     "failure": "cannot decode: ..."                                       # a corrupt image

``bbox`` is normalised to the image (MegaDetector's convention): left, top, width, height in 0..1.
Images are decoded on a thread pool a few batches ahead of the model, JPEGs at reduced size when
the model input is much smaller (PIL ``draft``), so memory stays flat however many images there are.

Example:
    >>> import tempfile, pathlib, torch
    >>> from PIL import Image
    >>> from cvft_train.models import build_model
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> for i in range(3):
    ...     Image.new("RGB", (40, 30), (80 * i, 0, 0)).save(tmp / f"{i}.jpg")
    >>> net, _ = build_model("squeezenet1_1", 2, imgsz=64, pretrained=False)
    >>> torch.save({"model": net.state_dict(), "model_name": "squeezenet1_1", "classes": ["cat", "dog"],
    ...             "imgsz": 64}, tmp / "best.pt")
    >>> [r["file"] for r in predict(tmp / "best.pt", tmp, device="cpu", topk=1)]
    ['0.jpg', '1.jpg', '2.jpg']
"""

from __future__ import annotations

import logging
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator

from .augment import eval_transform
from .data import decode_sized
from .devices import pick_device, usable_cores
from .sources import SourceImage, open_source
from .trained import Trained, load_trained

log = logging.getLogger(__name__)

#: Batches decoded ahead of the model.
AHEAD = 3
def _base(item: SourceImage) -> dict[str, Any]:
    out: dict[str, Any] = {"file": item.file}
    if item.group:
        out["group"] = item.group
    for key in ("datetime", "sequence", "split"):
        if item.meta.get(key):
            out[key] = item.meta[key]
    return out


class _Prepared:
    """A decoded image (or why it could not be) with its result skeleton."""

    __slots__ = ("result", "image", "tensor")

    def __init__(self, result: dict, image=None, tensor=None):
        self.result, self.image, self.tensor = result, image, tensor


def _prepare(item: SourceImage, trained: Trained, transform) -> _Prepared:
    result = _base(item)
    if item.path is None and item.data is None:
        reason = item.notes[0][1] if item.notes else "no image data"
        result["failure"] = reason
        return _Prepared(result)
    try:
        im, (w, h) = decode_sized({"bytes": item.data, "path": item.path}, trained.imgsz,
                                  long_side=trained.kind == "yolo")
    except Exception as exc:  # PIL raises many types for damaged files; the image is reported, not fatal
        result["failure"] = f"cannot decode: {type(exc).__name__}: {str(exc)[:200]}"
        return _Prepared(result)
    result["width"], result["height"] = w, h
    return _Prepared(result, image=im, tensor=transform(im) if transform is not None else None)


def inference_dtype(device: str, amp: str):
    """The autocast dtype of predict: ``auto`` is bf16 where the hardware computes it natively
    (CUDA with bf16, CPUs with AVX512-BF16 or AMX), ``off`` float32, ``bf16``/``fp16`` as named."""
    import torch

    from .devices import amp_dtype, cpu_has_native_bf16

    if device.startswith("cuda") or amp != "auto":
        return amp_dtype(device, amp) if device.startswith("cuda") else (None if amp == "off" else torch.bfloat16)
    return torch.bfloat16 if device == "cpu" and cpu_has_native_bf16() else None


def _classify(trained: Trained, batch: list[_Prepared], device: str, topk: int, dtype) -> None:
    import torch

    ok = [p for p in batch if p.tensor is not None]
    if not ok:
        return
    x = torch.stack([p.tensor for p in ok]).to(device, non_blocking=True).to(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast(device_type=device.split(":")[0], dtype=dtype or torch.float32,
                                                enabled=dtype is not None):
        logits = trained.model(x).float()
    probs = torch.sigmoid(logits) if trained.task == "multilabel" else torch.softmax(logits, 1)
    k = min(topk, len(trained.classes))
    scores, idx = probs.topk(k, dim=1)
    for p, s, i in zip(ok, scores.cpu().tolist(), idx.cpu().tolist()):
        p.result["classifications"] = [[trained.classes[c], round(v, 6)] for c, v in zip(i, s)]


def _detect(trained: Trained, batch: list[_Prepared], device: str, conf: float, batch_size: int) -> None:
    ok = [p for p in batch if p.image is not None]
    if not ok:
        return
    results = trained.model.predict([p.image for p in ok], imgsz=trained.imgsz, conf=conf, device=device,
                                    batch=batch_size, verbose=False)
    for p, r in zip(ok, results):
        dets = []
        boxes = r.boxes
        for (x1, y1, x2, y2), c, s in zip(boxes.xyxyn.cpu().tolist(), boxes.cls.cpu().tolist(),
                                          boxes.conf.cpu().tolist()):
            dets.append({"category": trained.classes[int(c)], "conf": round(float(s), 6),
                         "bbox": [round(x1, 6), round(y1, 6), round(x2 - x1, 6), round(y2 - y1, 6)]})
        p.result["detections"] = dets


#: the long side up to which a segmenter's logits are enlarged before the argmax
SMOOTH_SIDE = 2048


def _segment(trained: Trained, batch: list[_Prepared], device: str, dtype) -> None:
    """A segmenter's class-index mask per image, at the image's displayed size, as a PNG, with each
    class's pixel share. The logits are enlarged bilinearly (as ``cvft evaluate`` does) up to
    ``SMOOTH_SIDE`` on the long side, the class indices beyond that with nearest neighbour: class
    borders as smooth as the model's, memory bounded on 24-megapixel frames."""
    import base64
    import io

    import numpy as np
    import torch
    from PIL import Image

    ok = [p for p in batch if p.tensor is not None]
    if not ok:
        return
    x = torch.stack([p.tensor for p in ok]).to(device, non_blocking=True)
    with torch.inference_mode(), torch.autocast(device_type=device.split(":")[0], dtype=dtype or torch.float32,
                                                enabled=dtype is not None):
        logits = trained.model(x).float()
    for k, p in enumerate(ok):
        w, h = p.result["width"], p.result["height"]
        scale = min(1.0, SMOOTH_SIDE / max(w, h))
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        with torch.inference_mode():
            m = torch.nn.functional.interpolate(logits[k:k + 1], size=size, mode="bilinear", align_corners=False)
            m = m.argmax(1)[0].to(torch.uint8).cpu().numpy()
        full = Image.fromarray(m)
        if full.size != (w, h):
            full = full.resize((w, h), Image.Resampling.NEAREST)
        buf = io.BytesIO()
        full.save(buf, "PNG")
        p.result["mask_png"] = base64.b64encode(buf.getvalue()).decode("ascii")
        counts = np.bincount(np.asarray(full).ravel(), minlength=len(trained.classes))
        total = max(int(counts.sum()), 1)
        p.result["class_pixels"] = {trained.classes[c]: round(int(n) / total, 6) for c, n in enumerate(counts) if n}


def _segmenter_transform(trained: Trained):
    """The whole image at the model's square size (a mask must cover all of it: no centre crop)."""
    import torch
    from torchvision.transforms import v2

    return v2.Compose([v2.PILToTensor(), v2.Resize((trained.imgsz, trained.imgsz), antialias=True),
                       v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=trained.mean, std=trained.std)])


def _batches(items: Iterable[SourceImage], trained: Trained, batch: int, threads: int) -> Iterator[list[_Prepared]]:
    """Decoded batches, in order, with at most ``AHEAD`` batches decoding ahead of the consumer."""
    transform = eval_transform(trained.imgsz, trained.mean, trained.std) if trained.kind == "classifier" else \
        _segmenter_transform(trained) if trained.kind == "segmenter" else None
    pending: deque = deque()
    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="cvft-predict") as pool:
        it = iter(items)
        exhausted = False
        while True:
            while not exhausted and len(pending) < batch * AHEAD:
                item = next(it, None)
                if item is None:
                    exhausted = True
                    break
                pending.append(pool.submit(_prepare, item, trained, transform))
            if not pending:
                return
            yield [pending.popleft().result() for _ in range(min(batch, len(pending)))]


def predict(weights: str | os.PathLike | Trained, source: str | os.PathLike, *, conf: float = 0.1, batch: int = 32,
            device: str = "auto", workers: int | None = None, topk: int = 5, layout: str | None = None,
            skip: set[str] | None = None, amp: str = "auto", only: Callable[[int], bool] | None = None
            ) -> Iterator[dict]:
    """Yield the prediction of every image of ``source`` (see the module docstring), skipping the
    files in ``skip`` (already predicted by an interrupted run) and, with ``only``, the images whose
    position in the source it refuses (a shard's share). ``amp``: see :func:`inference_dtype`
    (classifiers; Ultralytics chooses its own precision)."""
    import torch

    device = pick_device(device)
    trained = weights if isinstance(weights, Trained) else load_trained(weights, device=device)
    dtype = inference_dtype(device, amp)
    if trained.kind == "classifier":
        trained.model.to(memory_format=torch.channels_last)   # faster convolutions on CPU and GPU alike
    if trained.kind == "yolo":
        device = "0" if device == "cuda" else device.replace("cuda:", "")
    _, images = open_source(source, layout=layout)
    todo = (i for k, i in enumerate(images) if (only is None or only(k)) and (not skip or i.file not in skip))
    threads = workers if workers is not None else usable_cores()
    for group in _batches(todo, trained, batch, threads):
        if trained.kind == "classifier":
            _classify(trained, group, device, topk, dtype)
        elif trained.kind == "segmenter":
            _segment(trained, group, device, dtype)
        elif trained.kind == "mask2former":
            from .panoptic import predict_panoptic
            predict_panoptic(trained, group, device)
        else:
            _detect(trained, group, device, conf, batch)
        for p in group:
            yield p.result
