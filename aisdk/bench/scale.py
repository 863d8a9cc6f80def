"""The components under load and at scale, beside the services rows:

- a free event loop: the p99 of a cheap request (a gateway cache hit) served
  by this process while the same process ingests a 100k-character document
  or embeds 64 texts, against the same request idle, within each round;
- LLMOps storing operations for a tenant with no operations and for one with
  a million in the current month (loaded with COPY), both with a budget, so
  that the budget check runs; and a usage report over that million;
- the full-text side of RAG retrieval on 50k chunks of one tenant
  (aisdk.bench.retrieval).

Its workers run in this process on their own Bus and a scratch database of
their own; the cheap request and the heavy work go through the stack of
aisdk.bench.services."""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from google.protobuf import timestamp_pb2

from ai.gateway.v1 import gateway_pb2
from ai.llmops.v1 import llmops_bus, llmops_pb2
from ai.rag.v1 import rag_pb2
from aisdk.bench import retrieval
from aisdk.bench.harness import Case, Group, Sample, median
from aisdk.bench.measure import Sink
from aisdk.bench.services import MODEL, PROMPT, Stack
from aisdk.components.gateway import models
from runtime.bus import Bus
from runtime.contract import Context
from runtime.settings import BusSettings

if TYPE_CHECKING:
    from aisdk.bench.run import Plan

EMPTY_TENANT = "bench-llmops-empty"
MILLION_TENANT = "bench-llmops-million"
MILLION = 1_000_000
# About 100k characters: the document ingested while cheap requests are timed.
LARGE_DOCUMENT = " ".join(
    f"Paragraph {i} says that orders of kind {i % 41} ship within {i % 6 + 1} days and that returns "
    f"of kind {i % 41} are accepted for {i % 30 + 10} days." for i in range(900))[:100_000]
EMBEDDED_TEXTS = 64
INGEST_TIMEOUT_S = 120.0
PUBLISHERS = 64
_now = time.perf_counter_ns


def _op(op_id: str, cost: float = 1e-6) -> llmops_pb2.LlmOperation:
    return llmops_pb2.LlmOperation(
        operation_id=op_id, operation_type=llmops_pb2.OPERATION_TYPE_CHAT, model=MODEL,
        tokens=gateway_pb2.TokenUsage(prompt=40, completion=12, total=52), cost=cost, latency_ms=3.0,
        status=llmops_pb2.OPERATION_STATUS_SUCCESS, request_id="req-0001")


def _month(now: datetime) -> tuple[datetime, datetime]:
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, (start + timedelta(days=32)).replace(day=1)


