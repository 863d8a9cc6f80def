"""An agent on one tenant: addressed and broadcast messages, status, and
(optionally) work from the agent.tasks queue.

    async def answer(agent: Agent, message: AgentMessage) -> str | None:
        return f"got {message.content}"          # sent back to message.source_agent_id

    planner = await Agent("planner", "acme", on_message=answer).join(bus)
    await planner.send("writer", "draft the summary")
    await planner.broadcast("shutting down at noon")

An agent subscribes to agent.message in its own queue group `agent.<id>`, so
several instances of one agent share its messages, and every agent gets each
broadcast once. It handles the messages whose target is its id, and
broadcasts (no target) from other agents; the rest are for someone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ai.agent.v1 import agent_bus, agent_pb2
from opentelemetry.util.types import AttributeValue

from aisdk.components.agents.settings import Settings
from aisdk.components.agents.sql import Pool, open_pool
from aisdk.components.agents.tasks import TaskFunction, TaskQueue, TaskRunners, envelope_bytes
from runtime.contract import Context
from runtime.errors import PlatformError
from runtime.telemetry import Telemetry
from runtime.telemetry.names import ATTR, METRIC, SPAN

if TYPE_CHECKING:
    from runtime.bus import Bus

log = logging.getLogger("aisdk.agents")
State = agent_pb2.AgentState
MessageFunction = Callable[["Agent", agent_pb2.AgentMessage], Awaitable[str | None]]


def queue_group(agent_id: str) -> str:
    """The queue group of one agent's instances on agent.message."""
    return f"agent.{agent_id}"


