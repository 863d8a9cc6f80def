"""Ingestion of one document: parse, chunk, embed, then replace the
document's chunks in one transaction. Progress goes out as rag.status events.

Nothing is written before every chunk has its embedding, so a failure at any
step leaves the previous version of the document (or nothing) in place.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ai.envelope.v1 import envelope_pb2
from ai.rag.v1 import rag_bus, rag_pb2

from aisdk.components import offload
from aisdk.components.gateway import models
from aisdk.components.rag import chunking, objects, parsing, tokens
from aisdk.components.rag.embedding import WrongDimensions, embed
from aisdk.components.rag.settings import Settings
from aisdk.components.rag.store import DIMENSIONS, ChunkRow, ChunkStore, DocumentRow, StoreError
from runtime.contract import Context, Transport
from runtime.errors import HandlerError, RemoteError
from runtime.telemetry import Telemetry
from runtime.telemetry.names import ATTR, METRIC, SPAN

_Report = Callable[..., Awaitable[None]]
State = rag_pb2.IngestState
Code = envelope_pb2.Error
# Gateway answers that no redelivery can change.
_PERMANENT = frozenset({Code.CODE_INVALID_ARGUMENT, Code.CODE_FAILED_PRECONDITION, Code.CODE_NOT_FOUND,
                        Code.CODE_PERMISSION_DENIED})


class Poison(Exception):
    """The document itself is the problem."""


@dataclass(frozen=True, slots=True)
class Parsed:
    content_type: str
    chunks: list[chunking.ChunkText]
    # Embeddings supplied with a pre-chunked document, by ordinal.
    supplied: dict[int, list[float]]


# Characters (or bytes of a file) below which a document is parsed on the
# event loop: a millisecond or two of work on a busy two-core machine (1.6k
# characters took 0.75 ms), about what the trip to the process pool costs.
PARSE_INLINE_BELOW = 4_000

# Bumped when parsing or chunking changes what the same input indexes as, so
# that documents indexed before are indexed again rather than skipped.
INDEXING_VERSION = 2


def fingerprint(doc: rag_pb2.RagDocument, content_type: str, settings: Settings, embedder: str) -> str:
    """Same hash, same index: the content and everything that shapes its
    chunks, with the model that embeds them (what the `embedding` alias
    resolves to), so that a document is embedded again once it changes."""
    h = hashlib.sha256()
    shape = {"type": content_type, "uri": doc.source_uri, "meta": dict(sorted(doc.metadata.items())),
             "model": embedder, "sizes": [settings.chunk_tokens, settings.overlap_tokens],
             "lang": settings.text_language, "indexing": INDEXING_VERSION}
    h.update(json.dumps(shape, sort_keys=True).encode())
    h.update(doc.content.encode())
    h.update(doc.data)
    for c in doc.chunks:
        h.update(c.chunk_id.encode() + b"\0" + c.content.encode() + b"\0")
        h.update(np.asarray(c.embedding, dtype=np.float32).tobytes())
    return h.hexdigest()


def chunk_id(document_id: str, ordinal: int) -> str:
    cid = f"{document_id}#{ordinal}"
    if len(cid) <= 128:
        return cid
    return f"{hashlib.sha256(document_id.encode()).hexdigest()[:32]}#{ordinal}"


def parse(doc: rag_pb2.RagDocument, settings: Settings) -> Parsed:
    try:
        kind = parsing.content_type(doc.content_type, doc.source_uri, doc.content, doc.data)
        if doc.chunks:
            return _supplied(doc, kind)
        if not doc.content and not doc.data:
            raise parsing.ParseError("the document has neither content nor data")
        return Parsed(kind, chunking.chunk(parsing.parse(kind, doc.content, doc.data), settings.chunk_sizes), {})
    except parsing.ParseError as e:
        raise Poison(str(e)) from e


def _supplied(doc: rag_pb2.RagDocument, kind: str) -> Parsed:
    chunks: list[chunking.ChunkText] = []
    supplied: dict[int, list[float]] = {}
    for n, c in enumerate(doc.chunks):
        if not c.content.strip():
            raise parsing.ParseError(f"supplied chunk {c.chunk_id} is empty")
        if c.embedding and len(c.embedding) != DIMENSIONS:
            raise parsing.ParseError(
                f"supplied chunk {c.chunk_id} has {len(c.embedding)} dimensions; the index holds {DIMENSIONS}"
            )
        chunks.append(chunking.ChunkText(n, c.metadata.get("heading", ""), c.content, tokens.count(c.content)))
        if c.embedding:
            supplied[n] = list(c.embedding)
    return Parsed(kind, chunks, supplied)


class Ingestor:
    def __init__(self, bus: Transport, store: ChunkStore, tel: Telemetry, settings: Settings,
                 max_deliver: int, jetstream: Any = None) -> None:
        self._bus = bus
        # Where documents too large for a message wait (rag.objects).
        self._jetstream = jetstream
        self._store = store
        self._tel = tel
        self._settings = settings
        self._max_deliver = max_deliver
        # The provider model behind the embedding alias, from the deployment's
        # model settings (the gateway reads the same ones).
        self._embedder = models.from_env().resolve(settings.embedding_model)

    async def _fetched(self, doc: rag_pb2.RagDocument, ref: rag_pb2.ObjectRef, tenant: str) -> rag_pb2.RagDocument:
        """The document with the referenced bytes in place of the reference:
        text as content, anything else (a PDF, bytes that are not UTF-8) as
        data, as `aisdk ingest` sends a small one."""
        if self._jetstream is None:
            raise Poison("content_ref needs JetStream, and this worker has none")
        try:
            data = await objects.take(self._jetstream, tenant, ref)
        except objects.ObjectError as e:
            raise Poison(str(e)) from e
        out = rag_pb2.RagDocument()
        out.CopyFrom(doc)
        out.ClearField("content_ref")
        pdf = doc.content_type == "application/pdf" or doc.source_uri.lower().endswith(".pdf")
        if pdf:
            out.data = data
        else:
            try:
                out.content = data.decode("utf-8")
            except UnicodeDecodeError:
                out.data = data
        return out

    async def __call__(self, doc: rag_pb2.RagDocument, ctx: Context) -> None:
        tenant = ctx.tenant_id
        status = rag_bus.RagServiceClient(self._bus, tenant)

        async def report(state: int, **fields: object) -> None:
            await status.status(rag_pb2.IngestStatus(document_id=doc.document_id, state=state, **fields))  # type: ignore[arg-type]

        t0 = time.perf_counter()
        attrs = {ATTR.TENANT_ID: tenant, "rag.document.id": doc.document_id}
        with self._tel.span(SPAN.RAG_DOCUMENT_INGEST, attrs) as span:
            if ctx.attempt == 1:
                await report(State.INGEST_STATE_QUEUED)
            try:
                ref = doc.content_ref if doc.HasField("content_ref") else None
                if ref is not None:
                    doc = await self._fetched(doc, ref, tenant)
                indexed = await self._ingest(doc, tenant, report, ctx.time_left())
                if ref is not None:
                    await objects.delete(self._jetstream, ref)
            except Poison as e:
                await report(State.INGEST_STATE_FAILED, error=str(e)[:4096])
                raise HandlerError(Code.CODE_INVALID_ARGUMENT, f"document {doc.document_id}: {e}") from e
            except WrongDimensions as e:
                await report(State.INGEST_STATE_FAILED, error=e.message[:4096])
                raise HandlerError(e.code, f"document {doc.document_id}: {e.message}") from e
            except RemoteError as e:
                if e.code in _PERMANENT:
                    await report(State.INGEST_STATE_FAILED, error=str(e)[:4096])
                    raise HandlerError(e.code, f"document {doc.document_id}: {e}") from e
                await self._transient(report, e, ctx)
                raise
            except Exception as e:
                await self._transient(report, e, ctx)
                raise
            span.set_attribute("rag.chunks.count", indexed)
        self._tel.metrics.counter(METRIC.RAG_DOCUMENTS_INGESTED).add(1, {ATTR.TENANT_ID: tenant})
        self._tel.metrics.histogram(METRIC.RAG_INGESTION_DURATION).record(time.perf_counter() - t0,
                                                                          {ATTR.TENANT_ID: tenant})

    async def _transient(self, report: _Report, exc: Exception, ctx: Context) -> None:
        # Redelivery may help (the gateway was down, the database busy): the
        # document is FAILED only when no delivery is left.
        if ctx.attempt >= self._max_deliver:
            await report(State.INGEST_STATE_FAILED, error=f"gave up after {ctx.attempt} attempts: {exc}"[:4096])

    async def _ingest(self, doc: rag_pb2.RagDocument, tenant: str, report: _Report, timeout: float | None) -> int:
        settings = self._settings
        with self._tel.span(SPAN.RAG_DOCUMENT_PROCESS, {ATTR.TENANT_ID: tenant}) as span:
            # pypdf, sentence splitting and chunking are pure Python: in a
            # thread they would still hold the GIL against the loop. A small
            # document is parsed here (PARSE_INLINE_BELOW).
            if len(doc.content) + len(doc.data) < PARSE_INLINE_BELOW:
                parsed = parse(doc, settings)
            else:
                parsed = await offload.in_process(parse, doc, settings, timeout=timeout)
            span.set_attribute("chunks.count", len(parsed.chunks))
        digest = fingerprint(doc, parsed.content_type, settings, self._embedder)
        if await self._store.indexed_hash(tenant, doc.document_id) == digest:
            await report(State.INGEST_STATE_INDEXED, chunks=len(parsed.chunks), chunks_embedded=len(parsed.chunks),
                         unchanged=True, content_hash=digest)
            return len(parsed.chunks)
        total = len(parsed.chunks)
        await report(State.INGEST_STATE_CHUNKING, chunks=total, content_hash=digest)
        missing = [c for c in parsed.chunks if c.ordinal not in parsed.supplied]

        async def progress(done: int) -> None:
            await report(State.INGEST_STATE_EMBEDDING, chunks=total, chunks_embedded=done + total - len(missing))

        embedded = await embed(self._bus, self._tel, tenant, settings.embedding_model, f"{tenant}/{doc.document_id}",
                               [c.indexed_text for c in missing], settings.embedding_batch, progress=progress)
        vectors = dict(parsed.supplied)
        vectors.update({c.ordinal: v for c, v in zip(missing, embedded.vectors)})
        row = DocumentRow(doc.document_id, digest, parsed.content_type, doc.source_uri, dict(doc.metadata),
                          self._embedder)
        rows = [ChunkRow(c.ordinal, chunk_id(doc.document_id, c.ordinal), c.heading, c.text, c.token_count,
                         vectors[c.ordinal]) for c in parsed.chunks]
        try:
            written = await self._store.replace(tenant, row, rows, settings.text_language)
        except StoreError as e:
            raise Poison(str(e)) from e
        self._tel.metrics.counter(METRIC.RAG_DOCUMENTS_PROCESSED).add(1, {ATTR.TENANT_ID: tenant})
        await report(State.INGEST_STATE_INDEXED, chunks=total, chunks_embedded=total, unchanged=not written,
                     content_hash=digest)
        return total

