"""Retention: how long the platform's tables keep finished rows, in one
place, and the pruning that each owning component runs.

| table | kept (days) | variable | rows that go |
|---|---|---|---|
| agent_tasks | 30 | AISDK_RETAIN_TASKS_DAYS | finished (succeeded or failed), by finished_at |
| agent_tool_calls | 30 | AISDK_RETAIN_TOOL_CALLS_DAYS | by executed_at |
| agent_runs (and their steps) | 30 | AISDK_RETAIN_RUNS_DAYS | ended (succeeded or failed), by finished_at |
| agent_sessions (and their turns) | 90 | AISDK_RETAIN_SESSIONS_DAYS | idle, by updated_at (the last turn) |
| llmops_operations | 90 | AISDK_RETAIN_OPERATIONS_DAYS | by occurred_at (their running totals per day stay) |
| mlops_deployment_events | 90 | AISDK_RETAIN_DEPLOYMENT_EVENTS_DAYS | by received_at |

These rows are also what makes a redelivered message idempotent, so no
retention may be shorter than a message can come back: dead letters are
kept seven days and may be replayed until then, hence a minimum of eight
(32 for operations, whose latency percentiles a month's report reads from
the days still kept).

The component that owns the table (the agents service, LLMOps, MLOps)
prunes at start and then every AISDK_RETENTION_INTERVAL_S (an hour). Any
number of workers may prune at once: a row is deleted once. LLMOps adds
each operation to its day's running totals when it stores it
(components.llmops.store), so deleting it loses no count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aisdk.components.storage import Connection, Pool, StorageError

log = logging.getLogger("aisdk.retention")
INTERVAL_ENV = "AISDK_RETENTION_INTERVAL_S"
DEFAULT_INTERVAL_S = 3600.0
# Dead letters are kept seven days (runtime.jetstream.DLQ_MAX_AGE_S) and a
# replay must still find its effect.
MIN_DAYS = 8

@dataclass(frozen=True, slots=True)
class Rule:
    component: str
    table: str
    env: str
    default_days: int
    age_column: str
    only: str = ""  # a further condition on the rows that may go
    min_days: int = MIN_DAYS

    def days(self) -> float:
        raw = os.environ.get(self.env)
        if not raw:
            return float(self.default_days)
        try:
            days = float(raw)
        except ValueError:
            raise StorageError(f"{self.env}={raw!r}: give the days to keep {self.table}' rows, e.g. "
                               f"{self.default_days}") from None
        if not days >= self.min_days:
            raise StorageError(f"{self.env}={raw!r}: keep {self.table}' rows at least {self.min_days} days "
                               f"({self.why_min})")
        return days

    @property
    def why_min(self) -> str:
        if self.min_days > MIN_DAYS:
            return "a month's report reads its latency percentiles from the days still kept"
        return "dead letters are replayed for seven, and must find their effect"

    def cutoff(self, now: datetime) -> datetime:
        # Whole UTC days: a rollup covers a day entirely or not at all.
        edge = now.astimezone(UTC) - timedelta(days=self.days())
        return edge.replace(hour=0, minute=0, second=0, microsecond=0)


RULES = (
    Rule("agents", "agent_tasks", "AISDK_RETAIN_TASKS_DAYS", 30, "finished_at", "state IN ('succeeded', 'failed')"),
    Rule("agents", "agent_tool_calls", "AISDK_RETAIN_TOOL_CALLS_DAYS", 30, "executed_at"),
    # A month's report reads its latency percentiles from the days still kept.
    Rule("llmops", "llmops_operations", "AISDK_RETAIN_OPERATIONS_DAYS", 90, "occurred_at", min_days=32),
    Rule("mlops", "mlops_deployment_events", "AISDK_RETAIN_DEPLOYMENT_EVENTS_DAYS", 90, "received_at"),
    # A run awaiting approval or running is never pruned; its steps go with it.
    Rule("agents", "agent_runs", "AISDK_RETAIN_RUNS_DAYS", 30, "finished_at", "state IN ('succeeded', 'failed')"),
    Rule("agents", "agent_sessions", "AISDK_RETAIN_SESSIONS_DAYS", 90, "updated_at"),
)


def rules(component: str) -> list[Rule]:
    """The component's rules, each checked: a bad setting fails its start."""
    found = [r for r in RULES if r.component == component]
    for r in found:
        r.days()
    return found


async def _prune(conn: Connection, rule: Rule, now: datetime) -> int:
    cutoff = rule.cutoff(now)
    where = f"{rule.age_column} < %s" + (f" AND {rule.only}" if rule.only else "")
    cur = await conn.execute(f"DELETE FROM {rule.table} WHERE {where}", (cutoff,))  # noqa: S608 - names from RULES
    return cur.rowcount


async def prune(pool: Pool, component: str, now: datetime | None = None) -> dict[str, int]:
    """Delete the component's expired rows now; rows (or rollup rows) per table."""
    now = now or datetime.now(UTC)
    done: dict[str, int] = {}
    for rule in rules(component):
        async with pool.connection() as conn, conn.transaction():
            done[rule.table] = await _prune(conn, rule, now)
    return done


class Pruner:
    """A component's retention over its lifetime: `await start()` prunes once
    (a bad setting fails the start), then every interval until `stop()`."""

    def __init__(self, component: str) -> None:
        self.component = component
        self.interval = float(os.environ.get(INTERVAL_ENV) or DEFAULT_INTERVAL_S)
        self._task: asyncio.Task[None] | None = None
        self.runs = 0

    async def start(self, pool: Pool) -> None:
        await self._once(pool)
        self._task = asyncio.create_task(self._loop(pool), name=f"retention {self.component}")

    async def _once(self, pool: Pool) -> None:
        pruned = await prune(pool, self.component)
        self.runs += 1
        if any(pruned.values()):
            log.info("retention of %s: %s", self.component, ", ".join(f"{t} {n}" for t, n in pruned.items()))

    async def _loop(self, pool: Pool) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self._once(pool)
            except Exception as e:  # noqa: BLE001 - the next run tries again; the component lives on
                log.warning("retention of %s failed: %s", self.component, e)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
