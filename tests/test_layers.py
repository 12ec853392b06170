"""The engine's layers: a module imports only from its own layer or below (lazy imports inside functions too), no
module imports another's detector (only the detectors' registry and evaluation do), and the engine never imports
the app."""
from __future__ import annotations

import ast
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]

#: Bottom to top. A module belongs to the longest prefix listed.
LAYERS = [
    ["deltainf.errors", "deltainf.options", "deltainf.registry", "deltainf.progress", "deltainf.device",
     "deltainf.seeds"],
    ["deltainf.store", "deltainf.data", "deltainf.models"],
    ["deltainf.influence"],
    ["deltainf.suspicion", "deltainf.verdict"],
    ["deltainf.detectors", "deltainf.unlearning", "deltainf.attacks", "deltainf.evaluation.metrics"],
    ["deltainf.investigation", "deltainf.config"],
    ["deltainf.experiment", "deltainf.case", "deltainf.source"],
    ["deltainf.evaluation", "deltainf.figures"],
    ["deltainf.cli", "deltainf.__main__", "deltainf"],
]
APP = ("streamlit", "ui", "pages", "app")


def layer(module: str) -> int:
    best = max((p for layer in LAYERS for p in layer if module == p or module.startswith(p + ".")), key=len)
    return next(i for i, names in enumerate(LAYERS) if best in names)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path`` (or ``source`` read as that file), those inside functions
    included; ``from x import y`` gives ``x.y`` (``y`` may be a module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text() if source is None else source, str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            found += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return found


ENGINE = sorted((ROOT / "deltainf").rglob("*.py"))


def test_imports_go_down_the_layers():
    upward = [f"{module_name(path)}:{line} imports {target}" for path in ENGINE for line, target in imports(path)
              if target.startswith("deltainf.") and layer(target) > layer(module_name(path))]
    assert not upward, "imports from a layer above:\n" + "\n".join(upward)


def test_the_engine_never_imports_the_app():
    app = [f"{module_name(path)}:{line} imports {target}" for path in ENGINE for line, target in imports(path)
           if target.split(".")[0] in APP]
    assert not app, "\n".join(app)


def test_only_the_registry_and_evaluation_import_a_detector():
    detectors = {p.stem for p in (ROOT / "deltainf" / "detectors").glob("*.py")} - {"__init__"}
    found = [f"{module_name(path)}:{line} imports {target}" for path in ENGINE for line, target in imports(path)
             if module_name(path) != "deltainf.detectors" and not module_name(path).startswith("deltainf.evaluation")
             and target.split(".")[:2] == ["deltainf", "detectors"] and len(target.split(".")) > 2
             and target.split(".")[2] in detectors]
    assert not found, "\n".join(found)


def test_an_upward_import_inside_a_function_is_seen():
    probe = ROOT / "deltainf" / "data" / "probe.py"
    (line, target), = imports(probe, "def f():\n    from ..investigation import Investigation\n")
    assert (line, target) == (2, "deltainf.investigation.Investigation")
    assert layer(target) > layer(module_name(probe))
