"""The gateway's error paths against a real OpenAI-compatible server on
loopback (tests.support.TestProvider) that answers 400, 401, 429 with a
Retry-After, 500, a context-length error, or cuts a stream: client errors
are answered at once and never fall back, provider faults count and fall
back, a 429 keeps the deployment aside and says when to come back, a
stream falls back only before its first text, breaker states reach every
worker through JetStream KV, and the rate limits refuse for good what no
window can hold and fail open when their store is gone."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from ai.envelope.v1 import envelope_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from aisdk.components.gateway import models
from aisdk.components.gateway.breaker import BreakerConfig, BreakerState
from aisdk.components.gateway.config import GatewayConfig
from aisdk.components.gateway.ratelimit import DEFAULT_BUCKET as LIMITS_BUCKET
from aisdk.components.gateway.service import Gateway
from runtime import Bus, RemoteError
from runtime.server import EmbeddedServer
from runtime.settings import BusSettings
from tests.support import Fault, TestProvider

Code = envelope_pb2.Error
MODEL = "openai/test-model"
PROMPT = "Refunds are given within 30 days. The office is in Berlin. What is the refund policy?"
CONTENT_POLICY = Fault(400, "Your request was rejected as a result of our safety system.", "content_policy_violation")


def tenant() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def provider() -> Iterator[TestProvider]:
    with TestProvider() as server:
        yield server


def gateway(provider: TestProvider, *, fallback: bool = True, bucket: str = "", **overrides: Any) -> Gateway:
    """A gateway whose `chat` is the test provider (and local/extractive as
    its fallback), breakers on with a bucket of its own, no cache."""
    env = {"AISDK_GATEWAY_MODEL": MODEL, "AISDK_GATEWAY_API_BASE": provider.base}
    if fallback:
        env["AISDK_GATEWAY_FALLBACK"] = "local/extractive"
    settings: dict[str, Any] = {
        "models": models.from_env(env), "cache": None, "rate_limits": False, "retries": 0, "health_interval_s": 0,
        "breaker": BreakerConfig(failure_threshold=5, reset_timeout_s=3600,
                                 bucket=bucket or f"gwb_{uuid.uuid4().hex[:12]}"),
    }
    settings.update(overrides)
    return Gateway(GatewayConfig(**settings))


def chat(request_id: str, prompt: str = PROMPT) -> gateway_pb2.LlmRequest:
    return gateway_pb2.LlmRequest(request_id=request_id, model=models.CHAT, prompt=prompt)


def breaker_of(g: Gateway, deployment: str = "chat#0") -> Any:
    assert g._health is not None
    return g._health.tracker.breaker(deployment)


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    async with Bus(nats_url, BusSettings(name="gateway-errors")) as b:
        yield b


# -- item 3: error classes ---------------------------------------------------


@pytest.mark.parametrize(("fault", "code"), [
    (TestProvider.BAD_REQUEST, Code.CODE_INVALID_ARGUMENT),
    (TestProvider.CONTEXT_TOO_LONG, Code.CODE_FAILED_PRECONDITION),
    (CONTENT_POLICY, Code.CODE_INVALID_ARGUMENT),
    (TestProvider.BAD_KEY, Code.CODE_PERMISSION_DENIED),
], ids=["invalid-request", "context-too-long", "content-policy", "bad-credentials"])
async def test_a_client_error_is_answered_at_once_and_neither_counts_nor_falls_back(
        bus: Bus, provider: TestProvider, fault: Fault, code: int) -> None:
    # Retries on, a breaker that opens at the first failure, and a
    # fallback: any of them would show if a client error were taken for a fault.
    g = gateway(provider, retries=2, breaker=BreakerConfig(failure_threshold=1, bucket=f"gwb_{uuid.uuid4().hex}"))
    await bus.serve(g)
    client = gateway_bus.GatewayServiceClient(bus, tenant())
    provider.fail(fault, times=3)
    with pytest.raises(RemoteError) as e:
        await client.requests(chat("c1"))
    assert e.value.code == code and not e.value.retryable and e.value.retry_after is None
    assert e.value.message == f"{MODEL} refused the request: HTTP {fault.status}: {fault.message}"
    assert len(provider.received) == 1, "not retried, not sent again"
    assert breaker_of(g).state is BreakerState.CLOSED and breaker_of(g).failures == 0
    provider.faults.clear()
    r = await client.requests(chat("c2"))
    assert (r.model, r.fallback) == (MODEL, False), "the deployment is still the one that answers"


async def test_a_provider_fault_counts_and_falls_back_and_says_so_everywhere(
        nats_url: str, provider: TestProvider) -> None:
    from runtime import telemetry

    t = tenant()
    events: asyncio.Queue[gateway_pb2.ProviderHealth] = asyncio.Queue()

    async def on_health(observed: Any) -> None:
        events.put_nowait(observed.payload)

    tel = telemetry.setup("gateway-errors", exporter="memory", metrics_exporter="memory")
    g = gateway(provider, health_tenant=t)
    async with Bus(nats_url, BusSettings(name="gateway-fallbacks"), telemetry=tel) as b:
        await b.subscribe(gateway_bus.GATEWAY_HEALTH, on_health, tenant_id=t)
        await b.serve(g)
        provider.fail(TestProvider.OVERLOADED)
        r = await gateway_bus.GatewayServiceClient(b, t).requests(chat("f1"))
        health = await asyncio.wait_for(events.get(), 10)
    assert (r.model, r.provider, r.requested_model, r.fallback) == ("local/extractive", "local", "chat", True)
    assert r.response == "Refunds are given within 30 days."
    assert breaker_of(g).failures == 1, "the 500 counted against the provider's breaker"
    # The health event of the deployment fallen back from: one failed call of one.
    assert (health.provider, health.error_rate, health.state) == ("chat#0", 1.0, gateway_pb2.HEALTH_STATE_DEGRADED)
    assert tel.span_exporter is not None and tel.metric_reader is not None
    [generate] = [s for s in tel.span_exporter.get_finished_spans() if s.name == "gateway.generate"]
    assert generate.attributes is not None
    assert (generate.attributes["gateway.fallback"], generate.attributes["gateway.fallback.from"],
            generate.attributes["gateway.fallback.to"]) == (True, MODEL, "local/extractive")
    points = [(dict(p.attributes or {}), p.value)
              for rm in tel.metric_reader.get_metrics_data().resource_metrics  # type: ignore[union-attr]
              for sm in rm.scope_metrics for m in sm.metrics if m.name == "gateway.fallbacks"
              for p in m.data.data_points]  # type: ignore[union-attr]
    assert points == [({"from": MODEL, "to": "local/extractive"}, 1)]


async def test_a_provider_fault_is_retried_on_its_deployment_before_anything_falls_back(
        bus: Bus, provider: TestProvider) -> None:
    # The gateway's own retries (litellm's backoff), and the provider SDK's
    # own retries off: two 500s, then the answer, three requests in all.
    g = gateway(provider, retries=2)
    await bus.serve(g)
    client = gateway_bus.GatewayServiceClient(bus, tenant())
    provider.fail(TestProvider.OVERLOADED, times=2)
    r = await client.requests(chat("rt1"))
    assert (r.model, r.fallback) == (MODEL, False)
    assert len(provider.received) == 3
    assert breaker_of(g).failures == 0, "the call succeeded: nothing counts against the provider"
    # Out of retries, the fault falls back (and counts): the control.
    provider.received.clear()
    provider.fail(TestProvider.OVERLOADED, times=3)
    r = await client.requests(chat("rt2", f"{PROMPT} (again)"))
    assert (r.model, r.fallback) == ("local/extractive", True)
    assert len(provider.received) == 3 and breaker_of(g).failures == 1


# -- items 3 and 4: a 429's retry-after, in the contract and honoured ------------


async def test_a_429_retry_after_is_returned_and_keeps_the_deployment_aside(
        bus: Bus, provider: TestProvider) -> None:
    await bus.serve(gateway(provider, fallback=False, retries=2))
    client = gateway_bus.GatewayServiceClient(bus, tenant())
    provider.fail(Fault(429, "Rate limit reached for requests", "rate_limit_exceeded", retry_after=600))
    with pytest.raises(RemoteError) as e:
        await client.requests(chat("r1"))
    assert e.value.code == Code.CODE_RESOURCE_EXHAUSTED and e.value.retryable
    assert e.value.retry_after is not None and 590 < e.value.retry_after <= 600
    assert "Rate limit reached for requests" in e.value.message
    assert str(e.value).endswith(f"(retry after {e.value.retry_after:.1f} s)")
    assert len(provider.received) == 1, "the Retry-After was not waited out, nor the call retried"
    # Within the provider's Retry-After nothing is sent to it.
    with pytest.raises(RemoteError) as again:
        await client.requests(chat("r2"))
    assert again.value.code == Code.CODE_UNAVAILABLE and again.value.retryable
    assert again.value.retry_after is not None and 590 < again.value.retry_after <= 600
    assert len(provider.received) == 1


async def test_a_429_falls_back_and_the_provider_is_left_alone_until_its_retry_after(
        bus: Bus, provider: TestProvider) -> None:
    await bus.serve(gateway(provider))
    client = gateway_bus.GatewayServiceClient(bus, tenant())
    provider.fail(Fault(429, "Rate limit reached", "rate_limit_exceeded", retry_after=600))
    for i in range(3):
        r = await client.requests(chat(f"h{i}", f"{PROMPT} ({i})"))
        assert (r.model, r.fallback) == ("local/extractive", True)
    assert len(provider.received) == 1


async def test_the_client_retries_no_sooner_than_the_retry_after(bus: Bus, provider: TestProvider) -> None:
    await bus.serve(gateway(provider, fallback=False))
    client = gateway_bus.GatewayServiceClient(bus, tenant())
    provider.fail(Fault(429, "Rate limit reached", "rate_limit_exceeded", retry_after=0.5))
    with pytest.raises(RemoteError) as e:  # the control: without retries the error is raised
        await client.requests(chat("n1"))
    assert e.value.retry_after is not None and 0 < e.value.retry_after <= 0.5
    await asyncio.sleep(e.value.retry_after)
    provider.received.clear()
    provider.fail(Fault(429, "Rate limit reached", "rate_limit_exceeded", retry_after=0.5))
    r = await client.requests(chat("n2"), retries=1)
    assert r.model == MODEL
    first, second = provider.received
    assert second.at - first.at >= 0.5, "sent again only after the provider's Retry-After"


# -- item 8: streams -------------------------------------------------------------


async def test_a_stream_that_fails_after_its_first_chunk_ends_with_an_error_and_no_replay(
        bus: Bus, provider: TestProvider) -> None:
    g = gateway(provider, retries=2)  # a fallback and retries, neither of which may act
    await bus.serve(g)
    provider.fail(Fault(500, "upstream overloaded mid-stream", cut_after=2))
    deltas: list[str] = []
    with pytest.raises(RemoteError) as e:
        async for chunk in gateway_bus.GatewayServiceClient(bus, tenant()).stream(chat("s1")):
            deltas.append(chunk.delta)
    assert deltas == ["test-server", " says:"], "the two words sent, each once, and nothing else"
    assert e.value.code == Code.CODE_UNAVAILABLE and e.value.retryable and e.value.retry_after is not None
    assert e.value.message.startswith(f"the stream of chat#0 ({MODEL}) failed after 2 chunks")
    assert "upstream overloaded mid-stream" in e.value.message
    assert len(provider.received) == 1
    assert breaker_of(g).failures == 1


@pytest.mark.parametrize("fault", [TestProvider.OVERLOADED, Fault(500, "failed before any text", cut_after=0)],
                         ids=["http-500", "error-before-the-first-text"])
async def test_a_stream_that_fails_before_its_first_text_falls_back(
        bus: Bus, provider: TestProvider, fault: Fault) -> None:
    await bus.serve(gateway(provider))
    provider.fail(fault)
    chunks = [c async for c in gateway_bus.GatewayServiceClient(bus, tenant()).stream(chat("s2"))]
    assert "".join(c.delta for c in chunks) == "Refunds are given within 30 days."
    assert (chunks[-1].model, chunks[-1].fallback) == ("local/extractive", True)
    assert [c.index for c in chunks] == list(range(len(chunks)))


# -- item 9: breakers shared by every worker -----------------------------------


async def wait_for(condition: Any, what: str) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def test_an_open_breaker_reaches_every_worker_and_a_later_one(nats_url: str, provider: TestProvider) -> None:
    bucket = f"gwb_{uuid.uuid4().hex[:12]}"
    breaker = BreakerConfig(failure_threshold=1, reset_timeout_s=3600, bucket=bucket)
    a, b, c = (gateway(provider, fallback=False, breaker=breaker) for _ in range(3))
    async with Bus(nats_url, BusSettings(name="gw-a")) as bus_a, Bus(nats_url, BusSettings(name="gw-b")) as bus_b:
        await bus_a.serve(a)
        await b.start(bus_b)  # serves nothing: it only follows the shared states
        assert breaker_of(b).state is BreakerState.CLOSED  # the control
        provider.fail(TestProvider.OVERLOADED)
        with pytest.raises(RemoteError) as e:
            await gateway_bus.GatewayServiceClient(bus_a, tenant()).requests(chat("o1"))
        assert e.value.code == Code.CODE_UNAVAILABLE
        assert e.value.retry_after is not None and e.value.retry_after > 3500, "when the breaker lets a probe by"
        assert breaker_of(a).state is BreakerState.OPEN
        await wait_for(lambda: breaker_of(b).state is BreakerState.OPEN, "worker b saw the open breaker")
        assert not breaker_of(b).allow() and breaker_of(b).wait() > 3500
        # A worker started afterwards reads the state before it serves.
        await c.start(bus_b)
        assert breaker_of(c).state is BreakerState.OPEN
        await b.stop()
        await c.stop()
    assert len(provider.received) == 1, "only the worker that found out called the provider"


async def test_health_comes_from_traffic_and_no_probe_reaches_the_provider(
        nats_url: str, provider: TestProvider) -> None:
    t = tenant()
    events: asyncio.Queue[gateway_pb2.ProviderHealth] = asyncio.Queue()

    async def on_health(observed: Any) -> None:
        events.put_nowait(observed.payload)

    async with Bus(nats_url, BusSettings(name="gw-health")) as b:
        await b.subscribe(gateway_bus.GATEWAY_HEALTH, on_health, tenant_id=t)
        await b.serve(gateway(provider, health_tenant=t, health_interval_s=0.05))
        client = gateway_bus.GatewayServiceClient(b, t)
        assert (await client.requests(chat("p1"))).model == MODEL
        provider.fail(TestProvider.OVERLOADED)
        assert (await client.requests(chat("p2", f"{PROMPT} Again?"))).fallback
        seen: list[gateway_pb2.ProviderHealth] = []
        while sum(e.provider == "chat#0" for e in seen) < 6:  # several periodic rounds
            seen.append(await asyncio.wait_for(events.get(), 10))
    ours = [e for e in seen if e.provider == "chat#0"]
    assert ours[-1].error_rate == 0.5, "one of the two real calls failed"
    assert ours[-1].latency_p95.ToNanoseconds() > 0
    assert len(provider.received) == 2, "only the callers' requests: health sends nothing, bills nothing"


async def test_a_breaker_closed_by_a_probe_closes_everywhere(nats_url: str, provider: TestProvider) -> None:
    bucket = f"gwb_{uuid.uuid4().hex[:12]}"
    a, b = (gateway(provider, fallback=False, breaker=BreakerConfig(failure_threshold=1, reset_timeout_s=3600,
                                                                    bucket=bucket)) for _ in range(2))
    async with Bus(nats_url, BusSettings(name="gw-a")) as bus_a, Bus(nats_url, BusSettings(name="gw-b")) as bus_b:
        await a.start(bus_a)
        await b.start(bus_b)
        breaker_of(a).record_failure()
        await wait_for(lambda: breaker_of(b).state is BreakerState.OPEN, "worker b saw the breaker open")
        breaker_of(a).adopt_open(0)  # the cool-down is over on a: its probe goes through and succeeds
        assert breaker_of(a).allow()
        breaker_of(a).record_success(0.01)
        await wait_for(lambda: breaker_of(b).state is BreakerState.CLOSED, "worker b saw the breaker close")
        await a.stop()
        await b.stop()


# -- item 7: rate limits ---------------------------------------------------------


async def test_an_estimate_over_a_token_limit_is_refused_for_good(
        bus: Bus, provider: TestProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AISDK_GATEWAY_TOKENS_PER_MINUTE", "50")
    await bus.serve(gateway(provider, rate_limits=True))
    client = gateway_bus.GatewayServiceClient(bus, tenant())
    with pytest.raises(RemoteError) as e:
        await client.requests(gateway_pb2.LlmRequest(
            request_id="l1", model="chat", prompt=PROMPT, parameters=gateway_pb2.LlmParameters(max_tokens=100)))
    assert e.value.code == Code.CODE_FAILED_PRECONDITION and not e.value.retryable and e.value.retry_after is None
    assert "exceed the limit of 50 tokens per 60 s" in e.value.message and "no window can admit it" in e.value.message
    assert provider.received == []
    r = await client.requests(chat("l2"))  # the control: a request within the limit is answered
    assert r.model == MODEL


async def test_unreachable_rate_limit_counters_fail_open_with_a_warning_and_a_metric(
        provider: TestProvider, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from runtime import telemetry

    monkeypatch.setenv("AISDK_GATEWAY_REQUESTS_PER_MINUTE", "100")
    tel = telemetry.setup("gateway-limits", exporter="memory", metrics_exporter="memory")
    # A server of its own: the bucket is deleted under the running gateway.
    with EmbeddedServer(name="gateway-limits-outage") as server:
        async with Bus(server.url, BusSettings(name="gw-limits"), telemetry=tel) as b:
            await b.serve(gateway(provider, rate_limits=True))
            client = gateway_bus.GatewayServiceClient(b, tenant())
            assert (await client.requests(chat("k1"))).model == MODEL  # counted
            await b.nc.jetstream().delete_stream(f"KV_{LIMITS_BUCKET}")
            r = await client.requests(chat("k2", f"{PROMPT} Again?"))
    assert r.model == MODEL, "answered although the counters are gone"
    assert any("rate limits of" in m and "unchecked" in m for m in caplog.messages)
    assert tel.metric_reader is not None
    unchecked = [p.value for rm in tel.metric_reader.get_metrics_data().resource_metrics  # type: ignore[union-attr]
                 for sm in rm.scope_metrics for m in sm.metrics if m.name == "gateway.rate-limit.unavailable"
                 for p in m.data.data_points]  # type: ignore[union-attr]
    assert unchecked == [1]


async def test_the_runtime_retries_no_sooner_than_a_handlers_retry_after(bus: Bus) -> None:
    from runtime import Context, HandlerError

    arrivals: list[float] = []

    class Busy(gateway_bus.GatewayServiceHandler):
        async def requests(self, request: gateway_pb2.LlmRequest, ctx: Context) -> gateway_pb2.LlmResponse:
            arrivals.append(time.monotonic())
            if len(arrivals) == 1:
                raise HandlerError("RESOURCE_EXHAUSTED", "busy", retryable=True, retry_after=0.3)
            return gateway_pb2.LlmResponse(request_id=request.request_id, response="ok")

    t = tenant()
    await bus.serve(Busy(), tenants=[t])
    r = await gateway_bus.GatewayServiceClient(bus, t).requests(chat("q1"), retries=2)
    assert r.response == "ok" and len(arrivals) == 2
    assert arrivals[1] - arrivals[0] >= 0.3


# -- item 4: the commands show the retry-after -----------------------------------


async def test_aisdk_request_and_ask_show_the_retry_after(nats_url: str, provider: TestProvider) -> None:
    import subprocess
    import sys

    from aisdk.components.api import Api
    from tests.support import checkout_env

    t = tenant()

    async def aisdk(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "aisdk.cli", *args, "--tenant", t,
                                                        "--nats-url", nats_url],
                                       env=checkout_env(), capture_output=True, text=True, timeout=120)

    async with Bus(nats_url, BusSettings(name="gw-cli")) as b:
        await b.serve(gateway(provider, fallback=False), tenants=[t])
        await b.serve(Api(), tenants=[t])
        provider.fail(Fault(429, "Rate limit reached", "rate_limit_exceeded", retry_after=600))
        request = await aisdk("request", "gateway.requests", "--data", '{"model": "chat", "prompt": "Hello?"}')
        ask = await aisdk("ask", "Hello again?", "--mode", "llm")
    assert request.returncode == 1 and request.stdout == ""
    assert request.stderr.startswith(f"aisdk request: RESOURCE_EXHAUSTED from ai.gateway.requests.{t}: ")
    assert re.search(r"\(retry after 59\d\.\d s\)$|\(retry after 600\.0 s\)$", request.stderr.rstrip()), request.stderr
    assert ask.returncode == 1
    # The API passes the gateway's error on, the retry-after with it (the
    # deployment is still held: nothing was sent to the provider).
    assert ask.stderr.startswith(f"aisdk ask: UNAVAILABLE from ai.api.queries.{t}: "), ask.stderr
    assert re.search(r"\(retry after 5\d\d\.\d s\)$", ask.stderr.rstrip()), ask.stderr
    assert len(provider.received) == 1


async def test_a_stream_broken_off_after_its_text_began_keeps_its_whole_hold_as_spent(
        bus: Bus, provider: TestProvider) -> None:
    from aisdk.components.gateway.providers import litellm
    from aisdk.components.gateway.reservations import BudgetLedger
    from aisdk.components.llmops.budgets import Budget, Budgets

    # A price of its own, so that a hard budget can hold this model's calls.
    priced = "openai/priced-test-model"
    litellm().register_model({priced: {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6,
                                       "litellm_provider": "openai", "mode": "chat"}})
    t = tenant()
    budgets = Budgets({t: Budget(1.0, "day", hard=True)})
    bucket = f"budgets_{uuid.uuid4().hex[:8]}"
    env = {"AISDK_GATEWAY_MODEL": priced, "AISDK_GATEWAY_API_BASE": provider.base}
    await bus.serve(Gateway(GatewayConfig(models=models.from_env(env), cache=None, rate_limits=False, retries=0,
                                          breakers=False, budgets=budgets, budget_bucket=bucket)))
    client = gateway_bus.GatewayServiceClient(bus, t)
    ledger = await BudgetLedger.open(bus, bucket=bucket)
    cap = budgets.caps(t, [models.CHAT])[0]

    # Control: a whole stream settles to what it cost, well under its hold.
    chunks = [c async for c in client.stream(chat("s1"))]
    whole, _ = await ledger.spent(cap)
    assert chunks[-1].cost > 0 and whole == pytest.approx(chunks[-1].cost)

    provider.fail(Fault(500, "upstream overloaded mid-stream", cut_after=2))
    with pytest.raises(RemoteError):
        _ = [c async for c in client.stream(chat("s2"))]
    spent, reserved = await ledger.spent(cap)
    # The provider's bill for the broken stream never came: the whole hold
    # (the prompt plus the model's 4,096-token output ceiling) counts as spent.
    assert reserved == 0.0 and spent - whole > 4096 * 2e-6
