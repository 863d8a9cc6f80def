"""LLMOps: every LLM operation stored once in PostgreSQL, usage reports from
SQL, and per-tenant budgets that raise one CostAlert per threshold crossing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import duration_pb2

from ai.envelope.v1 import envelope_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from ai.llmops.v1 import llmops_bus, llmops_pb2
from aisdk.components.batches import Batches
from aisdk.components.llmops import store
from aisdk.components.llmops.budgets import Budgets, load_budgets
from aisdk.components.retention import Pruner, rules
from aisdk.components.storage import Database, Pool
# mypy reads no re-exports from the facade's computed __all__.
from runtime import Bus, Context, HandlerError, SubjectSpec

COMPONENT = "llmops"
# llmops.operations handlers in flight per worker: the size of a pull batch.
OPERATIONS_IN_FLIGHT = 256
# Operations stored by one transaction at most.
MAX_BATCH = 512
Code = envelope_pb2.Error


def _duration(ms: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(ms * 1e6))
    return d


def _alert(tenant: str, c: store.Crossing) -> gateway_pb2.CostAlert:
    return gateway_pb2.CostAlert(
        # Stable across re-publication, so a consumer can drop a repeat.
        alert_id=f"budget:{c.period}:{c.period_start:%Y-%m-%d}:{c.threshold:g}",
        threshold=c.threshold * c.budget,
        current_cost=c.spend,
        period=_duration((c.period_end - c.period_start).total_seconds() * 1000),
        message=(
            f"tenant {tenant} has spent ${c.spend:.6g}, {c.threshold:.0%} or more of its "
            f"{c.period} budget of ${c.budget:.6g} (period from {c.period_start:%Y-%m-%d})"
        ),
    )


class LlmOps(llmops_bus.LlmopsServiceHandler):
    """Stores operations from llmops.operations and answers llmops.reports.

    All state is in PostgreSQL, so workers in the queue groups share it and
    a restart forgets nothing.
    """

    def __init__(self, budgets: Budgets | None = None, database_url: str | None = None) -> None:
        self.budgets = load_budgets() if budgets is None else budgets
        self._db = Database(COMPONENT, database_url)
        self._bus: Bus | None = None
        self._retention = Pruner(COMPONENT)
        self._batches: Batches[store.Stored, tuple[bool, bool]] = Batches(self._store, MAX_BATCH)

    async def start(self, bus: Bus) -> None:
        self._bus = bus
        await self._retention.start(await self._db.open())

    async def stop(self) -> None:
        await self._retention.stop()
        await self._db.close()

    def _kept_from(self) -> datetime:
        """The first day whose operations retention keeps: earlier days are
        reported from the running totals, pruned yet or not."""
        return next(r for r in rules(COMPONENT) if r.table == "llmops_operations").cutoff(datetime.now(UTC))

    @property
    def pool(self) -> Pool:
        return self._db.pool

    def concurrency(self, spec: SubjectSpec[Any, Any]) -> int | None:
        # Operations are independent (stored by their id), so a pull batch of
        # them is handled at once and stored by one transaction (_Batches).
        return OPERATIONS_IN_FLIGHT if spec is llmops_bus.LLMOPS_OPERATIONS else None

    async def operations(self, request: llmops_pb2.LlmOperation, ctx: Context) -> None:
        tenant = ctx.tenant_id
        at = request.occurred_at.ToDatetime(tzinfo=UTC) if request.HasField("occurred_at") else datetime.now(UTC)
        # Returns once the batch holding it is committed: the ack comes after.
        stored, crossed = await self._batches.submit(store.Stored(tenant, request, at))
        # An operation seen before may be the redelivery of one whose alert
        # failed to go out: pending alerts are sent then too.
        if self.budgets.for_tenant(tenant) is not None and (crossed or not stored):
            await self._publish_alerts(tenant)

    async def _store(self, batch: list[store.Stored]) -> list[tuple[bool, bool]]:
        """One transaction: the batch in one INSERT, the running totals, then
        the budget check of each tenant with a budget, in tenant order."""
        async with self.pool.connection() as conn, conn.transaction():
            stored = await store.insert_operations(conn, batch)
            crossed: set[str] = set()
            checked: set[tuple[str, datetime]] = set()
            for item, now in sorted(zip(batch, stored), key=lambda pair: pair[0].tenant):
                budget = self.budgets.for_tenant(item.tenant)
                if not now or budget is None:
                    continue
                period = (item.tenant, budget.bounds(item.at)[0])
                if period not in checked:
                    checked.add(period)
                    if await store.record_crossings(conn, item.tenant, budget, item.at):
                        crossed.add(item.tenant)
        return [(now, item.tenant in crossed) for item, now in zip(batch, stored)]

    async def _publish_alerts(self, tenant: str) -> None:
        assert self._bus is not None
        targets = (llmops_bus.LlmopsServiceClient(self._bus, tenant), gateway_bus.GatewayServiceClient(self._bus, tenant))
        async with self.pool.connection() as conn, conn.transaction():
            for crossing in await store.pending_crossings(conn, tenant):
                alert = _alert(tenant, crossing)
                for client in targets:
                    await client.cost_alerts(alert)
                await store.mark_published(conn, tenant, crossing)

    async def reports(self, request: llmops_pb2.UsageReportRequest, ctx: Context) -> llmops_pb2.UsageReport:
        start = request.start.ToDatetime(tzinfo=UTC)
        end = request.end.ToDatetime(tzinfo=UTC)
        if end <= start:
            raise HandlerError(Code.CODE_INVALID_ARGUMENT, "the report period must end after it starts")
        async with self.pool.connection() as conn:
            rows = await store.usage(conn, ctx.tenant_id, start, end, list(request.models),
                                     kept_from=self._kept_from())
        report = llmops_pb2.UsageReport(report_id=request.report_id, start=request.start, end=request.end)
        for row in rows:
            rate = row.cache_hits / row.operations
            if row.model is None:
                report.total_operations = row.operations
                report.total_tokens = row.total_tokens
                report.total_cost = row.cost
                report.latency_p50.CopyFrom(_duration(row.latency_p50_ms))
                report.latency_p95.CopyFrom(_duration(row.latency_p95_ms))
                report.cache_hit_rate = rate
                continue
            report.models.append(llmops_pb2.ModelUsage(
                model=row.model, operations=row.operations, prompt_tokens=row.prompt_tokens,
                completion_tokens=row.completion_tokens, total_tokens=row.total_tokens, cost=row.cost,
                errors=row.errors, latency_p50=_duration(row.latency_p50_ms),
                latency_p95=_duration(row.latency_p95_ms), cache_hits=row.cache_hits, cache_hit_rate=rate,
            ))
        return report
