"""torchvision classifiers built for a dataset: the head sized for its classes, the input size
passed to models that fix it (ViT, MaxViT), and weights from torchvision's pretrained files or a
local checkpoint, loaded safely and counted (:mod:`cvft_train.checkpoints`).

Example:
    >>> model, report = build_model("squeezenet1_1", 3, imgsz=64, pretrained=False)
    >>> head_prefix(model), report is None
    ('classifier.1', True)
"""

from __future__ import annotations

import logging
import re
import urllib.error
from typing import Any

from cvft_data.errors import CheckpointError, UsageError

from .checkpoints import LoadReport, fit_state_dict, read_checkpoint

log = logging.getLogger(__name__)


def classifier_names() -> list[str]:
    """Every torchvision classification model name (``resnet18``, ``vit_b_16``, ...)."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _constructor_args(name: str, num_classes: int, imgsz: int) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"num_classes": num_classes}
    if name.startswith("vit_"):
        patch = int(re.search(r"_(\d+)$", name).group(1))
        if imgsz % patch:
            raise UsageError(f"{name} cuts images into {patch}-pixel patches: --imgsz must be a multiple of {patch}, "
                             f"not {imgsz}")
        kwargs["image_size"] = imgsz
    elif name.startswith("maxvit"):
        kwargs["input_size"] = (imgsz, imgsz)
    elif name in ("inception_v3", "googlenet"):
        # auxiliary heads return a tuple in training mode; the thin trainer uses the main head only
        kwargs.update(aux_logits=False, init_weights=True)
    return kwargs


def head_prefix(model) -> str:
    """The module name of the classification head: the last ``Linear`` or ``Conv2d`` registered
    (``fc``, ``heads.head``, ``classifier.1`` for SqueezeNet's 1x1 convolution, ...)."""
    import torch

    name = None
    for n, m in model.named_modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
            name = n
    if name is None:
        raise UsageError(f"cannot find the classification head of {type(model).__name__}")
    return name


def _vit_position_adapter(model):
    """Resize a ViT's position embedding from another image size (bicubic, as torchvision does)."""
    patch = getattr(model, "patch_size", None)
    size = getattr(model, "image_size", None)

    def adapt(key: str, tensor, target_shape):
        if patch is None or not key.endswith("encoder.pos_embedding") or tensor.shape[-1] != target_shape[-1]:
            return None
        from torchvision.models.vision_transformer import interpolate_embeddings

        return interpolate_embeddings(size, patch, {"encoder.pos_embedding": tensor})["encoder.pos_embedding"]

    return adapt


def weights_url(name: str) -> str:
    """The URL of torchvision's DEFAULT weights for ``name``."""
    import torchvision

    try:
        return torchvision.models.get_model_weights(name).DEFAULT.url
    except (ValueError, AttributeError):
        raise UsageError(f"torchvision has no pretrained weights for {name}; pass --weights PATH or "
                         "--no-pretrained") from None


def pretrained_state(name: str) -> tuple[dict, str]:
    """torchvision's DEFAULT weights for ``name`` (downloaded once into the torch hub cache,
    hash-checked, read with ``weights_only=True``) and their URL."""
    import torch

    url = weights_url(name)
    try:
        state = torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False, check_hash=True,
                                                   weights_only=True)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise CheckpointError(
            f"could not fetch the pretrained weights of {name} from {url} ({reason}); on a machine without internet "
            f"pass --weights PATH to a local copy of that file (or put it in {torch.hub.get_dir()}/checkpoints), "
            "or --no-pretrained to train from random weights") from None
    return state, url


def build_model(name: str, num_classes: int, *, imgsz: int = 224, pretrained: bool = True,
                weights: str | None = None, classes: list[str] | None = None) -> tuple[Any, LoadReport | None]:
    """A torchvision classifier for ``num_classes`` at ``imgsz``, and how its weights were loaded.

    ``weights`` (a local checkpoint, see :mod:`cvft_train.checkpoints`) wins over ``pretrained``
    (torchvision's DEFAULT weights). The head keeps a checkpoint's weights when its shape fits
    (same class count) and, for a checkpoint that names its classes (cvft's), when they are
    ``classes``; else it starts new. Returns ``(model, report)``; ``report`` is None when the
    model starts from random weights.
    """
    import torchvision

    if name not in classifier_names():
        close = [n for n in classifier_names() if n.startswith(name.split("_")[0][:3])][:8]
        raise UsageError(f"{name!r} is not a torchvision classification model" +
                         (f"; did you mean {', '.join(close)}?" if close else "; see torchvision.models.list_models()"))
    model = torchvision.models.get_model(name, weights=None, **_constructor_args(name, num_classes, imgsz))
    meta: dict[str, Any] = {}
    if weights:
        (state, meta), source = read_checkpoint(weights), str(weights)
    elif pretrained:
        state, source = pretrained_state(name)
    else:
        return model, None
    same_classes = classes is None or meta.get("classes") in (None, list(classes))
    report = fit_state_dict(model, state, head=(head_prefix(model) + ".",), source=source,
                            adapt=_vit_position_adapter(model), keep_head=same_classes)
    log.info("%s", report)
    return model, report
