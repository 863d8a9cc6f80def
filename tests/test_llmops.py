"""LLMOps on a real nats-server (JetStream) and the real embedded PostgreSQL:
operations counted once under redelivery, reports equal to the sum of the
operations, and a budget alert raised exactly once across two workers."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from google.protobuf import timestamp_pb2

from ai.envelope.v1 import envelope_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from ai.llmops.v1 import llmops_bus, llmops_pb2
from aisdk.components import storage
from aisdk.components.llmops import LlmOps, store
from aisdk.components.llmops.budgets import Budget, Budgets
from runtime.bus import Bus
from runtime.settings import BusSettings
from runtime.contract import Context
from runtime.errors import RemoteError
from runtime.jetstream import stream_name
from runtime.server import EmbeddedServer

OPS = llmops_bus.LLMOPS_OPERATIONS
# A short duplicate window, so a test can publish the same message id again
# after it has passed; a short backoff, so a redelivery comes quickly.
DEDUP_WINDOW_S = 0.3
assert OPS.durability is not None
FAST = {OPS.key: dataclasses.replace(OPS.durability, duplicate_window_ms=int(DEDUP_WINDOW_S * 1000), backoff_ms=(50,))}


async def until(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait for `cond`; fail only if it is still false after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


class Recording(LlmOps):
    """The real service; it notes each delivery it finished, and fails once
    after storing the operations named in `fail_once` (as if the worker died
    before acking), which makes JetStream redeliver them."""

    def __init__(self, budgets: Budgets, url: str, fail_once: set[str] | None = None) -> None:
        super().__init__(budgets=budgets, database_url=url)
        self.handled: list[str] = []
        self.fail_once = set(fail_once or ())

    async def operations(self, request: llmops_pb2.LlmOperation, ctx: Context) -> None:
        await super().operations(request, ctx)
        if request.operation_id in self.fail_once:
            self.fail_once.discard(request.operation_id)
            raise RuntimeError("worker lost before the ack")
        self.handled.append(request.operation_id)


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    # Its own server: the operations stream's short test window stays here.
    with EmbeddedServer(name="llmops-test") as s:
        yield s


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with storage.temporary_database() as u:
        yield u


@pytest.fixture
async def buses(server: EmbeddedServer) -> AsyncIterator[list[Bus]]:
    """Three connections: two workers and a producer/observer."""
    out = [Bus(server.url, BusSettings(name=f"b{i}", durability_overrides=FAST)) for i in range(3)]
    for b in out:
        await b.connect()
    yield out
    for b in out:
        await b.close()


def at(day: int, hour: int = 12) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromDatetime(datetime(2026, 11, day, hour, tzinfo=UTC))
    return t


def op(op_id: str, model: str = "local/extractive", cost: float = 0.01, prompt: int = 10, completion: int = 5,
       latency_ms: float = 20.0, status: llmops_pb2.OperationStatus = llmops_pb2.OPERATION_STATUS_SUCCESS,
       occurred: timestamp_pb2.Timestamp | None = None) -> llmops_pb2.LlmOperation:
    return llmops_pb2.LlmOperation(
        operation_id=op_id, operation_type=llmops_pb2.OPERATION_TYPE_CHAT, model=model,
        tokens=gateway_pb2.TokenUsage(prompt=prompt, completion=completion, total=prompt + completion),
        cost=cost, latency_ms=latency_ms, status=status, request_id=f"r-{op_id}", occurred_at=occurred or at(10),
    )


def report_request(models: list[str] | None = None) -> llmops_pb2.UsageReportRequest:
    return llmops_pb2.UsageReportRequest(report_id="rep", start=at(1, 0), end=at(30, 0), models=models or [])


async def test_redelivered_and_republished_operations_count_once(buses: list[Bus], url: str) -> None:
    worker = Recording(Budgets(), url, fail_once={"b"})
    await buses[0].serve(worker, tenants=["redeliver"])
    producer = llmops_bus.LlmopsServiceClient(buses[2], "redeliver")

    await producer.operations(op("a", cost=0.25), message_id="m-a")
    await producer.operations(op("a", cost=0.25), message_id="m-a")  # within the window: JetStream keeps one
    await producer.operations(op("b", cost=0.5), message_id="m-b")   # fails after storing, then redelivered
    await until(lambda: worker.handled.count("a") == 1 and "b" in worker.handled)
    await asyncio.sleep(DEDUP_WINDOW_S * 2)
    await producer.operations(op("a", cost=0.25), message_id="m-a")  # the same message id past the window
    await producer.operations(op("a", cost=0.25), message_id="m-a2")  # a producer that republished it
    await until(lambda: worker.handled.count("a") == 3)

    info = await buses[2].nc.jetstream().stream_info(stream_name(buses[2].prefix, OPS))
    assert info.state.last_seq == 4, "JetStream stored a, b, a past the window and a under another id"
    report = await producer.reports(report_request())
    assert [(m.model, m.operations, m.cost) for m in report.models] == [("local/extractive", 2, 0.75)]
    assert report.total_operations == 2 and report.total_tokens == 30


async def test_report_totals_equal_the_sum_of_the_operations(buses: list[Bus], url: str) -> None:
    worker = Recording(Budgets(), url)
    await buses[0].serve(worker, tenants=["reports", "other"])
    rng = random.Random(11)
    statuses = [llmops_pb2.OPERATION_STATUS_SUCCESS] * 3 + [llmops_pb2.OPERATION_STATUS_CACHED,
                                                            llmops_pb2.OPERATION_STATUS_ERROR]
    ops = [op(f"o{i}", model=rng.choice(["m1", "m2", "m3"]), cost=rng.uniform(0, 0.02), prompt=rng.randint(0, 500),
              completion=rng.randint(0, 300), latency_ms=rng.uniform(1, 900), status=rng.choice(statuses),
              occurred=at(rng.randint(1, 29), rng.randint(0, 23)))
           for i in range(60)]
    outside = [op("early", occurred=at(1, 0)), op("late", occurred=at(30, 0))]
    outside[0].occurred_at.FromDatetime(datetime(2026, 10, 31, 23, 59, tzinfo=UTC))
    client = llmops_bus.LlmopsServiceClient(buses[2], "reports")
    for o in ops + outside:
        await client.operations(o)
    await llmops_bus.LlmopsServiceClient(buses[2], "other").operations(op("o0", model="m1"))
    await until(lambda: len(worker.handled) == len(ops) + len(outside) + 1)

    report = await client.reports(report_request())
    assert [m.model for m in report.models] == ["m1", "m2", "m3"]
    for m in report.models:
        mine = [o for o in ops if o.model == m.model]
        latencies = [o.latency_ms for o in mine]
        cached = sum(o.status == llmops_pb2.OPERATION_STATUS_CACHED for o in mine)
        assert m.operations == len(mine)
        assert m.prompt_tokens == sum(o.tokens.prompt for o in mine)
        assert m.completion_tokens == sum(o.tokens.completion for o in mine)
        assert m.total_tokens == sum(o.tokens.total for o in mine)
        assert m.cost == pytest.approx(sum(o.cost for o in mine), rel=1e-12)
        assert m.errors == sum(o.status == llmops_pb2.OPERATION_STATUS_ERROR for o in mine)
        assert m.cache_hits == cached and m.cache_hit_rate == pytest.approx(cached / len(mine))
        assert m.latency_p50.ToNanoseconds() / 1e6 == pytest.approx(np.percentile(latencies, 50), abs=1e-6)
        assert m.latency_p95.ToNanoseconds() / 1e6 == pytest.approx(np.percentile(latencies, 95), abs=1e-6)
    assert report.total_operations == len(ops) == sum(m.operations for m in report.models)
    assert report.total_tokens == sum(o.tokens.total for o in ops)
    assert report.total_cost == pytest.approx(sum(o.cost for o in ops), rel=1e-12)
    assert report.latency_p95.ToNanoseconds() / 1e6 == pytest.approx(np.percentile([o.latency_ms for o in ops], 95), abs=1e-6)

    only = await client.reports(report_request(["m2", "nope"]))
    assert [m.model for m in only.models] == ["m2"] and only.total_operations == only.models[0].operations

    with pytest.raises(RemoteError) as e:
        await client.reports(llmops_pb2.UsageReportRequest(report_id="x", start=at(5), end=at(4)))
    assert e.value.code_name == "CODE_INVALID_ARGUMENT"


class Alerts(llmops_bus.LlmopsServiceHandler):
    def __init__(self) -> None:
        self.seen: list[gateway_pb2.CostAlert] = []

    async def cost_alerts(self, request: gateway_pb2.CostAlert, ctx: Context) -> None:
        self.seen.append(request)


class GatewayAlerts(gateway_bus.GatewayServiceHandler):
    def __init__(self) -> None:
        self.seen: list[gateway_pb2.CostAlert] = []

    async def cost_alerts(self, request: gateway_pb2.CostAlert, ctx: Context) -> None:
        self.seen.append(request)


async def test_a_budget_alert_is_raised_once_across_two_workers_and_a_restart(
    buses: list[Bus], url: str, server: EmbeddedServer
) -> None:
    tenant = "budget"
    budgets = Budgets({tenant: Budget(limit=1.0, period="month", thresholds=(0.5, 1.0))})
    workers = [Recording(budgets, url) for _ in range(2)]
    for b, w in zip(buses[:2], workers):
        await b.serve(w, tenants=[tenant])
    llmops_alerts, gateway_alerts = Alerts(), GatewayAlerts()
    await buses[2].serve(llmops_alerts, tenants=[tenant])
    await buses[2].serve(gateway_alerts, tenants=[tenant])
    client = llmops_bus.LlmopsServiceClient(buses[2], tenant)

    async def settle(sentinel: str) -> None:
        """Every alert published so far has arrived once a later one has."""
        marker = gateway_pb2.CostAlert(alert_id=sentinel)
        await client.cost_alerts(marker)
        await gateway_bus.GatewayServiceClient(buses[2], tenant).cost_alerts(marker)
        await until(lambda: any(a.alert_id == sentinel for a in llmops_alerts.seen)
                    and any(a.alert_id == sentinel for a in gateway_alerts.seen))

    def real(alerts: list[gateway_pb2.CostAlert]) -> list[tuple[str, float]]:
        return sorted((a.alert_id, a.threshold) for a in alerts if a.alert_id.startswith("budget:"))

    # 25 operations of $0.10 over both workers: $2.50 crosses $0.50 and $1.00 once each.
    for i in range(25):
        await client.operations(op(f"c{i}", cost=0.1))
    await until(lambda: sum(len(w.handled) for w in workers) == 25)
    assert all(w.handled for w in workers), "both workers took part"
    await settle("s1")
    expected = [("budget:month:2026-11-01:0.5", 0.5), ("budget:month:2026-11-01:1", 1.0)]
    assert real(llmops_alerts.seen) == expected
    assert real(gateway_alerts.seen) == expected
    first = next(a for a in gateway_alerts.seen if a.threshold == 1.0)
    assert first.current_cost >= 1.0 and first.period.seconds == 30 * 24 * 3600

    # A restarted worker reads the fired thresholds from PostgreSQL: no repeat.
    await buses[0].close()
    async with Bus(server.url, BusSettings(name="restarted", durability_overrides=FAST)) as again:
        fresh = Recording(budgets, url)
        await again.serve(fresh, tenants=[tenant])
        for i in range(25, 30):
            await client.operations(op(f"c{i}", cost=0.1))
        await until(lambda: len(workers[0].handled) + len(workers[1].handled) + len(fresh.handled) == 30)
        # A new period re-arms the thresholds.
        await client.operations(op("december", cost=0.6, occurred=timestamp_pb2.Timestamp(
            seconds=int(datetime(2026, 12, 3, tzinfo=UTC).timestamp()))))
        await until(lambda: "december" in fresh.handled + workers[1].handled)
        await settle("s2")
    assert real(gateway_alerts.seen) == expected + [("budget:month:2026-12-01:0.5", 0.5)]
    assert real(llmops_alerts.seen) == real(gateway_alerts.seen)


def test_periods() -> None:
    wed = datetime(2026, 12, 2, 17, 30, tzinfo=UTC)
    assert Budget(1, "day").bounds(wed) == (datetime(2026, 12, 2, tzinfo=UTC), datetime(2026, 12, 3, tzinfo=UTC))
    assert Budget(1, "week").bounds(wed) == (datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 7, tzinfo=UTC))
    assert Budget(1, "month").bounds(wed) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert Budget(1, "month").bounds(wed - timedelta(days=1))[0] == datetime(2026, 12, 1, tzinfo=UTC)


async def test_concurrent_spend_is_seen_by_the_budget_check(url: str) -> None:
    """Two operations stored at once, each below the threshold alone: the
    per-tenant lock makes the second check see the first one's cost."""
    budget = Budget(limit=1.0, thresholds=(0.5,))
    when = datetime(2026, 11, 10, tzinfo=UTC)
    pool = await storage.open_database("llmops", url=url)
    try:
        async def store_one(op_id: str) -> None:
            async with pool.connection() as conn, conn.transaction():
                await store.insert_operation(conn, "t", op(op_id, cost=0.3), when)
                await store.record_crossings(conn, "t", budget, when)

        async with pool.connection() as conn:
            async with conn.transaction():
                await store.insert_operation(conn, "t", op("first", cost=0.3), when)
                await store.record_crossings(conn, "t", budget, when)
                second = asyncio.create_task(store_one("second"))
                await asyncio.sleep(0.2)  # lets the second transaction go as far as it can
            await second
            crossings = await store.pending_crossings(conn, "t")
        assert [c.threshold for c in crossings] == [0.5] and crossings[0].spend == pytest.approx(0.6)
    finally:
        await pool.close()


