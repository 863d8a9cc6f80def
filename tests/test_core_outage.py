"""In-flight work when the connection goes away: an ack or a reply that cannot
be sent is counted and logged, never lost silently, and the subscriber or
durable consumer goes on with the next messages."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import nats.errors
import pytest

from ai.agent.v1 import agent_bus, agent_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from runtime.bus import Bus
from runtime.contract import Context, Durability
from runtime.server import EmbeddedServer
from runtime.settings import BusSettings
from tests.support import llm_request, until

FAST = {"agent.tasks": Durability("work_queue", 5, 1000, (50,), 60_000, 0)}
TENANT = "acme"


def task(task_id: str) -> agent_pb2.AgentTask:
    return agent_pb2.AgentTask(task_id=task_id, agent_id="manager", task_type="summarize")


class Held(agent_bus.AgentServiceHandler):
    """Holds the first delivery of "first" until released."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.done: list[tuple[str, int]] = []

    async def tasks(self, request: agent_pb2.AgentTask, ctx: Context) -> None:
        if request.task_id == "first" and ctx.attempt == 1:
            self.started.set()
            await self.release.wait()
        self.done.append((request.task_id, ctx.attempt))


async def publish(url: str, task_id: str) -> None:
    async with Bus(url, BusSettings(name="publisher", durability_overrides=FAST)) as pub:
        await agent_bus.AgentServiceClient(pub, TENANT).tasks(task(task_id))


async def lose_server_and_fill_buffer(server: EmbeddedServer, bus: Bus) -> None:
    """The server goes away and the client's outbound buffer fills up: what
    the bus sends next cannot be buffered."""
    server.stop()
    await until(lambda: not bus.nc.is_connected)
    with pytest.raises(nats.errors.OutboundBufferLimitError):
        for _ in range(10_000):
            await bus.nc.publish("filler", b"")


async def test_an_ack_into_a_full_buffer_does_not_stop_consumption(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Its own server, with a store that survives a restart.
    server = EmbeddedServer(store_dir=str(tmp_path / "js")).start()
    settings = BusSettings(name="worker", durability_overrides=FAST, outbound_buffer_bytes=512,
                           reconnect_time_wait=0.05, max_reconnect_wait=0.2)
    handler = Held()
    try:
        async with Bus(server.url, settings) as worker:
            service = await worker.serve(handler, tenants=[TENANT])
            [endpoint] = service.endpoints
            await publish(server.url, "first")
            await asyncio.wait_for(handler.started.wait(), 10)

            # While the handler works, its ack becomes impossible to send.
            await lose_server_and_fill_buffer(server, worker)
            with caplog.at_level(logging.ERROR, logger="aisdk.jetstream"):
                handler.release.set()
                await until(lambda: endpoint.stats.internal_errors == 1)
            assert any("not settled" in r.getMessage() and f"agent.tasks.{TENANT}" in r.getMessage()
                       for r in caplog.records)

            server.start()
            await until(lambda: worker.nc.is_connected)
            await publish(server.url, "second")
            # The consumer lives on: the next message is handled, and the one
            # whose ack was lost comes back after its ack wait.
            await until(lambda: ("second", 1) in handler.done and ("first", 2) in handler.done, timeout=20)
            assert handler.done.count(("first", 1)) == 1
    finally:
        server.stop()


class HeldGateway(gateway_bus.GatewayServiceHandler):
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.seen: list[str] = []

    async def requests(self, request: gateway_pb2.LlmRequest, ctx: Context) -> gateway_pb2.LlmResponse:
        self.seen.append(request.request_id)
        if request.request_id == "held":
            self.started.set()
            await self.release.wait()
        return gateway_pb2.LlmResponse(request_id=request.request_id, response="ok", model=request.model)


async def test_a_reply_into_a_full_buffer_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    server = EmbeddedServer(jetstream=False).start()
    settings = BusSettings(name="replier", outbound_buffer_bytes=512, publish_wait=0.1,
                           reconnect_time_wait=0.05, max_reconnect_wait=0.2)
    handler = HeldGateway()
    try:
        async with Bus(server.url, settings) as replier:
            service = await replier.serve(handler, tenants=[TENANT])
            [endpoint] = service.endpoints
            async with Bus(server.url, BusSettings(name="asker", max_reconnect_attempts=0)) as asker:
                asking = asyncio.ensure_future(
                    gateway_bus.GatewayServiceClient(asker, TENANT).requests(llm_request(request_id="held"))
                )
                await asyncio.wait_for(handler.started.wait(), 10)
                await lose_server_and_fill_buffer(server, replier)
                with caplog.at_level(logging.ERROR, logger="aisdk.endpoint"):
                    handler.release.set()
                    # Backpressure in the handler's task: counted, not lost.
                    await until(lambda: endpoint.stats.internal_errors == 1)
                assert any("Backpressure" in r.getMessage() for r in caplog.records)
                asking.cancel()
            server.start()
            await until(lambda: replier.nc.is_connected)
            async with Bus(server.url, BusSettings(name="asker-again")) as asker:
                reply = await gateway_bus.GatewayServiceClient(asker, TENANT).requests(llm_request(request_id="next"))
            assert reply.request_id == "next"
    finally:
        server.stop()
