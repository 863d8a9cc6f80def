"""generated/ is exactly what the protos produce: regenerate from a clean copy
of the tree and compare byte for byte."""

from __future__ import annotations

from pathlib import Path

from compat.drift import compare, drift
from tests.support import ROOT


def test_regenerating_from_scratch_changes_nothing() -> None:
    assert drift(ROOT) == [], "generated/ is stale: run `aisdk gen`"


def test_compare_names_missing_extra_and_stale_files(tmp_path: Path) -> None:
    fresh, committed = tmp_path / "fresh", tmp_path / "committed"
    for d in (fresh, committed):
        (d / "ai").mkdir(parents=True)
        (d / "ai" / "same.py").write_text("x = 1\n")
    (fresh / "ai" / "new.py").write_text("")
    (committed / "ai" / "old.py").write_text("")
    (fresh / "ai" / "changed.py").write_text("x = 2\n")
    (committed / "ai" / "changed.py").write_text("x = 1\n")
    assert compare(fresh, committed) == [
        "generated/ai/new.py: missing",
        "generated/ai/old.py: not generated from any proto (delete it)",
        "generated/ai/changed.py: stale",
    ]
