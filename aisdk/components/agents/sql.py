"""The agent framework's PostgreSQL pool (migrations in
components/migrations/agents/)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

Pool = AsyncConnectionPool[psycopg.AsyncConnection[Any]]
COMPONENT = "agents"
# A tool call holds a connection while the tool runs (the lock that makes
# it run once): leave room for those beside the queue and the memories.
POOL_SIZE = 12


async def open_pool(url: str | None) -> Pool:
    from aisdk.components.storage import open_database

    return await open_database(COMPONENT, url=url, max_size=POOL_SIZE)
