"""The reconnect policy: least-failed server first, doubling waits, a ceiling, jitter."""

from __future__ import annotations

from urllib.parse import urlparse

from nats.aio.client import Server

from runtime.reconnect import backoff


def servers(*reconnects: int) -> list[Server]:
    return [Server(uri=urlparse(f"nats://n{i}:4222"), reconnects=r) for i, r in enumerate(reconnects)]


def test_prefers_the_server_that_failed_least() -> None:
    policy = backoff(0.5, 10, jitter=lambda: 0.5)
    server, delay = policy(servers(3, 0, 1), {})
    assert server is not None and server.uri.hostname == "n1"
    assert delay == 0.5


def test_waits_double_per_failure_up_to_the_ceiling() -> None:
    policy = backoff(0.5, 10, jitter=lambda: 0.5)
    delays = [policy(servers(n), {})[1] for n in range(8)]
    assert delays == [0.5, 1, 2, 4, 8, 10, 10, 10]


def test_jitter_spreads_clients_within_a_quarter() -> None:
    low = backoff(1, 10, jitter=lambda: 0.0)(servers(2), {})[1]
    high = backoff(1, 10, jitter=lambda: 1.0)(servers(2), {})[1]
    assert (low, high) == (3.0, 5.0)
