"""generated/ is exactly what the protos produce: regenerate in a clean copy
of the inputs and compare byte for byte.

A copy, not the tree itself, so a check never rewrites the working tree and
nothing left over in generated/ (a stale module of a deleted proto) can
hide in the comparison.
"""

from __future__ import annotations

import filecmp
import shutil
import tempfile
from pathlib import Path

from codegen import toolchain

SOURCES = ("proto", "codegen", "buf.yaml", "buf.gen.yaml")
GENERATED = "generated"


def regenerate(root: Path, dest: Path) -> Path:
    """Copy the generator's inputs from root into dest and generate there."""
    for name in SOURCES:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return toolchain.generate(root=dest)


def _files(root: Path) -> set[str]:
    if not root.is_dir():
        return set()
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def compare(fresh: Path, committed: Path) -> list[str]:
    """Paths under generated/ that are missing, extra or stale, each with why."""
    want, have = _files(fresh), _files(committed)
    problems = [f"{GENERATED}/{p}: missing" for p in sorted(want - have)]
    problems += [f"{GENERATED}/{p}: not generated from any proto (delete it)" for p in sorted(have - want)]
    _, mismatch, errors = filecmp.cmpfiles(fresh, committed, sorted(want & have), shallow=False)
    problems += [f"{GENERATED}/{p}: stale" for p in sorted(mismatch + errors)]
    return problems


def drift(root: Path) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="aisdk-drift-") as tmp:
        return compare(regenerate(root, Path(tmp)), root / GENERATED)
