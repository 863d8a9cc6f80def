"""The RAG worker (`aisdk serve rag`): rag.ingest and rag.queries in the
rag.workers queue group. All state is in PostgreSQL, so any number of workers
behave as one service and a restart forgets nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from ai.rag.v1 import rag_bus, rag_pb2

from aisdk.components.rag.answering import Answerer
from aisdk.components.rag.ingestion import Ingestor
from aisdk.components.rag.settings import Settings
from aisdk.components.rag.store import ChunkStore, Pool
from runtime.contract import Context, SubjectSpec
from runtime.errors import PlatformError
from runtime.telemetry import Telemetry

if TYPE_CHECKING:
    from runtime.bus import Bus


class _InOrder:
    """One lock per key, made while someone holds or waits for it: handlers
    of the same document run one after another, in the order they started
    (asyncio.Lock is first come, first served)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class RagWorker(rag_bus.RagServiceHandler):
    def __init__(self, settings: Settings | None = None, database_url: str | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self._database_url = database_url
        self._pool: Pool | None = None
        self._ingestor: Ingestor | None = None
        self._answerer: Answerer | None = None
        self.store: ChunkStore | None = None
        self._documents = _InOrder()

    def concurrency(self, spec: SubjectSpec[Any, Any]) -> int | None:
        # Documents in flight at once: their parsing runs in the process pool
        # and their embedding in the gateway while another one is stored.
        return self.settings.ingest_concurrency if spec is rag_bus.RAG_INGEST else None

    async def start(self, bus: Bus) -> None:
        from aisdk.components.storage import open_database

        self._pool = await open_database("rag", url=self._database_url)
        self.store = ChunkStore(self._pool)
        tel = bus.telemetry if bus.telemetry is not None else Telemetry.disabled()
        durability = bus.durability(rag_bus.RAG_INGEST)
        max_deliver = durability.max_deliver if durability is not None else 1
        self._ingestor = Ingestor(bus, self.store, tel, self.settings, max_deliver, bus.nc.jetstream())
        self._answerer = Answerer(bus, self.store, tel, self.settings)

    async def stop(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def ingest(self, request: rag_pb2.RagDocument, ctx: Context) -> None:
        if self._ingestor is None:
            raise PlatformError("the RAG worker is not started")
        async with self._documents.hold(f"{ctx.tenant_id}/{request.document_id}"):
            await self._ingestor(request, ctx)

    async def queries(self, request: rag_pb2.RagQuery, ctx: Context) -> rag_pb2.RagResult:
        if self._answerer is None:
            raise PlatformError("the RAG worker is not started")
        return await self._answerer(request, ctx)

    async def publish_template(self, tenant: str) -> None:
        """Publish the answer template for a tenant now rather than at its
        first question."""
        if self._answerer is None:
            raise PlatformError("the RAG worker is not started")
        await self._answerer.publish_template(tenant)
