"""``cvft export-model``: a trained classifier as ONNX or TorchScript for other runtimes; YOLO
models through Ultralytics' own exporter.

The exported classifier takes a float32 batch ``N x 3 x S x S`` (any N: the batch dimension is
dynamic), already resized and normalised, and returns logits. Beside it, ``FILE.json`` holds what a
runtime needs to use it: class names, input size, mean and std, the resize rule and the model name.

Example:
    >>> import tempfile, pathlib, torch
    >>> from cvft_train.models import build_model
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> net, _ = build_model("squeezenet1_1", 2, imgsz=64, pretrained=False)
    >>> torch.save({"model": net.state_dict(), "model_name": "squeezenet1_1", "classes": ["cat", "dog"],
    ...             "imgsz": 64}, tmp / "best.pt")
    >>> meta = export_model(tmp / "best.pt", "torchscript", tmp / "model.ts")
    >>> meta["classes"], torch.jit.load(tmp / "model.ts")(torch.zeros(3, 3, 64, 64)).shape
    (['cat', 'dog'], torch.Size([3, 2]))
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from cvft_data.errors import UsageError

from .trained import Trained, load_trained

EXPORT_FORMATS = ("onnx", "torchscript")


def export_model(weights: str | os.PathLike | Trained, fmt: str, out: str | os.PathLike, *,
                 overwrite: bool = False) -> dict[str, Any]:
    """Write ``weights`` as ``fmt`` to ``out`` (and ``out.json``); returns that metadata."""
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"unknown model format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise UsageError(f"{out} already exists; pass --overwrite to replace it")
    trained = weights if isinstance(weights, Trained) else load_trained(weights, device="cpu")
    if trained.kind == "mask2former":
        raise UsageError("export-model does not write Mask2Former (its post-processing is Python code); serve the "
                         "checkpoint with cvft predict, or export the transformers model with Hugging Face optimum")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    if trained.kind == "yolo":
        exported = Path(trained.model.export(format=fmt, dynamic=True, imgsz=trained.imgsz))
        shutil.move(str(exported), tmp)
        meta = {"format": fmt, "kind": "yolo", "task": trained.task, "classes": trained.classes,
                "imgsz": trained.imgsz, "preprocess": "Ultralytics letterbox, RGB 0-1", "source": str(trained.path)}
    elif trained.kind == "segmenter":
        _export_classifier(trained, fmt, tmp)
        meta = {"format": fmt, "kind": "segmenter", "task": trained.task, "model": trained.model_name,
                "classes": trained.classes, "imgsz": trained.imgsz, "mean": trained.mean, "std": trained.std,
                "ignore_index": trained.ignore_index,
                "preprocess": f"RGB, resize the whole image to {trained.imgsz}x{trained.imgsz} (no crop), scale to "
                              "0-1, subtract mean, divide by std; NCHW float32",
                "output": "logits per class and pixel (N, C, H, W): argmax over C is the class-index mask",
                "input_name": "images", "output_name": "logits", "source": str(trained.path)}
    else:
        _export_classifier(trained, fmt, tmp)
        meta = {"format": fmt, "kind": "classifier", "task": trained.task, "model": trained.model_name,
                "classes": trained.classes, "imgsz": trained.imgsz, "mean": trained.mean, "std": trained.std,
                "preprocess": f"RGB, resize the shorter side to {trained.imgsz}, centre crop {trained.imgsz}x"
                              f"{trained.imgsz}, scale to 0-1, subtract mean, divide by std; NCHW float32",
                "output": "sigmoid(logits) per class" if trained.task == "multilabel" else "softmax(logits)",
                "input_name": "images", "output_name": "logits", "source": str(trained.path)}
    os.replace(tmp, out)
    from cvft_data.store import write_text_atomic

    write_text_atomic(out.with_name(out.name + ".json"), json.dumps(meta, indent=2))
    return meta


def _export_classifier(trained: Trained, fmt: str, path: Path) -> None:
    import torch

    model = trained.model.eval().to("cpu")
    example = torch.zeros(2, 3, trained.imgsz, trained.imgsz)
    if fmt == "torchscript":
        with torch.no_grad():
            torch.jit.save(torch.jit.trace(model, example), str(path))
        return
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise UsageError("ONNX export needs onnx and onnxscript: pip install 'cvft[export]'") from None
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(model, (example,), input_names=["images"], output_names=["logits"],
                                dynamic_shapes={"x": {0: batch}}, dynamo=True, verbose=False)
    program.save(str(path))
