"""Sessions: durable conversations in PostgreSQL (agent_sessions and
agent_session_turns), owned by a tenant and optionally a user.

A turn runs under the session's lock (a PostgreSQL advisory lock held on a
connection of its own), so two concurrent questions in one session never
interleave: the second reads the first's answer as history. A process that
dies lets its lock go with its connection."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from ai.agent.v1 import agent_pb2
from ai.envelope.v1 import envelope_pb2
from google.protobuf import timestamp_pb2

from aisdk.components.agents.sql import Pool
from runtime.errors import HandlerError

Code = envelope_pb2.Error
DEFAULT_LIST = 50
_COLUMNS = ("s.session_id, s.user_id, s.agent_id, s.memory_scope, s.created_at, s.updated_at, "
            "(SELECT count(*) FROM agent_session_turns t WHERE t.tenant_id = s.tenant_id "
            "AND t.session_id = s.session_id)")


def timestamp(at: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(at)
    return out


def _session(row: tuple[Any, ...]) -> agent_pb2.Session:
    return agent_pb2.Session(session_id=row[0], user_id=row[1], agent_id=row[2], memory_scope=row[3] or row[0],
                             created_at=timestamp(row[4]), updated_at=timestamp(row[5]), turns=int(row[6]))


def _owned(session: agent_pb2.Session, user_id: str) -> None:
    """A session of another user is not found: its existence is not told."""
    if user_id and session.user_id and session.user_id != user_id:
        raise HandlerError(Code.CODE_NOT_FOUND, f"no session {session.session_id!r} for user {user_id!r}")


class SessionStore:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def open(self, tenant: str, request: agent_pb2.SessionCreateRequest) -> tuple[agent_pb2.Session, bool]:
        """The session, created if new (True). An existing one is returned
        when it is the same user's."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO agent_sessions (tenant_id, session_id, user_id, agent_id, memory_scope) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (tenant_id, session_id) DO NOTHING",
                (tenant, request.session_id, request.user_id, request.agent_id, request.memory_scope))
            created = cur.rowcount == 1
        session = await self.get(tenant, request.session_id)
        if session is None:  # deleted between the two statements
            raise HandlerError(Code.CODE_UNAVAILABLE, f"session {request.session_id!r} was deleted meanwhile", True)
        _owned(session, request.user_id)
        return session, created

    async def get(self, tenant: str, session_id: str) -> agent_pb2.Session | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(f"SELECT {_COLUMNS} FROM agent_sessions s "
                                     "WHERE s.tenant_id = %s AND s.session_id = %s", (tenant, session_id))
            row = await cur.fetchone()
        return None if row is None else _session(row)

    async def require(self, tenant: str, ref: agent_pb2.SessionRef) -> agent_pb2.Session:
        session = await self.get(tenant, ref.session_id)
        if session is None:
            raise HandlerError(Code.CODE_NOT_FOUND, f"no session {ref.session_id!r} in tenant {tenant!r}")
        _owned(session, ref.user_id)
        return session

    async def listing(self, tenant: str, request: agent_pb2.SessionListRequest) -> agent_pb2.SessionList:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM agent_sessions s WHERE s.tenant_id = %s AND (%s = '' OR s.user_id = %s) "
                "ORDER BY s.updated_at DESC, s.session_id LIMIT %s",
                (tenant, request.user_id, request.user_id, request.limit or DEFAULT_LIST))
            rows = await cur.fetchall()
        return agent_pb2.SessionList(sessions=[_session(r) for r in rows])

    async def turns(self, tenant: str, session_id: str) -> list[agent_pb2.SessionTurn]:
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT turn FROM agent_session_turns WHERE tenant_id = %s AND session_id = %s "
                                     "ORDER BY number", (tenant, session_id))
            return [agent_pb2.SessionTurn.FromString(r[0]) for r in await cur.fetchall()]

    async def show(self, tenant: str, ref: agent_pb2.SessionRef) -> agent_pb2.SessionDetail:
        session = await self.require(tenant, ref)
        return agent_pb2.SessionDetail(session=session, turns=await self.turns(tenant, ref.session_id))

    async def delete(self, tenant: str, ref: agent_pb2.SessionRef) -> agent_pb2.SessionDeleted:
        """The session and its turns; its runs stay until retention."""
        session = await self.get(tenant, ref.session_id)
        if session is None:
            return agent_pb2.SessionDeleted(session_id=ref.session_id, deleted=False)
        _owned(session, ref.user_id)
        async with self._pool.connection() as conn:
            cur = await conn.execute("DELETE FROM agent_sessions WHERE tenant_id = %s AND session_id = %s",
                                     (tenant, ref.session_id))
        return agent_pb2.SessionDeleted(session_id=ref.session_id, deleted=cur.rowcount == 1)

    @contextlib.asynccontextmanager
    async def locked(self, tenant: str, session_id: str) -> AsyncIterator[None]:
        """Hold the session's turn lock (waits for the turn in progress)."""
        key = f"agent-session:{tenant}:{session_id}"
        async with self._pool.connection() as conn:
            await conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))
            try:
                yield
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))
