"""Circuit breakers per deployment and provider health. The clock is given,
so the cool-down never depends on how fast the machine runs; the health
events go over a real nats-server to a second connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ai.gateway.v1 import gateway_bus, gateway_pb2
from aisdk.components.gateway.breaker import BreakerConfig, BreakerState, CircuitBreaker, HealthTracker
from runtime import Bus, Context
from runtime.settings import BusSettings

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
PROBE = "probe"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tracked(config: BreakerConfig) -> tuple[HealthTracker, Clock, list[tuple[str, str, str]]]:
    clock = Clock()
    changes: list[tuple[str, str, str]] = []
    tracker = HealthTracker(config, clock=clock,
                            on_change=lambda b, old, new: changes.append((b.deployment, old, new)))
    return tracker, clock, changes


def test_opens_after_n_consecutive_failures() -> None:
    tracker, _, changes = tracked(BreakerConfig(failure_threshold=3, reset_timeout_s=30))
    b = tracker.breaker("openai/gpt-4o")
    for _ in range(2):
        b.record_failure()
    b.record_success(0.2)  # a success breaks the run
    for _ in range(2):
        b.record_failure()
    assert b.state == "closed" and b.allow() and changes == []
    b.record_failure()
    assert b.state is OPEN and not b.allow()
    assert changes == [("openai/gpt-4o", CLOSED, OPEN)]
    assert tracker.breaker("local/extractive").allow(), "one breaker per deployment"


def test_probes_half_open_then_closes_or_reopens() -> None:
    tracker, clock, changes = tracked(BreakerConfig(failure_threshold=1, reset_timeout_s=30))
    b = tracker.breaker("d1")
    b.record_failure()
    clock.now += 29.9
    assert not b.allow(), "still cooling down"
    clock.now += 0.1
    assert b.allow(), "the probe"
    assert b.state is HALF_OPEN and not b.allow(), "one probe at a time"
    b.record_failure()  # the probe failed: open for another period
    assert b.state is OPEN and not b.allow()
    clock.now += 30
    assert b.allow()
    b.record_success(0.1)
    assert b.state is CLOSED and b.allow() and b.allow()
    assert changes == [("d1", CLOSED, OPEN), ("d1", OPEN, HALF_OPEN), ("d1", HALF_OPEN, OPEN),
                       ("d1", OPEN, HALF_OPEN), ("d1", HALF_OPEN, CLOSED)]


def test_a_lost_probe_is_replaced_and_late_successes_do_not_close() -> None:
    clock = Clock()
    b = CircuitBreaker("d1", failure_threshold=2, reset_timeout_s=10, clock=clock)
    assert b.allow()  # a call starts while closed...
    b.record_failure()
    b.record_failure()
    b.record_success(5.0)  # ...and succeeds after the breaker opened
    assert b.state is OPEN
    clock.now += 10
    assert b.allow() and not b.allow()
    clock.now += 10  # the probe never reported back
    assert b.allow()


def test_error_rate_and_latency_over_the_window() -> None:
    tracker, clock, _ = tracked(BreakerConfig(failure_threshold=50, window_s=60, degraded_error_rate=0.2))
    b = tracker.breaker("d1")
    for i in range(1, 21):
        b.record_success(i / 100)  # 10 ms .. 200 ms
    assert tracker.error_rate("d1") == 0.0
    assert tracker.latency_p95("d1") == pytest.approx(0.19)
    assert tracker.health("d1").state == gateway_pb2.HEALTH_STATE_HEALTHY
    for _ in range(5):
        b.record_failure()
    h = tracker.health("d1")
    assert h.error_rate == pytest.approx(0.2) and h.state == gateway_pb2.HEALTH_STATE_DEGRADED
    assert gateway_bus.validate_provider_health(h) == []
    assert h.latency_p95.ToNanoseconds() == 190_000_000 and h.provider == "d1"
    clock.now += 61  # everything left the window
    assert tracker.error_rate("d1") == 0.0 and tracker.latency_p95("d1") == 0.0
    assert [r.provider for r in tracker.report()] == ["d1"]


def test_configuration_from_the_environment() -> None:
    c = BreakerConfig.from_env({"AISDK_GATEWAY_BREAKER_FAILURES": "3", "AISDK_GATEWAY_BREAKER_RESET_S": "5"})
    assert (c.failure_threshold, c.reset_timeout_s) == (3, 5.0)
    assert BreakerConfig.from_env({}) == BreakerConfig()
    for env, message in (({"AISDK_GATEWAY_BREAKER_FAILURES": "2.5"}, "whole number"),
                         ({"AISDK_GATEWAY_BREAKER_RESET_S": "soon"}, "not a number"),
                         ({"AISDK_GATEWAY_BREAKER_FAILURES": "0"}, "at least 1"),
                         ({"AISDK_GATEWAY_HEALTH_DEGRADED_ERROR_RATE": "2"}, "degraded_error_rate")):
        with pytest.raises(ValueError, match=message):
            BreakerConfig.from_env(env)


class HealthMonitor(gateway_bus.GatewayServiceHandler):
    def __init__(self) -> None:
        self.events: asyncio.Queue[gateway_pb2.ProviderHealth] = asyncio.Queue()
        self.live = asyncio.Event()

    async def health(self, request: gateway_pb2.ProviderHealth, ctx: Context) -> None:
        if request.provider == PROBE:
            self.live.set()
        else:
            self.events.put_nowait(request)

    async def wait_live(self, client: gateway_bus.GatewayServiceClient) -> None:
        """Publish probes until one arrives: under load, a subscription made on
        another connection can take effect after its flush returns."""
        for _ in range(100):
            await client.health(gateway_pb2.ProviderHealth(provider=PROBE, state=gateway_pb2.HEALTH_STATE_HEALTHY))
            try:
                await asyncio.wait_for(self.live.wait(), 0.1)
                return
            except TimeoutError:
                pass
        raise AssertionError("the monitor never received a probe")


@pytest.fixture
async def monitor_bus(nats_url: str) -> AsyncIterator[Bus]:
    async with Bus(nats_url, BusSettings(name="monitor")) as b:
        yield b


async def test_every_state_change_is_a_health_event(bus: Bus, monitor_bus: Bus) -> None:
    monitor = HealthMonitor()
    await monitor_bus.serve(monitor, tenants=["acme"])
    client = gateway_bus.GatewayServiceClient(bus, "acme")
    await monitor.wait_live(client)
    outbox: list[gateway_pb2.ProviderHealth] = []
    clock = Clock()
    # The callback is synchronous: it builds the event, and the caller publishes it.
    tracker = HealthTracker(BreakerConfig(failure_threshold=2, reset_timeout_s=30, degraded_error_rate=0.9), clock=clock,
                            on_change=lambda b, old, new: outbox.append(tracker.health(b.deployment)))
    b = tracker.breaker("openai/gpt-4o")
    b.record_success(0.3)
    b.record_failure()
    b.record_failure()
    clock.now += 30
    assert b.allow()
    b.record_success(0.1)
    for event in outbox:
        await client.health(event)
    await bus.flush()
    received = [await asyncio.wait_for(monitor.events.get(), 10) for _ in range(3)]
    assert [(e.provider, e.state) for e in received] == [
        ("openai/gpt-4o", gateway_pb2.HEALTH_STATE_UNHEALTHY),
        ("openai/gpt-4o", gateway_pb2.HEALTH_STATE_DEGRADED),
        ("openai/gpt-4o", gateway_pb2.HEALTH_STATE_HEALTHY),
    ]
    assert received[0].error_rate == pytest.approx(2 / 3)
    assert received[0].latency_p95.ToNanoseconds() == 300_000_000
