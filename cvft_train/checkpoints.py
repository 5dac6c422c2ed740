"""Reading weights files safely and fitting them onto a model, with a count of what was loaded.

Every file is read with ``torch.load(weights_only=True)`` or as safetensors: a checkpoint cannot
run code. What is accepted:

- a plain state dict (torchvision, timm, ``torch.save(model.state_dict())``), or a safetensors file;
- the usual wrappers: cvft's ``{"model": ...}``, Lightning's and timm's ``{"state_dict": ...}``,
  ``{"model_state_dict": ...}``;
- the usual key prefixes (``module.`` from DDP, ``model.`` from Lightning, ``_orig_mod.`` from
  ``torch.compile``): the prefix that matches most of the model's tensors is stripped.

:func:`fit_state_dict` loads what fits by name and shape and returns a :class:`LoadReport`; it
refuses (:class:`~cvft_data.errors.CheckpointError`) a checkpoint that fills less than half of the
model's backbone weights or has backbone tensors of another shape (another architecture), so
"trained from the checkpoint" never silently means "trained from random".

Example:
    >>> import torch, tempfile, pathlib
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ddp.pt"
    >>> torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    >>> report = fit_state_dict(net, read_state_dict(path), head=("2.",), source=str(path))
    >>> report.loaded, report.total
    (4, 4)
"""

from __future__ import annotations

import os
import pickle
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvft_data.errors import CheckpointError

#: Keys under which training frameworks keep the state dict, in the order they are tried.
WRAPPER_KEYS = ("model", "state_dict", "model_state_dict", "net", "weights")


def read_state_dict(path: str | os.PathLike) -> dict[str, Any]:
    """The tensors of the weights file at ``path`` (safetensors or a torch file), unwrapped."""
    return read_checkpoint(path)[0]


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(state_dict, meta)``: the tensors, and what a cvft checkpoint says beside them (``classes``)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu"), {}
        except Exception as exc:  # safetensors raises its own SafetensorError for a bad header
            raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        detail = f" ({found.group(1)})" if found else ""
        raise CheckpointError(
            f"{path} pickles Python objects{detail}, not just tensors; cvft reads checkpoints with "
            "weights_only=True so that a file cannot run code. Save the weights with "
            "torch.save(model.state_dict(), path) or as safetensors") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    state = unwrap(obj)
    if state is None:
        keys = sorted(obj)[:10] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{path} holds no state dict (top level: {keys}); expected a dict of tensors or one "
                              f"under {', '.join(WRAPPER_KEYS)}")
    meta = {"classes": obj["classes"]} if isinstance(obj, dict) and isinstance(obj.get("classes"), list) else {}
    return state, meta


def unwrap(obj: Any) -> dict[str, Any] | None:
    """The state dict inside ``obj`` (itself, or under one of :data:`WRAPPER_KEYS`), else None."""
    import torch

    def is_state(d: Any) -> bool:
        return isinstance(d, dict) and bool(d) and all(isinstance(v, torch.Tensor) for v in d.values())

    if is_state(obj):
        return obj
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            if is_state(obj.get(key)):
                return obj[key]
    return None


@dataclass
class LoadReport:
    """What :func:`fit_state_dict` did: ``loaded`` of ``total`` model tensors came from the file."""

    source: str
    loaded: int
    total: int
    backbone_loaded: int
    backbone_total: int
    prefix: str = ""
    new_head: list[str] = field(default_factory=list)       # head tensors left as initialised (new classes)
    missing: list[str] = field(default_factory=list)        # backbone tensors the file did not provide
    mismatched: list[str] = field(default_factory=list)     # same name, other shape
    unused: int = 0                                         # file tensors that matched nothing

    def __str__(self) -> str:
        s = f"loaded {self.loaded} of {self.total} tensors from {self.source}"
        if self.prefix:
            s += f" (prefix {self.prefix!r} stripped)"
        if self.new_head:
            s += f"; new head for this dataset's classes: {', '.join(self.new_head)}"
        if self.missing or self.mismatched:
            s += f"; {len(self.missing)} backbone tensors missing, {len(self.mismatched)} of another shape"
        if self.unused:
            s += f"; {self.unused} tensors of the file unused"
        return s

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "loaded": self.loaded, "total": self.total, "prefix": self.prefix,
                "new_head": self.new_head, "missing": len(self.missing), "mismatched": len(self.mismatched),
                "unused": self.unused}


