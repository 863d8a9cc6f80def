"""The fault scenarios of `aisdk chaos` at their quick size, on real
servers, workers and PostgreSQL: each must lose nothing acknowledged and
duplicate no effect, counted in the database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aisdk.cli.faults import outcome, suite
from tests.support import ROOT, aisdk


@pytest.mark.parametrize("name", [n for n in suite.SCENARIOS if n != "slow-consumer"])
async def test_scenario_loses_and_duplicates_nothing(name: str, tmp_path: Path) -> None:
    result = await suite.SCENARIOS[name](outcome.QUICK, tmp_path)
    assert (result.lost, result.duplicates) == (0, 0), result.as_json()
    assert result.processed == result.sent, result.as_json()
    assert result.passed, result.as_json()


def test_chaos_json_reports_what_it_counted() -> None:
    # The slow consumer drops by design; every drop must be counted.
    run = aisdk(ROOT, "chaos", "--quick", "--json", "slow-consumer")
    assert run.returncode == 0, run.stderr
    (row,) = json.loads(run.stdout)["scenarios"]
    assert {"name", "sent", "processed", "lost", "duplicates", "passed"} <= row.keys()
    assert row["passed"] and row["lost"] == 0 and row["duplicates"] == 0
    assert row["processed"] + row["detail"]["dropped"] == row["sent"] == outcome.QUICK.slow_messages
    assert row["detail"]["peak_pending"] <= row["detail"]["pending_limit"]


def test_an_unknown_scenario_is_one_line() -> None:
    run = aisdk(ROOT, "chaos", "no-such-fault")
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        f"aisdk chaos: unknown scenario no-such-fault: choose from {', '.join(suite.SCENARIOS)}"
    ]
