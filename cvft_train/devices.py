"""Device choice: CUDA, then Apple MPS, then CPU; threads and DataLoader workers sized to what this
process may use (its CPU affinity, ``OMP_NUM_THREADS``, one share per ``torchrun`` process)."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask: SLURM, taskset and containers narrow it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_threads() -> int:
    """Intra-op threads for this process: ``OMP_NUM_THREADS`` when set (torchrun sets 1 per
    process), else the usable cores shared among the processes ``torchrun`` started on this node.

    >>> import os; os.environ["OMP_NUM_THREADS"] = "3"; cpu_threads()
    3
    >>> del os.environ["OMP_NUM_THREADS"]
    """
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, usable_cores() // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", 1))))


def default_workers() -> int:
    """DataLoader workers when none are asked for: one per usable core of this process's share,
    at most 8 (decoding a batch also uses threads in the main process)."""
    share = usable_cores() // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    return max(0, min(8, share))


def pick_device(requested: str | None = "auto") -> str:
    """``auto`` -> ``cuda`` when available, else ``mps``, else ``cpu``.

    On CPU torch gets :func:`cpu_threads` threads (libraries such as Ultralytics set cores-1 at
    import, measured 1.67x slower per epoch on 2 cores) without overriding ``OMP_NUM_THREADS`` or
    reaching past the affinity mask. On CUDA, cuDNN picks its fastest kernels for the fixed input
    size (``cudnn.benchmark``).

    >>> pick_device("cpu")
    'cpu'
    """
    import torch

    if requested in ("", "auto", None):
        if torch.cuda.is_available():
            requested = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            requested = "mps"
        else:
            requested = "cpu"
    if "," in requested:
        from cvft_data.errors import UsageError
        raise UsageError(f"--device {requested}: several GPUs are Ultralytics' syntax; a torchvision classifier "
                         "trains on several GPUs under torchrun (torchrun --nproc_per_node=N -m cvft_train.launch)")
    if requested.isdigit():
        requested = f"cuda:{requested}"
    if requested == "cpu":
        torch.set_num_threads(cpu_threads())
    elif requested.startswith("cuda"):
        if not torch.cuda.is_available():
            from cvft_data.errors import UsageError
            raise UsageError(f"--device {requested}: no CUDA device is visible to this process")
        torch.backends.cudnn.benchmark = True
    return requested


def cpu_has_native_bf16() -> bool:
    """True on CPUs with bfloat16 arithmetic in hardware (AVX512-BF16, AMX), where bf16 inference
    runs about twice as fast as float32 (Linux; elsewhere False)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return " avx512_bf16" in line or " amx_bf16" in line
    except OSError:
        pass
    return False


def amp_dtype(device: str, amp: str):
    """The autocast dtype for ``device`` (None: no autocast). bf16 where the GPU supports it."""
    import torch

    if amp == "off" or not device.startswith("cuda"):
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def distributed() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from ``torchrun``'s environment; (0, 0, 1) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
