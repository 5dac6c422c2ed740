"""The layers of ARCHITECTURE.md, checked on every module's imports (function-level ones too): the
kernel and the connectors stay light, the data package never imports the trainer, and the
trainer's commands reach ``cvft`` through the ``cvft.commands`` entry point."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


KERNEL = {"errors", "paths", "boxes", "vocabulary", "records", "ledger", "imageinfo", "masks", "archive"}
HEAVY = ("datasets", "pyarrow", "polars")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts[:-1]) if rel.name == "__init__" else list(rel.parts)
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """Absolute names of what ``path`` imports (relative imports resolved; ``from pkg import mod``
    counted as ``pkg.mod``)."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package[: len(package) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            subs = {f"{base}.{a.name}" for a in node.names}
            # `from pkg import module` imports the module (and runs pkg/__init__, which this graph
            # treats as the package's own business); `from pkg import name` imports pkg
            names.update(subs if all(_is_module(m) for m in subs) else subs | {base})
    return names


def _is_module(name: str) -> bool:
    p = ROOT.joinpath(*name.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def project_files(*packages: str) -> list[Path]:
    return [p for pkg in packages for p in sorted((ROOT / pkg).rglob("*.py"))]


def test_the_kernel_imports_only_the_kernel():
    offenders = []
    for p in project_files("cvft_data"):
        if module_name(p).split(".")[-1] not in KERNEL or p.parent.name != "cvft_data":
            continue
        for m in imported_modules(p):
            top = m.split(".")
            if top[0] in HEAVY or (top[0] == "cvft_data" and len(top) > 1 and top[1] not in KERNEL):
                offenders.append(f"{p.relative_to(ROOT)}: {m}")
    assert not offenders, offenders


def test_connectors_import_only_the_kernel():
    offenders = [f"{p.relative_to(ROOT)}: {m}" for p in project_files("connectors") for m in imported_modules(p)
                 if m.split(".")[0] in ("datasets", "pyarrow", "cvft_train")   # polars reads species sheets
                 or (m.startswith("cvft_data.") and m.split(".")[1] not in KERNEL)]
    assert not offenders, offenders


def test_importing_connectors_stays_light():
    import subprocess
    import sys

    code = "import connectors, sys; print(sorted(m for m in ('datasets', 'pyarrow', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "[]"


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


def test_a_bugs_value_error_is_not_reported_as_a_usage_error(tmp_path, monkeypatch):
    import pytest

    import cvft_data.splits
    from cvft_data.cli import main as cvft_cli
    from cvft_data.errors import UsageError

    assert issubclass(UsageError, ValueError), "callers catching ValueError for bad arguments keep working"
    monkeypatch.setattr(cvft_data.splits, "split", lambda *a, **k: int("a bug"))
    with pytest.raises(ValueError, match="invalid literal"):
        cvft_cli.main(["split", str(tmp_path), "--out", str(tmp_path / "o")])


def test_library_progress_goes_through_logging(tmp_path, caplog):
    import cvft_data
    from cvft_data.sample import write_coco_sample

    with caplog.at_level("INFO", logger="cvft_data"):
        cvft_data.ingest(write_coco_sample(tmp_path / "src", n_images=4), tmp_path / "ds", progress=True)
    assert "ingesting 4 images with coco" in caplog.text
    offenders = [f"{p.relative_to(ROOT)}:{line}" for pkg in ("cvft_data", "connectors", "cvft_train")
                 for p in sorted((ROOT / pkg).rglob("*.py")) if "cli" not in p.parts and p.name != "cli.py"
                 for line in library_prints(ast.parse(p.read_text(encoding="utf-8")))]
    assert not offenders, f"print() in library code: {offenders}"


def library_prints(tree: ast.AST) -> list[int]:
    """Lines of print() calls outside a module's command-line ``main()``."""
    in_main = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "main"
               for n in ast.walk(f)}
    return [n.lineno for n in ast.walk(tree)
            if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print" and id(n) not in in_main]


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (function-level imports included)."""
    files = {module_name(p): p for p in project_files("cvft_data", "connectors", "cvft_train")}
    graph = {}
    for mod, path in files.items():
        deps = set()
        for m in imported_modules(path):
            while m and m not in files:
                m = m.rpartition(".")[0]
            if m and m != mod and not mod.startswith(m + "."):
                deps.add(m)
        graph[mod] = deps
    return graph


def test_no_import_cycles():
    graph = import_graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_modules_stay_small():
    big = [f"{p.relative_to(ROOT)}: {n}" for p in project_files("cvft_data", "connectors", "cvft_train")
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450]
    assert not big, f"modules over 450 lines (split them along their seams): {big}"
