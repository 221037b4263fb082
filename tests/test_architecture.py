"""The import rules of ARCHITECTURE.md, enforced: packages import only the layers below them, only the MLflow wing
(rookery.packaging) imports mlflow, and `import rookery` stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import rookery

SRC = Path(rookery.__file__).resolve().parent
# Lowest first; a package may import its own layer and the layers below it, never one above.
LAYERS = [
    {"base"},  # the top-level modules: types, errors, config, imaging, logs, offline, parallel
    {"data", "models"},
    {"inference"},
    {"packaging"},  # the MLflow wing
    {"evaluation"},
    {"training"},
    {"scale", "serving"},
    {"cli", "app"},  # the CLI, the demo, `python -m rookery` and the notebook API
]
# The app layer's top-level modules: the demo, `python -m rookery`, the notebook API (api.py) and the package's
# __init__, whose `rookery.load` imports api.py when called (so `import rookery` stays light).
APP_MODULES = {"demo", "__main__", "api", "__init__"}


def _layer_of(package: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if package in names)


def _package(path: Path) -> str:
    rel = path.relative_to(SRC)
    if len(rel.parts) > 1:
        return rel.parts[0]
    return "app" if rel.stem in APP_MODULES else "base"


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, function-level ones included."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _target(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "rookery":
        return None
    if len(parts) == 1 or (SRC / f"{parts[1]}.py").is_file():
        return "app" if len(parts) > 1 and parts[1] in APP_MODULES else "base"
    return parts[1]


def test_packages_import_only_their_own_layer_and_below():
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        source = _package(path)
        for line, module in _imports(path):
            target = _target(module)
            if target is not None and _layer_of(target) > _layer_of(source):
                wrong.append(f"{path.relative_to(SRC)}:{line} ({source}) imports {module} ({target})")
    assert not wrong, "imports against the layering of ARCHITECTURE.md:\n" + "\n".join(wrong)


def test_only_the_mlflow_wing_imports_mlflow():
    wing = SRC / "packaging"
    wrong = [
        f"{path.relative_to(SRC)}:{line} imports {module}"
        for path in sorted(SRC.rglob("*.py"))
        if wing not in path.parents
        for line, module in _imports(path)
        if module == "mlflow" or module.startswith("mlflow.")
    ]
    assert not wrong, "mlflow is imported outside rookery.packaging:\n" + "\n".join(wrong)


def test_no_private_name_is_shared_across_modules():
    """A name with a leading underscore is its module's own: another module that needs it gets a public name."""
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rookery"):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                wrong += [f"{path.relative_to(SRC)}:{node.lineno} imports {node.module}.{name}" for name in private]
    assert not wrong, "private names used across modules:\n" + "\n".join(wrong)


def test_import_rookery_loads_no_heavy_framework():
    code = (
        "import sys, rookery, rookery.types, rookery.config, rookery.errors; "
        "print(' '.join(m for m in ('torch', 'mlflow', 'ultralytics', 'onnxruntime', 'ray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"`import rookery` imported {out}"
