"""A heavy request does not stall the other requests of its process: while
one worker parses and chunks a large document (process pool) or embeds 64
texts (thread), a cheap request to the same process is answered first.

No clock is read: the assertion is the order in which the events arrive.
The positive control runs the same step on the event loop, as it did before,
and the order flips, so the test can fail."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from ai.api.v1 import api_bus, api_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from ai.rag.v1 import rag_bus, rag_pb2

from aisdk.components import offload
from aisdk.components.gateway import local
from aisdk.components.gateway.service import Gateway
from aisdk.components.prompt import PromptManager
from aisdk.components.rag.worker import RagWorker
from aisdk.components.storage import temporary_database
from runtime.bus import Bus, Observed
from runtime.contract import Context
from runtime.errors import HandlerError
from runtime.server import EmbeddedServer
from runtime.settings import BusSettings
from runtime import telemetry as telemetry_module
from runtime.telemetry.names import SPAN
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

State = rag_pb2.IngestState
# About 400k characters: parsing and chunking it takes a few hundred times
# as long as a cheap round trip.
BIG = " ".join(f"Paragraph {i} says that orders of kind {i % 41} ship within {i % 6 + 1} days." for i in range(6000))
TEXT = "a sentence about refunds, deliveries and warranties. " * 40


class Cheap(api_bus.ApiServiceHandler):
    """A request that costs nothing to answer, served by the same process
    (no other API worker runs here)."""

    async def queries(self, request: api_pb2.ApiQuery, ctx: Context) -> api_pb2.ApiAnswer:
        return api_pb2.ApiAnswer(query_id=request.query_id, answer="ok")


async def _inline(fn: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
    """The step on the event loop, as before the change: the positive control."""
    return fn(*args)


class Around(SpanProcessor):
    """Watches one span, seen through the real tracing SDK: when it starts,
    `started` runs; when it ends, `ended` is appended to `events`. The span
    is the heavy step (rag.document.process: parsing and chunking;
    gateway.provider.call: the embedding)."""

    def __init__(self) -> None:
        self.name = ""
        self.started: Callable[[], None] = lambda: None
        self.events: list[str] = []
        self.ended = ""

    def watch(self, name: str, started: Callable[[], None], events: list[str], ended: str) -> None:
        self.name, self.started, self.events, self.ended = name, started, events, ended

    def on_start(self, span: Span, parent_context: object = None) -> None:
        if span.name == self.name:
            self.started()

    def on_end(self, span: ReadableSpan) -> None:
        if span.name == self.name:
            self.events.append(self.ended)
            self.name = ""


TRIGGER = Around()


@pytest.fixture(scope="module")
async def bus(nats_server: EmbeddedServer) -> AsyncIterator[Bus]:
    tel = telemetry_module.setup("offload-test", exporter="memory", metrics_exporter="none")
    tel.tracer_provider.add_span_processor(TRIGGER)
    async with temporary_database() as url:
        async with Bus(nats_server.url, BusSettings(name="offload-test"), telemetry=tel) as bus:
            await bus.serve(Gateway())
            await bus.serve(PromptManager(database_url=url))
            await bus.serve(RagWorker(database_url=url))
            await bus.serve(Cheap(), tenants=["cheap"])
            yield bus
    tel.shutdown()


async def _cheap(bus: Bus, events: list[str]) -> None:
    await api_bus.ApiServiceClient(bus, "cheap").queries(api_pb2.ApiQuery(query_id=uuid.uuid4().hex, query="ping"))
    events.append("cheap")


async def _order_during_ingest(bus: Bus) -> list[str]:
    """Ingest BIG; when its parsing starts, send a cheap request. The events:
    the cheap reply and the end of parsing and chunking."""
    tenant = "t" + uuid.uuid4().hex[:10]
    events: list[str] = []
    cheap: list[asyncio.Task[None]] = []
    done = asyncio.Event()

    async def status(o: Observed) -> None:
        if o.payload.state in (State.INGEST_STATE_INDEXED, State.INGEST_STATE_FAILED):
            done.set()

    await bus.subscribe(rag_bus.RAG_STATUS, status, tenant_id=tenant)
    await bus.flush()
    TRIGGER.watch(SPAN.RAG_DOCUMENT_PROCESS.name, lambda: cheap.append(asyncio.create_task(_cheap(bus, events))),
                  events, "parsed")
    await rag_bus.RagServiceClient(bus, tenant).ingest(rag_pb2.RagDocument(document_id="big", content=BIG))
    await asyncio.wait_for(done.wait(), 120)
    await asyncio.gather(*cheap)
    return events


async def _order_during_embedding(bus: Bus, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Embed 64 long texts; the moment the local provider starts the
    embedding itself, send a cheap request. The events: the cheap reply and
    the end of the embedding. The trigger sits in the step that blocks, not
    at a span before it: between a span's start and the step, litellm awaits,
    and a cheap round trip may slip through there even with the step on the
    loop."""
    events: list[str] = []
    cheap: list[asyncio.Task[None]] = []
    loop = asyncio.get_running_loop()
    real = local.embed

    def embed(model: str, texts: list[str], encoding: str = "float") -> tuple[list[dict[str, Any]], int]:
        # From the loop's thread or a worker thread alike: runs once the loop is free.
        loop.call_soon_threadsafe(lambda: cheap.append(asyncio.create_task(_cheap(bus, events))))
        out = real(model, texts, encoding)
        events.append("embedded")
        return out

    monkeypatch.setattr(local, "embed", embed)
    # New texts every time: the gateway's cache must not answer them.
    texts = [f"Text {uuid.uuid4().hex}: {TEXT}" for _ in range(64)]
    await gateway_bus.GatewayServiceClient(bus, "t" + uuid.uuid4().hex[:10]).embeddings(
        gateway_pb2.EmbeddingRequest(request_id=uuid.uuid4().hex, texts=texts, model="embedding"))
    await asyncio.gather(*cheap)
    monkeypatch.setattr(local, "embed", real)
    return events


