"""The gateway end to end on a real nats-server with JetStream: the offline
local provider through litellm, the shared cache, fallback, streaming,
embeddings, validation, the LlmOperation of every call, and bad input."""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections.abc import AsyncIterator

import pytest

from ai.envelope.v1 import envelope_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from ai.llmops.v1 import llmops_bus, llmops_pb2
from aisdk.components.gateway import models
from aisdk.components.gateway.breaker import BreakerConfig
from aisdk.components.gateway.cache import CacheConfig
from aisdk.components.gateway.config import GatewayConfig
from aisdk.components.gateway.service import Gateway
from runtime import Bus, Context, RemoteError
from runtime.settings import BusSettings

Code = envelope_pb2.Error
DOC = (
    "Refunds are given within 30 days of purchase. Shipping is free for orders over 50 dollars. "
    "Our office is in Berlin. Support answers within one business day."
)
QUESTION = "What is the refund policy?"
DETERMINISTIC = gateway_pb2.LlmParameters(temperature=0.0)


def config(**overrides: object) -> GatewayConfig:
    """Each test its own cache bucket, so that no test sees another's entries."""
    base: dict[str, object] = {
        "cache": CacheConfig(bucket=f"gw_{uuid.uuid4().hex[:12]}"),
        "rate_limits": False,
        "breakers": False,
        "retries": 0,
    }
    base.update(overrides)
    return GatewayConfig(**base)  # type: ignore[arg-type]


@pytest.fixture
def tenant() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def worker(nats_url: str) -> AsyncIterator[Gateway]:
    async with Bus(nats_url, BusSettings(name="gateway-worker")) as bus:
        gateway = Gateway(config())
        await bus.serve(gateway)
        yield gateway


class Operations(llmops_bus.LlmopsServiceHandler):
    """A real consumer of llmops.operations for one tenant: what LLMOps receives."""

    def __init__(self) -> None:
        self.received: list[llmops_pb2.LlmOperation] = []
        self.arrived = asyncio.Event()

    async def operations(self, request: llmops_pb2.LlmOperation, ctx: Context) -> None:
        self.received.append(request)
        self.arrived.set()

    async def wait_for(self, count: int) -> list[llmops_pb2.LlmOperation]:
        while len(self.received) < count:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), 10)
        return self.received


def ask(request_id: str, prompt: str = f"{DOC} {QUESTION}", **kwargs: object) -> gateway_pb2.LlmRequest:
    """A deterministic request (temperature 0), so the cache may answer it."""
    kwargs.setdefault("parameters", gateway_pb2.LlmParameters(temperature=0.0))
    return gateway_pb2.LlmRequest(request_id=request_id, model="local/extractive", prompt=prompt, **kwargs)  # type: ignore[arg-type]


async def test_request_answers_from_the_context_with_tokens_and_cost(worker: Gateway, bus: Bus, tenant: str) -> None:
    client = gateway_bus.GatewayServiceClient(bus, tenant)
    replies: list[gateway_pb2.LlmResponse] = []
    seen = asyncio.Event()

    async def on_response(observed: object) -> None:
        replies.append(observed.payload)  # type: ignore[attr-defined]
        seen.set()

    await bus.subscribe(gateway_bus.GATEWAY_RESPONSES, on_response, tenant_id=tenant)
    r = await client.requests(ask("r1"))
    assert r.request_id == "r1"
    assert r.response.startswith("Refunds are given within 30 days")
    assert "Berlin" not in r.response
    assert r.tokens.prompt > 0 and r.tokens.completion > 0
    assert r.tokens.total == r.tokens.prompt + r.tokens.completion
    assert r.cost > 0
    assert (r.model, r.provider, r.cached) == ("local/extractive", "local", False)
    assert r.finish_reason == gateway_pb2.FINISH_REASON_STOP
    await asyncio.wait_for(seen.wait(), 5)
    assert replies[0].request_id == "r1" and replies[0].response == r.response


async def test_max_tokens_cuts_the_answer(worker: Gateway, bus: Bus, tenant: str) -> None:
    client = gateway_bus.GatewayServiceClient(bus, tenant)
    r = await client.requests(ask("r1", parameters=gateway_pb2.LlmParameters(max_tokens=3)))
    assert r.tokens.completion <= 3
    assert r.finish_reason == gateway_pb2.FINISH_REASON_LENGTH


