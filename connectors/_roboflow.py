"""What every Roboflow export shares: its README files and split folders."""

from __future__ import annotations

from pathlib import Path

from cvft_data.vocabulary import is_split_name

_README = ("README.roboflow.txt", "README.dataset.txt")


def _has_readme(root: Path) -> bool:
    return root.is_dir() and any((root / r).is_file() for r in _README)


def _split_dirs(root: Path) -> list[Path]:
    return [p for p in sorted(root.iterdir()) if p.is_dir() and is_split_name(p.name)] if root.is_dir() else []


def _roboflow_info(root: Path) -> dict:
    out = {}
    for r in _README:
        if (root / r).is_file():
            out[r] = (root / r).read_text(encoding="utf-8", errors="replace")[:2000]
    return {"roboflow": out} if out else {}
