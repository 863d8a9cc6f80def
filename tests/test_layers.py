"""Layers point one way: runtime is a library under everything else, and
components sit on the runtime and the generated contracts, below the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import ROOT

# package -> the top-level packages it must never import
FORBIDDEN = {
    "runtime": {"cli", "compat", "bench", "components", "codegen"},
    "codegen": {"cli", "compat", "bench", "components", "runtime"},
    "components": {"cli", "compat", "bench"},
    "compat": {"cli", "bench", "components"},
    # The benchmark measures the components too (the gateway beside bare litellm).
    "bench": {"cli", "compat"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_upward(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from cli.main import main\n    import compat.check\n")
    assert imported_packages(module) == {"cli", "compat"}
