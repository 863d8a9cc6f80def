"""A real provider behind the gateway: an OpenAI-compatible server on
loopback (tests.support.TestProvider), reached through litellm's own HTTP
client and configured the way a deployment is, by AISDK_GATEWAY_MODEL and
AISDK_GATEWAY_API_BASE. The gateway's replies name the model that answered;
an outage without a fallback is UNAVAILABLE with the provider's reason; a
configured fallback answers and says so; the whole deployment (`aisdk
serve api rag gateway prompt llmops agents`) moves with the one setting."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ai.envelope.v1 import envelope_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from ai.prompt.v1 import prompt_bus, prompt_pb2
from aisdk.components.gateway import models
from aisdk.components.gateway.cache import CacheConfig
from aisdk.components.gateway.config import GatewayConfig
from aisdk.components.gateway.providers import litellm
from aisdk.components.gateway.service import Gateway
from aisdk.components.rag.embedding import WrongDimensions, embed
from aisdk.components.storage import temporary_database
from runtime import Bus, RemoteError
from runtime.server import EmbeddedServer
from runtime.settings import BusSettings
from runtime.telemetry import Telemetry
from tests.support import ROOT, TestProvider, checkout_env, closed_port

Code = envelope_pb2.Error
MODEL = "openai/test-model"
EMBEDDER = "openai/test-embed"
QUESTION = "What is the refund policy?"
REFUND = "# Refund policy\nYou can return any unused item within 30 days of delivery for a full refund.\n"


def tenant() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def provider() -> Iterator[TestProvider]:
    with TestProvider() as server:
        yield server


def gateway(env: dict[str, str]) -> Gateway:
    """A gateway configured from deployment settings, with a cache of its own."""
    return Gateway(GatewayConfig(models=models.from_env(env), cache=CacheConfig(bucket=f"gw_{uuid.uuid4().hex[:12]}"),
                                 rate_limits=False, breakers=False, retries=0))


def chat(request_id: str, prompt: str = QUESTION) -> gateway_pb2.LlmRequest:
    """A deterministic request (temperature 0), so the cache may answer it."""
    return gateway_pb2.LlmRequest(request_id=request_id, model=models.CHAT, prompt=prompt,
                                  parameters=gateway_pb2.LlmParameters(temperature=0.0))


async def test_the_chat_alias_is_answered_by_the_provider_the_setting_names(
        nats_url: str, provider: TestProvider) -> None:
    env = {"AISDK_GATEWAY_MODEL": MODEL, "AISDK_GATEWAY_API_BASE": provider.base}
    t = tenant()
    async with Bus(nats_url, BusSettings(name="gateway-provider")) as bus:
        await bus.serve(gateway(env))
        client = gateway_bus.GatewayServiceClient(bus, t)
        r = await client.requests(chat("p1"))
        assert r.response == TestProvider.answer(QUESTION)
        assert (r.model, r.provider, r.requested_model, r.fallback, r.cached) == \
            (MODEL, "openai", "chat", False, False)
        assert (r.tokens.prompt, r.tokens.completion) == (5, 7), "the server's own usage, in words"
        chunks = [c async for c in client.stream(chat("p2", "Where is the office?"))]
        assert "".join(c.delta for c in chunks) == TestProvider.answer("Where is the office?")
        assert (chunks[-1].model, chunks[-1].requested_model, chunks[-1].fallback) == (MODEL, "chat", False)
        again = await client.requests(chat("p3"))
        assert (again.cached, again.model, again.requested_model) == (True, MODEL, "chat")
    [first, streamed] = provider.received
    assert first.path == streamed.path == "/v1/chat/completions"
    # litellm's OpenAI client sent them: its user agent, the model without
    # litellm's provider prefix, the placeholder key of a keyless server.
    assert "OpenAI/Python" in first.headers["user-agent"]
    assert first.headers["authorization"] == "Bearer none"
    assert first.body["model"] == "test-model" and first.body["messages"][-1]["content"] == QUESTION
    assert streamed.body["stream"] is True


async def test_a_provider_outage_without_a_fallback_is_unavailable_naming_the_cause(nats_url: str) -> None:
    env = {"AISDK_GATEWAY_MODEL": MODEL, "AISDK_GATEWAY_API_BASE": f"http://127.0.0.1:{closed_port()}/v1"}
    async with Bus(nats_url, BusSettings(name="gateway-outage")) as bus:
        await bus.serve(gateway(env))
        with pytest.raises(RemoteError) as e:
            await gateway_bus.GatewayServiceClient(bus, tenant()).requests(chat("o1"))
    assert e.value.code == Code.CODE_UNAVAILABLE and e.value.retryable
    assert e.value.message.startswith(f"every deployment of 'chat' failed: chat#0 ({MODEL}): ")
    assert "Connection error" in e.value.message and "ConnectionRefusedError" in e.value.message
    assert "local" not in e.value.message, "nothing else was tried"


async def test_a_configured_fallback_answers_and_the_reply_says_so(nats_url: str) -> None:
    env = {"AISDK_GATEWAY_MODEL": MODEL, "AISDK_GATEWAY_API_BASE": f"http://127.0.0.1:{closed_port()}/v1",
           "AISDK_GATEWAY_FALLBACK": "local/extractive"}
    prompt = f"Refunds are given within 30 days. The office is in Berlin. {QUESTION}"
    async with Bus(nats_url, BusSettings(name="gateway-fallback")) as bus:
        await bus.serve(gateway(env))
        r = await gateway_bus.GatewayServiceClient(bus, tenant()).requests(chat("f1", prompt))
    assert (r.model, r.provider, r.requested_model, r.fallback) == ("local/extractive", "local", "chat", True)
    assert r.response == "Refunds are given within 30 days."


async def test_an_embedding_model_of_another_size_than_the_index_is_refused(nats_url: str) -> None:
    with TestProvider(dimensions=8) as small:
        env = {"AISDK_GATEWAY_EMBEDDING_MODEL": EMBEDDER, "AISDK_GATEWAY_API_BASE": small.base}
        async with Bus(nats_url, BusSettings(name="gateway-embeddings")) as bus:
            await bus.serve(gateway(env))
            with pytest.raises(WrongDimensions) as e:
                await embed(bus, Telemetry.disabled(), tenant(), models.EMBEDDING, "e1", ["a text"], 8)
    assert e.value.code == Code.CODE_FAILED_PRECONDITION
    assert e.value.message == (
        f"embedding model '{EMBEDDER}' (asked for as 'embedding') gives 8-dimension vectors; the RAG index holds "
        "256: choose an embedding model of 256 dimensions (AISDK_GATEWAY_EMBEDDING_MODEL) and ingest the "
        "documents again")


# -- the whole deployment, as `aisdk serve` runs it --------------------------


@pytest.fixture(scope="module")
def deployment_provider() -> Iterator[TestProvider]:
    with TestProvider() as server:
        yield server


@pytest.fixture(scope="module")
async def deployment(deployment_provider: TestProvider) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """nats-server, a database of its own, and one `aisdk serve` process with
    the deployment pointed at the test provider by the one setting."""
    with EmbeddedServer(name="aisdk-provider-test") as server:
        async with temporary_database() as database:
            env = {**checkout_env(), "AISDK_DATABASE_URL": database, "AISDK_GATEWAY_MODEL": MODEL,
                   "AISDK_GATEWAY_EMBEDDING_MODEL": EMBEDDER, "AISDK_GATEWAY_API_BASE": deployment_provider.base}
            proc = subprocess.Popen(
                [sys.executable, "-m", "aisdk.cli", "serve", "api", "rag", "gateway", "prompt", "llmops", "agents",
                 "--nats-url", server.url], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                text=True)
            try:
                await asyncio.to_thread(wait_ready, proc)
                yield server.url, env
            finally:
                proc.terminate()
                await asyncio.to_thread(proc.wait, 60)


def wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "ready" in line:
            return
    raise AssertionError(f"aisdk serve exited before it was ready: {''.join(seen)}")


async def cli(env: dict[str, str], cwd: Path, *args: str) -> dict[str, Any]:
    out = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "aisdk.cli", *args], cwd=cwd, env=env,
                                  capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got: dict[str, Any] = json.loads(out.stdout)
    return got


async def test_one_setting_moves_every_component_to_the_provider(
        deployment: tuple[str, dict[str, str]], deployment_provider: TestProvider, tmp_path: Path) -> None:
    url, env = deployment
    t = tenant()
    (tmp_path / "refund-policy.md").write_text(REFUND)
    ingested = await cli(env, tmp_path, "ingest", "refund-policy.md", "--tenant", t, "--json", "--nats-url", url)
    assert ingested["indexed"] == ["refund-policy.md"], ingested
    assert deployment_provider.paths() == ["/v1/embeddings"], "the chunks were embedded by the provider"

    answers = {}
    for mode in ("rag", "llm", "agent"):
        answers[mode] = await cli(env, tmp_path, "ask", QUESTION, "--tenant", t, "--mode", mode, "--json",
                                  "--nats-url", url)
    for mode, got in answers.items():
        assert got["model"] == MODEL, (mode, got)
    assert answers["llm"]["answer"] == TestProvider.answer(QUESTION)
    # RAG found the document through the provider's vectors; the provider
    # answered from the documents of the template (its rule: their first
    # sentence), and grounding found that sentence in the refund policy.
    first = "You can return any unused item within 30 days of delivery for a full refund."
    for mode in ("rag", "agent"):
        assert answers[mode]["answer"] == first and answers[mode]["status"] == "answered", answers[mode]
        assert [s["document_id"] for s in answers[mode]["sources"]] == ["refund-policy.md"]
    assert answers["rag"]["grounded"] is True

    chats = [r for r in deployment_provider.received if r.path == "/v1/chat/completions"]
    # rag: one answer; llm: one; agent: the tool call and the final answer (its
    # search's RAG answer is the rag mode's, from the gateway's cache).
    assert len(chats) == 4 and all(r.body["model"] == "test-model" for r in chats)
    rag_call = chats[0].body["messages"]
    assert rag_call[0]["role"] == "system" and "<documents>" in rag_call[0]["content"]
    assert rag_call[-1] == {"role": "user", "content": QUESTION}, "the question is the user turn"
    assert all("OpenAI/Python" in r.headers["user-agent"] for r in deployment_provider.received)
    assert any(r.body["messages"][-1]["content"] == QUESTION for r in chats), "the llm mode's question"

    # The prompt service counts with the model behind `chat`: the RAG query
    # left its template for this tenant.
    async with Bus(url, BusSettings(name="provider-test-prompt")) as bus:
        built = await prompt_bus.PromptServiceClient(bus, t).context(prompt_pb2.ContextRequest(
            request_id="c1", template_id="rag.answer", variables={"question": QUESTION},
            context_snippets=["Refunds within 30 days."]))
    assert built.model == MODEL
    assert built.estimated_tokens == litellm().token_counter(model=MODEL, text=built.prompt)


async def test_a_deployment_is_called_with_its_own_parameters_and_the_shorter_timeout() -> None:
    from aisdk.components.gateway.models import Deployment, ModelList
    from aisdk.components.gateway.providers import Providers

    d = Deployment("chat#0", "chat", {"model": "openai/m", "api_base": "http://x", "rpm": 60, "tpm": 1000,
                                      "timeout": 30, "stream_timeout": 5})
    seen: list[dict[str, object]] = []

    async def call(**kwargs: object) -> str:
        seen.append(kwargs)
        return "ok"

    p = Providers(ModelList((d,)), retries=0)
    assert await p._call(d, call, 10.0, messages=[]) == "ok"
    assert await p._call(d, call, 10.0, messages=[], stream=True) == "ok"
    assert await p._call(d, call, None, messages=[]) == "ok"
    plain, streamed, unbounded = seen
    # Routing keys stay out of the call; the SDK's own retries are off.
    assert "rpm" not in plain and "tpm" not in plain and "stream_timeout" not in plain
    assert (plain["model"], plain["api_base"], plain["max_retries"]) == ("openai/m", "http://x", 0)
    # The request's time left, or the deployment's own limit when shorter.
    assert 9.0 < plain["timeout"] <= 10.0  # type: ignore[operator]
    assert streamed["timeout"] == 5
    assert unbounded["timeout"] == 30
