"""gateway.stream with tools, on a real nats-server: through litellm's real
HTTP client against tests.support.TestProvider (OpenAI's SSE shape, each
call's arguments in fragments) and through the offline local provider. Text
streams as deltas; each tool call goes out whole, once, on the last chunk."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from ai.gateway.v1 import gateway_bus, gateway_pb2
from aisdk.components.agents.registry import ToolRegistry
from aisdk.components.gateway import models
from aisdk.components.gateway.cache import CacheConfig
from aisdk.components.gateway.config import GatewayConfig
from aisdk.components.gateway.service import Gateway
from runtime import Bus
from runtime.settings import BusSettings
from tests.support import TestProvider

Role = gateway_pb2.Role
QUESTION = "What's the weather in Paris today?"
registry = ToolRegistry()


@registry.tool
def weather(city: str, days: int = 1) -> str:
    """Get the weather forecast for a city."""
    return f"Sunny in {city}."


@registry.tool
def timezone(place: str) -> str:
    """Tell the time zone of a place."""
    return f"{place}: UTC+1"


@pytest.fixture
def provider() -> Iterator[TestProvider]:
    with TestProvider() as server:
        yield server


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    async with Bus(nats_url, BusSettings(name="gateway-stream-tools")) as b:
        yield b


def cached_gateway(env: dict[str, str]) -> Gateway:
    return Gateway(GatewayConfig(models=models.from_env(env), cache=CacheConfig(bucket=f"gw_{uuid.uuid4().hex[:12]}"),
                                 rate_limits=False, breakers=False, retries=0))


def request(model: str, tools: bool = True) -> gateway_pb2.LlmRequest:
    return gateway_pb2.LlmRequest(
        request_id=uuid.uuid4().hex, model=model,
        messages=[gateway_pb2.ChatMessage(role=Role.ROLE_USER, content=QUESTION)],
        tools=registry.definitions() if tools else [], parameters=gateway_pb2.LlmParameters(temperature=0.0))


async def streamed(bus: Bus, req: gateway_pb2.LlmRequest) -> list[gateway_pb2.LlmChunk]:
    return [c async for c in gateway_bus.GatewayServiceClient(bus, "acme").stream(req)]


def calls_of(chunks: list[gateway_pb2.LlmChunk]) -> list[gateway_pb2.ToolCall]:
    return [call for c in chunks for call in c.tool_calls]


async def test_two_calls_in_fragments_go_out_once_each_with_their_whole_arguments(
        bus: Bus, provider: TestProvider) -> None:
    await bus.serve(cached_gateway({"AISDK_GATEWAY_MODEL": "openai/test-model",
                                    "AISDK_GATEWAY_API_BASE": provider.base}))
    provider.parallel = 2
    chunks = await streamed(bus, request(models.CHAT))
    body = provider.received[-1].body
    assert body["stream"] is True and len(body["tools"]) == 2, "the tools went to the provider on a stream"
    calls = calls_of(chunks)
    assert [(c.id, c.name) for c in calls] == [("call_test_1", "weather"), ("call_test_2", "timezone")]
    assert [json.loads(c.arguments) for c in calls] == [{"city": QUESTION}, {"place": QUESTION}]
    last = chunks[-1]
    assert list(last.tool_calls) == calls, "on the last chunk only"
    assert last.finish_reason == gateway_pb2.FINISH_REASON_TOOL_CALLS and last.tokens.completion > 0
    assert "".join(c.delta for c in chunks) == "" and [c.index for c in chunks] == list(range(len(chunks)))

    # Cached like any other request under the same policy (temperature 0), and replayed the same.
    again = await streamed(bus, request(models.CHAT))
    assert again[-1].cached and calls_of(again) == calls and len(provider.received) == 1
    assert again[-1].finish_reason == gateway_pb2.FINISH_REASON_TOOL_CALLS


async def test_text_said_before_a_call_streams_first_then_the_call(bus: Bus, provider: TestProvider) -> None:
    await bus.serve(cached_gateway({"AISDK_GATEWAY_MODEL": "openai/test-model",
                                    "AISDK_GATEWAY_API_BASE": provider.base}))
    provider.preamble = "Let me look that up."
    chunks = await streamed(bus, request(models.CHAT))
    deltas = [c.delta for c in chunks if c.delta]
    assert deltas == ["Let", " me", " look", " that", " up."], "word by word, as the provider sent it"
    assert all(not c.tool_calls for c in chunks[:-1])
    [call] = chunks[-1].tool_calls
    assert call.name == "weather" and json.loads(call.arguments) == {"city": QUESTION}
    assert chunks[-1].finish_reason == gateway_pb2.FINISH_REASON_TOOL_CALLS

    # The positive control: without tools, the same stream is text and stop.
    plain = await streamed(bus, request(models.CHAT, tools=False))
    assert not calls_of(plain) and plain[-1].finish_reason == gateway_pb2.FINISH_REASON_STOP
    assert "".join(c.delta for c in plain) == TestProvider.answer(QUESTION)


async def test_the_local_model_streams_its_tool_call_and_then_its_answer(bus: Bus) -> None:
    await bus.serve(cached_gateway({"AISDK_GATEWAY_MODEL": "local/extractive"}))
    chunks = await streamed(bus, request("local/extractive"))
    [call] = calls_of(chunks)
    assert call.name == "weather" and json.loads(call.arguments) == {"city": QUESTION}
    assert call.id.startswith("call_") and chunks[-1].finish_reason == gateway_pb2.FINISH_REASON_TOOL_CALLS
    assert chunks[-1].provider == "local" and not chunks[-1].cached

    # The same call on gateway.requests: the stream and the request agree.
    reply = await gateway_bus.GatewayServiceClient(bus, "acme").requests(request("local/extractive"))
    assert list(reply.tool_calls) == [call]

    # Given the call's result, the model answers in text on the stream, tools still offered.
    follow = request("local/extractive")
    follow.messages.extend([
        gateway_pb2.ChatMessage(role=Role.ROLE_ASSISTANT, tool_calls=[call]),
        gateway_pb2.ChatMessage(role=Role.ROLE_TOOL, tool_call_id=call.id,
                                content="Paris is sunny today with 24 degrees. Lyon has rain."),
    ])
    answer = await streamed(bus, follow)
    assert not calls_of(answer) and answer[-1].finish_reason == gateway_pb2.FINISH_REASON_STOP
    assert "Paris is sunny" in "".join(c.delta for c in answer)
