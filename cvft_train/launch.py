"""``python -m cvft_train.launch DATASET [cvft train options]``: the entry point for ``torchrun``
(each process runs the same command; the classification loop reads RANK/WORLD_SIZE and uses DDP)."""

from __future__ import annotations

import sys

from .cli import main


def run(argv: list[str] | None = None) -> int:
    return main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    raise SystemExit(run())
