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

from aisdk.components.rag import textrank
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
                "SELECT content_hash, chunk_count FROM rag_documents WHERE tenant_id = %s AND document_id = %s",
                (tenant, doc.document_id),
            )
            row = await cur.fetchone()
            if row is not None and row[0] == doc.content_hash:
                return False
            gone: list[tuple[str, int]] = []
            if row is not None:
                # What the replaced chunks held, taken off the statistics.
                terms = await conn.execute(_DOCUMENT_TERMS_SQL, (tenant, doc.document_id))
                gone = [(str(t), int(n)) for t, n in await terms.fetchall()]
                await conn.execute(  # its chunks go with it (ON DELETE CASCADE)
                    "DELETE FROM rag_documents WHERE tenant_id = %s AND document_id = %s", (tenant, doc.document_id)
                )
            removed = int(row[1]) if row is not None else 0
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
            await _count(conn, tenant, doc.document_id, gone, len(chunks) - removed)
        return True

    async def recount(self, tenant: str) -> None:
        """Count the tenant's term statistics again from its chunks."""
        async with self._pool.connection() as conn:
            await conn.execute("SELECT rag_recount(%s)", (tenant,))

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
            # Not prepared either: the generic plan of the nearest-neighbour
            # query took 9 ms where the planned one takes 2 (3.6k chunks).
            vector = await (await conn.execute(_VECTOR_SQL, params, prepare=False)).fetchall()
            text = await _ranked(conn, params)
        return [Candidate(*r) for r in vector], text

    async def text_search(
        self, tenant: str, question: str, embedding: Sequence[float], limit: int,
        metadata_filter: Mapping[str, str], text_config: str = DEFAULT_TEXT_CONFIG,
    ) -> list[Candidate]:
        """The full-text side of `search` alone (the benchmark times it)."""
        params = {"t": tenant, "q": np.asarray(embedding, dtype=np.float32), "n": limit,
                  "f": Jsonb(dict(metadata_filter)), "text": question, "lang": text_config}
        async with self._pool.connection() as conn:
            return await _ranked(conn, params)

    async def term_statistics(self, tenant: str, question: str, chunk_ids: Sequence[str],
                              text_config: str = DEFAULT_TEXT_CONFIG) -> TermStatistics:
        """The question's search terms (stemmed, stop words out), how many of
        the tenant's chunks hold each, and which of `chunk_ids` do: what the
        abstention decision weighs (rag.evidence)."""
        params = {"t": tenant, "text": question, "lang": text_config, "ids": list(chunk_ids)}
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(_TERMS_SQL, params, prepare=False)).fetchall()
        terms = [r for r in rows if r[1] is not None]
        return TermStatistics(
            chunks=int(rows[0][0]) if rows else 0,
            frequency={str(r[1]): int(r[2]) for r in terms},
            holders={str(r[1]): frozenset(r[3]) for r in terms},
        )


async def _count(conn: psycopg.AsyncConnection[Any], tenant: str, document_id: str,
                 gone: Sequence[tuple[str, int]], chunks: int) -> None:
    """Add a document's new chunks to the tenant's statistics and take away
    the `gone` (term, chunks) of the chunks they replaced; `chunks` is the
    change in the tenant's chunk count."""
    await conn.execute(_ADD_TERMS_SQL, {"t": tenant, "d": document_id, "gone": [t for t, _ in gone],
                                        "gone_n": [n for _, n in gone]})
    if gone:
        await conn.execute("DELETE FROM rag_terms WHERE tenant_id = %s AND term = ANY(%s) AND chunks <= 0",
                           (tenant, sorted(t for t, _ in gone)))
    await conn.execute(_ADD_CHUNKS_SQL, (tenant, chunks))


async def _ranked(conn: psycopg.AsyncConnection[Any], params: dict[str, Any]) -> list[Candidate]:
    """The best full-text matches, ranked in two passes (rag.textrank).

    Never prepared: a prepared statement's generic plan cannot see how many
    chunks a tsquery matches and scans the tenant's rows (6.7 ms instead of
    1 ms for a one-term query on 50k chunks)."""
    rows = await (await conn.execute(_TERM_BOUNDS_SQL, params, prepare=False)).fetchall()
    if not rows:
        return []
    total = int(rows[0][4] or 0)
    query = {str(r[0]): str(r[3]) for r in rows}
    holders = {str(r[0]): int(r[1]) for r in rows}
    ranked = textrank.terms(total, [(str(t), int(n), float(best)) for t, n, best, _, _ in rows if query[str(t)]])
    if not ranked:
        return []
    params = {**params, "queries": [query[t.term] for t in ranked], "idfs": [t.idf for t in ranked]}

    async def best(clauses: Sequence[Sequence[textrank.Term]]) -> list[tuple[Any, ...]]:
        cond = " | ".join("(" + " & ".join(f"({query[t.term]})" for t in c) + ")" for c in clauses)
        return await (await conn.execute(_RANKED_SQL, {**params, "cond": cond}, prepare=False)).fetchall()

    first = textrank.first_pass(ranked, holders, params["n"])
    found = await best([[t] for t in first])
    if len(first) < len(ranked):
        theta = float(found[-1][7]) if len(found) >= params["n"] else 0.0
        found = await best(textrank.clauses(ranked, theta))
    return [Candidate(document_id, chunk_id, heading, content, uri, similarity, exact=exact)
            for document_id, chunk_id, heading, content, uri, similarity, exact, _ in found]


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

