"""`make demo` (`aisdk demo`) runs end to end."""

from __future__ import annotations

from tests.support import ROOT, aisdk


def test_demo_runs() -> None:
    out = aisdk(ROOT, "demo", timeout=120)
    assert out.returncode == 0, out.stderr
    for label in ("serving", "requested", "refused", "remote", "dead letter", "discovery"):
        assert any(line.startswith(label) for line in out.stdout.splitlines()), label
    assert "request ai.prompt.context.{tenant_id}" in out.stdout, "the trace waterfall is printed"
