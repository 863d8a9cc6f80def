"""Function calling through the gateway on a real nats-server: tools go to
litellm, the offline local provider picks the tool whose description matches
the question, tool calls come back on the contract, and the model answers
from the tool's result."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest
from ai.gateway.v1 import gateway_bus, gateway_pb2

from aisdk.components.agents.registry import ToolRegistry
from aisdk.components.gateway.cache import CacheConfig
from aisdk.components.gateway.config import GatewayConfig
from aisdk.components.gateway.service import Gateway
from runtime import Bus
from runtime.settings import BusSettings

Role = gateway_pb2.Role
registry = ToolRegistry()


@registry.tool
def weather(city: str, days: int = 1) -> str:
    """Get the weather forecast for a city."""
    return f"Sunny in {city}."


@registry.tool
def add(a: float, b: float) -> float:
    """Add two numbers together and return the sum."""
    return a + b


@pytest.fixture
async def gateway(nats_url: str) -> AsyncIterator[Gateway]:
    config = GatewayConfig(cache=CacheConfig(bucket=f"gw_{uuid.uuid4().hex[:12]}"), rate_limits=False,
                           breakers=False, retries=0)
    async with Bus(nats_url, BusSettings(name="gateway-tools")) as bus:
        worker = Gateway(config)
        await bus.serve(worker)
        yield worker


def request(*messages: gateway_pb2.ChatMessage) -> gateway_pb2.LlmRequest:
    return gateway_pb2.LlmRequest(request_id=uuid.uuid4().hex, model="local/extractive", messages=messages,
                                  tools=registry.definitions(), parameters=gateway_pb2.LlmParameters(temperature=0.0))


def user(text: str) -> gateway_pb2.ChatMessage:
    return gateway_pb2.ChatMessage(role=Role.ROLE_USER, content=text)


async def test_the_local_model_calls_the_matching_tool_with_the_question(gateway: Gateway, bus: Bus) -> None:
    client = gateway_bus.GatewayServiceClient(bus, "acme")
    reply = await client.requests(request(user("What's the weather in Paris today?")))
    assert reply.finish_reason == gateway_pb2.FINISH_REASON_TOOL_CALLS and reply.response == ""
    [call] = reply.tool_calls
    assert call.name == "weather" and json.loads(call.arguments) == {"city": "What's the weather in Paris today?"}
    assert reply.tokens.completion > 0 and reply.cost > 0

    again = await client.requests(request(user("What's the weather in Paris today?")))
    assert again.cached and list(again.tool_calls) == list(reply.tool_calls)  # deterministic, and cached whole

    greeting = await client.requests(request(user("Hello there, how are you?")))
    assert not greeting.tool_calls and greeting.finish_reason == gateway_pb2.FINISH_REASON_STOP


async def test_the_model_answers_from_the_tool_result(gateway: Gateway, bus: Bus) -> None:
    client = gateway_bus.GatewayServiceClient(bus, "acme")
    question = user("What's the weather in Paris today?")
    first = await client.requests(request(question))
    [call] = first.tool_calls
    result = gateway_pb2.ChatMessage(role=Role.ROLE_TOOL, tool_call_id=call.id,
                                     content="Paris is sunny today with 24 degrees. Lyon has rain.")
    final = await client.requests(request(
        question, gateway_pb2.ChatMessage(role=Role.ROLE_ASSISTANT, tool_calls=first.tool_calls), result))
    assert not final.tool_calls and final.finish_reason == gateway_pb2.FINISH_REASON_STOP
    assert "Paris is sunny" in final.response
