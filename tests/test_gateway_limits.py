"""Rate limits shared by two gateway workers (two connections) through one
JetStream KV bucket on a real nats-server. The clock is given, so a window
never ends in the middle of a test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ai.gateway.v1 import gateway_bus, gateway_pb2
from aisdk.components.gateway.ratelimit import Limits, LimitSet, RateLimiter
from runtime import Bus
from runtime.settings import BusSettings

MODEL = "local/extractive"
HOUR_START = 1_800_000_000.0  # a multiple of 3600


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def bus2(nats_url: str) -> AsyncIterator[Bus]:
    async with Bus(nats_url, BusSettings(name="worker-2")) as b:
        yield b


async def two_workers(bus: Bus, bus2: Bus, limits: Limits, clock: Clock) -> tuple[RateLimiter, RateLimiter]:
    bucket = f"rl_{uuid.uuid4().hex[:8]}"
    w1, w2 = await asyncio.gather(RateLimiter.open(bus, limits, bucket=bucket, clock=clock),
                                  RateLimiter.open(bus2, limits, bucket=bucket, clock=clock))
    return w1, w2


async def test_exactly_n_of_many_concurrent_requests_are_admitted_across_workers(bus: Bus, bus2: Bus) -> None:
    n, extra = 10, 14
    clock = Clock(HOUR_START + 30)
    w1, w2 = await two_workers(bus, bus2, Limits(LimitSet(requests_per_minute=n)), clock)
    decisions = await asyncio.gather(*(w.acquire("acme", MODEL, 20) for _ in range((n + extra) // 2) for w in (w1, w2)))
    admitted = [d for d in decisions if d.allowed]
    refused = [d for d in decisions if not d.allowed]
    assert len(admitted) == n and len(refused) == extra
    assert sorted(d.current for d in admitted) == list(range(1, n + 1)), "each admission counted once"
    assert {(d.scope, d.window_s, d.limit, d.current, d.retry_after_s) for d in refused} == {("requests", 60, n, n, 30.0)}

    # Another tenant, and another model of the same tenant, have their own counts.
    assert (await w1.acquire("globex", MODEL, 20)).allowed
    assert (await w2.acquire("acme", "local/wordllama", 20)).allowed
    # The next minute admits again; a restarted worker knows the counts.
    clock.now += 30
    w3 = RateLimiter(w1.bucket, w1.limits, clock)
    assert (await w3.acquire("acme", MODEL, 20)).current == 1


async def test_token_limits_and_usage_corrections(bus: Bus, bus2: Bus) -> None:
    clock = Clock(HOUR_START)
    w1, w2 = await two_workers(bus, bus2, Limits(LimitSet(tokens_per_minute=100)), clock)
    first = await w1.acquire("acme", MODEL, 60)
    assert first.allowed and (first.scope, first.current, first.limit) == ("tokens", 60, 100)
    over = await w2.acquire("acme", MODEL, 50)
    assert not over.allowed and (over.scope, over.current, over.retry_after_s) == ("tokens", 60, 60.0)
    assert (await w2.acquire("acme", MODEL, 40)).current == 100, "a refused request counted nothing"
    await w1.add_tokens("acme", MODEL, -30)  # the calls used fewer tokens than expected
    assert (await w2.acquire("acme", MODEL, 30)).allowed
    await w2.add_tokens("acme", MODEL, 5)
    d = await w1.acquire("acme", MODEL, 1)
    assert not d.allowed and d.current == 105


async def test_the_hourly_limit_holds_across_minutes(bus: Bus, bus2: Bus) -> None:
    clock = Clock(HOUR_START + 600)
    w1, w2 = await two_workers(bus, bus2, Limits(LimitSet(requests_per_minute=5, requests_per_hour=7)), clock)
    assert [(await w1.acquire("acme", MODEL, 1)).allowed for _ in range(6)] == [True] * 5 + [False]
    clock.now += 60
    results = [await w2.acquire("acme", MODEL, 1) for _ in range(3)]
    assert [r.allowed for r in results] == [True, True, False]
    refused = results[-1]
    assert (refused.window_s, refused.limit, refused.current) == (3600, 7, 7)
    assert refused.retry_after_s == 3600 - 660, "retry when the hour ends, not the minute"
    # The admitted decision reports the limit closest to being reached.
    assert (results[1].window_s, results[1].current) == (3600, 7)


async def test_a_refusal_is_a_valid_rate_limit_event(bus: Bus, bus2: Bus) -> None:
    clock = Clock(HOUR_START + 45.5)
    w1, _ = await two_workers(bus, bus2, Limits(LimitSet(requests_per_minute=1)), clock)
    await w1.acquire("acme", MODEL, 0)
    event = (await w1.acquire("acme", MODEL, 0)).event(MODEL)
    assert gateway_bus.validate_rate_limit_event(event) == []
    assert event.rejected and event.scope == gateway_pb2.RATE_LIMIT_SCOPE_REQUESTS
    assert (event.limit, event.current, event.window.seconds) == (1, 1, 60)
    assert event.retry_after.ToNanoseconds() == 14_500_000_000


async def test_no_limit_admits_everything(bus: Bus, bus2: Bus) -> None:
    w1, _ = await two_workers(bus, bus2, Limits(LimitSet(requests_per_minute=0)), Clock(HOUR_START))
    assert all([(await w1.acquire("acme", MODEL, 10**9)).allowed for _ in range(3)])
    with pytest.raises(ValueError, match="tenant id"):
        await w1.acquire("acme.*", MODEL, 1)
    with pytest.raises(ValueError, match="tokens"):
        await w1.acquire("acme", MODEL, -1)


def test_limits_resolve_most_specific_first() -> None:
    limits = Limits.from_mapping({
        "requests_per_minute": 60, "tokens_per_hour": 1000,
        "models": {MODEL: {"tokens_per_hour": 500}},
        "tenants": {"acme": {"requests_per_minute": 600, "models": {MODEL: {"requests_per_minute": 10}}}},
    })
    assert limits.resolve("globex", "gpt-4o") == LimitSet(requests_per_minute=60, tokens_per_hour=1000)
    assert limits.resolve("globex", MODEL) == LimitSet(requests_per_minute=60, tokens_per_hour=500)
    assert limits.resolve("acme", "gpt-4o") == LimitSet(requests_per_minute=600, tokens_per_hour=1000)
    assert limits.resolve("acme", MODEL) == LimitSet(requests_per_minute=10, tokens_per_hour=500)


def test_limits_from_a_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "limits.toml"
    path.write_text('requests_per_minute = 60\n[tenants.acme]\nrequests_per_hour = 5000\n'
                    '[tenants.acme.models."gpt-4o"]\ntokens_per_minute = 9000\n')
    limits = Limits.from_env({"AISDK_GATEWAY_LIMITS": str(path), "AISDK_GATEWAY_TOKENS_PER_MINUTE": "20000"})
    assert limits.resolve("acme", "gpt-4o") == LimitSet(60, 5000, 9000, None)
    assert limits.resolve("acme", "other") == LimitSet(60, 5000, 20000, None)
    assert Limits.from_env({}) == Limits()


@pytest.mark.parametrize(("data", "message"), [
    ({"requests_per_second": 1}, "unknown limit requests_per_second"),
    ({"requests_per_minute": -1}, r"limits.requests_per_minute must be a whole number"),
    ({"tokens_per_hour": 1.5}, "must be a whole number"),
    ({"tenants": {"acme": {"models": {"m": {"requests_per_hour": "10"}}}}}, r"limits.tenants.acme.models.m.requests_per_hour"),
    ({"tenants": {"a.b": {}}}, "tenant id"),
    ({"models": ["m"]}, "limits.models must be a table"),
])
def test_bad_limits_are_refused_with_where(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Limits.from_mapping(data)


def test_bad_environment_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="AISDK_GATEWAY_REQUESTS_PER_MINUTE='ten'"):
        Limits.from_env({"AISDK_GATEWAY_REQUESTS_PER_MINUTE": "ten"})
    bad = tmp_path / "bad.toml"
    bad.write_text("requests_per_minute = [")
    with pytest.raises(ValueError, match="AISDK_GATEWAY_LIMITS"):
        Limits.from_env({"AISDK_GATEWAY_LIMITS": str(bad)})
    with pytest.raises(ValueError, match="AISDK_GATEWAY_LIMITS"):
        Limits.from_env({"AISDK_GATEWAY_LIMITS": str(tmp_path / "missing.toml")})
