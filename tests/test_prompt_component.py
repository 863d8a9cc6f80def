"""The prompt component over a real bus: templates by event, context by request."""

from __future__ import annotations

import asyncio

import pytest

from ai.prompt.v1 import prompt_bus, prompt_pb2
from components.prompt import PromptManager
from runtime.bus import Bus
from runtime.errors import RemoteError


@pytest.fixture
async def client(bus: Bus) -> prompt_bus.PromptServiceClient:
    await bus.serve(PromptManager(), tenants=["p1", "p2"])
    c = prompt_bus.PromptServiceClient(bus, "p1")
    for version, text in (("1", "Old {question}"), ("2", "Answer {question} for {user}.\n{context}")):
        await c.templates(prompt_pb2.PromptTemplate(template_id="qa", template=text, version=version,
                                                    variables={"user": "a customer"}))
    await template_arrived(c, "2")  # events are handled in order: "1" is in too
    return c


async def template_arrived(client: prompt_bus.PromptServiceClient, version: str, timeout: float = 10.0) -> None:
    """Templates arrive as events: ask for the version until it is known."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await client.context(ctx(template_version=version, variables={"question": "q"}))
            return
        except RemoteError as e:
            assert e.code_name == "CODE_NOT_FOUND", e
            assert loop.time() < deadline, f"template version {version} never arrived"
        await asyncio.sleep(0.01)


def ctx(**kw: object) -> prompt_pb2.ContextRequest:
    return prompt_pb2.ContextRequest(request_id="c1", template_id="qa", **kw)  # type: ignore[arg-type]


async def test_latest_version_with_defaults_and_snippets(client: prompt_bus.PromptServiceClient) -> None:
    r = await client.context(ctx(variables={"question": "refunds?"}, context_snippets=["s1", "s2"]))
    assert r.prompt == "Answer refunds? for a customer.\ns1\n\ns2"
    assert r.truncated_snippets == 0 and r.estimated_tokens == len(r.prompt) // 4 + 1


async def test_pinned_version(client: prompt_bus.PromptServiceClient) -> None:
    r = await client.context(ctx(template_version="1", variables={"question": "q"}))
    assert r.prompt == "Old q"


async def test_snippets_are_dropped_to_fit_the_budget(client: prompt_bus.PromptServiceClient) -> None:
    r = await client.context(ctx(variables={"question": "q"}, context_snippets=["a" * 40, "b" * 400], max_tokens=30))
    assert r.truncated_snippets == 1 and "b" not in r.prompt and r.estimated_tokens <= 30


async def test_errors_carry_codes(client: prompt_bus.PromptServiceClient, bus: Bus) -> None:
    with pytest.raises(RemoteError) as e:
        await client.context(ctx())
    assert e.value.code_name == "CODE_INVALID_ARGUMENT" and "question" in e.value.message
    with pytest.raises(RemoteError) as e:
        await prompt_bus.PromptServiceClient(bus, "p2").context(ctx(variables={"question": "q"}))
    assert e.value.code_name == "CODE_NOT_FOUND", "templates never cross tenants"
    with pytest.raises(RemoteError) as e:
        await client.context(ctx(variables={"question": "q"}, max_tokens=2))
    assert e.value.code_name == "CODE_FAILED_PRECONDITION"
