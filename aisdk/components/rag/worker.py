"""The RAG worker (`aisdk serve rag`): rag.ingest and rag.queries in the
rag.workers queue group. All state is in PostgreSQL, so any number of workers
behave as one service and a restart forgets nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ai.rag.v1 import rag_bus, rag_pb2

from aisdk.components.rag.answering import Answerer
from aisdk.components.rag.ingestion import Ingestor
from aisdk.components.rag.settings import Settings
from aisdk.components.rag.store import ChunkStore, Pool
from runtime.contract import Context
from runtime.errors import PlatformError
from runtime.telemetry import Telemetry

if TYPE_CHECKING:
    from runtime.bus import Bus


class RagWorker(rag_bus.RagServiceHandler):
    def __init__(self, settings: Settings | None = None, database_url: str | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self._database_url = database_url
        self._pool: Pool | None = None
        self._ingestor: Ingestor | None = None
        self._answerer: Answerer | None = None
        self.store: ChunkStore | None = None

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
