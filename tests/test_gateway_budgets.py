"""Hard budgets on a real nats-server with JetStream: the gateway reserves a
call's maximum cost before it runs, across workers, and settles it to the
real cost after; over the cap the answer is RESOURCE_EXHAUSTED naming the
budget and when it resets."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest

from ai.envelope.v1 import envelope_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from aisdk.components.gateway import models
from aisdk.components.gateway.config import GatewayConfig
from aisdk.components.gateway.reservations import BudgetLedger, Refusal, Reservation, max_cost
from aisdk.components.gateway.service import Gateway
from aisdk.components.llmops.budgets import Budget, Budgets
from runtime import Bus, RemoteError
from runtime.settings import BusSettings
from tests.support import closed_port

Code = envelope_pb2.Error
MODEL = "local/extractive"
PROMPT = ("Refunds are given within 30 days of purchase. Shipping is free for orders over 50 dollars. "
          "Our office is in Berlin. What is the refund policy?")
BYPASS = gateway_pb2.CacheControl(mode=gateway_pb2.CACHE_MODE_BYPASS)


def tenant() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def config(budgets: Budgets, **overrides: object) -> GatewayConfig:
    base: dict[str, object] = {"cache": None, "rate_limits": False, "breakers": False, "retries": 0,
                               "budgets": budgets, "budget_bucket": f"budgets_{uuid.uuid4().hex[:8]}"}
    base.update(overrides)
    return GatewayConfig(**base)  # type: ignore[arg-type]


@asynccontextmanager
async def workers(url: str, cfg: GatewayConfig, n: int = 2) -> AsyncIterator[list[Gateway]]:
    """n gateway workers, each on its own connection, in one queue group."""
    async with AsyncExitStack() as stack:
        out = []
        for i in range(n):
            bus = await stack.enter_async_context(Bus(url, BusSettings(name=f"gateway-{i}")))
            gateway = Gateway(cfg)
            await bus.serve(gateway)
            out.append(gateway)
        yield out


def ask(i: int, max_tokens: int) -> gateway_pb2.LlmRequest:
    return gateway_pb2.LlmRequest(request_id=f"r{i}", model=MODEL, prompt=PROMPT, cache=BYPASS,
                                  parameters=gateway_pb2.LlmParameters(max_tokens=max_tokens))


async def probe(bus: Bus) -> gateway_pb2.LlmResponse:
    """One call without a budget: what a call costs, and the tokens it uses."""
    return await gateway_bus.GatewayServiceClient(bus, tenant()).requests(ask(0, 256))


async def burst(bus: Bus, t: str, n: int, max_tokens: int) -> tuple[list[gateway_pb2.LlmResponse], list[RemoteError]]:
    client = gateway_bus.GatewayServiceClient(bus, t)
    results = await asyncio.gather(*(client.requests(ask(i, max_tokens)) for i in range(n)), return_exceptions=True)
    admitted = [r for r in results if isinstance(r, gateway_pb2.LlmResponse)]
    refused = [r for r in results if isinstance(r, RemoteError)]
    assert len(admitted) + len(refused) == n, [r for r in results if isinstance(r, BaseException)]
    return admitted, refused


async def test_forty_concurrent_calls_over_two_workers_never_cross_a_cap_worth_ten(nats_url: str, bus: Bus) -> None:
    async with workers(nats_url, config(Budgets())) as _:
        sample = await probe(bus)
    # max_tokens is the answer's length: the reservation is then exactly the
    # real cost, and room for ten and a half calls admits ten.
    reservation = max_cost([MODEL], sample.tokens.prompt, sample.tokens.completion)
    assert reservation is not None and reservation == pytest.approx(sample.cost)
    cap = 10.5 * reservation

    # Control: the same burst against a budget that only alerts spends four times the cap.
    t = tenant()
    async with workers(nats_url, config(Budgets({t: Budget(cap, "day")}))) as _:
        admitted, refused = await burst(bus, t, 40, sample.tokens.completion)
    assert (len(admitted), len(refused)) == (40, 0)
    assert sum(r.cost for r in admitted) > 3.5 * cap

    t = tenant()
    budgets = Budgets({t: Budget(cap, "day", hard=True)})
    cfg = config(budgets)
    async with workers(nats_url, cfg) as gateways:
        admitted, refused = await burst(bus, t, 40, sample.tokens.completion)
        ledger = await BudgetLedger.open(bus, bucket=cfg.budget_bucket)
        spent, reserved = await ledger.spent(budgets.caps(t, [MODEL])[0])
        conflicts = sum(g._ledger.conflicts for g in gateways if g._ledger is not None)
    cost = sum(r.cost for r in admitted)
    print(f"\nbudget race: cap ${cap:.8f} (10.5 calls of ${reservation:.8f}), 40 concurrent calls over 2 workers: "
          f"{len(admitted)} admitted, {len(refused)} refused, spend ${spent:.8f} = {spent / cap:.3f} of the cap, "
          f"{conflicts} compare-and-set rounds lost")
    assert len(admitted) == 10 and len(refused) == 30
    assert spent == pytest.approx(cost) and reserved == 0.0
    assert spent <= cap, "a hard budget is never crossed (the issue allows one reservation over)"
    for e in refused:
        assert e.code == Code.CODE_RESOURCE_EXHAUSTED
        assert f"hard budget {t}/day" in e.message and "resets at" in e.message and "T00:00:00Z" in e.message


async def test_a_failed_call_releases_its_reservation_and_a_model_budget_caps_one_model(
        nats_url: str, bus: Bus) -> None:
    t = tenant()
    # A real provider client against a port where nothing listens, priced in litellm's cost map.
    chain = models.parse({"model_list": [{"model_name": "chat", "litellm_params": {
        "model": "openai/gpt-4o-mini", "api_base": f"http://127.0.0.1:{closed_port()}/v1", "api_key": "none"}}]})
    budgets = Budgets(by_model={(t, "chat"): Budget(0.1, "month", hard=True)})
    cfg = config(budgets, models=models.with_local(chain))
    cap = budgets.caps(t, ["chat"])[0]
    async with workers(nats_url, cfg, n=1) as _:
        client = gateway_bus.GatewayServiceClient(bus, t)
        with pytest.raises(RemoteError) as failed:
            await client.requests(gateway_pb2.LlmRequest(request_id="f1", model="chat", prompt="hi", cache=BYPASS))
        assert failed.value.code != Code.CODE_RESOURCE_EXHAUSTED
        ledger = await BudgetLedger.open(bus, bucket=cfg.budget_bucket)
        assert await ledger.spent(cap) == (0.0, 0.0), "nothing spent, nothing left held"

        # The model's budget does not cap the tenant's other models.
        local = await client.requests(ask(1, 16))
        assert local.cost > 0
        assert await ledger.spent(cap) == (0.0, 0.0)

        # A call whose ceiling alone is over the cap never starts.
        with pytest.raises(RemoteError) as over:
            await client.requests(gateway_pb2.LlmRequest(
                request_id="f2", model="chat", prompt="hi", cache=BYPASS,
                parameters=gateway_pb2.LlmParameters(max_tokens=1_000_000)))
        assert over.value.code == Code.CODE_RESOURCE_EXHAUSTED
        assert f"hard budget {t}@chat/month ($0.1 per month)" in over.value.message
        assert "resets at" in over.value.message and "-01T00:00:00Z" in over.value.message


async def test_settle_replaces_the_hold_with_the_cost(bus: Bus) -> None:
    ledger = await BudgetLedger.open(bus, bucket=f"budgets_{uuid.uuid4().hex[:8]}")
    budgets = Budgets({"acme": Budget(1.0, "day", hard=True)})
    caps = budgets.caps("acme", [MODEL])
    held = await ledger.reserve(caps, 0.75, hold_s=60)
    assert isinstance(held, Reservation)
    refused = await ledger.reserve(caps, 0.5, hold_s=60)
    assert isinstance(refused, Refusal) and "$0 spent and $0.75 reserved" in refused.message()
    await ledger.settle(held, 0.25)
    assert await ledger.spent(caps[0]) == (0.25, 0.0)
    assert isinstance(await ledger.reserve(caps, 0.5, hold_s=60), Reservation)
