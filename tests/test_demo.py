"""`make demo` runs end to end."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_demo_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "runtime.demo"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for label in ("serving", "requested", "refused", "remote", "dead letter", "discovery"):
        assert any(line.startswith(label) for line in out.stdout.splitlines()), label
    assert "request ai.prompt.context.{tenant_id}" in out.stdout, "the trace waterfall is printed"