class Scale:
    def __init__(self, url: str, stack: Stack, quick: bool = False) -> None:
        self.url = url
        # --quick loads a tenth: its smoke test checks the shape, not the scale.
        self.operations = MILLION // 10 if quick else MILLION
        self.chunks = retrieval.CHUNKS // 5 if quick else retrieval.CHUNKS
        self.stack = stack
        self._exit = AsyncExitStack()
        self.sink = Sink()
        self._ids = itertools.count()
        self.facts: dict[str, float] = {}

    async def start(self, with_retrieval: bool = True) -> None:
        from aisdk.components.llmops import LlmOps
        from aisdk.components.llmops.budgets import Budget, Budgets
        from aisdk.components.rag.store import ChunkStore
        from aisdk.components.storage import open_database, temporary_database

        sink = self.sink

        class Counting(LlmOps):
            async def operations(self, request: llmops_pb2.LlmOperation, ctx: Context) -> None:
                await super().operations(request, ctx)
                sink.delivered()

        database = await self._exit.enter_async_context(temporary_database())
        # A budget far above what the bench spends: the check runs, no alert fires.
        budgets = Budgets({EMPTY_TENANT: Budget(1e9), MILLION_TENANT: Budget(1e9)})
        self.llmops_worker = Counting(budgets=budgets, database_url=database)
        bus = Bus(self.url, BusSettings(name="bench-llmops-scale"))
        await bus.connect()
        self._exit.push_async_callback(bus.close)
        await bus.serve(self.llmops_worker, tenants=[EMPTY_TENANT, MILLION_TENANT])
        t0 = time.monotonic()
        await self._load_million()
        self.facts["llmops_load_s"] = time.monotonic() - t0
        self.facts["llmops_operations_loaded"] = float(self.operations)
        self.empty = llmops_bus.LlmopsServiceClient(bus, EMPTY_TENANT)
        self.million = llmops_bus.LlmopsServiceClient(bus, MILLION_TENANT)
        if with_retrieval:
            pool = await open_database("rag", url=database)
            self._exit.push_async_callback(pool.close)
            chunks, self.questions = retrieval.corpus(self.chunks)
            t0 = time.monotonic()
            async with pool.connection() as conn, conn.transaction():
                await retrieval.load(conn, chunks)
            self.chunk_store: Any = ChunkStore(pool)
            # COPY bypassed ChunkStore.replace, which keeps the term statistics.
            await self.chunk_store.recount(retrieval.TENANT)
            async with pool.connection() as conn:
                await conn.set_autocommit(True)
                await conn.execute("VACUUM ANALYZE rag_chunks, rag_terms")
            self.facts["retrieval_load_s"] = time.monotonic() - t0
            self.facts["retrieval_chunks"] = float(self.chunks)

    async def stop(self) -> None:
        await self._exit.aclose()

    async def _load_million(self) -> None:
        from aisdk.components.llmops import store

        """A million operations (--quick: 100k) of MILLION_TENANT spread over this month,
        COPY'd, then added to the running totals in one statement each, as
        migration 003 does for the operations kept before it."""
        start, end = _month(datetime.now(UTC))
        step = (min(end, datetime.now(UTC)) - start) / self.operations
        buffer = io.StringIO()
        for i in range(self.operations):
            at = start + step * i
            buffer.write(f"{MILLION_TENANT}\tload-{i}\t1\t1\t{MODEL}\treq\t40\t12\t52\t1e-06\t{1 + i % 997}\t"
                         f"{at.isoformat()}\n")
        async with self.llmops_worker.pool.connection() as conn, conn.transaction():
            async with conn.cursor().copy(
                    "COPY llmops_operations (tenant_id, operation_id, operation_type, status, model, request_id,"
                    " prompt_tokens, completion_tokens, total_tokens, cost, latency_ms, occurred_at)"
                    " FROM STDIN") as copy:
                await copy.write(buffer.getvalue())
            await store.add_to_totals(conn, MILLION_TENANT)
        async with self.llmops_worker.pool.connection() as conn:
            await conn.set_autocommit(True)
            await conn.execute("VACUUM ANALYZE llmops_operations")

    def _id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"

    # -- LLMOps -------------------------------------------------------------

    async def _stored(self, client: llmops_bus.LlmopsServiceClient, n: int) -> Sample:
        done = self.sink.expect(n)
        t0 = _now()
        # Publishers in parallel, as the gateways of a deployment are: one
        # publisher awaiting each PubAck would measure the PubAck round trip.
        for i in range(0, n, PUBLISHERS):
            await asyncio.gather(*(client.operations(_op(self._id("op"))) for _ in range(min(PUBLISHERS, n - i))))
        t1 = await self.sink.wait(done)
        return Sample(n * 1e9 / (t1 - t0))

    async def stored_empty(self, n: int) -> Sample:
        """Operations of a tenant that had none, published back to back."""
        return await self._stored(self.empty, n)

    async def stored_million(self, n: int) -> Sample:
        """The same for a tenant with a million operations this month."""
        return await self._stored(self.million, n)

    async def report_million(self, n: int) -> Sample:
        """llmops.reports over this month of the tenant with a million operations."""
        start, end = _month(datetime.now(UTC))
        request = llmops_pb2.UsageReportRequest(report_id="r", start=_ts(start), end=_ts(end))
        latencies = []
        for _ in range(n):
            t0 = _now()
            report = await self.million.reports(request)
            latencies.append(_now() - t0)
        self.facts["report_operations"] = float(report.total_operations)
        return Sample(median(latencies), latencies)

    # -- the event loop -----------------------------------------------------

    async def _cheap(self, n: int) -> Sample:
        latencies = []
        for _ in range(n):
            # Deterministic, so that the response cache answers it: the
            # cheap request is a cache hit, not a provider call.
            request = gateway_pb2.LlmRequest(request_id=self._id("cheap"), prompt=PROMPT, model=models.CHAT,
                                             parameters=gateway_pb2.LlmParameters(temperature=0.0))
            t0 = _now()
            await self.stack.cached.requests(request)
            latencies.append(_now() - t0)
        return Sample(median(latencies), latencies)

    async def idle(self, n: int) -> Sample:
        """A gateway cache hit, nothing else running."""
        return await self._cheap(n)

    async def while_ingesting(self, n: int) -> Sample:
        """The same while the RAG worker ingests 100k-character documents one after another."""
        async with self._meanwhile(self._ingest_one):
            return await self._cheap(n)

    async def while_embedding(self, n: int) -> Sample:
        """The same while the gateway embeds 64 new texts, request after request."""
        async with self._meanwhile(self._embed_64):
            return await self._cheap(n)

    @contextlib.asynccontextmanager
    async def _meanwhile(self, heavy: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
        running = True

        async def loop() -> None:
            while running:
                await heavy()

        task = asyncio.create_task(loop())
        await asyncio.sleep(0.05)  # the heavy work under way before the first cheap request
        try:
            yield
        finally:
            running = False
            await task

    async def _ingest_one(self) -> None:
        done = self.stack.indexed.expect(1)
        await self.stack.rag.ingest(rag_pb2.RagDocument(document_id=self._id("large"), content=LARGE_DOCUMENT))
        # Far longer than a message: parsing, ~120 chunks embedded, stored.
        await asyncio.wait_for(done, INGEST_TIMEOUT_S)

    async def _embed_64(self) -> None:
        tag = self._id("texts")
        texts = [f"{tag} {i}: refunds are paid within {i} days of a return, shipping takes two days." * 4
                 for i in range(EMBEDDED_TEXTS)]
        await self.stack.gateway.embeddings(gateway_pb2.EmbeddingRequest(
            request_id=self._id("emb"), texts=texts, model=models.EMBEDDING))

    # -- retrieval ----------------------------------------------------------

    async def full_text(self, n: int) -> Sample:
        return await retrieval.full_text(self.chunk_store, self.questions, n)


def _ts(at: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(at)
    return ts


def groups(plan: Plan, scale: Scale, with_retrieval: bool = True) -> list[Group]:
    calibrate = plan.calibrate_s
    out = [
        Group("event_loop", "latency",
              [Case("idle", scale.idle), Case("ingesting", scale.while_ingesting),
               Case("embedding", scale.while_embedding)],
              size=max(50, plan.n(400) // 2), warmup=max(10, plan.n(40) // 2)),
        Group("llmops_scale", "msg/s",
              [Case("empty", scale.stored_empty), Case("million", scale.stored_million)],
              size=0, warmup=plan.n(500), calibrate_s=calibrate * 2, max_size=50_000),
        Group("llmops_report", "latency", [Case("million", scale.report_million)],
              size=max(5, plan.n(40) // 2), warmup=2),
    ]
    if with_retrieval:
        # Few queries: today each one takes a good part of a second.
        out.append(Group("retrieval", "latency", [Case("full_text", scale.full_text)], size=5, warmup=1))
    return out
