"""The aisdk CLI as a user runs it: a real process, real output, real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support import ROOT, aisdk as run_aisdk, checkout_env


def aisdk(*args: str) -> subprocess.CompletedProcess[str]:
    return run_aisdk(ROOT, *args, timeout=120)


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


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("subjects", "--json"), 141),
        (("subjects",), 141),
        (("subjects", "--tenant", "acme"), 141),
        # argparse drops a failed help write itself and exits 0.
        (("--help",), 0),
    ],
)
def test_a_reader_that_leaves_is_no_error(args: tuple[str, ...], code: int) -> None:
    """`aisdk subjects --json | head -1`: the reader is gone before the
    command writes (a pipe whose read end is already closed), so every write
    fails; the command stops quietly, as if killed by SIGPIPE (exit 141)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "aisdk.cli", *args], cwd=ROOT, env=checkout_env(ROOT),
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert proc.stderr == ""
    assert proc.returncode == code


def test_check_steps_match_compat() -> None:
    """cli.compat repeats compat's step names, so that `aisdk --help` works
    where compat is not installed; they must not drift apart."""
    from aisdk.cli import compat as cli_compat
    from compat import check

    assert cli_compat.STEPS == (*check.STEPS, "asyncapi")
    assert cli_compat.EXAMPLES == check.EXAMPLES


def test_cli_imports_nothing_generated_to_start() -> None:
    """`aisdk gen` must run when generated/ is broken or absent, and `--help`
    stays fast: the parser loads no generated code, components or OTel SDK."""
    code = (
        "import sys; from aisdk.cli.main import build_parser; build_parser(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ai', 'opentelemetry', 'nats')"
        " or m.startswith('aisdk.components')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=checkout_env(ROOT),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
