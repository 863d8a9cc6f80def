"""The agents service (`aisdk serve agents`): the memory service (agent.memory,
agent.memory.retrieve in queue group agent.memory) and a tool executor
(agent.tools in queue group agent.tools, results also on agent.tool-results).
Its state is in PostgreSQL, so any number of them behave as one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ai.agent.v1 import agent_bus, agent_pb2

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
        self._retention = Pruner("agents")

    async def start(self, bus: Bus) -> None:
        self._pool = await open_pool(self._database_url)
        tel = bus.telemetry if bus.telemetry is not None else Telemetry.disabled()
        self._memory = MemoryStore(self._pool, bus, tel, self.settings.embedding_model)
        self.runner = ToolRunner(self.registry, self._pool, bus, tel)
        await self._retention.start(self._pool)

    async def stop(self) -> None:
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
