"""Retention on the real embedded PostgreSQL: expired rows go, the rows that
still matter stay, and LLMOps' daily rollups keep reports over old periods
summing to what the operations were; the owning worker prunes at start."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import timestamp_pb2

from ai.gateway.v1 import gateway_pb2
from ai.llmops.v1 import llmops_bus, llmops_pb2
from aisdk.components import retention, storage
from aisdk.components.llmops import LlmOps, store
from aisdk.components.llmops.budgets import Budgets
from runtime.bus import Bus

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)
STATUSES = [llmops_pb2.OPERATION_STATUS_SUCCESS] * 3 + [llmops_pb2.OPERATION_STATUS_CACHED,
                                                        llmops_pb2.OPERATION_STATUS_ERROR]


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with storage.temporary_database() as u:
        yield u


def operations(n: int, now: datetime, seed: int = 5) -> list[tuple[llmops_pb2.LlmOperation, datetime]]:
    """n operations over the 150 days before now."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        prompt, completion = rng.randint(0, 500), rng.randint(0, 300)
        op = llmops_pb2.LlmOperation(
            operation_id=f"o{i}", operation_type=llmops_pb2.OPERATION_TYPE_CHAT, model=rng.choice(["m1", "m2"]),
            tokens=gateway_pb2.TokenUsage(prompt=prompt, completion=completion, total=prompt + completion),
            cost=round(rng.uniform(0, 0.02), 6), latency_ms=rng.uniform(1, 900), status=rng.choice(STATUSES),
            request_id=f"r{i}")
        out.append((op, now - timedelta(days=rng.uniform(0, 150))))
    return out


def counts(rows: list[store.Usage]) -> list[tuple[str | None, int, int, int, int, float, int, int]]:
    return [(u.model, u.operations, u.prompt_tokens, u.completion_tokens, u.total_tokens, round(u.cost, 6), u.errors,
             u.cache_hits) for u in rows]


async def test_expired_operations_go_and_the_rollups_still_sum(url: str) -> None:
    pool = await storage.open_database("llmops", url=url)
    ops = operations(200, NOW)
    cutoff = retention.RULES[2].cutoff(NOW)
    assert retention.RULES[2].table == "llmops_operations" and cutoff == datetime(2026, 9, 7, tzinfo=UTC)
    try:
        async with pool.connection() as conn:
            for op, at in ops:
                await store.insert_operation(conn, "acme", op, at)
            whole = await store.usage(conn, "acme", NOW - timedelta(days=400), NOW, [])
            old = await store.usage(conn, "acme", NOW - timedelta(days=400), cutoff, [])
            m1 = await store.usage(conn, "acme", NOW - timedelta(days=400), NOW, ["m1"])
        expired = sum(1 for _, at in ops if at < cutoff)
        assert 0 < expired < len(ops)
        assert await retention.prune(pool, "llmops", NOW) == {"llmops_operations": expired}
        assert await retention.prune(pool, "llmops", NOW) == {"llmops_operations": 0}   # nothing twice
        async with pool.connection() as conn:
            left = await (await conn.execute("SELECT count(*), min(occurred_at) FROM llmops_operations")).fetchone()
            assert left is not None and left[0] == len(ops) - expired and left[1] >= cutoff
            # Reports over the whole time, over the expired past alone, and per model, sum as before.
            assert counts(await store.usage(conn, "acme", NOW - timedelta(days=400), NOW, [])) == counts(whole)
            assert counts(await store.usage(conn, "acme", NOW - timedelta(days=400), cutoff, [])) == counts(old)
            assert counts(await store.usage(conn, "acme", NOW - timedelta(days=400), NOW, ["m1"])) == counts(m1)
            assert await store.usage(conn, "other", NOW - timedelta(days=400), NOW, []) == []
    finally:
        await pool.close()


async def test_an_operation_older_than_the_retention_does_not_hide_the_pruned_days(url: str) -> None:
    """A producer may report an operation long after it happened. Stored
    after pruning, older than the cutoff, it must not make the report read
    the pruned days from the (deleted) operations: days before the cutoff
    come from the running totals."""
    pool = await storage.open_database("llmops", url=url)
    cutoff = retention.RULES[2].cutoff(NOW)
    since = NOW - timedelta(days=400)
    try:
        async with pool.connection() as conn:
            for op, at in operations(200, NOW):
                await store.insert_operation(conn, "acme", op, at)
            before = (await store.usage(conn, "acme", since, NOW, []))[-1].operations
        await retention.prune(pool, "llmops", NOW)
        async with pool.connection() as conn:
            late = llmops_pb2.LlmOperation(operation_id="late", operation_type=llmops_pb2.OPERATION_TYPE_CHAT,
                                           model="m1", cost=0.001, latency_ms=5.0)
            await store.insert_operation(conn, "acme", late, cutoff - timedelta(days=40))
            reported = await store.usage(conn, "acme", since, NOW, [], kept_from=cutoff)
            assert reported[-1].operations == before + 1
            # Positive control: taking the oldest stored operation as the
            # first kept day reads the pruned days after it from the
            # operations, which are gone.
            assert (await store.usage(conn, "acme", since, NOW, []))[-1].operations < before + 1
    finally:
        await pool.close()