async def test_a_second_worker_answers_from_the_first_workers_cache(
    worker: Gateway, nats_url: str, bus: Bus, tenant: str
) -> None:
    assert worker.config is not None
    shared = worker.config
    async with Bus(nats_url, BusSettings(name="second-worker")) as other_bus:
        # The first worker stops taking requests: the second one must answer.
        first = await gateway_bus.GatewayServiceClient(bus, tenant).requests(ask("r1"))
        assert not first.cached
        await bus.close()
        await other_bus.serve(Gateway(shared))
        async with Bus(nats_url, BusSettings(name="caller")) as caller:
            again = await gateway_bus.GatewayServiceClient(caller, tenant).requests(ask("r2"))
    assert again.cached and again.request_id == "r2"
    assert again.response == first.response
    assert again.tokens == first.tokens
    assert again.cost == 0.0


async def test_fallback_to_the_next_deployment_when_the_first_fails(nats_url: str, tenant: str) -> None:
    # A real provider client against a port where nothing listens: the call fails for real.
    chain = models.parse({
        "model_list": [{"model_name": "chat", "litellm_params": {
            "model": "openai/gpt-4o-mini", "api_base": "http://127.0.0.1:9/v1", "api_key": "none"}}],
        "fallbacks": {"chat": ["local/extractive"]},
    })
    recorder = Operations()
    async with Bus(nats_url, BusSettings(name="gateway-fallback")) as bus:
        await bus.serve(Gateway(config(models=chain)))
        await bus.serve(recorder, tenants=[tenant])
        client = gateway_bus.GatewayServiceClient(bus, tenant)
        r = await client.requests(gateway_pb2.LlmRequest(request_id="f1", model="chat", prompt=f"{DOC} {QUESTION}",
                                                         parameters=DETERMINISTIC))
        # The reply names what answered, and what was asked for.
        assert (r.model, r.provider, r.requested_model, r.fallback) == ("local/extractive", "local", "chat", True)
        # So does the operation LLMOps stores and reports by: the model
        # that answered and was billed, never the alias.
        [logged] = await recorder.wait_for(1)
        assert (logged.request_id, logged.model) == ("f1", "local/extractive")
        assert r.response.startswith("Refunds")
        # The fallback's answer is cached as local/extractive's only: `chat`
        # tries its provider again, a request for the local model hits it.
        again = await client.requests(gateway_pb2.LlmRequest(request_id="f3", model="chat", prompt=f"{DOC} {QUESTION}",
                                                             parameters=DETERMINISTIC))
        assert (again.cached, again.fallback) == (False, True)
        local = await client.requests(
            gateway_pb2.LlmRequest(request_id="f4", model="local/extractive", prompt=f"{DOC} {QUESTION}",
                                   parameters=DETERMINISTIC))
        assert (local.cached, local.model, local.requested_model, local.fallback) == \
            (True, "local/extractive", "local/extractive", False)
        with pytest.raises(RemoteError) as e:
            await client.requests(gateway_pb2.LlmRequest(request_id="f2", model="no-such-model", prompt="hi"))
        assert e.value.code == Code.CODE_NOT_FOUND


