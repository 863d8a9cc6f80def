"""The code under test is this checkout's, even when another checkout's
virtualenv (whose editable install points there) runs the suite."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tests.support import ROOT


@pytest.mark.parametrize(("package", "home"), [
    ("runtime", ROOT), ("codegen", ROOT), ("compat", ROOT), ("aisdk.components", ROOT), ("aisdk.bench", ROOT),
    ("aisdk.cli", ROOT),
    ("tests.support", ROOT), ("ai", ROOT / "generated"),
])
def test_packages_come_from_this_checkout(package: str, home: Path) -> None:
    module = importlib.import_module(package)
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().is_relative_to(home.resolve()), module.__file__
