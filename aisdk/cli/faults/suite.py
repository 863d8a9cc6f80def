"""Every scenario, in the order `aisdk chaos` runs them."""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from aisdk.cli.faults import cluster, nats_restart, poison, postgres_restart, slow_consumer, worker_kill
from aisdk.cli.faults.outcome import Outcome, Size

Scenario = Callable[[Size, Path], Awaitable[Outcome]]

SCENARIOS: dict[str, Scenario] = {
    nats_restart.NAME: nats_restart.run,
    worker_kill.NAME: worker_kill.run,
    cluster.NAME: cluster.run,
    slow_consumer.NAME: slow_consumer.run,
    postgres_restart.NAME: postgres_restart.run,
    poison.NAME: poison.run,
}


async def run(names: Sequence[str], size: Size, report: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run the named scenarios one after another, each in a scratch directory;
    a scenario that raises is reported as failed with its error."""
    outcomes = []
    for name in names:
        with tempfile.TemporaryDirectory(prefix="aisdk-chaos-") as workdir:
            try:
                outcome = await SCENARIOS[name](size, Path(workdir))
            except Exception as e:  # noqa: BLE001 - one broken scenario must not hide the others' results
                outcome = Outcome(name, checks={"ran to the end": False}, detail={"error": f"{type(e).__name__}: {e}"})
        if report is not None:
            report(outcome)
        outcomes.append(outcome)
    return outcomes
