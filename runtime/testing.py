"""A pytest plugin: a real nats-server with JetStream per test session and a
connected Bus per test. Use it from a conftest.py:

    pytest_plugins = ["runtime.testing"]

    async def test_x(bus): ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from runtime.bus import Bus
from runtime.server import EmbeddedServer


@pytest.fixture(scope="session")
def nats_server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(name="aisdk-test") as server:
        yield server


@pytest.fixture
def nats_url(nats_server: EmbeddedServer) -> str:
    return nats_server.url


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    async with Bus(nats_url, name="test") as b:
        yield b