async def test_the_owning_worker_prunes_at_start(bus: Bus, url: str) -> None:
    # A tenant of its own: the session's server may hold other tests' operations for tenant.
    tenant = f"retention-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    ops = operations(40, now, seed=9)
    pool = await storage.open_database("llmops", url=url)
    try:
        async with pool.connection() as conn:
            for op, at in ops:
                await store.insert_operation(conn, tenant, op, at)
            before = await store.usage(conn, tenant, now - timedelta(days=400), now, [])
    finally:
        await pool.close()
    await bus.serve(LlmOps(budgets=Budgets(), database_url=url), tenants=[tenant])
    start, end = timestamp_pb2.Timestamp(), timestamp_pb2.Timestamp()
    start.FromDatetime(now - timedelta(days=400))
    end.FromDatetime(now)
    report = await llmops_bus.LlmopsServiceClient(bus, tenant).reports(
        llmops_pb2.UsageReportRequest(report_id="r", start=start, end=end))
    total = next(u for u in before if u.model is None)
    assert (report.total_operations, report.total_tokens) == (total.operations, total.total_tokens)
    assert report.total_cost == pytest.approx(total.cost)
    pool = await storage.open_database("llmops", url=url)
    try:
        async with pool.connection() as conn:
            row = await (await conn.execute("SELECT count(*) FROM llmops_operations")).fetchone()
        assert row == (sum(1 for _, at in ops if at >= retention.RULES[2].cutoff(now)),)
    finally:
        await pool.close()


async def test_finished_tasks_tool_calls_and_deployment_events_expire(url: str) -> None:
    agents = await storage.open_database("agents", url=url)
    mlops = await storage.open_database("mlops", url=url)
    old, recent = NOW - timedelta(days=40), NOW - timedelta(days=2)
    try:
        async with agents.connection() as conn:
            for task, state, finished in (("done-old", "succeeded", old), ("failed-old", "failed", old),
                                          ("done-new", "succeeded", recent), ("running", "running", None),
                                          ("waiting", "waiting", None)):
                await conn.execute(
                    "INSERT INTO agent_tasks (tenant_id, task_id, task_type, priority, task, envelope, state, "
                    "enqueued_at, finished_at) VALUES ('acme', %s, 'work', 0, '', '', %s, %s, %s)",
                    (task, state, old, finished))
            for call, at in (("call-old", old), ("call-new", recent)):
                await conn.execute("INSERT INTO agent_tool_calls (tenant_id, call_id, tool_name, result, executed_at)"
                                   " VALUES ('acme', %s, 't', '', %s)", (call, at))
            for run, state, finished in (("run-old", "succeeded", old), ("run-new", "failed", recent),
                                         ("run-paused", "awaiting_approval", None)):
                await conn.execute(
                    "INSERT INTO agent_runs (tenant_id, run_id, request, agent_id, state, started_at, finished_at) "
                    "VALUES ('acme', %s, '', 'a', %s, %s, %s)", (run, state, old, finished))
                await conn.execute("INSERT INTO agent_run_steps (tenant_id, run_id, seq, kind, payload) "
                                   "VALUES ('acme', %s, 0, 'model', '')", (run,))
            for session, at in (("chat-old", NOW - timedelta(days=100)), ("chat-new", recent)):
                await conn.execute("INSERT INTO agent_sessions (tenant_id, session_id, updated_at) "
                                   "VALUES ('acme', %s, %s)", (session, at))
                await conn.execute("INSERT INTO agent_session_turns (tenant_id, session_id, number, turn) "
                                   "VALUES ('acme', %s, 1, '')", (session,))
        async with mlops.connection() as conn:
            for event, at in (("d-old", NOW - timedelta(days=100)), ("d-new", recent)):
                await conn.execute(
                    "INSERT INTO mlops_deployment_events (tenant_id, deployment_id, model_id, version, environment,"
                    " state, promoted, received_at) VALUES ('acme', %s, 'm', '1', 'production', 1, false, %s)",
                    (event, at))
        assert await retention.prune(agents, "agents", NOW) == {"agent_tasks": 2, "agent_tool_calls": 1,
                                                                "agent_runs": 1, "agent_sessions": 1}
        assert await retention.prune(mlops, "mlops", NOW) == {"mlops_deployment_events": 1}
        async with agents.connection() as conn:
            tasks = await (await conn.execute("SELECT task_id FROM agent_tasks ORDER BY 1")).fetchall()
            calls = await (await conn.execute("SELECT call_id FROM agent_tool_calls")).fetchall()
            runs = await (await conn.execute("SELECT DISTINCT run_id FROM agent_run_steps ORDER BY 1")).fetchall()
            turns = await (await conn.execute("SELECT session_id FROM agent_session_turns")).fetchall()
        assert tasks == [("done-new",), ("running",), ("waiting",)] and calls == [("call-new",)]
        # A run's steps and a session's turns go with it; a paused run stays.
        assert runs == [("run-new",), ("run-paused",)] and turns == [("chat-new",)]
    finally:
        await agents.close()
        await mlops.close()


@pytest.mark.parametrize("value, reason", [("3", "at least 8 days"), ("soon", "give the days to keep")])
def test_a_bad_retention_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, value: str, reason: str) -> None:
    monkeypatch.setenv("AISDK_RETAIN_TASKS_DAYS", value)
    with pytest.raises(storage.StorageError, match=reason):
        retention.rules("agents")
    monkeypatch.setenv("AISDK_RETAIN_OPERATIONS_DAYS", "10")
    with pytest.raises(storage.StorageError, match="at least 32 days .* percentiles"):
        retention.rules("llmops")
