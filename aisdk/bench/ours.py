"""Our runtime as an application uses it: generated typed clients on one Bus,
generated handler bases served by others, validation on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ai.agent.v1 import agent_bus, agent_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from aisdk.bench import payloads
from aisdk.bench.measure import Messaging, Sink
from aisdk.bench.tracing import NoopExporter
from runtime.bus import Bus
from runtime.contract import Context, ServiceHandler
from runtime.settings import BusSettings


class _Reporting:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink


class _Agents(_Reporting, agent_bus.AgentServiceHandler):
    async def message(self, request: agent_pb2.AgentMessage, ctx: Context) -> None:
        self.sink.delivered()


class _Tasks(_Reporting, agent_bus.AgentServiceHandler):
    async def tasks(self, request: agent_pb2.AgentTask, ctx: Context) -> None:
        self.sink.delivered()


class _Gateway(_Reporting, gateway_bus.GatewayServiceHandler):
    async def requests(self, request: gateway_pb2.LlmRequest, ctx: Context) -> gateway_pb2.LlmResponse:
        return payloads.llm_response(request)


HandlerFactory = Callable[[Sink], ServiceHandler]
MESSAGING: tuple[HandlerFactory, ...] = (_Agents, _Gateway)
GATEWAY: tuple[HandlerFactory, ...] = (_Gateway,)


class Ours(Messaging):
    """A client Bus and `workers` serving Buses, each its own connection.

    Every configuration has its own tenant, so their subscriptions never see
    each other's traffic although they share one server.
    """

    def __init__(
        self,
        name: str,
        url: str,
        tenant: str,
        handlers: tuple[HandlerFactory, ...],
        *,
        workers: int = 1,
        concurrency: int | None = None,
        telemetry: tuple[dict[str, Any], NoopExporter] | None = None,
    ) -> None:
        super().__init__(name)
        self.url = url
        self.tenant = tenant
        self.handlers = handlers
        self.workers = workers
        self.concurrency = concurrency
        self.bus_options, self.exporter = telemetry or ({}, None)
        self.buses: list[Bus] = []
        self.message = payloads.agent_message()
        self.task = payloads.agent_task()
        self.llm_request = payloads.llm_request()

    async def _bus(self, role: str) -> Bus:
        bus = Bus(self.url, BusSettings(name=f"bench-{self.name}-{role}"), **self.bus_options)
        self.buses.append(bus)
        return await bus.connect()

    async def start(self) -> None:
        for i in range(self.workers):
            bus = await self._bus(f"worker{i}")
            for factory in self.handlers:
                await bus.serve(factory(self.sink), tenants=[self.tenant], concurrency=self.concurrency)
        client = await self._bus("client")
        self.agents = agent_bus.AgentServiceClient(client, self.tenant)
        self.gateway = gateway_bus.GatewayServiceClient(client, self.tenant)
        for bus in self.buses:
            await bus.nc.flush()

    async def stop(self) -> None:
        for bus in self.buses:
            await bus.close()
        tel = self.bus_options.get("telemetry")
        if tel is not None:
            tel.shutdown()

    async def publish(self) -> None:
        await self.agents.message(self.message)

    async def request(self) -> None:
        await self.gateway.requests(self.llm_request)


class OursDurable(Ours):
    """agent.tasks, a durable work queue: JetStream publish with its ack, a
    pull consumer, an ack per handled message."""

    def __init__(self, name: str, url: str, tenant: str, *, concurrency: int | None = None) -> None:
        super().__init__(name, url, tenant, (_Tasks,), concurrency=concurrency)

    async def publish(self) -> None:
        await self.agents.tasks(self.task)
