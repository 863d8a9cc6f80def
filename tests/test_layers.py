"""Layers point one way: runtime is a library under everything else, and
components sit on the runtime and the generated contracts, below the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import ROOT

CLI, COMPONENTS, BENCH = "aisdk.cli", "aisdk.components", "aisdk.bench"

# package -> the packages it must never import. The application layers live
# under one namespace (aisdk.*), so a layer there is named by two parts.
FORBIDDEN = {
    "runtime": {CLI, "compat", BENCH, COMPONENTS, "codegen", "aisdk"},
    "codegen": {CLI, "compat", BENCH, COMPONENTS, "runtime", "aisdk"},
    COMPONENTS: {CLI, "compat", BENCH},
    "compat": {CLI, BENCH, COMPONENTS},
    # The benchmark measures the components too (the gateway beside bare litellm).
    BENCH: {CLI, "compat"},
}


def layer(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "aisdk" and len(parts) > 1 else parts[0]


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(layer(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(layer(node.module))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_upward(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in sorted((ROOT / package.replace(".", "/")).rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from aisdk.cli.main import main\n    import compat.check\n")
    assert imported_packages(module) == {"aisdk.cli", "compat"}