async def test_garbage_is_refused_and_the_worker_stays_up(buses: list[Bus], url: str) -> None:
    worker = Recording(Budgets({"*": Budget(1.0)}), url)
    await buses[0].serve(worker, tenants=["junk"])
    nc = buses[2].nc  # a plain nats-py client, no envelope
    await nc.jetstream().publish(llmops_bus.llmops_operations_subject("junk"), b"\x00garbage")
    reply = await nc.request(llmops_bus.llmops_reports_subject("junk"), b"not an envelope", timeout=10)
    assert envelope_pb2.Envelope.FromString(reply.data).type == "ai.envelope.v1.Error"
    await until(lambda: buses[0].dead_letters == 1)

    client = llmops_bus.LlmopsServiceClient(buses[2], "junk")
    await client.operations(op("after"))
    await until(lambda: worker.handled == ["after"])
    assert (await client.reports(report_request())).total_operations == 1


async def test_a_batch_is_stored_at_once_and_a_bad_operation_fails_alone(buses: list[Bus], url: str) -> None:
    """Operations waiting when the worker starts come in one pull batch and
    go to PostgreSQL together; one that PostgreSQL refuses (a NUL in its id)
    makes the batch fail, and then only itself: the others are stored, it is
    dead-lettered."""
    # The stream exists once a worker serves the subject (any tenant).
    await buses[1].serve(Recording(Budgets(), url), tenants=["batch-other"])
    producer = llmops_bus.LlmopsServiceClient(buses[2], "batched")
    await asyncio.gather(*(producer.operations(op(f"good-{i}", cost=0.001)) for i in range(40)),
                         producer.operations(op("bad\x00id")))
    worker = Recording(Budgets({"*": Budget(1.0)}), url)
    letters = buses[0].dead_letters
    await buses[0].serve(worker, tenants=["batched"])
    await until(lambda: len(worker.handled) == 40 and buses[0].dead_letters == letters + 1)
    assert worker._batches.largest > 1, worker._batches.largest
    report = await producer.reports(report_request())
    assert report.total_operations == 40 and report.total_cost == pytest.approx(0.04)
    assert "bad\x00id" not in worker.handled