class _TaskFeed(agent_bus.AgentServiceHandler):
    """The agent.tasks consumer of one agent: moves each task into the queue."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    async def tasks(self, request: agent_pb2.AgentTask, ctx: Context) -> None:
        await self._agent._enqueue(request, ctx)


class Agent(agent_bus.AgentServiceHandler):
    def __init__(
        self,
        agent_id: str,
        tenant_id: str,
        *,
        on_message: MessageFunction | None = None,
        tasks: Mapping[str, TaskFunction] | None = None,
        capabilities: Sequence[str] = (),
        task_concurrency: int = 1,
        database_url: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.agent_id = agent_id
        self.tenant_id = tenant_id
        self.settings = settings or Settings.from_env()
        self._on_message = on_message
        self._functions = dict(tasks or {})
        self.capabilities = list(capabilities) or sorted(self._functions)
        self._task_concurrency = task_concurrency
        self._database_url = database_url
        self._bus: Bus | None = None
        self._client: agent_bus.AgentServiceClient | None = None
        self._tel = Telemetry.disabled()
        self._pool: Pool | None = None
        self._queue: TaskQueue | None = None
        self._runners: TaskRunners | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._id_prefix = f"{agent_id}-{os.urandom(4).hex()}"
        self.state = State.AGENT_STATE_UNSPECIFIED
        self._handling = 0
        # Messages this agent handled, newest last (bounded).
        self.received: list[agent_pb2.AgentMessage] = []

    # -- lifecycle ----------------------------------------------------------

    async def join(self, bus: Bus) -> Agent:
        """Serve this agent's messages (and tasks, if it has task functions) on the bus."""
        await bus.serve(self, tenants=[self.tenant_id], queue_group=queue_group(self.agent_id))
        if self._functions:
            await bus.serve(_TaskFeed(self), tenants=[self.tenant_id])
        await self._set_state(State.AGENT_STATE_IDLE)
        self._heartbeat = asyncio.create_task(self._beat(), name=f"agent {self.agent_id} status")
        return self

    async def start(self, bus: Bus) -> None:
        self._bus = bus
        self._client = agent_bus.AgentServiceClient(bus, self.tenant_id)
        if bus.telemetry is not None:
            self._tel = bus.telemetry
        await self._set_state(State.AGENT_STATE_STARTING)
        if self._functions:
            self._pool = await open_pool(self._database_url)
            self._queue = TaskQueue(self._pool)
            durability = bus.durability(agent_bus.AGENT_TASKS)
            assert durability is not None, "agent.tasks is durable in the contract"
            self._runners = TaskRunners(
                bus, self._queue, self.agent_id, [self.tenant_id], self._functions, durability, self._tel,
                concurrency=self._task_concurrency, poll_s=self.settings.task_poll_s, on_busy=self._tasks_busy)

    async def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        await self._set_state(State.AGENT_STATE_DRAINING)
        if self._runners is not None:
            await self._runners.stop()
        if self._pool is not None:
            await self._pool.close()
        await self._set_state(State.AGENT_STATE_STOPPED)

    # -- status -------------------------------------------------------------

    @property
    def client(self) -> agent_bus.AgentServiceClient:
        if self._client is None:
            raise PlatformError(f"agent {self.agent_id!r} has not joined a bus: await agent.join(bus)")
        return self._client

    def _status(self) -> agent_pb2.AgentStatus:
        active = self._handling + (self._runners.active if self._runners is not None else 0)
        return agent_pb2.AgentStatus(agent_id=self.agent_id, state=self.state, active_tasks=active,
                                     capabilities=self.capabilities[:64])

    async def _set_state(self, state: int) -> None:
        if state == self.state:
            return
        self.state = state  # type: ignore[assignment]
        try:
            await self.client.status(self._status())
        except PlatformError as e:
            log.warning("agent %s could not broadcast its status: %s", self.agent_id, e)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.status_interval_s)
            with contextlib.suppress(PlatformError):
                await self.client.status(self._status())

    async def _tasks_busy(self, active: int) -> None:
        await self._refresh()

    async def _refresh(self) -> None:
        busy = self._handling > 0 or (self._runners is not None and self._runners.active > 0)
        if self.state in (State.AGENT_STATE_IDLE, State.AGENT_STATE_BUSY):
            await self._set_state(State.AGENT_STATE_BUSY if busy else State.AGENT_STATE_IDLE)

    # -- messages -----------------------------------------------------------

    def _new_id(self) -> str:
        return f"{self._id_prefix}-{next(self._ids)}"

    async def send(self, target_agent_id: str, content: str, *,
                   kind: int = agent_pb2.MESSAGE_KIND_TEXT, session_id: str = "", in_reply_to: str = "",
                   metadata: Mapping[str, str] | None = None) -> agent_pb2.AgentMessage:
        """Send to one agent (or to all with target ""); returns the message sent."""
        message = agent_pb2.AgentMessage(
            message_id=self._new_id(), source_agent_id=self.agent_id, target_agent_id=target_agent_id,
            content=content, kind=kind, session_id=session_id, in_reply_to=in_reply_to,  # type: ignore[arg-type]
            metadata=dict(metadata or {}))
        attrs: dict[str, AttributeValue] = {ATTR.TENANT_ID: self.tenant_id, "source.agent.id": self.agent_id,
                                            "target.agent.id": target_agent_id or "*"}
        with self._tel.span(SPAN.AGENT_MESSAGE_SEND, attrs):
            await self.client.message(message)
        self._tel.metrics.counter(METRIC.AGENT_MESSAGES_SENT).add(1, {ATTR.TENANT_ID: self.tenant_id})
        return message

    async def broadcast(self, content: str, **options: str) -> agent_pb2.AgentMessage:
        return await self.send("", content, **options)  # type: ignore[arg-type]

    async def reply(self, to: agent_pb2.AgentMessage, content: str) -> agent_pb2.AgentMessage:
        """Answer a message: back to its source, in its session."""
        return await self.send(to.source_agent_id, content, session_id=to.session_id, in_reply_to=to.message_id)

    def addressed_to_me(self, message: agent_pb2.AgentMessage) -> bool:
        if message.target_agent_id:
            return message.target_agent_id == self.agent_id
        return message.source_agent_id != self.agent_id

    async def message(self, request: agent_pb2.AgentMessage, ctx: Context) -> None:
        if not self.addressed_to_me(request):
            return
        attrs: dict[str, AttributeValue] = {ATTR.TENANT_ID: ctx.tenant_id, "agent.id": self.agent_id,
                                            "message.id": request.message_id}
        self._handling += 1
        await self._refresh()
        try:
            with self._tel.span(SPAN.AGENT_MESSAGE_RECEIVE, attrs):
                self.received = [*self.received[-999:], request]
                self._tel.metrics.counter(METRIC.AGENT_MESSAGES_RECEIVED).add(1, {ATTR.TENANT_ID: ctx.tenant_id})
                answer = await self._on_message(self, request) if self._on_message is not None else None
                if answer is not None:
                    await self.reply(request, answer)
        finally:
            self._handling -= 1
            await self._refresh()

    # -- tasks --------------------------------------------------------------

    async def submit(self, task_type: str, parameters: Mapping[str, Any] | None = None, *,
                     priority: int = agent_pb2.TASK_PRIORITY_NORMAL, task_id: str = "") -> agent_pb2.AgentTask:
        """Hand a task to the worker agents of the tenant; its TaskResult comes
        on agent.results with the same task_id."""
        task = agent_pb2.AgentTask(task_id=task_id or self._new_id(), agent_id=self.agent_id, task_type=task_type,
                                   priority=priority)  # type: ignore[arg-type]
        if parameters:
            task.parameters.update(dict(parameters))
        await self.client.tasks(task, message_id=f"task-{self.tenant_id}-{task.task_id}")
        self._tel.metrics.counter(METRIC.AGENT_TASKS_PUBLISHED).add(
            1, {ATTR.TENANT_ID: self.tenant_id, "agent_id": self.agent_id})
        return task

    async def _enqueue(self, task: agent_pb2.AgentTask, ctx: Context) -> None:
        assert self._queue is not None and self._runners is not None
        await self._queue.put(ctx.tenant_id, task, envelope_bytes(ctx))
        self._runners.wake()

    async def queued(self) -> dict[str, int]:
        """The tenant's tasks in the queue, by state."""
        if self._queue is None:
            raise PlatformError(f"agent {self.agent_id!r} takes no tasks")
        return await self._queue.counts(self.tenant_id)
