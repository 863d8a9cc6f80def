"""The aisdk CLI as a user runs it: a real process, real output, real exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def aisdk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_subjects_json_lists_the_registry() -> None:
    out = aisdk("subjects", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    keys = {"subject", "service", "rpc", "pattern", "queue_group", "request_type", "reply_type", "timeout_ms", "durable"}
    assert all(keys <= row.keys() for row in rows)
    by_subject = {r["subject"]: r for r in rows}
    row = by_subject["ai.gateway.requests.{tenant_id}"]
    assert row["service"] == "ai.gateway.v1.GatewayService"
    assert row["rpc"] == "Requests"
    assert row["pattern"] == "request_reply"
    assert row["queue_group"] == "gateway.workers"
    assert row["reply_type"] == "ai.gateway.v1.LlmResponse"
    assert row["timeout_ms"] == 60000
    assert row["durable"] is False
    assert by_subject["ai.rag.ingest.{tenant_id}"]["durable"] is True


def test_subjects_for_a_tenant() -> None:
    out = aisdk("subjects", "--json", "--tenant", "acme")
    assert "ai.agent.message.acme" in {r["subject"] for r in json.loads(out.stdout)}
    table = aisdk("subjects", "--tenant", "acme")
    assert "ai.gateway.requests.acme" in table.stdout


def test_bad_tenant_is_one_line_and_non_zero() -> None:
    out = aisdk("subjects", "--tenant", "acme.*")
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1
    assert "invalid tenant id 'acme.*'" in out.stderr
    assert "Traceback" not in out.stderr


def test_lint_is_clean() -> None:
    out = aisdk("lint")
    assert out.returncode == 0, out.stderr
    assert "clean" in out.stdout


def test_unknown_command_is_a_usage_error() -> None:
    out = aisdk("frobnicate")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
