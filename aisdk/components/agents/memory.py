"""The memory service: agent.memory items persisted in PostgreSQL with their
embedding (pgvector), retrieved by similarity or recency on
agent.memory.retrieve. A memory id is stored once per tenant: a redelivered
or repeated item changes nothing."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import numpy as np
from ai.agent.v1 import agent_pb2
from ai.envelope.v1 import envelope_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from google.protobuf import timestamp_pb2
from opentelemetry.util.types import AttributeValue
from psycopg.types.json import Jsonb

from aisdk.components.agents.sql import Pool
from runtime.contract import CallOptions, Context, Transport
from runtime.errors import HandlerError
from runtime.telemetry import Telemetry
from runtime.telemetry.names import ATTR, METRIC, SPAN

Code = envelope_pb2.Error
DEFAULT_LIMIT = 5
DIMENSIONS = 256  # the column type of migration 001

_COLUMNS = "agent_id, memory_id, memory_type, content, metadata, created_at"


def _item(row: tuple[Any, ...]) -> agent_pb2.MemoryItem:
    created = timestamp_pb2.Timestamp()
    created.FromDatetime(row[5])
    return agent_pb2.MemoryItem(agent_id=row[0], memory_id=row[1], memory_type=row[2], content=row[3],
                                metadata=row[4], created_at=created)


class MemoryStore:
    def __init__(self, pool: Pool, bus: Transport, tel: Telemetry, embedding_model: str) -> None:
        self._pool = pool
        self._bus = bus
        self._tel = tel
        self._model = embedding_model

    async def _embed(self, tenant: str, request_id: str, text: str, ctx: Context) -> np.ndarray[Any, Any]:
        left = ctx.time_left()
        options: CallOptions = {"timeout": max(0.1, left)} if left is not None else {}
        result = await gateway_bus.GatewayServiceClient(self._bus, tenant).embeddings(
            gateway_pb2.EmbeddingRequest(request_id=request_id, model=self._model, texts=[text]), **options)
        vector = np.asarray(result.embeddings[0].values, dtype=np.float32)
        if vector.shape != (DIMENSIONS,):
            raise HandlerError(Code.CODE_FAILED_PRECONDITION,
                               f"embedding model {result.model!r} (asked for as {self._model!r}) gives "
                               f"{vector.shape[0]} dimensions; memories hold {DIMENSIONS}")
        return vector

    async def store(self, item: agent_pb2.MemoryItem, ctx: Context) -> bool:
        """Persist the item; False when its memory id was already stored."""
        tenant = ctx.tenant_id
        if not item.content.strip():
            raise HandlerError(Code.CODE_INVALID_ARGUMENT, f"memory {item.memory_id!r} has no content to remember")
        attrs: dict[str, AttributeValue] = {ATTR.TENANT_ID: tenant, "agent.id": item.agent_id,
                                            "memory.type": agent_pb2.MemoryType.Name(item.memory_type)}
        with self._tel.span(SPAN.AGENT_MEMORY_UPDATE, attrs) as span:
            async with self._pool.connection() as conn:
                cur = await conn.execute("SELECT 1 FROM agent_memories WHERE tenant_id = %s AND memory_id = %s",
                                         (tenant, item.memory_id))
                if await cur.fetchone() is not None:
                    span.set_attribute("memory.duplicate", True)
                    return False
            # Embedded outside a transaction: the gateway call may take a while.
            vector = await self._embed(tenant, f"memory:{item.memory_id}", item.content, ctx)
            created = (item.created_at.ToDatetime(tzinfo=timezone.utc) if item.HasField("created_at")
                       else datetime.now(timezone.utc))
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    f"INSERT INTO agent_memories (tenant_id, {_COLUMNS}, embedding) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (tenant_id, memory_id) DO NOTHING",
                    (tenant, item.agent_id, item.memory_id, item.memory_type, item.content,
                     Jsonb(dict(item.metadata)), created, vector))
                stored = cur.rowcount == 1
            span.set_attribute("memory.duplicate", not stored)
        if stored:
            self._tel.metrics.counter(METRIC.AGENT_MEMORY_UPDATES).add(
                1, {ATTR.TENANT_ID: tenant, "memory.type": attrs["memory.type"]})
        return stored

    async def retrieve(self, query: agent_pb2.MemoryQuery, ctx: Context) -> agent_pb2.MemoryRecall:
        tenant = ctx.tenant_id
        limit = query.limit or DEFAULT_LIMIT
        by_similarity = query.order == agent_pb2.MEMORY_ORDER_SIMILARITY
        if by_similarity and not query.text.strip():
            raise HandlerError(Code.CODE_INVALID_ARGUMENT, "retrieval by similarity needs a text to compare with")
        kind = agent_pb2.MemoryType.Name(query.memory_type)
        attrs: dict[str, AttributeValue] = {ATTR.TENANT_ID: tenant, "agent.id": query.agent_id,
                                            "memory.type": kind, "query": query.text[:256],
                                            "memory.order": agent_pb2.MemoryOrder.Name(query.order)}
        t0 = time.perf_counter()
        with self._tel.span(SPAN.AGENT_MEMORY_RETRIEVE, attrs) as span:
            where = "tenant_id = %s AND agent_id = %s AND (%s = 0 OR memory_type = %s)"
            params: list[Any] = [tenant, query.agent_id, query.memory_type, query.memory_type]
            recall = agent_pb2.MemoryRecall(query_id=query.query_id)
            if by_similarity:
                vector = await self._embed(tenant, f"memory-query:{query.query_id}", query.text, ctx)
                sql = (f"SELECT {_COLUMNS}, 1 - (embedding <=> %s) FROM agent_memories WHERE {where} "
                       "ORDER BY embedding <=> %s, memory_id LIMIT %s")
                params = [vector, *params, vector, limit]
            else:
                sql = (f"SELECT {_COLUMNS}, 0.0 FROM agent_memories WHERE {where} "
                       "ORDER BY created_at DESC, memory_id LIMIT %s")
                params.append(limit)
            async with self._pool.connection() as conn:
                cur = await conn.execute(sql, params)
                for row in await cur.fetchall():
                    recall.matches.add(item=_item(row), similarity=float(row[6]))
            span.set_attribute("memory.matches", len(recall.matches))
        self._tel.metrics.counter(METRIC.AGENT_MEMORY_RETRIEVALS).add(1, {ATTR.TENANT_ID: tenant, "memory.type": kind})
        self._tel.metrics.histogram(METRIC.AGENT_MEMORY_RETRIEVAL_DURATION).record(
            time.perf_counter() - t0, {ATTR.TENANT_ID: tenant})
        return recall
