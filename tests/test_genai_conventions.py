"""The OpenTelemetry GenAI semantic conventions on the spans of model calls
(the gateway's provider calls, the agent loop's model calls and its tool
executions), checked with the in-memory exporter; content is opt-in."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from ai.gateway.v1 import gateway_bus, gateway_pb2
from opentelemetry.sdk.trace import ReadableSpan

from aisdk.components.gateway.cache import CacheConfig
from aisdk.components.gateway.config import GatewayConfig
from aisdk.components.gateway.genai import CAPTURE_CONTENT_ENV
from aisdk.components.gateway.service import Gateway
from runtime import Bus
from runtime.settings import BusSettings
from runtime.telemetry import Telemetry

DOC = "Refunds are given within 30 days of purchase. Our office is in Berlin."


@pytest.fixture
async def gateway_bus_(nats_url: str, telemetry: Telemetry) -> AsyncIterator[Bus]:
    config = GatewayConfig(cache=CacheConfig(bucket=f"gw_{uuid.uuid4().hex[:12]}"), rate_limits=False,
                           breakers=False, retries=0)
    async with Bus(nats_url, BusSettings(name="genai-gateway"), telemetry=telemetry) as bus:
        await bus.serve(Gateway(config))
        yield bus


def calls(telemetry: Telemetry) -> list[ReadableSpan]:
    return [s for s in telemetry.finished_spans() if s.name == "gateway.provider.call"]


async def test_a_chat_call_carries_the_genai_attributes_and_no_content(gateway_bus_: Bus,
                                                                       telemetry: Telemetry) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    reply = await gateway_bus.GatewayServiceClient(gateway_bus_, tenant).requests(gateway_pb2.LlmRequest(
        request_id="g1", model="chat", prompt=f"{DOC} What is the refund policy?",
        parameters=gateway_pb2.LlmParameters(max_tokens=40, temperature=0.0)))
    [call] = calls(telemetry)
    a = dict(call.attributes or {})
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "chat" and a["gen_ai.response.model"] == reply.model == "local/extractive"
    assert a["gen_ai.provider.name"] == a["gen_ai.system"] == "local"
    assert a["gen_ai.usage.input_tokens"] == reply.tokens.prompt > 0
    assert a["gen_ai.usage.output_tokens"] == reply.tokens.completion > 0
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["gen_ai.request.max_tokens"] == 40 and a["gen_ai.request.temperature"] == 0.0
    assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a, "content is opt-in"


async def test_content_is_recorded_when_switched_on(gateway_bus_: Bus, telemetry: Telemetry,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "true")
    tenant = f"t{uuid.uuid4().hex[:8]}"
    await gateway_bus.GatewayServiceClient(gateway_bus_, tenant).requests(gateway_pb2.LlmRequest(
        request_id="g2", model="chat", prompt=f"{DOC} Where is the office?"))
    [call] = calls(telemetry)
    a = dict(call.attributes or {})
    assert "Where is the office?" in str(a["gen_ai.input.messages"])
    assert "Berlin" in str(a["gen_ai.output.messages"])


async def test_an_embedding_call_carries_its_attributes(gateway_bus_: Bus, telemetry: Telemetry) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    await gateway_bus.GatewayServiceClient(gateway_bus_, tenant).embeddings(gateway_pb2.EmbeddingRequest(
        request_id="e1", model="embedding", texts=["refunds", "shipping"]))
    [call] = calls(telemetry)
    a = dict(call.attributes or {})
    assert a["gen_ai.operation.name"] == "embeddings" and a["gen_ai.request.model"] == "embedding"
    assert a["gen_ai.response.model"] == "local/wordllama" and a["gen_ai.embeddings.dimension.count"] == 256
    assert a["gen_ai.usage.input_tokens"] > 0 and "gen_ai.usage.output_tokens" not in a
