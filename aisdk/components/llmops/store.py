"""The SQL of LLMOps: operations stored once, budget crossings recorded once,
usage reports aggregated by PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ai.llmops.v1 import llmops_pb2
from aisdk.components.llmops.budgets import Budget
from aisdk.components.storage import Connection

CACHED = llmops_pb2.OPERATION_STATUS_CACHED
ERROR = llmops_pb2.OPERATION_STATUS_ERROR
# First key of the per-tenant transaction lock that orders budget checks.
_BUDGET_LOCK = 0x4C4C4D4F  # "LLMO"


async def insert_operation(conn: Connection, tenant: str, op: llmops_pb2.LlmOperation, at: datetime) -> bool:
    """Store the operation unless its id is already stored; True if stored now."""
    t = op.tokens
    cur = await conn.execute(
        """
        INSERT INTO llmops_operations (tenant_id, operation_id, operation_type, status, model, request_id,
            prompt_tokens, completion_tokens, total_tokens, cost, latency_ms, occurred_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (tenant_id, operation_id) DO NOTHING
        """,
        (tenant, op.operation_id, op.operation_type, op.status, op.model, op.request_id,
         t.prompt, t.completion, t.total or t.prompt + t.completion, op.cost, op.latency_ms, at),
    )
    return cur.rowcount == 1


async def record_crossings(conn: Connection, tenant: str, budget: Budget, at: datetime) -> bool:
    """Record every threshold the tenant's spend in the period of `at` has
    reached; True if one was new. Call inside the transaction that stored the
    operation: the lock makes concurrent workers see each other's spend, and
    the key makes a crossing recorded once."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_BUDGET_LOCK, tenant))
    start, end = budget.bounds(at)
    cur = await conn.execute(
        "SELECT coalesce(sum(cost), 0) FROM llmops_operations"
        " WHERE tenant_id = %s AND occurred_at >= %s AND occurred_at < %s",
        (tenant, start, end),
    )
    row = await cur.fetchone()
    spend = float(row[0]) if row else 0.0
    new = False
    for threshold in budget.crossed(spend):
        cur = await conn.execute(
            """
            INSERT INTO llmops_budget_alerts (tenant_id, period_start, threshold, period, period_end, budget, spend)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT DO NOTHING
            """,
            (tenant, start, threshold, budget.period, end, budget.limit, spend),
        )
        new = new or cur.rowcount == 1
    return new


@dataclass(frozen=True, slots=True)
class Crossing:
    period_start: datetime
    threshold: float
    period: str
    period_end: datetime
    budget: float
    spend: float


async def pending_crossings(conn: Connection, tenant: str) -> list[Crossing]:
    """Crossings not yet published, locked for this transaction; another
    worker's transaction skips them rather than publishing them twice."""
    cur = await conn.execute(
        """
        SELECT period_start, threshold, period, period_end, budget, spend FROM llmops_budget_alerts
        WHERE tenant_id = %s AND published_at IS NULL
        ORDER BY period_start, threshold
        FOR UPDATE SKIP LOCKED
        """,
        (tenant,),
    )
    return [Crossing(*row) for row in await cur.fetchall()]


async def mark_published(conn: Connection, tenant: str, crossing: Crossing) -> None:
    await conn.execute(
        "UPDATE llmops_budget_alerts SET published_at = now()"
        " WHERE tenant_id = %s AND period_start = %s AND threshold = %s",
        (tenant, crossing.period_start, crossing.threshold),
    )


@dataclass(frozen=True, slots=True)
class Usage:
    """One row of a report: a model, or the total over every model (model None)."""

    model: str | None
    operations: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float
    errors: int
    cache_hits: int
    latency_p50_ms: float
    latency_p95_ms: float


async def usage(conn: Connection, tenant: str, start: datetime, end: datetime, models: list[str]) -> list[Usage]:
    """Per model, then one total row, over [start, end): the operations
    still kept plus the daily rollups of those past their retention
    (components.retention), a rolled-up day counted when it starts in the
    period. Latency percentiles are of the kept operations only."""
    raw = await _raw_usage(conn, tenant, start, end, models)
    cur = await conn.execute(
        """
        SELECT model, sum(operations), sum(prompt_tokens), sum(completion_tokens), sum(total_tokens), sum(cost),
               sum(errors), sum(cache_hits)
        FROM llmops_usage_daily
        WHERE tenant_id = %(tenant)s AND day >= %(start)s AND day < %(end)s
          AND (cardinality(%(models)s::text[]) = 0 OR model = ANY(%(models)s::text[]))
        GROUP BY model
        """,
        {"tenant": tenant, "start": start, "end": end, "models": models},
    )
    rolled = {str(m): Usage(str(m), int(n), int(p), int(c), int(t), float(cost), int(e), int(h), 0.0, 0.0)
              for m, n, p, c, t, cost, e, h in await cur.fetchall()}
    if not rolled:
        return raw
    by_model = {u.model: u for u in raw if u.model is not None}
    for model, old in rolled.items():
        by_model[model] = _plus(by_model[model], old) if model in by_model else old
    rows = [by_model[m] for m in sorted(by_model)]
    kept = next((u for u in raw if u.model is None), None)
    total = Usage(None, 0, 0, 0, 0, 0.0, 0, 0, kept.latency_p50_ms if kept else 0.0,
                  kept.latency_p95_ms if kept else 0.0)
    for row in rows:
        total = _plus(total, row)
    return [*rows, total]


def _plus(a: Usage, b: Usage) -> Usage:
    """a's counts plus b's; a's latencies."""
    return Usage(a.model, a.operations + b.operations, a.prompt_tokens + b.prompt_tokens,
                 a.completion_tokens + b.completion_tokens, a.total_tokens + b.total_tokens, a.cost + b.cost,
                 a.errors + b.errors, a.cache_hits + b.cache_hits, a.latency_p50_ms, a.latency_p95_ms)


async def _raw_usage(conn: Connection, tenant: str, start: datetime, end: datetime, models: list[str]) -> list[Usage]:
    cur = await conn.execute(
        """
        SELECT model, count(*), sum(prompt_tokens), sum(completion_tokens), sum(total_tokens), sum(cost),
               count(*) FILTER (WHERE status = %(error)s), count(*) FILTER (WHERE status = %(cached)s),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
        FROM llmops_operations
        WHERE tenant_id = %(tenant)s AND occurred_at >= %(start)s AND occurred_at < %(end)s
          AND (cardinality(%(models)s::text[]) = 0 OR model = ANY(%(models)s::text[]))
        GROUP BY GROUPING SETS ((model), ())
        ORDER BY grouping(model), model
        """,
        {"tenant": tenant, "start": start, "end": end, "models": models, "error": ERROR, "cached": CACHED},
    )
    return [
        Usage(model, int(n), int(p), int(c), int(t), float(cost), int(errors), int(hits), float(p50), float(p95))
        for model, n, p, c, t, cost, errors, hits, p50, p95 in await cur.fetchall()
        if n
    ]
