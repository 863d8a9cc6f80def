"""The pytest plugin of runtime.testing plus an embedded PostgreSQL:

    # conftest.py
    pytest_plugins = ["aisdk.components.testing"]

    async def test_x(bus, postgres_url): ...

`postgres_url` is a fresh, empty database per test on the embedded
PostgreSQL 18 with pgvector (the components extra ships it), dropped
afterwards; `open_database(component, url=postgres_url)` applies a
component's migrations there. The server starts only for a test that asks
for the fixture, and is reused by the next run (components.storage).

It lives here, not in runtime.testing: the runtime is a library with no
PostgreSQL dependency and never imports the components.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from aisdk.components.storage import temporary_database

pytest_plugins = ["runtime.testing"]


@pytest_asyncio.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with temporary_database() as url:
        yield url
