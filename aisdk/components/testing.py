"""The pytest plugin of runtime.testing plus an embedded PostgreSQL:

    # conftest.py
    pytest_plugins = ["aisdk.components.testing"]

    async def test_x(bus, postgres_url): ...

`postgres_url` is a fresh, empty database per test on the embedded
PostgreSQL 18 with pgvector (the components extra ships it), dropped
afterwards; `open_database(component, url=postgres_url)` applies a
component's migrations there.

The server is a throwaway cluster of the test session, never a user's data:
the session points AISDK_PGDATA (for itself and every process it starts) at
a new folder under the project's state (`storage.session_cluster`), and
AISDK_STATE_HOME inside that folder (so an `aisdk server` a test starts keeps
its JetStream store there), the
cluster starts only for a test that asks for a database, and the folder is
deleted at the end. A session that is killed leaves its folder until the
next session of the project deletes it, server and `scratch_*` databases
with it.

It lives here, not in runtime.testing: the runtime is a library with no
PostgreSQL dependency and never imports the components.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from aisdk.components import storage
from aisdk.components.storage import temporary_database
from runtime.state import STATE_HOME_ENV

pytest_plugins = ["runtime.testing"]

_SESSION = pytest.StashKey[tuple[Path, dict[str, str | None]]]()


def pytest_configure(config: pytest.Config) -> None:
    pgdata = storage.session_cluster()
    # The state of everything else the session starts (`aisdk server`'s
    # JetStream store, a nested session's cluster) goes in its folder too.
    env = {storage.PGDATA_ENV: str(pgdata), STATE_HOME_ENV: str(pgdata.parent / "state")}
    config.stash[_SESSION] = (pgdata.parent, {name: os.environ.get(name) for name in env})
    os.environ.update(env)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SESSION not in config.stash:
        return
    folder, before = config.stash[_SESSION]
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    storage.remove_session(folder)


@pytest_asyncio.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with temporary_database() as url:
        yield url
