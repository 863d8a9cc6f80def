"""The agents service (`aisdk serve agents`): the memory service (agent.memory,
agent.memory.retrieve in queue group agent.memory), a tool executor
(agent.tools in queue group agent.tools, results also on agent.tool-results),
sessions (agent.sessions.* in queue group agent.sessions) and durable runs of
the agent loop with its approvals (agent.runs, agent.approvals in queue group
agent.runners). Its state is in PostgreSQL, so any number of them behave as
one, and a run whose process died is resumed by another."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ai.agent.v1 import agent_bus, agent_pb2

from aisdk.components.agents.durable import Runner
from aisdk.components.agents.executor import ToolRunner
from aisdk.components.agents.memory import MemoryStore
from aisdk.components.agents.rag_tool import builtin_tools
from aisdk.components.agents.registry import ToolRegistry
from aisdk.components.agents.settings import Settings
from aisdk.components.agents.sql import Pool, open_pool
from runtime.contract import Context
from runtime.errors import PlatformError
from runtime.telemetry import Telemetry

from aisdk.components.retention import Pruner

if TYPE_CHECKING:
    from runtime.bus import Bus


class AgentsService(agent_bus.AgentServiceHandler):
    def __init__(self, tools: ToolRegistry | None = None, *, settings: Settings | None = None,
                 database_url: str | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.registry = tools if tools is not None else builtin_tools(self.settings)
        self._database_url = database_url
        self._pool: Pool | None = None
        self._memory: MemoryStore | None = None
        self.runner: ToolRunner | None = None
        self.durable: Runner | None = None
        self._retention = Pruner("agents")

    async def start(self, bus: Bus) -> None:
        self._pool = await open_pool(self._database_url)
        tel = bus.telemetry if bus.telemetry is not None else Telemetry.disabled()
        self._memory = MemoryStore(self._pool, bus, tel, self.settings.embedding_model)
        self.runner = ToolRunner(self.registry, self._pool, bus, tel)
        self.durable = Runner(self._pool, bus, tel, self.registry, self.settings)
        await self._retention.start(self._pool)
        self.durable.start()

    async def stop(self) -> None:
        if self.durable is not None:
            await self.durable.stop()
        await self._retention.stop()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _started(self) -> tuple[MemoryStore, ToolRunner]:
        if self._memory is None or self.runner is None:
            raise PlatformError("the agents service is not started")
        return self._memory, self.runner

    async def memory(self, request: agent_pb2.MemoryItem, ctx: Context) -> None:
        await self._started()[0].store(request, ctx)

    async def memory_retrieve(self, request: agent_pb2.MemoryQuery, ctx: Context) -> agent_pb2.MemoryRecall:
        return await self._started()[0].retrieve(request, ctx)

    async def tools(self, request: agent_pb2.ToolExecutionRequest, ctx: Context) -> agent_pb2.ToolExecutionResult:
        return await self._started()[1](request, ctx)

    def _runs(self) -> Runner:
        if self.durable is None:
            raise PlatformError("the agents service is not started")
        return self.durable

    async def sessions_create(self, request: agent_pb2.SessionCreateRequest, ctx: Context) -> agent_pb2.Session:
        runs = self._runs()
        session, created = await runs.sessions.open(ctx.tenant_id, request)
        if created:
            runs.session_created(ctx.tenant_id, request.agent_id, session.session_id)
        return session

    async def sessions_list(self, request: agent_pb2.SessionListRequest, ctx: Context) -> agent_pb2.SessionList:
        return await self._runs().sessions.listing(ctx.tenant_id, request)

    async def sessions_show(self, request: agent_pb2.SessionRef, ctx: Context) -> agent_pb2.SessionDetail:
        return await self._runs().sessions.show(ctx.tenant_id, request)

    async def sessions_delete(self, request: agent_pb2.SessionRef, ctx: Context) -> agent_pb2.SessionDeleted:
        return await self._runs().sessions.delete(ctx.tenant_id, request)

    async def runs(self, request: agent_pb2.AgentRunRequest, ctx: Context) -> agent_pb2.AgentRunReply:
        return await self._runs().run(request, ctx)

    def runs_stream(self, request: agent_pb2.AgentRunRequest, ctx: Context) -> AsyncIterator[agent_pb2.AgentRunChunk]:
        return self._runs().run_stream(request, ctx)

    async def approvals(self, request: agent_pb2.ApprovalDecision, ctx: Context) -> agent_pb2.AgentRunReply:
        return await self._runs().decide(request, ctx)
