"""Retrieval at scale on the real PostgreSQL + pgvector: a small tenant beside
a large one on the shared HNSW index still gets its top_k, and an exact term
found by full-text search survives the similarity cut."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import replace

import numpy as np
import pytest

from aisdk.components import storage
from aisdk.components.rag import fusion
from psycopg.types.json import Jsonb

from aisdk.components.rag.store import _SEARCH_SETTINGS, _VECTOR_SQL, ChunkRow, ChunkStore, DocumentRow

BIG, SMALL = 20_000, 20
DIMENSIONS = 256


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


async def _bulk(pool: storage.Pool, tenant: str, vectors: np.ndarray) -> None:
    """COPY the large tenant's chunks with the HNSW index dropped and built
    again afterwards: the way a bulk load is done (DESIGN: 10k rows into an
    indexed table take 10 s, COPY then CREATE INDEX 1.6 s)."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("INSERT INTO rag_documents (tenant_id, document_id, content_hash, content_type,"
                           " chunk_count, embedding_model) VALUES (%s, 'big', 'h', 'text/plain', %s, 'x')",
                           (tenant, len(vectors)))
        await conn.execute("DROP INDEX rag_chunks_embedding")
        buffer = io.StringIO()
        for i, v in enumerate(vectors):
            buffer.write(f"{tenant}\tbig\t{i}\tbig#{i}\tfiller chunk {i}\t1\t[{','.join(f'{x:.5f}' for x in v)}]\n")
        async with conn.cursor().copy("COPY rag_chunks (tenant_id, document_id, ordinal, chunk_id, content,"
                                      " token_count, embedding) FROM STDIN") as copy:
            await copy.write(buffer.getvalue())
        await conn.execute("CREATE INDEX rag_chunks_embedding ON rag_chunks USING hnsw (embedding vector_cosine_ops)")


@pytest.fixture
async def store() -> AsyncIterator[ChunkStore]:
    async with storage.temporary_database() as url:
        pool = await storage.open_database("rag", url=url)
        yield ChunkStore(pool)
        await pool.close()


async def test_a_small_tenant_beside_a_large_one_gets_its_top_k(store: ChunkStore) -> None:
    rng = np.random.default_rng(7)
    question = _unit(rng.normal(size=(1, DIMENSIONS)))[0]
    # The large tenant's chunks all sit near the question, the small tenant's
    # far from it: an index scan that filters by tenant after the fact finds
    # only the large tenant's rows among its first candidates.
    near = _unit(question + 0.3 * rng.normal(size=(BIG, DIMENSIONS)))
    far = _unit(-question + 0.3 * rng.normal(size=(SMALL, DIMENSIONS)))
    await _bulk(store._pool, "big", near)
    await store.replace("small", DocumentRow("small", "h", "text/plain", "", {}, "x"),
                        [ChunkRow(i, f"small#{i}", "", f"small chunk {i}", 1, far[i]) for i in range(SMALL)])

    vector, _ = await store.search("small", "unrelated", question, 5, -1.0, {})
    assert len(vector) == 5 and {c.document_id for c in vector} == {"small"}

    # The planner may sort the small tenant's rows instead of scanning the
    # index; forbidding the sort forces the shared HNSW index, the case that
    # loses rows. With the store's settings it still finds five; without
    # pgvector 0.8's iterative scan (the positive control) it comes back short.
    assert await _through_the_index(store, question, _SEARCH_SETTINGS) == 5
    assert await _through_the_index(store, question, ("SET LOCAL hnsw.iterative_scan = off",
                                                      "SET LOCAL hnsw.ef_search = 100")) < 5


async def _through_the_index(store: ChunkStore, question: np.ndarray, settings: tuple[str, ...]) -> int:
    params = {"t": "small", "q": question.astype(np.float32), "n": 5, "f": Jsonb({}), "threshold": -1.0}
    async with store._pool.connection() as conn, conn.transaction():
        for setting in (*settings, "SET LOCAL enable_sort = off"):
            await conn.execute(setting)
        plan = "\n".join(str(r[0]) for r in await (await conn.execute("EXPLAIN " + _VECTOR_SQL, params)).fetchall())
        assert "rag_chunks_embedding" in plan, plan
        return len(await (await conn.execute(_VECTOR_SQL, params)).fetchall())


async def test_an_exact_term_survives_the_similarity_cut(store: ChunkStore) -> None:
    rng = np.random.default_rng(3)
    question = _unit(rng.normal(size=(1, DIMENSIONS)))[0]
    close = _unit(question + 0.1 * rng.normal(size=(3, DIMENSIONS)))
    distant = _unit(rng.normal(size=(1, DIMENSIONS)))[0]
    texts = ["Returns are accepted within thirty days.", "Refunds go to the original card.",
             "Exchanges are free of charge."]
    rows = [ChunkRow(i, f"faq#{i}", "", text, 8, close[i]) for i, text in enumerate(texts)]
    rows.append(ChunkRow(3, "faq#3", "", "Error ERR-4471 means the label printer is offline.", 12, distant))
    await store.replace("shop", DocumentRow("faq", "h", "text/plain", "", {}, "x"), rows)

    vector, text = await store.search("shop", "What does ERR-4471 mean?", question, 20, -1.0, {})
    exact = [c for c in text if c.exact]
    assert [c.chunk_id for c in exact] == ["faq#3"]
    fused = fusion.fuse(vector, text)
    # The exact match is far from the question in embedding space: a cut on
    # similarity alone drops it, the cut that knows exact matches keeps it.
    best = max(c.similarity for c in fused)
    assert next(c for c in fused if c.chunk_id == "faq#3").similarity < 0.5 * best
    chosen = fusion.select(fused, 5, 0.0, 0.5)
    assert "faq#3" in [c.chunk_id for c in chosen]
    assert "faq#3" not in [c.chunk_id for c in fusion.select([replace(c, exact=False) for c in fused],
                                                             5, 0.0, 0.5)]