async def _twice(order: Callable[[Bus], Awaitable[list[str]]], bus: Bus) -> list[str]:
    """Once to warm up (the process pool, the models), then the run that counts."""
    await order(bus)
    return await order(bus)


async def test_a_cheap_request_is_answered_while_a_large_document_is_parsed(bus: Bus) -> None:
    assert await _twice(_order_during_ingest, bus) == ["cheap", "parsed"]


async def test_positive_control_parsing_on_the_loop_answers_the_cheap_request_last(
        bus: Bus, monkeypatch: pytest.MonkeyPatch) -> None:
    await _order_during_ingest(bus)
    monkeypatch.setattr(offload, "in_process", _inline)
    assert await _order_during_ingest(bus) == ["parsed", "cheap"]


async def test_a_cheap_request_is_answered_while_64_texts_are_embedded(
        bus: Bus, monkeypatch: pytest.MonkeyPatch) -> None:
    await _order_during_embedding(bus, monkeypatch)  # warm up
    assert await _order_during_embedding(bus, monkeypatch) == ["cheap", "embedded"]


async def test_positive_control_embedding_on_the_loop_answers_the_cheap_request_last(
        bus: Bus, monkeypatch: pytest.MonkeyPatch) -> None:
    await _order_during_embedding(bus, monkeypatch)
    monkeypatch.setattr(offload, "in_thread", _inline)
    assert await _order_during_embedding(bus, monkeypatch) == ["embedded", "cheap"]


async def test_a_step_past_the_callers_deadline_is_deadline_exceeded_and_frees_its_slot() -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow() -> str:
        loop.call_soon_threadsafe(started.set)
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result()
        return "done"

    with pytest.raises(HandlerError) as e:
        await offload.in_thread(slow, timeout=0.05)
    assert "deadline" in str(e.value)
    assert started.is_set()
    release.set()
    # The slot comes back once the step ends: the pool still answers.
    assert await offload.in_thread(str.upper, "ok") == "OK"
