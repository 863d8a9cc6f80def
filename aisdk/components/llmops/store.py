"""The SQL of LLMOps: operations stored once, budget crossings recorded once,
usage reports aggregated by PostgreSQL."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ai.llmops.v1 import llmops_pb2
from aisdk.components.llmops.budgets import Budget
from aisdk.components.storage import Connection

CACHED = llmops_pb2.OPERATION_STATUS_CACHED
ERROR = llmops_pb2.OPERATION_STATUS_ERROR
# First key of the per-tenant transaction lock that orders budget checks.
_BUDGET_LOCK = 0x4C4C4D4F  # "LLMO"
# The latency histogram of migration 003: buckets 2% wide from 1 µs.
_BUCKET_FLOOR_MS = 0.001
_LOG_GROWTH = math.log(1.02)
_MAX_BUCKET = 32_000
_BUCKET_SQL = ("CASE WHEN latency_ms < 0.001 THEN 0"
               " ELSE least(floor(ln(latency_ms / 0.001) / ln(1.02)), 32000)::int END")
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)
# Up to this many kept operations in a report's period, its percentiles are
# computed from the operations themselves (a sort of this many values takes
# a few milliseconds); beyond, from the daily histograms.
EXACT_PERCENTILES = 20_000


@dataclass(frozen=True, slots=True)
class Stored:
    """An operation to store: its tenant, the operation and when it happened."""

    tenant: str
    op: llmops_pb2.LlmOperation
    at: datetime


def latency_bucket(ms: float) -> int:
    """The histogram bucket of a latency: buckets are 2% wide from 1 µs, so
    a percentile read from them is within 1% of the exact one (the same
    formula as migration 003)."""
    if not ms >= _BUCKET_FLOOR_MS:
        return 0
    return min(int(math.floor(math.log(ms / _BUCKET_FLOOR_MS) / _LOG_GROWTH)), _MAX_BUCKET)


def bucket_latency(bucket: int) -> float:
    """The latency a bucket stands for: its geometric middle."""
    return _BUCKET_FLOOR_MS * math.exp((bucket + 0.5) * _LOG_GROWTH)


async def insert_operation(conn: Connection, tenant: str, op: llmops_pb2.LlmOperation, at: datetime) -> bool:
    """Store the operation unless its id is already stored; True if stored now."""
    return (await insert_operations(conn, [Stored(tenant, op, at)]))[0]


async def insert_operations(conn: Connection, batch: Sequence[Stored]) -> list[bool]:
    """Store a batch in one multi-row INSERT, each operation unless its id is
    already stored, and add the ones stored now to their running totals (per
    tenant, UTC day and model: llmops_usage_daily and llmops_latency_daily).
    Call inside a transaction; per operation, True if stored now."""
    columns: list[list[object]] = [[] for _ in range(12)]
    for item in batch:
        op, t = item.op, item.op.tokens
        for column, value in zip(columns, (
                item.tenant, op.operation_id, op.operation_type, op.status, op.model, op.request_id, t.prompt,
                t.completion, t.total or t.prompt + t.completion, op.cost, op.latency_ms, item.at)):
            column.append(value)
    cur = await conn.execute(
        """
        INSERT INTO llmops_operations (tenant_id, operation_id, operation_type, status, model, request_id,
            prompt_tokens, completion_tokens, total_tokens, cost, latency_ms, occurred_at)
        SELECT * FROM unnest(%s::text[], %s::text[], %s::smallint[], %s::smallint[], %s::text[], %s::text[],
                             %s::bigint[], %s::bigint[], %s::bigint[], %s::float8[], %s::float8[],
                             %s::timestamptz[])
        ON CONFLICT (tenant_id, operation_id) DO NOTHING
        RETURNING tenant_id, operation_id
        """,
        columns,
    )
    stored = {(str(a), str(b)) for a, b in await cur.fetchall()}
    # One id twice in a batch is stored once: the first is the one counted.
    counted: set[tuple[str, str]] = set()
    fresh: list[Stored] = []
    result = []
    for item in batch:
        key = (item.tenant, item.op.operation_id)
        now = key in stored and key not in counted
        counted.add(key)
        result.append(now)
        if now:
            fresh.append(item)
    if fresh:
        await _add_to_totals(conn, fresh)
    return result


def _day(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


async def _add_to_totals(conn: Connection, fresh: Sequence[Stored]) -> None:
    totals: dict[tuple[str, datetime, str], list[float]] = {}
    latencies: dict[tuple[str, datetime, str, int], int] = {}
    for item in fresh:
        op, t = item.op, item.op.tokens
        key = (item.tenant, _day(item.at), op.model)
        row = totals.setdefault(key, [0, 0, 0, 0, 0.0, 0, 0])
        for i, value in enumerate((1, t.prompt, t.completion, t.total or t.prompt + t.completion, op.cost,
                                   op.status == ERROR, op.status == CACHED)):
            row[i] += value
        bucket = (*key, latency_bucket(op.latency_ms))
        latencies[bucket] = latencies.get(bucket, 0) + 1
    # In key order: two transactions lock the rows they share in the same order.
    keys = sorted(totals)
    await conn.execute(
        """
        INSERT INTO llmops_usage_daily AS d (tenant_id, day, model, operations, prompt_tokens, completion_tokens,
                                             total_tokens, cost, errors, cache_hits)
        SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[],
                             %s::bigint[], %s::float8[], %s::bigint[], %s::bigint[])
        ON CONFLICT (tenant_id, day, model) DO UPDATE SET
            operations = d.operations + EXCLUDED.operations, prompt_tokens = d.prompt_tokens + EXCLUDED.prompt_tokens,
            completion_tokens = d.completion_tokens + EXCLUDED.completion_tokens,
            total_tokens = d.total_tokens + EXCLUDED.total_tokens, cost = d.cost + EXCLUDED.cost,
            errors = d.errors + EXCLUDED.errors, cache_hits = d.cache_hits + EXCLUDED.cache_hits
        """,
        [[k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
         *[[int(totals[k][i]) if i != 4 else float(totals[k][i]) for k in keys] for i in range(7)]],
    )
    buckets = sorted(latencies)
    await conn.execute(
        """
        INSERT INTO llmops_latency_daily AS h (tenant_id, day, model, bucket, operations)
        SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::smallint[], %s::bigint[])
        ON CONFLICT (tenant_id, day, model, bucket) DO UPDATE SET operations = h.operations + EXCLUDED.operations
        """,
        [[b[0] for b in buckets], [b[1] for b in buckets], [b[2] for b in buckets], [b[3] for b in buckets],
         [latencies[b] for b in buckets]],
    )


async def add_to_totals(conn: Connection, tenant: str) -> None:
    """Add every stored operation of the tenant to the running totals at
    once, as migration 003 does for those kept before it: for operations
    loaded in bulk (COPY) around insert_operations, into empty totals."""
    await conn.execute(
        """
        INSERT INTO llmops_usage_daily (tenant_id, day, model, operations, prompt_tokens, completion_tokens,
                                        total_tokens, cost, errors, cache_hits)
        SELECT tenant_id, date_trunc('day', occurred_at, 'UTC'), model, count(*), sum(prompt_tokens),
               sum(completion_tokens), sum(total_tokens), sum(cost),
               count(*) FILTER (WHERE status = %(error)s), count(*) FILTER (WHERE status = %(cached)s)
          FROM llmops_operations WHERE tenant_id = %(t)s GROUP BY 1, 2, 3
        """, {"t": tenant, "error": ERROR, "cached": CACHED})
    await conn.execute(
        f"INSERT INTO llmops_latency_daily (tenant_id, day, model, bucket, operations)"
        f" SELECT tenant_id, date_trunc('day', occurred_at, 'UTC'), model, {_BUCKET_SQL}, count(*)"
        f" FROM llmops_operations WHERE tenant_id = %(t)s GROUP BY 1, 2, 3, 4",  # noqa: S608 - a constant
        {"t": tenant})


async def record_crossings(conn: Connection, tenant: str, budget: Budget, at: datetime) -> bool:
    """Record every threshold the tenant's spend in the period of `at` has
    reached; True if one was new. Call inside the transaction that stored the
    operation: the lock makes concurrent workers see each other's spend, and
    the key makes a crossing recorded once. The spend is the period's running
    totals (whole UTC days), not a sum over its operations."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_BUDGET_LOCK, tenant))
    start, end = budget.bounds(at)
    cur = await conn.execute(
        "SELECT coalesce(sum(cost), 0) FROM llmops_usage_daily"
        " WHERE tenant_id = %s AND day >= %s AND day < %s",
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


async def usage(conn: Connection, tenant: str, start: datetime, end: datetime, models: list[str],
                kept_from: datetime | None = None) -> list[Usage]:
    """Per model, then one total row, over [start, end): the operations
    still kept plus those past their retention (components.retention), a
    rolled-up day counted when it starts in the period. Latency percentiles
    are of the kept operations only.

    kept_from: the first UTC day whose operations are kept (the retention's
    cutoff); earlier days are read from the running totals whether or not
    pruning has deleted them yet. Default: the day of the tenant's oldest
    stored operation.

    Up to EXACT_PERCENTILES kept operations, from the operations themselves
    (percentiles exact). Beyond, from the running totals: whole UTC days from
    llmops_usage_daily, percentiles from llmops_latency_daily's histogram
    (within 1%), and only a partial day at either edge from the operations."""
    if kept_from is None:
        row = await (await conn.execute(
            "SELECT min(occurred_at) FROM llmops_operations WHERE tenant_id = %s", (tenant,))).fetchone()
        kept_from = _day(row[0]) if row is not None and row[0] is not None else _FAR_FUTURE
    if await _kept_at_most(conn, tenant, max(_day(start), kept_from), end, models) <= EXACT_PERCENTILES:
        kept = await _raw_usage(conn, tenant, max(start, kept_from), end, models) if kept_from < end else []
        return _merged(kept, await _rolled(conn, tenant, start, min(end, kept_from), models))
    return await _from_totals(conn, tenant, start, end, models, kept_from)


async def _kept_at_most(conn: Connection, tenant: str, first_day: datetime, end: datetime, models: list[str]) -> int:
    """An upper bound of the kept operations in the period: whole days."""
    cur = await conn.execute(
        "SELECT coalesce(sum(operations), 0) FROM llmops_usage_daily WHERE tenant_id = %(t)s AND day >= %(a)s"
        " AND day < %(b)s AND (cardinality(%(m)s::text[]) = 0 OR model = ANY(%(m)s::text[]))",
        {"t": tenant, "a": first_day, "b": end, "m": models})
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _rolled(conn: Connection, tenant: str, start: datetime, end: datetime, models: list[str]) -> list[Usage]:
    """Per model, the running totals of the days that start in [start, end)."""
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
    return [Usage(str(m), int(n), int(p), int(c), int(t), float(cost), int(e), int(h), 0.0, 0.0)
            for m, n, p, c, t, cost, e, h in await cur.fetchall()]


def _merged(kept: list[Usage], rolled: list[Usage]) -> list[Usage]:
    """The kept operations' rows (their latencies) plus rolled-up counts."""
    if not rolled:
        return kept
    by_model = {u.model: u for u in kept if u.model is not None}
    for old in rolled:
        assert old.model is not None
        by_model[old.model] = _plus(by_model[old.model], old) if old.model in by_model else old
    rows = [by_model[m] for m in sorted(by_model)]
    total_kept = next((u for u in kept if u.model is None), None)
    total = Usage(None, 0, 0, 0, 0, 0.0, 0, 0, total_kept.latency_p50_ms if total_kept else 0.0,
                  total_kept.latency_p95_ms if total_kept else 0.0)
    for row in rows:
        total = _plus(total, row)
    return [*rows, total]


async def _from_totals(conn: Connection, tenant: str, start: datetime, end: datetime, models: list[str],
                       kept_days: datetime) -> list[Usage]:
    first = _day(start) if _day(start) == start else _day(start) + timedelta(days=1)  # first whole day
    last = max(_day(end), first)  # end of the whole days
    # The operations of a partial day at an edge, if its day is kept.
    edges = [(max(start, kept_days), min(first, end))] + ([(max(last, kept_days), end)] if last < end else [])
    rolled = await _rolled(conn, tenant, first, last, models)
    if last < end and last < kept_days:
        # A rolled-up day at the end edge counts whole: it starts in the period.
        rolled += await _rolled(conn, tenant, last, last + timedelta(days=1), models)
    edge_rows = await _edge_usage(conn, tenant, edges, models)
    histogram: dict[str | None, dict[int, int]] = {}
    cur = await conn.execute(
        """
        SELECT model, bucket, sum(operations) FROM llmops_latency_daily
        WHERE tenant_id = %(t)s AND day >= %(a)s AND day < %(b)s
          AND (cardinality(%(m)s::text[]) = 0 OR model = ANY(%(m)s::text[]))
        GROUP BY model, bucket
        """, {"t": tenant, "a": max(first, kept_days), "b": last, "m": models})
    for model, bucket, n in [*await cur.fetchall(), *await _edge_latencies(conn, tenant, edges, models)]:
        for key in (str(model), None):
            counts = histogram.setdefault(key, {})
            counts[int(bucket)] = counts.get(int(bucket), 0) + int(n)
    merged = _merged([], [*rolled, *edge_rows])
    return [dataclasses.replace(u, latency_p50_ms=_percentile(histogram.get(u.model, {}), 0.5),
                                latency_p95_ms=_percentile(histogram.get(u.model, {}), 0.95)) for u in merged]


_EDGE_WHERE = """tenant_id = %(t)s AND ((occurred_at >= %(a0)s AND occurred_at < %(b0)s)
    OR (occurred_at >= %(a1)s AND occurred_at < %(b1)s))
    AND (cardinality(%(m)s::text[]) = 0 OR model = ANY(%(m)s::text[]))"""


def _edge_params(tenant: str, edges: list[tuple[datetime, datetime]], models: list[str]) -> dict[str, object]:
    (a0, b0), (a1, b1) = edges[0], edges[-1] if len(edges) > 1 else edges[0]
    return {"t": tenant, "a0": a0, "b0": b0, "a1": a1, "b1": b1, "m": models, "error": ERROR, "cached": CACHED}


async def _edge_usage(conn: Connection, tenant: str, edges: list[tuple[datetime, datetime]],
                      models: list[str]) -> list[Usage]:
    cur = await conn.execute(
        "SELECT model, count(*), sum(prompt_tokens), sum(completion_tokens), sum(total_tokens), sum(cost),"
        " count(*) FILTER (WHERE status = %(error)s), count(*) FILTER (WHERE status = %(cached)s)"
        f" FROM llmops_operations WHERE {_EDGE_WHERE} GROUP BY model",  # noqa: S608 - a constant
        _edge_params(tenant, edges, models))
    return [Usage(str(m), int(n), int(p), int(c), int(t), float(cost), int(e), int(h), 0.0, 0.0)
            for m, n, p, c, t, cost, e, h in await cur.fetchall()]


async def _edge_latencies(conn: Connection, tenant: str, edges: list[tuple[datetime, datetime]],
                          models: list[str]) -> list[tuple[str, int, int]]:
    cur = await conn.execute(
        f"SELECT model, {_BUCKET_SQL} AS bucket, count(*) FROM llmops_operations"
        f" WHERE {_EDGE_WHERE} GROUP BY 1, 2",  # noqa: S608 - constants
        _edge_params(tenant, edges, models))
    return [(str(m), int(b), int(n)) for m, b, n in await cur.fetchall()]


def _percentile(counts: dict[int, int], q: float) -> float:
    """percentile_cont's interpolation over a histogram: the ranks below and
    above q's position, each at its bucket's latency."""
    n = sum(counts.values())
    if n == 0:
        return 0.0
    position = q * (n - 1)
    low, high = math.floor(position), math.ceil(position)
    values: dict[int, float] = {}
    seen = 0
    for bucket in sorted(counts):
        seen += counts[bucket]
        for rank in (low, high):
            if rank < seen and rank not in values:
                values[rank] = bucket_latency(bucket)
        if high in values:
            break
    return values[low] + (values[high] - values[low]) * (position - low)


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
