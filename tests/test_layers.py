"""Data flows one way: the data package and the connectors never import the trainer (not even
inside a function); the trainer's commands reach ``cvft`` through the ``cvft.commands`` entry point."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_data_and_connectors_never_import_the_trainer():
    offenders = [f"{p.relative_to(ROOT)}: {m}" for pkg in ("cvft_data", "connectors")
                 for p in sorted((ROOT / pkg).rglob("*.py"))
                 for m in imported_modules(p) if m == "cvft_train" or m.startswith("cvft_train.")]
    assert not offenders, offenders


def test_trainer_commands_come_through_the_entry_point():
    from cvft_data.cli.main import build_parser, plugin_commands

    names = [c.name for c in plugin_commands()]
    assert names == ["train", "evaluate", "predict", "export-model"]
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(names) <= set(sub.choices)
