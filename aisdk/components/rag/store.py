"""The SQL of the RAG worker. Every statement names the tenant: a row of one
tenant is never read, replaced or deleted on behalf of another."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from aisdk.components.rag.fusion import Candidate

DIMENSIONS = 256  # the column type of migration 001
# Candidates from each ranking, per source asked for: fusion needs more than
# the final top_k to reorder.
CANDIDATES_PER_SOURCE = 4
# The HNSW index is shared by all tenants: with the tenant filter applied after
# the index scan, pgvector 0.8's iterative scan keeps looking until enough of
# the tenant's rows are found, instead of returning too few.
_SEARCH_SETTINGS = ("SET LOCAL hnsw.iterative_scan = relaxed_order", "SET LOCAL hnsw.ef_search = 100")

Pool = AsyncConnectionPool[psycopg.AsyncConnection[Any]]


class StoreError(ValueError):
    """A document that cannot be stored as given."""


@dataclass(frozen=True, slots=True)
class DocumentRow:
    document_id: str
    content_hash: str
    content_type: str
    source_uri: str
    metadata: Mapping[str, str]
    embedding_model: str


@dataclass(frozen=True, slots=True)
class ChunkRow:
    ordinal: int
    chunk_id: str
    heading: str
    content: str
    token_count: int
    embedding: Sequence[float]


class ChunkStore:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def indexed_hash(self, tenant: str, document_id: str) -> str | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT content_hash FROM rag_documents WHERE tenant_id = %s AND document_id = %s",
                (tenant, document_id),
            )
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def replace(self, tenant: str, doc: DocumentRow, chunks: Sequence[ChunkRow]) -> bool:
        """Replace the document and all its chunks in one transaction; False
        (and nothing written) if the same content hash is already indexed."""
        for c in chunks:
            if len(c.embedding) != DIMENSIONS:
                raise StoreError(
                    f"chunk {c.chunk_id} has a {len(c.embedding)}-dimension embedding; the index holds {DIMENSIONS}"
                )
        async with self._pool.connection() as conn, conn.transaction():
            # Two workers ingesting the same document take turns.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{tenant}/{doc.document_id}",))
            cur = await conn.execute(
                "SELECT content_hash FROM rag_documents WHERE tenant_id = %s AND document_id = %s",
                (tenant, doc.document_id),
            )
            row = await cur.fetchone()
            if row is not None and row[0] == doc.content_hash:
                return False
            await conn.execute(
                "DELETE FROM rag_documents WHERE tenant_id = %s AND document_id = %s", (tenant, doc.document_id)
            )
            await conn.execute(
                "INSERT INTO rag_documents (tenant_id, document_id, content_hash, content_type, source_uri,"
                " metadata, chunk_count, embedding_model) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (tenant, doc.document_id, doc.content_hash, doc.content_type, doc.source_uri,
                 Jsonb(dict(doc.metadata)), len(chunks), doc.embedding_model),
            )
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO rag_chunks (tenant_id, document_id, ordinal, chunk_id, heading, content,"
                    " token_count, metadata, embedding) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (tenant, doc.document_id, c.ordinal, c.chunk_id, c.heading, c.content, c.token_count,
                         Jsonb(dict(doc.metadata)), np.asarray(c.embedding, dtype=np.float32))
                        for c in chunks
                    ],
                )
        return True

    async def chunk_ids(self, tenant: str, document_id: str) -> list[str]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT chunk_id FROM rag_chunks WHERE tenant_id = %s AND document_id = %s ORDER BY ordinal",
                (tenant, document_id),
            )
            return [str(r[0]) for r in await cur.fetchall()]

    async def search(
        self, tenant: str, question: str, embedding: Sequence[float], limit: int, similarity_threshold: float,
        metadata_filter: Mapping[str, str],
    ) -> tuple[list[Candidate], list[Candidate]]:
        """The nearest chunks by cosine similarity (at least the threshold) and
        the best full-text matches of the question's words, each best first."""
        params = {
            "t": tenant, "q": np.asarray(embedding, dtype=np.float32), "n": limit,
            "f": Jsonb(dict(metadata_filter)), "threshold": similarity_threshold, "text": question,
        }
        async with self._pool.connection() as conn, conn.transaction():
            for setting in _SEARCH_SETTINGS:
                await conn.execute(setting)
            vector = await (await conn.execute(_VECTOR_SQL, params)).fetchall()
            text = await (await conn.execute(_TEXT_SQL, params)).fetchall()
        return [Candidate(*r) for r in vector], [Candidate(*r) for r in text]


_VECTOR_SQL = """
WITH nearest AS MATERIALIZED (
    SELECT document_id, chunk_id, heading, content, embedding <=> %(q)s AS distance
    FROM rag_chunks
    WHERE tenant_id = %(t)s AND metadata @> %(f)s
    ORDER BY embedding <=> %(q)s
    LIMIT %(n)s
)
SELECT n.document_id, n.chunk_id, n.heading, n.content, d.source_uri, 1 - n.distance
FROM nearest n JOIN rag_documents d ON d.tenant_id = %(t)s AND d.document_id = n.document_id
WHERE 1 - n.distance >= %(threshold)s
ORDER BY n.distance, n.chunk_id
"""

# Any of the question's stemmed words, ranked by cover density: a question is
# not a conjunction of keywords, so websearch_to_tsquery's AND would find
# nothing for most of them.
_TEXT_SQL = """
WITH words AS (
    SELECT to_tsquery('simple', string_agg(quote_literal(w), ' | ')) AS query
    FROM unnest(tsvector_to_array(to_tsvector('english', %(text)s))) AS w
)
SELECT c.document_id, c.chunk_id, c.heading, c.content, d.source_uri, 1 - (c.embedding <=> %(q)s)
FROM rag_chunks c
JOIN rag_documents d ON d.tenant_id = c.tenant_id AND d.document_id = c.document_id
CROSS JOIN words
WHERE c.tenant_id = %(t)s AND c.metadata @> %(f)s AND c.search @@ words.query
ORDER BY ts_rank_cd(c.search, words.query) DESC, c.chunk_id
LIMIT %(n)s
"""
