"""The SQL of durable runs (agent_runs, agent_run_steps).

A run is claimed with a lease; its process renews the lease while it works,
and a run whose lease lapsed (its process died) is claimed again by anyone
who looks: the attempt goes up by one. Every write of a run - a checkpoint,
its end, its pause - is fenced by the attempt that claimed it, so a process
that lost its claim (a pause past its lease) changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ai.agent.v1 import agent_pb2

from aisdk.components.agents.sql import Pool

Kind = Literal["model", "tool", "decision"]
RunRow = tuple[str, bool, bytes | None]  # state, lease lapsed, reply
# The agent a request without one runs as.
DEFAULT_AGENT_ID = "assistant"


@dataclass(frozen=True, slots=True)
class Claim:
    tenant: str
    run_id: str
    attempt: int
    request: agent_pb2.AgentRunRequest
    standalone: str

    @property
    def agent_id(self) -> str:
        return agent_of(self.request)


def agent_of(request: agent_pb2.AgentRunRequest) -> str:
    return request.agent_id or DEFAULT_AGENT_ID


@dataclass(frozen=True, slots=True)
class Step:
    seq: int
    kind: Kind
    payload: bytes


_FENCE = "tenant_id = %(tenant)s AND run_id = %(run)s AND attempts = %(attempt)s AND state = 'running'"


class RunStore:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def create(self, tenant: str, request: agent_pb2.AgentRunRequest, agent_id: str,
                     lease_s: float) -> Claim | None:
        """Claim a new run; None if the run id exists (attach to it instead)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO agent_runs (tenant_id, run_id, request, session_id, agent_id, lease_until) "
                "VALUES (%s, %s, %s, %s, %s, clock_timestamp() + make_interval(secs => %s)) "
                "ON CONFLICT (tenant_id, run_id) DO NOTHING",
                (tenant, request.run_id, request.SerializeToString(), request.session_id, agent_id, lease_s))
            if cur.rowcount != 1:
                return None
        return Claim(tenant, request.run_id, 1, request, "")

    async def row(self, tenant: str, run_id: str) -> RunRow | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT state, coalesce(lease_until < clock_timestamp(), false), reply FROM agent_runs "
                "WHERE tenant_id = %s AND run_id = %s", (tenant, run_id))
            row = await cur.fetchone()
        return None if row is None else (row[0], bool(row[1]), bytes(row[2]) if row[2] else None)

    async def claim(self, tenant: str, run_id: str, lease_s: float, *, resume: bool = False) -> Claim | None:
        """Claim a running run whose lease lapsed, or (resume) a paused run
        whose approval was decided; None if someone else holds it."""
        lapsed = ("state = 'awaiting_approval'" if resume
                  else "state = 'running' AND lease_until < clock_timestamp()")
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE agent_runs SET state = 'running', attempts = attempts + 1, reply = NULL, "
                "lease_until = clock_timestamp() + make_interval(secs => %s) "
                f"WHERE tenant_id = %s AND run_id = %s AND {lapsed} RETURNING attempts, request, standalone",
                (lease_s, tenant, run_id))
            row = await cur.fetchone()
        if row is None:
            return None
        return Claim(tenant, run_id, int(row[0]), agent_pb2.AgentRunRequest.FromString(row[1]), row[2])

    async def lapsed(self, limit: int = 10) -> list[tuple[str, str]]:
        """(tenant, run id) of running runs whose lease lapsed: their process died."""
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT tenant_id, run_id FROM agent_runs WHERE state = 'running' AND "
                                     "lease_until < clock_timestamp() ORDER BY lease_until LIMIT %s", (limit,))
            return [(r[0], r[1]) for r in await cur.fetchall()]

    async def paused(self, tenant: str) -> list[tuple[str, str]]:
        """(agent id, run id) of the tenant's runs awaiting approval."""
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT agent_id, run_id FROM agent_runs WHERE tenant_id = %s AND "
                                     "state = 'awaiting_approval' ORDER BY started_at", (tenant,))
            return [(r[0], r[1]) for r in await cur.fetchall()]

    async def paused_agents(self) -> list[tuple[str, str]]:
        """(tenant, agent id) of every agent with a run awaiting approval."""
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT DISTINCT tenant_id, agent_id FROM agent_runs "
                                     "WHERE state = 'awaiting_approval' ORDER BY 1, 2 LIMIT 1000")
            return [(r[0], r[1]) for r in await cur.fetchall()]

    async def session_paused(self, tenant: str, session_id: str) -> str | None:
        """A run of the session that awaits approval."""
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT run_id FROM agent_runs WHERE tenant_id = %s AND session_id = %s AND "
                                     "state = 'awaiting_approval' LIMIT 1", (tenant, session_id))
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    def _fenced(self, c: Claim) -> dict[str, object]:
        return {"tenant": c.tenant, "run": c.run_id, "attempt": c.attempt}

    async def renew(self, c: Claim, lease_s: float) -> bool:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"UPDATE agent_runs SET lease_until = clock_timestamp() + make_interval(secs => %(lease)s) "
                f"WHERE {_FENCE}", {**self._fenced(c), "lease": lease_s})
            return cur.rowcount == 1

    async def set_standalone(self, c: Claim, question: str) -> bool:
        async with self._pool.connection() as conn:
            cur = await conn.execute(f"UPDATE agent_runs SET standalone = %(q)s WHERE {_FENCE}",
                                     {**self._fenced(c), "q": question})
            return cur.rowcount == 1

    async def steps(self, tenant: str, run_id: str) -> list[Step]:
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT seq, kind, payload FROM agent_run_steps WHERE tenant_id = %s AND "
                                     "run_id = %s ORDER BY seq", (tenant, run_id))
            return [Step(int(r[0]), r[1], bytes(r[2])) for r in await cur.fetchall()]

    async def checkpoint(self, c: Claim, seq: int, kind: Kind, payload: bytes) -> bool:
        """Record one step; False if the claim is gone (nothing is written)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO agent_run_steps (tenant_id, run_id, seq, kind, payload) "
                f"SELECT %(tenant)s, %(run)s, %(seq)s, %(kind)s, %(payload)s WHERE EXISTS "
                f"(SELECT 1 FROM agent_runs WHERE {_FENCE} FOR UPDATE) ON CONFLICT DO NOTHING",
                {**self._fenced(c), "seq": seq, "kind": kind, "payload": payload})
            return cur.rowcount == 1

    async def decide(self, tenant: str, run_id: str, seq: int, decision: agent_pb2.ApprovalDecision) -> bool:
        """Record a decision on a paused run; False if it is not paused, or decided already."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO agent_run_steps (tenant_id, run_id, seq, kind, payload) "
                "SELECT %s, %s, %s, 'decision', %s WHERE EXISTS (SELECT 1 FROM agent_runs WHERE tenant_id = %s "
                "AND run_id = %s AND state = 'awaiting_approval' FOR UPDATE) ON CONFLICT DO NOTHING",
                (tenant, run_id, seq, decision.SerializeToString(), tenant, run_id))
            return cur.rowcount == 1

    async def pause(self, c: Claim, reply: agent_pb2.AgentRunReply) -> bool:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"UPDATE agent_runs SET state = 'awaiting_approval', lease_until = NULL, reply = %(reply)s "
                f"WHERE {_FENCE}", {**self._fenced(c), "reply": reply.SerializeToString()})
            return cur.rowcount == 1

    async def finish(self, c: Claim, reply: agent_pb2.AgentRunReply, turn: agent_pb2.SessionTurn | None) -> bool:
        """End the run and, in the same transaction, append its session turn
        (numbered here: the session's lock is held)."""
        state = "succeeded" if reply.state == agent_pb2.RUN_STATE_SUCCEEDED else "failed"
        async with self._pool.connection() as conn, conn.transaction():
            if turn is not None and c.request.session_id:
                cur = await conn.execute(
                    "SELECT coalesce(max(number), 0) + 1 FROM agent_session_turns WHERE tenant_id = %s AND "
                    "session_id = %s", (c.tenant, c.request.session_id))
                row = await cur.fetchone()
                turn.number = reply.turn = int(row[0]) if row else 1
            cur = await conn.execute(
                f"UPDATE agent_runs SET state = %(state)s, lease_until = NULL, reply = %(reply)s, "
                f"finished_at = clock_timestamp() WHERE {_FENCE}",
                {**self._fenced(c), "state": state, "reply": reply.SerializeToString()})
            if cur.rowcount != 1:
                return False
            if turn is not None and c.request.session_id:
                turn.finished_at.GetCurrentTime()
                await conn.execute(
                    "INSERT INTO agent_session_turns (tenant_id, session_id, number, turn) "
                    "SELECT %s, %s, %s, %s WHERE EXISTS (SELECT 1 FROM agent_sessions WHERE tenant_id = %s AND "
                    "session_id = %s)",
                    (c.tenant, c.request.session_id, turn.number, turn.SerializeToString(), c.tenant,
                     c.request.session_id))
                await conn.execute("UPDATE agent_sessions SET updated_at = clock_timestamp() WHERE tenant_id = %s "
                                   "AND session_id = %s", (c.tenant, c.request.session_id))
        return True