async def test_an_open_circuit_skips_the_failing_deployment_and_reports_it(nats_url: str, tenant: str) -> None:
    chain = models.parse({
        "model_list": [{"model_name": "chat", "litellm_params": {
            "model": "openai/gpt-4o-mini", "api_base": "http://127.0.0.1:9/v1", "api_key": "none"}}],
        "fallbacks": {"chat": ["local/extractive"]},
    })
    events: list[gateway_pb2.ProviderHealth] = []
    opened = asyncio.Event()

    async def on_health(observed: object) -> None:
        event = observed.payload  # type: ignore[attr-defined]
        events.append(event)
        if event.state == gateway_pb2.HEALTH_STATE_UNHEALTHY:
            opened.set()

    gateway = Gateway(config(models=chain, breakers=True, health_tenant=tenant, health_interval_s=0,
                             breaker=BreakerConfig(failure_threshold=2, reset_timeout_s=3600)))
    async with Bus(nats_url, BusSettings(name="gateway-breaker")) as bus:
        await bus.subscribe(gateway_bus.GATEWAY_HEALTH, on_health, tenant_id=tenant)
        await bus.serve(gateway)
        client = gateway_bus.GatewayServiceClient(bus, tenant)
        for i in range(3):
            # Different prompts: a cached answer would not reach a deployment.
            prompt = f"{DOC} Question {i}: {QUESTION}"
            r = await client.requests(gateway_pb2.LlmRequest(request_id=f"b{i}", model="chat", prompt=prompt))
            assert r.provider == "local"
        await asyncio.wait_for(opened.wait(), 5)
    assert gateway._health is not None
    breaker = gateway._health.tracker.breaker("chat#0")
    assert str(breaker.state) == "open" and breaker.failures == 2  # the third call never reached it
    assert events[-1].provider == "chat#0" and events[-1].error_rate == 1.0


async def test_spans_nest_in_the_callers_trace(nats_url: str, tenant: str) -> None:
    from runtime import telemetry

    tel = telemetry.setup("gateway-test", exporter="memory", metrics_exporter="memory")
    async with Bus(nats_url, BusSettings(name="traced"), telemetry=tel) as bus:
        await bus.serve(Gateway(config()))
        await gateway_bus.GatewayServiceClient(bus, tenant).requests(ask("t1"))
        await asyncio.sleep(0.1)
    assert tel.span_exporter is not None
    spans = {s.name: s for s in tel.span_exporter.get_finished_spans()}
    generate = spans["gateway.generate"]
    assert generate.attributes is not None and generate.attributes["gateway.model"] == "local/extractive"
    for child in ("gateway.cache.check", "gateway.provider.call", "gateway.validate"):
        assert spans[child].parent is not None and spans[child].parent.span_id == generate.context.span_id
    assert generate.parent is not None
    consumer = next(s for s in spans.values() if s.context.span_id == generate.parent.span_id)
    assert consumer.context.trace_id == generate.context.trace_id
    producer_traces = {s.context.trace_id for s in tel.span_exporter.get_finished_spans() if s.kind.name == "PRODUCER"}
    assert generate.context.trace_id in producer_traces


async def test_stream_sends_word_deltas_and_usage_last(worker: Gateway, bus: Bus, tenant: str) -> None:
    client = gateway_bus.GatewayServiceClient(bus, tenant)
    chunks = [c async for c in client.stream(ask("s1"))]
    assert len(chunks) > 3
    text = "".join(c.delta for c in chunks)
    assert text.startswith("Refunds are given within 30 days")
    assert [c.index for c in chunks] == list(range(len(chunks)))
    last = chunks[-1]
    assert last.tokens.completion > 0 and last.tokens.prompt > 0 and last.cost > 0
    assert (last.provider, last.cached) == ("local", False)
    assert all(not c.HasField("tokens") for c in chunks[:-1])
    # The streamed answer was cached whole: a request gets it back.
    r = await client.requests(ask("s2"))
    assert r.cached and r.response == text


async def test_embeddings_are_wordllama_vectors_cached_per_text(worker: Gateway, bus: Bus, tenant: str) -> None:
    client = gateway_bus.GatewayServiceClient(bus, tenant)
    texts = ["What is the refund policy?", "Refunds are given within 30 days.", "The office is in Berlin."]
    r = await client.embeddings(gateway_pb2.EmbeddingRequest(
        request_id="e1", model="local/wordllama", texts=texts, text_ids=["a", "b", "c"]))
    assert len(r.embeddings) == 3 and all(len(e.values) == 256 for e in r.embeddings)
    assert list(r.text_ids) == ["a", "b", "c"]
    assert r.tokens.prompt > 0 and r.cost > 0 and r.cached == 0

    def cos(a: gateway_pb2.Embedding, b: gateway_pb2.Embedding) -> float:
        dot = sum(x * y for x, y in zip(a.values, b.values))
        return dot / math.sqrt(sum(x * x for x in a.values) * sum(y * y for y in b.values))

    q, refund, office = r.embeddings
    assert cos(q, refund) > cos(q, office)
    again = await client.embeddings(gateway_pb2.EmbeddingRequest(
        request_id="e2", model="local/wordllama", texts=[texts[1], "A new sentence."]))
    assert again.cached == 1
    assert list(again.embeddings[0].values) == list(refund.values)


