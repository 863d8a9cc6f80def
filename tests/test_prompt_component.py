"""The prompt component over a real bus and PostgreSQL: templates by event,
context by request, token budgets counted by the gateway's tokenizer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest

from ai.prompt.v1 import prompt_bus, prompt_pb2
from aisdk.components import storage
from aisdk.components.prompt import PromptManager, tokens
from runtime.bus import Bus
from runtime.errors import RemoteError


async def stored_publications(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        row = await (await conn.execute("SELECT count(*) FROM prompt_publications")).fetchone()
    return int(row[0]) if row else 0


async def wait_stored(url: str, publications: int, timeout: float = 20.0) -> None:
    """Until `publications` template events are stored; fails only after `timeout` s."""
    deadline = asyncio.get_running_loop().time() + timeout
    while await stored_publications(url) < publications:
        assert asyncio.get_running_loop().time() < deadline, f"{publications} publications not stored in time"
        await asyncio.sleep(0.02)


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with storage.temporary_database() as u:
        yield u


@pytest.fixture
def tenants() -> tuple[str, str]:
    """Two tenants of this test's own: the template stream outlives a test
    on the session's server, and a new per-tenant consumer replays its tenant."""
    run = uuid.uuid4().hex[:8]
    return f"p1{run}", f"p2{run}"


@pytest.fixture
async def client(bus: Bus, url: str, tenants: tuple[str, str]) -> prompt_bus.PromptServiceClient:
    await bus.serve(PromptManager(database_url=url), tenants=list(tenants))
    c = prompt_bus.PromptServiceClient(bus, tenants[0])
    for version, text in (("1", "Old {question}"), ("2", "Answer {question} for {user}.\n{context}")):
        await c.templates(prompt_pb2.PromptTemplate(template_id="qa", template=text, version=version,
                                                    variables={"user": "a customer"}))
    await wait_stored(url, 2)
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
    assert r.template_version == "2" and r.truncated_snippets == 0


async def test_tokens_are_counted_by_the_gateways_tokenizer(client: prompt_bus.PromptServiceClient) -> None:
    text = "Tokenizers split words like antidisestablishmentarianism into several pieces. " * 5
    r = await client.context(ctx(variables={"question": text}))
    assert r.model == tokens.default_model() == "local/extractive"
    assert r.estimated_tokens == tokens.count("local/extractive", r.prompt)
    assert r.estimated_tokens != -(-len(r.prompt) // 4), "not the characters/4 estimate"
    named = await client.context(ctx(variables={"question": text}, model="gpt-4o-mini"))
    assert named.model == "gpt-4o-mini" and named.estimated_tokens == tokens.count("gpt-4o-mini", named.prompt)


async def test_pinned_version(client: prompt_bus.PromptServiceClient) -> None:
    r = await client.context(ctx(template_version="1", variables={"question": "q"}))
    assert r.prompt == "Old q" and r.template_version == "1"


async def test_snippets_are_dropped_to_fit_the_budget(client: prompt_bus.PromptServiceClient) -> None:
    snippets = ["alpha beta gamma " * 3, "delta " * 100, "epsilon " * 100]
    r = await client.context(ctx(variables={"question": "q"}, context_snippets=snippets, max_tokens=40))
    assert r.truncated_snippets == 2 and "delta" not in r.prompt and "alpha" in r.prompt
    assert r.estimated_tokens <= 40
    unbounded = await client.context(ctx(variables={"question": "q"}, context_snippets=snippets))
    assert unbounded.truncated_snippets == 0 and unbounded.estimated_tokens > 200


async def test_errors_carry_codes(client: prompt_bus.PromptServiceClient, bus: Bus, tenants: tuple[str, str]) -> None:
    with pytest.raises(RemoteError) as e:
        await client.context(ctx())
    assert e.value.code_name == "CODE_INVALID_ARGUMENT" and "question" in e.value.message
    with pytest.raises(RemoteError) as e:
        await prompt_bus.PromptServiceClient(bus, tenants[1]).context(ctx(variables={"question": "q"}))
    assert e.value.code_name == "CODE_NOT_FOUND", "templates never cross tenants"
    with pytest.raises(RemoteError) as e:
        await client.context(ctx(variables={"question": "q"}, template_version="7"))
    assert e.value.code_name == "CODE_NOT_FOUND" and "no version '7'" in e.value.message
    with pytest.raises(RemoteError) as e:
        await client.context(ctx(variables={"question": "q"}, max_tokens=2))
    assert e.value.code_name == "CODE_FAILED_PRECONDITION" and "budget of 2" in e.value.message
