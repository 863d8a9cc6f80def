"""The RAG worker end to end on real servers: nats-server with JetStream, the
embedded PostgreSQL, the gateway worker with its offline local provider and
the prompt worker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from ai.envelope.v1 import envelope_pb2
from ai.rag.v1 import rag_bus, rag_pb2
from opentelemetry.sdk.trace import ReadableSpan

from aisdk.components import COMPONENTS
from aisdk.components.prompt import PromptManager
from aisdk.components.rag.answering import NOT_FOUND
from aisdk.components.rag.worker import RagWorker
from aisdk.components.storage import temporary_database
from runtime.bus import Bus, Observed
from runtime.server import EmbeddedServer
from runtime.settings import BusSettings
from runtime.contract import Durability
from runtime import telemetry as telemetry_module
from runtime.jetstream import DLQ_TOKEN
from runtime.telemetry import Telemetry
from runtime.telemetry.names import SPAN

State = rag_pb2.IngestState
DONE = (State.INGEST_STATE_INDEXED, State.INGEST_STATE_FAILED)
# The contract's redelivery timings are minutes-scale; tests shorten them.
FAST = {"rag.ingest": Durability("work_queue", 3, 5000, (100, 100), 60_000, 0)}

DOCUMENTS = {
    "refund-policy": (
        "# Refund policy\nYou can return any unused item within 30 days of delivery for a full refund. "
        "Refunds are paid to the original payment method within 5 business days. "
        "Sale items are final and cannot be refunded."
    ),
    "shipping": (
        "# Shipping\nOrders ship within two business days. Standard delivery takes three to five days. "
        "Express delivery costs 15 dollars."
    ),
    "privacy-policy": (
        "<h1>Privacy policy</h1><p>We store your name, address and order history to deliver your orders. "
        "We never sell personal data. You can ask us to delete your account at any time.</p>"
    ),
    "warranty": (
        "Warranty\n\nElectronics carry a two year warranty against manufacturing defects. "
        "The warranty does not cover accidental damage."
    ),
}


@dataclass
class Rig:
    bus: Bus
    worker: RagWorker
    tel: Telemetry
    statuses: dict[str, list[rag_pb2.IngestStatus]] = field(default_factory=dict)
    results: list[rag_pb2.RagResult] = field(default_factory=list)
    letters: list[envelope_pb2.DeadLetter] = field(default_factory=list)

    async def watch(self, tenant: str) -> None:
        async def status(o: Observed) -> None:
            self.statuses.setdefault(f"{tenant}/{o.payload.document_id}", []).append(o.payload)

        async def result(o: Observed) -> None:
            self.results.append(o.payload)

        async def letter(msg: object) -> None:
            env = envelope_pb2.Envelope.FromString(getattr(msg, "data"))
            self.letters.append(envelope_pb2.DeadLetter.FromString(env.data))

        await self.bus.subscribe(rag_bus.RAG_STATUS, status, tenant_id=tenant)
        await self.bus.subscribe(rag_bus.RAG_RESULTS, result, tenant_id=tenant)
        await self.bus.nc.subscribe(f"ai.{DLQ_TOKEN}.rag.ingest.{tenant}", cb=letter)

    async def ingest(self, tenant: str, doc: rag_pb2.RagDocument) -> rag_pb2.IngestStatus:
        """Send a document and wait for its final status."""
        key = f"{tenant}/{doc.document_id}"
        before = len(self.statuses.get(key, []))
        await rag_bus.RagServiceClient(self.bus, tenant).ingest(doc)
        await until(lambda: any(s.state in DONE for s in self.statuses.get(key, [])[before:]))
        return next(s for s in self.statuses[key][before:] if s.state in DONE)

    async def ask(self, tenant: str, question: str, **parameters: float) -> rag_pb2.RagResult:
        query = rag_pb2.RagQuery(query_id=uuid.uuid4().hex, query=question,
                                 parameters=rag_pb2.QueryParameters(**parameters))  # type: ignore[arg-type]
        return await rag_bus.RagServiceClient(self.bus, tenant).queries(query)


async def until(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def tenant() -> str:
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture(scope="module")
async def rig(nats_server: EmbeddedServer) -> AsyncIterator[Rig]:
    tel = telemetry_module.setup("rag-test", exporter="memory", metrics_exporter="none")
    async with temporary_database() as url:
        async with Bus(nats_server.url, BusSettings(name="rag-test", durability_overrides=FAST), telemetry=tel) as bus:
            await bus.serve(COMPONENTS["gateway"]())
            await bus.serve(PromptManager())
            worker = RagWorker(database_url=url)
            await bus.serve(worker)
            yield Rig(bus, worker, tel)
    tel.shutdown()


async def test_ingest_then_query_end_to_end(rig: Rig) -> None:
    t = tenant()
    await rig.watch(t)
    for doc_id, content in DOCUMENTS.items():
        final = await rig.ingest(t, rag_pb2.RagDocument(document_id=doc_id, content=content,
                                                        source_uri=f"docs/{doc_id}"))
        assert final.state == State.INGEST_STATE_INDEXED and final.chunks >= 1, final
    states = [s.state for s in rig.statuses[f"{t}/refund-policy"]]
    assert states == [State.INGEST_STATE_QUEUED, State.INGEST_STATE_CHUNKING, State.INGEST_STATE_EMBEDDING,
                      State.INGEST_STATE_INDEXED]

    result = await rig.ask(t, "What is the refund policy?")
    assert "30 days" in result.answer
    assert {s.document_id for s in result.sources} == {"refund-policy"}
    assert result.sources[0].chunk_id == "refund-policy#0" and result.sources[0].source_uri == "docs/refund-policy"
    assert result.sources[0].similarity > 0.5 and result.sources[0].score > 0
    assert "30 days" in result.sources[0].snippet
    assert result.grounded and not result.unsupported_sentences
    assert result.tokens.total > 0 and result.cost > 0 and result.model == "local/extractive"
    assert result.duration.ToNanoseconds() > 0
    for step in ("embedding", "retrieval", "prompt", "generation"):
        assert getattr(result.timings, step).ToNanoseconds() > 0, step
    await until(lambda: any(r.query_id == result.query_id for r in rig.results))
    published = next(r for r in rig.results if r.query_id == result.query_id)
    assert published.answer == result.answer

    shipping = await rig.ask(t, "How long does delivery take?")
    assert {s.document_id for s in shipping.sources} == {"shipping"}


async def test_reingesting_replaces_the_chunks_and_an_unchanged_document_is_skipped(rig: Rig) -> None:
    t = tenant()
    await rig.watch(t)
    store = rig.worker.store
    assert store is not None
    long = " ".join(f"Clause {i}: returns of category {i} are accepted within {i + 10} days." for i in range(60))
    first = await rig.ingest(t, rag_pb2.RagDocument(document_id="terms", content=long))
    assert first.state == State.INGEST_STATE_INDEXED and first.chunks > 2
    assert len(await store.chunk_ids(t, "terms")) == first.chunks

    again = await rig.ingest(t, rag_pb2.RagDocument(document_id="terms", content=long))
    assert again.unchanged and again.content_hash == first.content_hash
    assert [s.state for s in rig.statuses[f"{t}/terms"][-2:]] == [State.INGEST_STATE_QUEUED,
                                                                 State.INGEST_STATE_INDEXED]

    second = await rig.ingest(t, rag_pb2.RagDocument(document_id="terms", content="Returns are no longer accepted."))
    assert second.state == State.INGEST_STATE_INDEXED and not second.unchanged and second.chunks == 1
    assert await store.chunk_ids(t, "terms") == ["terms#0"]
    # Retrieval is what is tested here, so the abstention decision stays out.
    result = await rig.ask(t, "Within how many days are returns accepted?", min_relative_score=0.0, min_support=0.0)
    assert [s.snippet for s in result.sources] == ["Returns are no longer accepted."]


async def test_a_poison_document_is_dead_lettered_and_nothing_is_indexed(rig: Rig) -> None:
    t = tenant()
    await rig.watch(t)
    good = await rig.ingest(t, rag_pb2.RagDocument(document_id="manual", content="The manual explains setup."))
    assert good.state == State.INGEST_STATE_INDEXED
    bad = rag_pb2.RagDocument(document_id="manual", data=b"%PDF-1.4 truncated", content_type="application/pdf")
    final = await rig.ingest(t, bad)
    assert final.state == State.INGEST_STATE_FAILED
    assert "PDF cannot be read" in final.error
    await until(lambda: bool(rig.letters) and any(t in x.subject for x in rig.letters))
    [letter] = [x for x in rig.letters if x.subject == f"ai.rag.ingest.{t}"]
    assert letter.attempts == 1 and letter.code == envelope_pb2.Error.CODE_INVALID_ARGUMENT
    assert "PDF cannot be read" in letter.reason
    # The earlier version is intact: a failed ingest never half-replaces.
    store = rig.worker.store
    assert store is not None and await store.chunk_ids(t, "manual") == ["manual#0"]
    result = await rig.ask(t, "What does the manual explain?")
    assert [s.snippet for s in result.sources] == ["The manual explains setup."]


async def test_a_tenant_never_retrieves_another_tenants_chunks(rig: Rig) -> None:
    a, b, empty = tenant(), tenant(), tenant()
    for t in (a, b):
        await rig.watch(t)
    text = DOCUMENTS["refund-policy"]
    assert (await rig.ingest(a, rag_pb2.RagDocument(document_id="a-refunds", content=text))).chunks == 1
    assert (await rig.ingest(b, rag_pb2.RagDocument(document_id="b-refunds", content=text))).chunks == 1
    for t, own in ((a, "a-refunds"), (b, "b-refunds")):
        result = await rig.ask(t, "What is the refund policy?", min_relative_score=0.0, top_k=100)
        assert {s.document_id for s in result.sources} == {own}
    nothing = await rig.ask(empty, "What is the refund policy?", min_relative_score=0.0, similarity_threshold=-1)
    assert nothing.answer == NOT_FOUND and not nothing.sources and not nothing.grounded
    assert nothing.status == rag_pb2.ANSWER_STATUS_NOT_FOUND and nothing.tokens.total == 0


def _by_name(spans: tuple[ReadableSpan, ...], trace_id: int) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for s in spans:
        if s.context is not None and s.context.trace_id == trace_id:
            out.setdefault(s.name, []).append(s)
    return out


async def test_query_spans_nest_in_the_callers_trace(rig: Rig) -> None:
    t = tenant()
    await rig.watch(t)
    await rig.ingest(t, rag_pb2.RagDocument(document_id="refund-policy", content=DOCUMENTS["refund-policy"]))
    with rig.tel.span(SPAN.USE_CASE_DOCUMENT_QA) as root:
        result = await rig.ask(t, "What is the refund policy?")
    trace_id = root.get_span_context().trace_id
    await until(lambda: SPAN.RAG_RESPONSE_GENERATE.name in _by_name(rig.tel.finished_spans(), trace_id))
    spans = _by_name(rig.tel.finished_spans(), trace_id)
    [query] = spans[SPAN.RAG_QUERY.name]
    assert query.attributes is not None and query.attributes["rag.query.id"] == result.query_id
    assert query.attributes["tenant.id"] == t
    [search] = spans[SPAN.RAG_VECTOR_SEARCH.name]
    [generate] = spans[SPAN.RAG_RESPONSE_GENERATE.name]
    embeds = spans[SPAN.RAG_EMBEDDING_GENERATE.name]
    for child in (search, generate, *embeds):
        assert child.parent is not None and child.parent.span_id == query.context.span_id
    assert search.attributes is not None and search.attributes["results.count"] == 1
    assert search.attributes["query.id"] == result.query_id
    assert generate.attributes is not None and generate.attributes["llm.tokens"] == result.tokens.total
    assert embeds[0].attributes is not None and embeds[0].attributes["embedding.dimension"] == 256
    # The gateway's work for this query hangs off the same trace.
    assert "gateway.generate" in spans or any(n.startswith("process ai.gateway") for n in spans)
