"""The durable work the scenarios send (RAG ingests, LLMOps operations) and
its effect counted in PostgreSQL: what a scenario reports as lost or
duplicated is read from the rows, never from deliveries."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import nats.errors
import psycopg
from google.protobuf.message import Message

from ai.llmops.v1 import llmops_bus, llmops_pb2
from ai.rag.v1 import rag_bus, rag_pb2
from aisdk.cli.faults.outcome import WAIT, Outcome, until
from runtime.bus import Bus
from runtime.contract import Durability, ServiceHandler, SubjectSpec
from runtime.errors import PlatformError
from runtime.jetstream import consumer_name, stream_name

# Short timings, so that a redelivery after a fault comes in seconds rather
# than the contract's production minutes.
FAST_BACKOFF_MS = (100, 200, 500, 1000)
CHUNKS = 3
DIMENSIONS = 256


@dataclass(frozen=True, slots=True)
class Tally:
    """The effect in the database: key -> how many times it is there, and
    how many keys are only partly written."""

    found: Counter[str]
    torn: int


def record(outcome: Outcome, sent: int, acked: set[str], tally: Tally) -> None:
    outcome.sent = sent
    outcome.processed = len(acked & tally.found.keys())
    outcome.lost = len(acked - tally.found.keys())
    outcome.duplicates = sum(n - 1 for n in tally.found.values() if n > 1)
    outcome.checks["nothing half-written"] = tally.torn == 0
    outcome.detail["acknowledged"] = len(acked)
    outcome.detail["half_written"] = tally.torn


class Workload(ABC):
    """Messages on one durable work queue, each with a key its effect is stored under."""

    spec: SubjectSpec[Any, Any]

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        # Unique per run: message ids are JetStream dedup ids on the stream.
        self.run = secrets.token_hex(4)

    def key(self, i: int) -> str:
        return f"{self.run}-{i}"

    def durability(self, *, ack_wait_ms: int = 2_000, max_deliver: int = 20) -> Mapping[str, Durability]:
        d = self.spec.durability
        assert d is not None
        return {self.spec.key: dataclasses.replace(d, ack_wait_ms=ack_wait_ms, max_deliver=max_deliver,
                                                   backoff_ms=FAST_BACKOFF_MS)}

    @property
    def stream(self) -> str:
        return stream_name("ai", self.spec)

    @property
    def consumer(self) -> str:
        return consumer_name(self.spec.queue_group)

    @abstractmethod
    def message(self, i: int) -> Message: ...

    @abstractmethod
    def handler(self, database_url: str) -> ServiceHandler: ...

    @abstractmethod
    async def tally(self, database_url: str) -> Tally: ...

    async def present(self, database_url: str, keys: set[str]) -> bool:
        """True once every key has its effect (False while the database is down)."""
        try:
            return keys <= (await self.tally(database_url)).found.keys()
        except psycopg.Error:
            return False


class RagIngest(Workload):
    """Pre-chunked documents with their embeddings (no gateway needed); the
    effect is a document row and its chunk rows, written in one transaction."""

    spec = rag_bus.RAG_INGEST

    def message(self, i: int) -> rag_pb2.RagDocument:
        doc = rag_pb2.RagDocument(document_id=self.key(i), content_type="text/plain")
        for n in range(CHUNKS):
            vector = [0.0] * DIMENSIONS
            vector[(i + n) % DIMENSIONS] = 1.0
            doc.chunks.add(chunk_id=f"{self.key(i)}#{n}", content=f"part {n} of document {i}", embedding=vector)
        return doc

    def handler(self, database_url: str) -> ServiceHandler:
        from aisdk.components.rag.settings import Settings
        from aisdk.components.rag.worker import RagWorker

        return RagWorker(Settings(), database_url=database_url)

    async def tally(self, database_url: str) -> Tally:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            cur = await conn.execute(
                """
                SELECT d.document_id, d.chunk_count, count(c.ordinal)
                FROM rag_documents d LEFT JOIN rag_chunks c USING (tenant_id, document_id)
                WHERE d.tenant_id = %s GROUP BY d.document_id, d.chunk_count
                """,
                (self.tenant,),
            )
            rows = await cur.fetchall()
        found: Counter[str] = Counter()
        torn = 0
        for document_id, chunk_count, chunks in rows:
            # The primary key allows one row per document: a second ingest
            # shows as chunk rows beyond the document's own.
            found[document_id] = max(1, chunks // CHUNKS)
            torn += chunks % CHUNKS != 0 or chunk_count != CHUNKS
        return Tally(found, torn)


class LlmopsOperations(Workload):
    """LLM operations; the effect is one row per operation id."""

    spec = llmops_bus.LLMOPS_OPERATIONS

    def message(self, i: int) -> llmops_pb2.LlmOperation:
        return llmops_pb2.LlmOperation(
            operation_id=self.key(i), operation_type=llmops_pb2.OPERATION_TYPE_COMPLETION,
            status=llmops_pb2.OPERATION_STATUS_SUCCESS, model="local/extractive", cost=0.001, latency_ms=5.0,
        )

    def handler(self, database_url: str) -> ServiceHandler:
        from aisdk.components.llmops import LlmOps
        from aisdk.components.llmops.budgets import Budgets

        return LlmOps(budgets=Budgets(), database_url=database_url)

    async def tally(self, database_url: str) -> Tally:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            cur = await conn.execute(
                "SELECT operation_id, count(*) FROM llmops_operations WHERE tenant_id = %s GROUP BY operation_id",
                (self.tenant,),
            )
            return Tally(Counter({op: int(n) for op, n in await cur.fetchall()}), 0)


async def publish_acked(bus: Bus, work: Workload, indices: Iterable[int], acked: set[str],
                        give_up_after: float = WAIT) -> None:
    """Publish each message until the stream acknowledges it, adding its key
    to `acked` then. A retry keeps the message id, so a publish whose ack was
    lost is dropped by the stream's duplicate window."""
    loop = asyncio.get_running_loop()
    for i in indices:
        key = work.key(i)
        deadline = loop.time() + give_up_after
        while True:
            try:
                await bus.publish(work.spec, work.message(i), work.tenant, {"message_id": key})
            except (PlatformError, nats.errors.Error):
                if loop.time() >= deadline:
                    break
                await asyncio.sleep(0.1)
                continue
            acked.add(key)
            break


async def drained(bus: Bus, work: Workload) -> bool:
    """True once the work queue's consumer has nothing pending or unacknowledged."""
    try:
        info = await bus.nc.jetstream(timeout=2).consumer_info(work.stream, work.consumer)
    except (nats.errors.Error, asyncio.TimeoutError):
        return False
    return bool(info.num_pending == 0 and info.num_ack_pending == 0)


async def settle(bus: Bus, work: Workload, database_url: str, acked: set[str], outcome: Outcome) -> None:
    """Wait (bounded) for every acknowledged message's effect and an idle
    consumer, then count the effect."""
    outcome.checks["every effect arrived in time"] = await until(lambda: work.present(database_url, acked))
    outcome.checks["the queue drained"] = await until(lambda: drained(bus, work))
    record(outcome, outcome.sent, acked, await work.tally(database_url))
