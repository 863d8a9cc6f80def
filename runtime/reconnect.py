"""Reconnect with exponential backoff and jitter.

nats-py waits a fixed `reconnect_time_wait` between attempts; against a
cluster that is restarting, hundreds of clients retrying in lockstep make it
worse. This policy prefers the server that failed least, doubles the wait
with each failure of that server up to a ceiling, and spreads clients with
jitter.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from nats.aio.client import Server

Policy = Callable[[list[Server], dict[str, Any]], tuple[Server | None, float]]
MAX_DOUBLINGS = 16


def backoff(initial: float, maximum: float, jitter: Callable[[], float] = random.random) -> Policy:
    """A nats-py reconnect_to_server_handler: (server to try, seconds to wait first)."""

    def choose(servers: Sequence[Server], info: dict[str, Any]) -> tuple[Server | None, float]:
        if not servers:
            return None, initial
        server = min(servers, key=lambda s: s.reconnects)
        delay = min(initial * 2 ** min(server.reconnects, MAX_DOUBLINGS), maximum)
        return server, delay * (0.75 + 0.5 * jitter())

    return choose
