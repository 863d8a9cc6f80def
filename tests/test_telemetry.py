"""Tracing and metrics of the bus on a real nats-server, read back through
the in-memory span exporter and an in-memory metric reader."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from ai.agent.v1 import agent_bus, agent_pb2
from ai.api.v1 import api_bus, api_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from ai.rag.v1 import rag_bus, rag_pb2
from runtime import codec, telemetry
from runtime.bus import Bus
from runtime.contract import Context
from runtime.settings import BusSettings, RetryPolicy
from runtime.errors import RemoteError
from runtime.telemetry import Telemetry, parse_traceparent
from runtime.telemetry.names import ATTR, METRIC, SPAN

TENANT = "acme"


@pytest.fixture(autouse=True)
def _no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


def make_telemetry(ratio: float = 1.0) -> Telemetry:
    return telemetry.setup("test", exporter="memory", metrics_exporter="memory", sampler_ratio=ratio)


@pytest.fixture
def tel() -> Iterator[Telemetry]:
    t = make_telemetry()
    yield t
    t.shutdown()


@pytest.fixture
async def tbus(nats_url: str, tel: Telemetry) -> AsyncIterator[Bus]:
    async with Bus(nats_url, BusSettings(name="traced", retry=RetryPolicy(attempts=2, initial_backoff=0.001)), telemetry=tel) as b:
        yield b


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


# -- a three-hop chain: api.queries -> rag.queries -> gateway.requests -------


class Api(api_bus.ApiServiceHandler):
    def __init__(self, bus: Bus) -> None:
        self.rag = rag_bus.RagServiceClient(bus, TENANT)
        self.seen: list[str] = []

    async def queries(self, request: api_pb2.ApiQuery, ctx: Context) -> api_pb2.ApiAnswer:
        self.seen.append(ctx.envelope.traceparent)  # type: ignore[attr-defined]
        result = await self.rag.queries(rag_pb2.RagQuery(query_id=request.query_id, query=request.query))
        return api_pb2.ApiAnswer(query_id=request.query_id, answer=result.answer)


class Rag(rag_bus.RagServiceHandler):
    def __init__(self, bus: Bus, tel: Telemetry) -> None:
        self.gateway = gateway_bus.GatewayServiceClient(bus, TENANT)
        self.tel = tel
        self.seen: list[str] = []

    async def queries(self, request: rag_pb2.RagQuery, ctx: Context) -> rag_pb2.RagResult:
        self.seen.append(ctx.envelope.traceparent)  # type: ignore[attr-defined]
        with self.tel.span(SPAN.RAG_VECTOR_SEARCH, {"results.count": 3}):
            pass
        llm = gateway_pb2.LlmRequest(request_id=request.query_id, prompt=request.query, model="m")
        reply = await self.gateway.requests(llm)
        return rag_pb2.RagResult(query_id=request.query_id, answer=reply.response)


class Gateway(gateway_bus.GatewayServiceHandler):
    def __init__(self, tel: Telemetry) -> None:
        self.tel = tel
        self.seen: list[str] = []

    async def requests(self, request: gateway_pb2.LlmRequest, ctx: Context) -> gateway_pb2.LlmResponse:
        self.seen.append(ctx.envelope.traceparent)  # type: ignore[attr-defined]
        with self.tel.span(SPAN.GATEWAY_GENERATE, {"gateway.model": request.model}):
            if request.prompt == "boom":
                raise RuntimeError("provider down")
        return gateway_pb2.LlmResponse(request_id=request.request_id, response=f"re: {request.prompt}",
                                       model=request.model)


async def serve_chain(bus: Bus, tel: Telemetry) -> tuple[Api, Rag, Gateway]:
    handlers = Api(bus), Rag(bus, tel), Gateway(tel)
    for h in handlers:
        await bus.serve(h)
    return handlers


async def ask(bus: Bus, query: str = "refund policy?", query_id: str = "q1") -> api_pb2.ApiAnswer:
    return await api_bus.ApiServiceClient(bus, TENANT).queries(api_pb2.ApiQuery(query_id=query_id, query=query))


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    out = {s.name: s for s in spans}
    assert len(out) == len(spans), [s.name for s in spans]
    return out


def parent_of(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


async def test_three_hop_request_chain_is_one_trace(tbus: Bus, tel: Telemetry) -> None:
    await serve_chain(tbus, tel)
    answer = await ask(tbus)
    assert answer.answer == "re: refund policy?"
    spans = by_name(tel.finished_spans())
    assert len({s.context.trace_id for s in spans.values()}) == 1
    chain = [
        "request ai.api.queries.{tenant_id}",
        "process ai.api.queries.{tenant_id}",
        "request ai.rag.queries.{tenant_id}",
        "process ai.rag.queries.{tenant_id}",
        "request ai.gateway.requests.{tenant_id}",
        "process ai.gateway.requests.{tenant_id}",
        "gateway.generate",
    ]
    assert parent_of(spans[chain[0]]) is None
    for parent, child in zip(chain, chain[1:]):
        assert parent_of(spans[child]) == spans[parent].context.span_id, (parent, child)
    # A component span inside a handler is the consumer span's child too.
    assert parent_of(spans["rag.vector.search"]) == spans[chain[3]].context.span_id
    kinds = [spans[n].kind for n in chain]
    assert kinds == [SpanKind.PRODUCER, SpanKind.CONSUMER] * 3 + [SpanKind.INTERNAL]
    assert all(s.status.status_code is StatusCode.UNSET for s in spans.values())


async def test_spans_carry_the_messaging_conventions(tbus: Bus, tel: Telemetry) -> None:
    api, rag, gateway = await serve_chain(tbus, tel)
    await ask(tbus)
    spans = by_name(tel.finished_spans())
    send = spans["request ai.gateway.requests.{tenant_id}"].attributes or {}
    process = spans["process ai.gateway.requests.{tenant_id}"].attributes or {}
    common = {
        ATTR.MESSAGING_SYSTEM: "nats",
        ATTR.DESTINATION_NAME: "ai.gateway.requests.acme",
        ATTR.DESTINATION_TEMPLATE: "ai.gateway.requests.{tenant_id}",
        ATTR.TENANT_ID: TENANT,
    }
    assert {k: send[k] for k in common} == common
    assert {k: process[k] for k in common} == common
    assert send[ATTR.OPERATION_TYPE] == "send" and send[ATTR.OPERATION_NAME] == "request"
    assert process[ATTR.OPERATION_TYPE] == "process" and process[ATTR.OPERATION_NAME] == "process"
    assert process[ATTR.CONSUMER_GROUP] == "gateway.workers"
    assert send[ATTR.MESSAGE_ID] == process[ATTR.MESSAGE_ID] != ""
    size = send[ATTR.BODY_SIZE]
    assert isinstance(size, int) and size > 0 and process[ATTR.BODY_SIZE] == size
    # The traceparent each handler saw is the producer span's context.
    [seen] = gateway.seen
    ctx = parse_traceparent(seen)
    producer = spans["request ai.gateway.requests.{tenant_id}"].context
    assert ctx is not None and (ctx.trace_id, ctx.span_id) == (producer.trace_id, producer.span_id)
    assert ctx.trace_flags.sampled


async def test_handler_failure_is_an_error_span(tbus: Bus, tel: Telemetry) -> None:
    await tbus.serve(Gateway(tel))
    with pytest.raises(RemoteError):
        await gateway_bus.GatewayServiceClient(tbus, TENANT).requests(
            gateway_pb2.LlmRequest(request_id="r", prompt="boom", model="m")
        )
    spans = by_name(tel.finished_spans())
    process = spans["process ai.gateway.requests.{tenant_id}"]
    assert process.status.status_code is StatusCode.ERROR
    assert (process.attributes or {})[ATTR.ERROR_TYPE] == "RuntimeError"
    [event] = [e for e in process.events if e.name == "exception"]
    assert (event.attributes or {})["exception.message"] == "provider down"
    assert spans["gateway.generate"].status.status_code is StatusCode.ERROR
    request = spans["request ai.gateway.requests.{tenant_id}"]
    assert request.status.status_code is StatusCode.ERROR
    assert (request.attributes or {})[ATTR.ERROR_TYPE] == "RemoteError"


class Status(agent_bus.AgentServiceHandler):
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls = 0

    async def status(self, request: agent_pb2.AgentStatus, ctx: Context) -> None:
        self.calls += 1
        if self.fail:
            raise ValueError("cannot store status")


async def test_garbage_is_an_error_span_and_a_dead_letter(tbus: Bus, tel: Telemetry) -> None:
    await tbus.serve(Status(), tenants=[TENANT])
    await tbus.publish_bytes("ai.agent.status.acme", b"\xff\x00 not an envelope")
    await until(lambda: len(tel.finished_spans()) >= 2)
    spans = by_name(tel.finished_spans())
    refused = spans["process ai.agent.status.{tenant_id}"]
    assert refused.status.status_code is StatusCode.ERROR
    assert (refused.attributes or {})[ATTR.ERROR_TYPE] == "DecodeError"
    assert refused.parent is None  # garbage carries no context to continue
    dead = spans["dead_letter ai.agent.status.{tenant_id}"]
    assert dead.status.status_code is StatusCode.ERROR
    assert (dead.attributes or {})[ATTR.DESTINATION_NAME] == "ai.dlq.agent.status.acme"


async def test_invalid_payload_is_an_error_span_in_the_callers_trace(nats_url: str, tel: Telemetry) -> None:
    async with Bus(nats_url, BusSettings(name="strict"), telemetry=tel) as strict:
        await strict.serve(Gateway(tel), tenants=[TENANT])
        async with Bus(nats_url, BusSettings(name="lax", validate=False), telemetry=tel) as lax:
            with pytest.raises(RemoteError):
                await gateway_bus.GatewayServiceClient(lax, TENANT).requests(gateway_pb2.LlmRequest(prompt="x"))
    spans = tel.finished_spans()
    request = next(s for s in spans if s.name.startswith("request "))
    refused = next(s for s in spans if s.name.startswith("process "))
    assert refused.status.status_code is StatusCode.ERROR
    assert (refused.attributes or {})[ATTR.ERROR_TYPE] == "ContractViolation"
    assert parent_of(refused) == request.context.span_id


async def test_retries_then_dead_letter_are_spans(tbus: Bus, tel: Telemetry) -> None:
    handler = Status(fail=True)
    await tbus.serve(handler, tenants=[TENANT])
    status = agent_pb2.AgentStatus(agent_id="a1", state=agent_pb2.AGENT_STATE_IDLE)
    await agent_bus.AgentServiceClient(tbus, TENANT).status(status)
    await until(lambda: any(s.name.startswith("dead_letter") for s in tel.finished_spans()))
    spans = tel.finished_spans()
    publish = next(s for s in spans if s.name == "publish ai.agent.status.{tenant_id}")
    attempts = [s for s in spans if s.name == "process ai.agent.status.{tenant_id}"]
    assert len(attempts) == handler.calls == 2
    assert all(s.status.status_code is StatusCode.ERROR for s in attempts)
    assert all(parent_of(s) == publish.context.span_id for s in attempts)
    assert [(s.attributes or {}).get(ATTR.ATTEMPT) for s in attempts] == [None, 2]
    dead = next(s for s in spans if s.name == "dead_letter ai.agent.status.{tenant_id}")
    assert parent_of(dead) == publish.context.span_id
    assert (dead.attributes or {})[ATTR.ATTEMPT] == 2
    assert "cannot store status" in str((dead.attributes or {})[ATTR.DEAD_LETTER_REASON])


# -- metrics -------------------------------------------------------------------


def points(tel: Telemetry) -> dict[str, list[Any]]:
    assert tel.metric_reader is not None
    data = tel.metric_reader.get_metrics_data()
    out: dict[str, list[Any]] = {}
    for rm in data.resource_metrics if data is not None else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out.setdefault(m.name, []).extend(m.data.data_points)
    return out


def value(pts: dict[str, list[Any]], metric: str, **attrs: Any) -> Any:
    matching = [p for p in pts.get(metric, []) if all(p.attributes.get(k) == v for k, v in attrs.items())]
    assert len(matching) == 1, (metric, attrs, [dict(p.attributes) for p in pts.get(metric, [])])
    return matching[0]


async def test_metric_values_are_exact(tbus: Bus, tel: Telemetry) -> None:
    await tbus.serve(Gateway(tel), tenants=[TENANT])
    client = gateway_bus.GatewayServiceClient(tbus, TENANT)
    n = 7
    for i in range(n):
        await client.requests(gateway_pb2.LlmRequest(request_id=f"r{i}", prompt="hi", model="m"))
    with pytest.raises(RemoteError):
        await client.requests(gateway_pb2.LlmRequest(request_id="bad", prompt="boom", model="m"))
    await tbus.nc.request("ai.gateway.requests.acme", b"garbage", timeout=5)
    tel.metrics.counter(METRIC.GATEWAY_CACHE_HITS).add(2, {ATTR.TENANT_ID: TENANT})
    tel.metrics.counter(METRIC.GATEWAY_CACHE_HITS).add(1, {ATTR.TENANT_ID: TENANT})
    tel.metrics.histogram(METRIC.GATEWAY_TOKENS_USED).record(120)

    pts = points(tel)
    template = "ai.gateway.requests.{tenant_id}"
    ep = {ATTR.DESTINATION_TEMPLATE: template, ATTR.CONSUMER_GROUP: "gateway.workers"}
    assert value(pts, METRIC.CONSUMED.name, **ep).value == n + 2
    assert value(pts, METRIC.HANDLED.name, **ep).value == n
    assert value(pts, METRIC.HANDLER_ERRORS.name, **ep).value == 1
    assert value(pts, METRIC.INVALID.name, **ep).value == 1
    assert value(pts, METRIC.DEAD_LETTERED.name, **ep).value == 0
    assert value(pts, METRIC.HANDLER_TIME.name, **ep).value > 0
    sent = {ATTR.DESTINATION_TEMPLATE: template, ATTR.OPERATION_NAME: "request"}
    ok = [p for p in pts[METRIC.SENT.name] if ATTR.ERROR_TYPE not in p.attributes and
          p.attributes[ATTR.DESTINATION_TEMPLATE] == template]
    assert [p.value for p in ok] == [n]
    assert value(pts, METRIC.SENT.name, **sent, **{ATTR.ERROR_TYPE: "RemoteError"}).value == 1
    # Sampled at ratio 1: one histogram point per handled or failed call.
    assert value(pts, METRIC.PROCESS_DURATION.name, **ep).count == n + 1
    assert value(pts, METRIC.OPERATION_DURATION.name, **{ATTR.DESTINATION_TEMPLATE: template}).count == n + 1
    assert value(pts, METRIC.GATEWAY_CACHE_HITS.name, **{ATTR.TENANT_ID: TENANT}).value == 3
    assert value(pts, METRIC.GATEWAY_TOKENS_USED.name).sum == 120


# -- sampling --------------------------------------------------------------------


async def test_nothing_is_recorded_when_the_sampler_drops_but_context_propagates(nats_url: str) -> None:
    tel = make_telemetry(ratio=0.0)
    async with Bus(nats_url, BusSettings(name="unsampled"), telemetry=tel) as bus:
        api, rag, gateway = await serve_chain(bus, tel)
        await ask(bus)
        await ask(bus, query_id="q2")
    assert tel.finished_spans() == ()
    for hops in zip(api.seen, rag.seen, gateway.seen):
        contexts = [parse_traceparent(tp) for tp in hops]
        assert all(c is not None and not c.trace_flags.sampled for c in contexts), hops
        assert len({c.trace_id for c in contexts if c is not None}) == 1, hops
    assert api.seen[0][3:35] != api.seen[1][3:35]  # a new trace per root call
    pts = points(tel)
    assert value(pts, METRIC.CONSUMED.name, **{ATTR.CONSUMER_GROUP: "gateway.workers"}).value == 2
    assert METRIC.PROCESS_DURATION.name not in pts
    tel.shutdown()


async def test_an_unsampled_incoming_context_is_continued_not_restarted(tbus: Bus, tel: Telemetry) -> None:
    gateway = Gateway(tel)
    await tbus.serve(gateway, tenants=[TENANT])
    unsampled = trace.NonRecordingSpan(trace.SpanContext(0xABC, 0xDEF, False, trace.TraceFlags(0)))
    with trace.use_span(unsampled):
        await gateway_bus.GatewayServiceClient(tbus, TENANT).requests(
            gateway_pb2.LlmRequest(request_id="r", prompt="hi", model="m")
        )
    assert gateway.seen == [f"00-{0xABC:032x}-{0xDEF:016x}-00"]
    assert tel.finished_spans() == ()


async def test_a_bus_without_telemetry_stamps_nothing(bus: Bus) -> None:
    gateway = Gateway(telemetry.Telemetry.disabled())
    await bus.serve(gateway, tenants=[TENANT])
    await gateway_bus.GatewayServiceClient(bus, TENANT).requests(
        gateway_pb2.LlmRequest(request_id="r", prompt="hi", model="m")
    )
    assert gateway.seen == [""]
    assert not bus.hooks
    # Nothing is wrapped: the bus's sends are its own methods, the endpoint
    # calls the handler itself, and no method of the bus was rebound.
    assert bus.services[0].endpoints[0].method == gateway.requests
    assert (bus._send_publish, bus._send_request, bus._send_stream, bus._build_envelope) == (
        bus._publish, bus._request, bus._stream, bus._envelope
    )
    assert not {"publish", "request", "stream", "_envelope"} & set(vars(bus))


async def test_disabled_telemetry_costs_the_bus_nothing(nats_url: str) -> None:
    async with Bus(nats_url, telemetry=telemetry.Telemetry.disabled()) as bus:
        assert not bus.hooks


async def test_stream_has_a_producer_and_a_consumer_span(tbus: Bus, tel: Telemetry) -> None:
    class Streamer(gateway_bus.GatewayServiceHandler):
        async def stream(self, request: gateway_pb2.LlmRequest, ctx: Context) -> AsyncIterator[gateway_pb2.LlmChunk]:
            for i, word in enumerate(request.prompt.split()):
                with tel.span(SPAN.GATEWAY_PROVIDER_CALL):
                    pass
                yield gateway_pb2.LlmChunk(request_id=request.request_id, index=i, delta=word)

    await tbus.serve(Streamer(), tenants=[TENANT])
    client = gateway_bus.GatewayServiceClient(tbus, TENANT)
    words = [c.delta async for c in client.stream(gateway_pb2.LlmRequest(request_id="s", prompt="a b c", model="m"))]
    assert words == ["a", "b", "c"]
    await until(lambda: any(s.name.startswith("stream ") for s in tel.finished_spans()))
    spans = tel.finished_spans()
    send = next(s for s in spans if s.name == "stream ai.gateway.stream.{tenant_id}")
    process = next(s for s in spans if s.name == "process ai.gateway.stream.{tenant_id}")
    calls = [s for s in spans if s.name == SPAN.GATEWAY_PROVIDER_CALL.name]
    assert parent_of(process) == send.context.span_id
    assert len(calls) == 3 and all(parent_of(c) == process.context.span_id for c in calls)


def test_envelope_trace_fields_roundtrip() -> None:
    env = codec.envelope("t", "1.0", TENANT, "src", b"", traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    assert parse_traceparent(codec.Envelope.FromString(env.SerializeToString()).traceparent) is not None


async def test_jetstream_redelivery_is_one_trace(nats_url: str, tel: Telemetry) -> None:
    import uuid

    from runtime.contract import Durability

    class Workers(agent_bus.AgentServiceHandler):
        def __init__(self) -> None:
            self.attempts = 0

        async def tasks(self, request: agent_pb2.AgentTask, ctx: Context) -> None:
            self.attempts += 1
            if self.attempts == 1:
                raise RuntimeError("first attempt fails")

    tenant = "t" + uuid.uuid4().hex[:12]  # the work-queue stream is shared by the session
    fast = {"agent.tasks": Durability("work_queue", 3, 2000, (50, 50), 60_000, 0)}
    workers = Workers()
    async with Bus(nats_url, BusSettings(durability_overrides=fast), telemetry=tel) as bus:
        await bus.serve(workers, tenants=[tenant])
        task = agent_pb2.AgentTask(task_id="t1", agent_id="manager", task_type="summarize")
        await agent_bus.AgentServiceClient(bus, tenant).tasks(task)
        await until(lambda: len([s for s in tel.finished_spans() if s.name.startswith("process ")]) == 2)
    spans = tel.finished_spans()
    publish = next(s for s in spans if s.name == "publish ai.agent.tasks.{tenant_id}")
    first, second = sorted((s for s in spans if s.name.startswith("process ")), key=lambda s: s.start_time or 0)
    assert parent_of(first) == parent_of(second) == publish.context.span_id
    assert first.status.status_code is StatusCode.ERROR and second.status.status_code is StatusCode.UNSET
    assert (second.attributes or {})[ATTR.ATTEMPT] == 2
    assert (first.attributes or {})[ATTR.CONSUMER_GROUP] == "agent.workers"


async def test_a_payload_refused_locally_sends_and_records_nothing(tbus: Bus, tel: Telemetry) -> None:
    from runtime.errors import ContractViolation

    with pytest.raises(ContractViolation):
        await gateway_bus.GatewayServiceClient(tbus, TENANT).requests(gateway_pb2.LlmRequest(prompt="no id"))
    assert tel.finished_spans() == ()
    assert METRIC.SENT.name not in points(tel)


# -- attached through hooks ------------------------------------------------------


async def test_telemetry_for_one_service_only(nats_url: str, tel: Telemetry) -> None:
    async with Bus(nats_url) as bus:
        gateway = Gateway(tel)
        await bus.serve(gateway, tenants=[TENANT], hooks=[tel.hooks])
        await gateway_bus.GatewayServiceClient(bus, TENANT).requests(
            gateway_pb2.LlmRequest(request_id="r", prompt="hi", model="m")
        )
    spans = {s.name: s for s in tel.finished_spans()}
    # The sending side is not instrumented: the consumer span starts a trace.
    assert set(spans) == {"process ai.gateway.requests.{tenant_id}", "gateway.generate"}
    process = spans["process ai.gateway.requests.{tenant_id}"]
    assert process.parent is None
    assert parent_of(spans["gateway.generate"]) == process.context.span_id
    assert gateway.seen == [""]


async def test_close_detaches_and_counts_outlive_the_bus(nats_url: str, tel: Telemetry) -> None:
    hooks = tel.hooks
    assert isinstance(hooks, telemetry.TelemetryHooks)
    consumed = {ATTR.CONSUMER_GROUP: "gateway.workers"}
    sent = {ATTR.OPERATION_NAME: "request", ATTR.DESTINATION_TEMPLATE: "ai.gateway.requests.{tenant_id}"}
    for n, total in ((3, 3), (2, 5)):
        async with Bus(nats_url, telemetry=tel) as bus:
            await bus.serve(Gateway(tel), tenants=[TENANT])
            assert hooks.attached() == [bus]
            client = gateway_bus.GatewayServiceClient(bus, TENANT)
            for i in range(n):
                await client.requests(gateway_pb2.LlmRequest(request_id=f"r{i}", prompt="hi", model="m"))
        assert hooks.attached() == []
        # The closed buses' final values, added up, read without them.
        pts = points(tel)
        assert value(pts, METRIC.CONSUMED.name, **consumed).value == total
        assert value(pts, METRIC.HANDLED.name, **consumed).value == total
        assert value(pts, METRIC.SENT.name, **sent).value == total
