"""Bus.close keeps one deadline: handlers still running at it are cancelled
and counted, a cancelled request is answered, and closing again does nothing."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from ai.agent.v1 import agent_bus, agent_pb2
from ai.envelope.v1 import envelope_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from runtime.bus import Bus
from runtime.contract import Context
from runtime.errors import RemoteError
from runtime.settings import BusSettings
from tests.support import llm_request, until


class Stuck:
    """Counts handlers that entered, and those that were cancelled."""

    def __init__(self) -> None:
        self.entered = 0
        self.cancelled = 0

    async def forever(self) -> None:
        self.entered += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


class StuckGateway(gateway_bus.GatewayServiceHandler):
    def __init__(self, stuck: Stuck) -> None:
        self.stuck = stuck

    async def requests(self, request: gateway_pb2.LlmRequest, ctx: Context) -> gateway_pb2.LlmResponse:
        await self.stuck.forever()
        raise AssertionError("never answered")


class StuckAgents(agent_bus.AgentServiceHandler):
    def __init__(self, stuck: Stuck) -> None:
        self.stuck = stuck
        self.stopped = False

    async def message(self, request: agent_pb2.AgentMessage, ctx: Context) -> None:
        await self.stuck.forever()

    async def stop(self) -> None:
        self.stopped = True


async def test_close_cancels_what_outlives_the_deadline(nats_url: str) -> None:
    tenant = "t" + uuid.uuid4().hex[:12]
    stuck = Stuck()
    agents = StuckAgents(stuck)
    worker = await Bus(nats_url, BusSettings(name="stuck", drain_timeout=0.5)).connect()
    # A request handler runs in a task of its own (concurrency 64), an event
    # handler inside its subscription (concurrency 1): both kinds get stuck.
    await worker.serve(StuckGateway(stuck), tenants=[tenant])
    await worker.serve(agents, tenants=[tenant])
    async with Bus(nats_url, BusSettings(name="caller")) as caller:
        # A round trip first: a request racing a fresh connection's setup
        # can be told "no responders".
        await caller.flush()
        asking = asyncio.ensure_future(
            gateway_bus.GatewayServiceClient(caller, tenant).requests(llm_request(), timeout=60)
        )
        await agent_bus.AgentServiceClient(caller, tenant).message(
            agent_pb2.AgentMessage(message_id="m1", source_agent_id="a", content="hi")
        )
        await until(lambda: stuck.entered == 2)

        # Bounded: the close itself must end, whatever the handlers do.
        await asyncio.wait_for(worker.close(), 10)
        assert worker.nc.is_closed
        assert worker.cancelled_on_close == 2
        assert stuck.cancelled == 2
        assert agents.stopped

        # The requester is answered at once, not left to its 60 s timeout.
        with pytest.raises(RemoteError) as answered:
            await asyncio.wait_for(asking, 5)
        assert answered.value.code == envelope_pb2.Error.CODE_UNAVAILABLE
        assert answered.value.retryable

    await asyncio.wait_for(worker.close(), 1)
    assert worker.cancelled_on_close == 2


async def test_a_quick_close_cancels_nothing(nats_url: str) -> None:
    bus = await Bus(nats_url, BusSettings(name="quick", drain_timeout=5)).connect()
    await bus.serve(StuckAgents(Stuck()), tenants=["t" + uuid.uuid4().hex[:12]])
    await asyncio.wait_for(bus.close(), 10)
    assert bus.nc.is_closed and bus.cancelled_on_close == 0


async def test_close_after_its_owner_unsubscribed_an_observer_is_quiet(
    nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def ignore(observed: object) -> None:
        return None

    bus = Bus(nats_url)
    await bus.connect()
    sub = await bus.subscribe(agent_bus.AGENT_STATUS, ignore, tenant_id="quiet")
    await sub.unsubscribe()
    with caplog.at_level("WARNING", logger="aisdk.bus"):
        await bus.close()
    assert [r.getMessage() for r in caplog.records if r.name == "aisdk.bus"] == []
