"""A pytest plugin: a real nats-server with JetStream per test session and a
connected Bus per test. Use it from a conftest.py:

    pytest_plugins = ["runtime.testing"]

    async def test_x(bus): ...

Its async fixture is a pytest-asyncio fixture, so it works in either of
pytest-asyncio's modes; in strict mode (the default) the tests that use it
need `@pytest.mark.asyncio`, as every async test there does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

try:
    import pytest_asyncio
except ImportError as e:
    raise ImportError("runtime.testing needs pytest-asyncio: pip install pytest-asyncio") from e

from runtime.bus import Bus
from runtime.server import EmbeddedServer
from runtime.settings import BusSettings


@pytest.fixture(scope="session")
def nats_server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(name="aisdk-test") as server:
        yield server


@pytest.fixture
def nats_url(nats_server: EmbeddedServer) -> str:
    return nats_server.url


@pytest_asyncio.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    async with Bus(nats_url, BusSettings(name="test")) as b:
        yield b
