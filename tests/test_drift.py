"""generated/ is exactly what the protos produce: regenerate from a clean copy
of the tree and compare byte for byte."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path

from codegen.toolchain import tool_env
from tests.conftest import ROOT, buf_exe

SOURCES = ("proto", "codegen", "buf.yaml", "buf.gen.yaml")


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_regenerating_from_scratch_changes_nothing(tmp_path: Path) -> None:
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, tmp_path / name)
    subprocess.run([buf_exe(), "generate"], cwd=tmp_path, env=tool_env(), check=True, capture_output=True)
    fresh, committed = tmp_path / "generated", ROOT / "generated"
    assert _files(fresh) == _files(committed), "generated/ has missing or extra files: run `aisdk gen`"
    _, mismatch, errors = filecmp.cmpfiles(fresh, committed, sorted(_files(fresh)), shallow=False)
    assert not mismatch and not errors, f"stale generated files (run `aisdk gen`): {mismatch + errors}"