def best_prefix(file_keys: list[str], shapes: dict[str, tuple], model_shapes: dict[str, tuple]) -> str:
    """The prefix that, stripped from the file's keys, names the most model tensors of the same shape."""
    votes: Counter[str] = Counter()
    by_suffix: dict[str, list[str]] = {}
    for m in model_shapes:
        by_suffix.setdefault(m.rsplit(".", 1)[-1], []).append(m)
    for k in file_keys:
        for m in by_suffix.get(k.rsplit(".", 1)[-1], ()):
            if k.endswith(m) and (len(k) == len(m) or k[-len(m) - 1] == ".") and shapes[k] == model_shapes[m]:
                votes[k[: len(k) - len(m)]] += 1
    return votes.most_common(1)[0][0] if votes else ""


def fit_state_dict(model, state: dict[str, Any], *, head: tuple[str, ...], source: str,
                   adapt=None, keep_head: bool = True) -> LoadReport:
    """Load the tensors of ``state`` that fit ``model`` by name and shape.

    ``head`` names the key prefixes of the classification head: a head of another shape (other
    classes) is left as initialised, and so is any head when ``keep_head`` is False. ``adapt(key, tensor, target_shape)`` may return a resized
    tensor for a shape mismatch it knows how to mend (a ViT's position embedding at another size).
    Raises :class:`CheckpointError` when less than half of the backbone's weights load or a
    backbone tensor has another shape.
    """
    own = model.state_dict()
    own_shapes = {k: tuple(v.shape) for k, v in own.items()}
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    prefix = best_prefix(list(state), shapes, own_shapes)
    renamed = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)} if prefix else dict(state)
    take, new_head, missing, mismatched = {}, [], [], []
    for k, target in own_shapes.items():
        in_head = k.startswith(head)
        v = renamed.get(k) if keep_head or not in_head else None
        if v is not None and tuple(v.shape) != target and adapt is not None:
            adapted = adapt(k, v, target)   # None: it cannot mend this one
            v = v if adapted is None else adapted
        if v is not None and tuple(v.shape) == target:
            take[k] = v
        elif in_head:
            new_head.append(k)
        elif v is None:
            missing.append(k)
        else:
            mismatched.append(k)
    backbone_total = sum(1 for k in own if not k.startswith(head))
    backbone_loaded = sum(1 for k in take if not k.startswith(head))
    # by numbers, not tensors: batch-norm vectors of another network often fit where its convolutions do not
    backbone_numel = sum(v.numel() for k, v in own.items() if not k.startswith(head))
    loaded_numel = sum(v.numel() for k, v in take.items() if not k.startswith(head))
    report = LoadReport(source=source, loaded=len(take), total=len(own), backbone_loaded=backbone_loaded,
                        backbone_total=backbone_total, prefix=prefix, new_head=new_head, missing=missing,
                        mismatched=mismatched, unused=len(set(renamed) - set(take)))
    if mismatched or (backbone_numel and loaded_numel * 2 < backbone_numel):
        examples = ", ".join((mismatched + missing)[:4])
        raise CheckpointError(
            f"{source} does not fit {type(model).__name__}: only {backbone_loaded} of its {backbone_total} backbone "
            f"tensors ({loaded_numel / backbone_numel:.0%} of its weights) match by name and shape (e.g. missing or "
            f"different: {examples}). Is it a checkpoint of another architecture? Pass --model to match it")
    model.load_state_dict(take, strict=False)
    return report
