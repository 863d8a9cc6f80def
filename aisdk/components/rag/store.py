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
# The text search configuration of 001 and the default of AISDK_RAG_TEXT_LANGUAGE.
DEFAULT_TEXT_CONFIG = "english"

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

    async def replace(self, tenant: str, doc: DocumentRow, chunks: Sequence[ChunkRow],
                      text_config: str = DEFAULT_TEXT_CONFIG) -> bool:
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
                    " token_count, metadata, embedding, text_config)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::regconfig)",
                    [
                        (tenant, doc.document_id, c.ordinal, c.chunk_id, c.heading, c.content, c.token_count,
                         Jsonb(dict(doc.metadata)), np.asarray(c.embedding, dtype=np.float32), text_config)
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

    async def chunks(self, tenant: str) -> list[tuple[str, str, str, str]]:
        """(document id, chunk id, heading, content) of every chunk of the
        tenant, in document order: what a baseline ranks (aisdk eval)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT document_id, chunk_id, heading, content FROM rag_chunks WHERE tenant_id = %s"
                " ORDER BY document_id, ordinal", (tenant,),
            )
            return [(str(a), str(b), str(c), str(d)) for a, b, c, d in await cur.fetchall()]

    async def search(
        self, tenant: str, question: str, embedding: Sequence[float], limit: int, similarity_threshold: float,
        metadata_filter: Mapping[str, str], text_config: str = DEFAULT_TEXT_CONFIG,
    ) -> tuple[list[Candidate], list[Candidate]]:
        """The nearest chunks by cosine similarity (at least the threshold) and
        the best full-text matches of the question, each best first."""
        params = {
            "t": tenant, "q": np.asarray(embedding, dtype=np.float32), "n": limit,
            "f": Jsonb(dict(metadata_filter)), "threshold": similarity_threshold, "text": question,
            "lang": text_config,
        }
        async with self._pool.connection() as conn, conn.transaction():
            for setting in _SEARCH_SETTINGS:
                await conn.execute(setting)
            vector = await (await conn.execute(_VECTOR_SQL, params)).fetchall()
            text = await (await conn.execute(_TEXT_SQL, params)).fetchall()
        return [Candidate(*r) for r in vector], _text_candidates(text)

    async def text_search(
        self, tenant: str, question: str, embedding: Sequence[float], limit: int,
        metadata_filter: Mapping[str, str], text_config: str = DEFAULT_TEXT_CONFIG,
    ) -> list[Candidate]:
        """The full-text side of `search` alone (the benchmark times it)."""
        params = {"t": tenant, "q": np.asarray(embedding, dtype=np.float32), "n": limit,
                  "f": Jsonb(dict(metadata_filter)), "text": question, "lang": text_config}
        async with self._pool.connection() as conn:
            return _text_candidates(await (await conn.execute(_TEXT_SQL, params)).fetchall())

    async def term_statistics(self, tenant: str, question: str, chunk_ids: Sequence[str],
                              text_config: str = DEFAULT_TEXT_CONFIG) -> TermStatistics:
        """The question's search terms (stemmed, stop words out), how many of
        the tenant's chunks hold each, and which of `chunk_ids` do: what the
        abstention decision weighs (rag.evidence)."""
        params = {"t": tenant, "text": question, "lang": text_config, "ids": list(chunk_ids)}
        async with self._pool.connection() as conn:
            total = await (await conn.execute(_CHUNK_COUNT_SQL, params)).fetchone()
            rows = await (await conn.execute(_TERMS_SQL, params)).fetchall()
        return TermStatistics(
            chunks=int(total[0]) if total else 0,
            frequency={str(r[0]): int(r[1]) for r in rows},
            holders={str(r[0]): frozenset(r[2]) for r in rows},
        )


def _text_candidates(rows: Sequence[tuple[Any, ...]]) -> list[Candidate]:
    return [Candidate(document_id, chunk_id, heading, content, uri, similarity, exact=exact)
            for document_id, chunk_id, heading, content, uri, similarity, exact in rows]


@dataclass(frozen=True, slots=True)
class TermStatistics:
    chunks: int  # the tenant's chunks in all
    frequency: Mapping[str, int]  # term -> chunks holding it
    holders: Mapping[str, frozenset[str]]  # term -> which of the asked chunks hold it


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

# Chunks holding any of the question's terms, ranked by the sum over its
# terms of the term's rarity among the tenant's chunks (inverse document
# frequency, counted through the GIN index) times its frequency in the chunk
# (ts_rank, normalised by the chunk's length): BM25's idea in PostgreSQL.
# Measured on the PostgreSQL-manual set (`aisdk eval`, docs/components.md),
# document MRR of this ranking alone: 0.766; one OR of every stem ranked by
# ts_rank_cd (the earlier query) 0.609; websearch_to_tsquery, which ANDs every
# word of a question and finds nothing for most, 0.128; the chunks matching
# it put first, 0.753. So websearch_to_tsquery only marks `exact` (every term
# in one chunk, quoted phrases in order), and such a chunk survives the
# similarity cut of rag.fusion.
_TEXT_SQL = """
WITH terms AS (
    SELECT DISTINCT w, to_tsquery('simple', quote_literal(w)) AS query
    FROM unnest(tsvector_to_array(to_tsvector(%(lang)s::regconfig, %(text)s))) AS w
), total AS MATERIALIZED (
    SELECT count(*) AS chunks FROM rag_chunks WHERE tenant_id = %(t)s
), weighted AS MATERIALIZED (
    SELECT t.query, ln((total.chunks + 1.0) / ((SELECT count(*) FROM rag_chunks c
                                                WHERE c.tenant_id = %(t)s AND c.search @@ t.query) + 0.5)) AS idf
    FROM terms t CROSS JOIN total
), q AS (
    SELECT to_tsquery('simple', string_agg(quote_literal(w), ' | ')) AS anyword,
           websearch_to_tsquery(%(lang)s::regconfig, %(text)s) AS exact
    FROM terms
)
SELECT c.document_id, c.chunk_id, c.heading, c.content, d.source_uri, 1 - (c.embedding <=> %(q)s),
       c.search @@ q.exact AS exact
FROM rag_chunks c
JOIN rag_documents d ON d.tenant_id = c.tenant_id AND d.document_id = c.document_id
CROSS JOIN q
WHERE c.tenant_id = %(t)s AND c.metadata @> %(f)s AND c.search @@ q.anyword
ORDER BY (SELECT sum(w.idf * ts_rank(c.search, w.query, 1)) FROM weighted w) DESC, c.chunk_id
LIMIT %(n)s
"""

_CHUNK_COUNT_SQL = "SELECT count(*) FROM rag_chunks WHERE tenant_id = %(t)s"

# Per distinct term: the tenant's chunks holding it (through the GIN index)
# and which of the retrieved chunks do.
_TERMS_SQL = """
WITH terms AS (
    SELECT DISTINCT w, to_tsquery('simple', quote_literal(w)) AS query
    FROM unnest(tsvector_to_array(to_tsvector(%(lang)s::regconfig, %(text)s))) AS w
)
SELECT t.w,
       (SELECT count(*) FROM rag_chunks c WHERE c.tenant_id = %(t)s AND c.search @@ t.query),
       ARRAY(SELECT c.chunk_id FROM rag_chunks c
             WHERE c.tenant_id = %(t)s AND c.chunk_id = ANY(%(ids)s) AND c.search @@ t.query)
FROM terms t
ORDER BY t.w
"""