# The question's terms that the tenant's chunks hold: how many chunks hold
# each and the best rank one gives it (kept by `replace`, rag_terms), the
# term as the one-word tsquery the ranking uses, and the tenant's chunks.
_TERM_BOUNDS_SQL = """
WITH terms AS (
    SELECT DISTINCT w FROM unnest(tsvector_to_array(to_tsvector(%(lang)s::regconfig, %(text)s))) AS w
)
SELECT t.w, s.chunks, s.max_rank::float8, rag_lexeme(t.w)::text,
       (SELECT n.chunks FROM rag_tenants n WHERE n.tenant_id = %(t)s)
FROM terms t JOIN rag_terms s ON s.tenant_id = %(t)s AND s.term = t.w
ORDER BY t.w
"""

# The chunks that satisfy `cond` (rag.textrank's plan), ranked by the sum
# over the question's terms of the term's rarity among the tenant's chunks
# (idf) times its frequency in the chunk (ts_rank, normalised by the chunk's
# length): BM25's idea in PostgreSQL. Only the best n are read whole.
# Measured on the PostgreSQL-manual set (`aisdk eval`, docs/components.md),
# document MRR of this ranking alone: 0.766; one OR of every stem ranked by
# ts_rank_cd (the earlier query) 0.609; websearch_to_tsquery, which ANDs every
# word of a question and finds nothing for most, 0.128; the chunks matching
# it put first, 0.753. So websearch_to_tsquery only marks `exact` (every term
# in one chunk, quoted phrases in order), and such a chunk survives the
# similarity cut of rag.fusion.
_RANKED_SQL = """
WITH w AS MATERIALIZED (
    SELECT query, idf FROM unnest(%(queries)s::tsquery[], %(idfs)s::float8[]) AS u(query, idf)
), best AS MATERIALIZED (
    SELECT c.document_id, c.ordinal, c.chunk_id,
           (SELECT sum(w.idf * ts_rank(c.search, w.query, 1)) FROM w) AS score
    FROM rag_chunks c
    WHERE c.tenant_id = %(t)s AND c.metadata @> %(f)s AND c.search @@ %(cond)s::tsquery
    ORDER BY score DESC, c.chunk_id
    LIMIT %(n)s
)
SELECT c.document_id, c.chunk_id, c.heading, c.content, d.source_uri, 1 - (c.embedding <=> %(q)s),
       c.search @@ websearch_to_tsquery(%(lang)s::regconfig, %(text)s), b.score
FROM best b
JOIN rag_chunks c ON c.tenant_id = %(t)s AND c.document_id = b.document_id AND c.ordinal = b.ordinal
JOIN rag_documents d ON d.tenant_id = c.tenant_id AND d.document_id = c.document_id
ORDER BY b.score DESC, b.chunk_id
"""

# The tenant's chunks, and per distinct term of the question the chunks
# holding it (kept by `replace`) and which of the retrieved chunks do; one
# row with no term when the question has none (only stop words).
_TERMS_SQL = """
WITH terms AS (
    SELECT DISTINCT w, rag_lexeme(w) AS query
    FROM unnest(tsvector_to_array(to_tsvector(%(lang)s::regconfig, %(text)s))) AS w
)
SELECT (SELECT coalesce(max(n.chunks), 0) FROM rag_tenants n WHERE n.tenant_id = %(t)s),
       t.w, coalesce(s.chunks, 0),
       ARRAY(SELECT c.chunk_id FROM rag_chunks c
             WHERE c.tenant_id = %(t)s AND c.chunk_id = ANY(%(ids)s) AND c.search @@ t.query)
FROM (SELECT) AS one
LEFT JOIN terms t ON true
LEFT JOIN rag_terms s ON s.tenant_id = %(t)s AND s.term = t.w
ORDER BY t.w
"""

# A document's terms and how many of its chunks hold each: what `replace`
# takes away from rag_terms when it replaces the document.
_DOCUMENT_TERMS_SQL = """
SELECT w, count(*) FROM rag_chunks c, unnest(tsvector_to_array(c.search)) AS w
WHERE c.tenant_id = %s AND c.document_id = %s
GROUP BY w
"""

# The document's new chunks added to rag_terms (chunks holding each term, the
# best rank one gives it), and the replaced chunks' terms taken away. One
# statement, its rows in term order: two documents of one tenant written at
# once lock their common terms in the same order, so neither waits for the
# other in a cycle. A bound that only grows stays a bound when chunks go.
_ADD_TERMS_SQL = """
INSERT INTO rag_terms AS s (tenant_id, term, chunks, max_rank)
SELECT %(t)s, term, sum(n), max(best)
FROM (
    SELECT w AS term, 1 AS n, ts_rank(c.search, rag_lexeme(w), 1) AS best
    FROM rag_chunks c, unnest(tsvector_to_array(c.search)) AS w
    WHERE c.tenant_id = %(t)s AND c.document_id = %(d)s
    UNION ALL
    SELECT term, -n, 0 FROM unnest(%(gone)s::text[], %(gone_n)s::int[]) AS g(term, n)
) AS delta
GROUP BY term
ORDER BY term
ON CONFLICT (tenant_id, term) DO UPDATE
SET chunks = s.chunks + excluded.chunks, max_rank = greatest(s.max_rank, excluded.max_rank)
"""

_ADD_CHUNKS_SQL = """
INSERT INTO rag_tenants AS n (tenant_id, chunks) VALUES (%s, %s)
ON CONFLICT (tenant_id) DO UPDATE SET chunks = n.chunks + excluded.chunks
"""