async def test_json_answers_are_checked(worker: Gateway, bus: Bus, tenant: str) -> None:
    client = gateway_bus.GatewayServiceClient(bus, tenant)
    as_json = gateway_pb2.LlmParameters(response_format=gateway_pb2.RESPONSE_FORMAT_JSON)
    ok = await client.requests(ask("j1", prompt='{"answer": 42}', parameters=as_json))
    assert json.loads(ok.response) == {"answer": 42}
    with pytest.raises(RemoteError) as e:
        await client.requests(ask("j2", parameters=as_json))
    assert e.value.code == Code.CODE_FAILED_PRECONDITION
    assert "not valid JSON" in e.value.message
    assert worker.validation_failures == 1


async def test_every_call_logs_one_operation(worker: Gateway, nats_url: str, tenant: str) -> None:
    recorder = Operations()
    async with Bus(nats_url, BusSettings(name="llmops-recorder")) as ops_bus, Bus(nats_url, BusSettings(name="caller")) as bus:
        await ops_bus.serve(recorder, tenants=[tenant])
        client = gateway_bus.GatewayServiceClient(bus, tenant)
        await client.requests(ask("o1"))
        await client.requests(ask("o2"))  # a cache hit
        _ = [c async for c in client.stream(ask("o3", prompt="Paris is in France. Where is Paris?"))]
        await client.embeddings(gateway_pb2.EmbeddingRequest(request_id="o4", model="local/wordllama", texts=["x"]))
        with pytest.raises(RemoteError):
            await client.requests(ask("o5", parameters=gateway_pb2.LlmParameters(
                response_format=gateway_pb2.RESPONSE_FORMAT_JSON)))
        ops = {op.request_id: op for op in await recorder.wait_for(5)}
    S, T = llmops_pb2, llmops_pb2
    assert ops["o1"].status == S.OPERATION_STATUS_SUCCESS and ops["o1"].cost > 0
    assert ops["o1"].operation_type == T.OPERATION_TYPE_COMPLETION
    assert ops["o2"].status == S.OPERATION_STATUS_CACHED and ops["o2"].cost == 0
    assert ops["o2"].tokens == ops["o1"].tokens
    assert ops["o3"].status == S.OPERATION_STATUS_SUCCESS and ops["o3"].tokens.completion > 0 and ops["o3"].cost > 0
    assert ops["o4"].operation_type == T.OPERATION_TYPE_EMBEDDING and ops["o4"].cost > 0
    assert ops["o5"].status == S.OPERATION_STATUS_ERROR and ops["o5"].cost > 0
    assert len({op.operation_id for op in ops.values()}) == 5
    assert all(op.latency_ms > 0 and op.HasField("occurred_at") for op in ops.values())


async def test_garbage_gets_errors_and_the_worker_stays_up(worker: Gateway, bus: Bus, tenant: str) -> None:
    nc = bus.nc
    for subject in (gateway_bus.gateway_requests_subject(tenant), gateway_bus.gateway_embeddings_subject(tenant),
                    gateway_bus.gateway_stream_subject(tenant)):
        for junk in (b"", b"\xff\x00garbage", b'{"request_id": "x"}'):
            reply = await nc.request(subject, junk, timeout=5)
            env = envelope_pb2.Envelope.FromString(reply.data)
            assert env.type == "ai.envelope.v1.Error"
            assert envelope_pb2.Error.FromString(env.data).code == Code.CODE_INVALID_ARGUMENT
    client = gateway_bus.GatewayServiceClient(bus, tenant)
    with pytest.raises(RemoteError) as e:
        await client.requests(gateway_pb2.LlmRequest(request_id="e", model="local/extractive"))
    assert e.value.code == Code.CODE_INVALID_ARGUMENT
    r = await client.requests(ask("after"))
    assert r.response.startswith("Refunds")
