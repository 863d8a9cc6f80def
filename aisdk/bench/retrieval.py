"""RAG retrieval at scale: the full-text side of `ChunkStore.search` on 50k
chunks of one tenant, on a scratch database of the embedded PostgreSQL.

The chunks are bulk-loaded with COPY (how a large corpus is loaded; the
store's own inserts would take minutes), from a made-up language whose word
frequencies follow Zipf's law like a real one's: a few words in most chunks,
most words in few. The questions mix both kinds, as real questions do."""

from __future__ import annotations

import io
import random
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from aisdk.bench.harness import Sample, median

CHUNKS = 50_000
TENANT = "bench-retrieval"
_WORDS_PER_CHUNK = 120
_VOCABULARY = 30_000
_QUESTIONS = 24
_now = time.perf_counter_ns
# The GIN indexes of the RAG migrations, built after the bulk load.
_GIN = (("rag_chunks_search", "gin (search)"), ("rag_chunks_metadata", "gin (metadata jsonb_path_ops)"))


def _vocabulary(rng: random.Random) -> list[str]:
    """Pronounceable made-up words, distinct, so the English stemmer keeps
    them apart."""
    onsets = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "st", "tr", "pl"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ou"]
    words: set[str] = set()
    while len(words) < _VOCABULARY:
        words.add("".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(rng.randint(2, 4))) + "x")
    return sorted(words)


def corpus(n: int = CHUNKS, seed: int = 7) -> tuple[list[str], list[str]]:
    """n chunks of text and the questions asked of them."""
    rng = random.Random(seed)
    words = np.array(_vocabulary(rng))
    weights = 1.0 / np.arange(1, len(words) + 1)
    drawn = np.random.default_rng(seed).choice(len(words), size=(n, _WORDS_PER_CHUNK), p=weights / weights.sum())
    chunks = [" ".join(words[row]) for row in drawn]
    questions = []
    for _ in range(_QUESTIONS):
        common = rng.choices(list(words[:50]), k=2)
        middling = rng.choices(list(words[50:2_000]), k=2)
        rare = rng.choices(list(words[2_000:]), k=2)
        questions.append(" ".join(common + middling + rare))
    return chunks, questions


async def load(conn: Any, chunks: Sequence[str], tenant: str = TENANT, dimensions: int = 256) -> None:
    """COPY the chunks as one document of the tenant, with random unit
    embeddings. Only the full-text side is measured, so the scratch
    database's HNSW index goes (COPY into it would take minutes), and the
    GIN indexes are built again after the load, as a bulk load does."""
    rng = np.random.default_rng(7)
    await conn.execute("DROP INDEX IF EXISTS rag_chunks_embedding")
    for index, _ in _GIN:
        await conn.execute(f"DROP INDEX {index}")
    await conn.execute(
        "INSERT INTO rag_documents (tenant_id, document_id, content_hash, content_type, chunk_count,"
        " embedding_model) VALUES (%s, 'corpus', 'h', 'text/plain', %s, 'x')", (tenant, len(chunks)))
    buffer = io.StringIO()
    for i, text in enumerate(chunks):
        v = rng.normal(size=dimensions)
        v /= np.linalg.norm(v)
        buffer.write(f"{tenant}\tcorpus\t{i}\tcorpus#{i}\t{text}\t{len(text) // 4}\t"
                     f"[{','.join(f'{x:.4f}' for x in v)}]\n")
    async with conn.cursor().copy("COPY rag_chunks (tenant_id, document_id, ordinal, chunk_id, content,"
                                  " token_count, embedding) FROM STDIN") as copy:
        await copy.write(buffer.getvalue())
    for index, definition in _GIN:
        await conn.execute(f"CREATE INDEX {index} ON rag_chunks USING {definition}")


async def full_text(store: Any, questions: Sequence[str], n: int, tenant: str = TENANT) -> Sample:
    """n full-text searches, cycling through the questions, each timed."""
    from aisdk.components.rag.store import CANDIDATES_PER_SOURCE

    embedding = [1.0] + [0.0] * 255
    latencies = []
    for i in range(n):
        t0 = _now()
        await store.text_search(tenant, questions[i % len(questions)], embedding, 5 * CANDIDATES_PER_SOURCE, {})
        latencies.append(_now() - t0)
    return Sample(median(latencies), latencies)
