"""Every pattern of the registry on a real nats-server."""

from __future__ import annotations

import asyncio

import pytest

from ai.agent.v1 import agent_bus, agent_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from runtime.bus import Bus, Observed
from runtime.settings import BusSettings
from runtime.contract import Context
from runtime.errors import ContractViolation, NoResponders, RemoteError, RequestTimeout
from tests.support import Gateway, llm_request, until


async def test_request_reply_is_typed_and_also_published_as_event(bus: Bus) -> None:
    await bus.serve(Gateway())
    events: list[Observed] = []

    async def observe(o: Observed) -> None:
        events.append(o)

    await bus.subscribe(gateway_bus.GATEWAY_RESPONSES, observe, tenant_id="acme")
    client = gateway_bus.GatewayServiceClient(bus, "acme")
    reply = await client.requests(llm_request("hello"))
    assert isinstance(reply, gateway_pb2.LlmResponse)
    assert reply.response == "gw: hello"
    await until(lambda: bool(events))
    [event] = events
    assert event.payload == reply and event.envelope is not None
    assert event.envelope.tenant_id == "acme" and event.subject == "ai.gateway.responses.acme"


async def test_handler_sees_the_time_left(bus: Bus) -> None:
    gw = Gateway()
    await bus.serve(gw)
    await gateway_bus.GatewayServiceClient(bus, "acme").requests(llm_request(), timeout=5)
    [left] = gw.time_left
    assert left is not None and 0 < left <= 5


async def test_event_fans_out_to_every_subscriber(nats_url: str) -> None:
    class Status(agent_bus.AgentServiceHandler):
        def __init__(self) -> None:
            self.got: list[agent_pb2.AgentStatus] = []

        async def status(self, request: agent_pb2.AgentStatus, ctx: Context) -> None:
            self.got.append(request)

    a, b = Status(), Status()
    async with Bus(nats_url) as b1, Bus(nats_url) as b2, Bus(nats_url) as pub:
        await b1.serve(a)
        await b2.serve(b)
        await b1.flush()
        await b2.flush()
        msg = agent_pb2.AgentStatus(agent_id="planner", state=agent_pb2.AGENT_STATE_BUSY)
        await agent_bus.AgentServiceClient(pub, "acme").status(msg)
        await until(lambda: bool(a.got and b.got))
    assert a.got == [msg] and b.got == [msg]


async def test_queue_group_balances_across_three_workers(nats_url: str) -> None:
    workers = [Gateway(f"w{i}") for i in range(3)]
    buses = [Bus(nats_url, BusSettings(name=f"w{i}")) for i in range(3)]
    async with Bus(nats_url) as client_bus:
        for b, w in zip(buses, workers):
            await b.connect()
            await b.serve(w)
            await b.flush()
        client = gateway_bus.GatewayServiceClient(client_bus, "acme")
        replies = await asyncio.gather(*(client.requests(llm_request(request_id=f"r{i}")) for i in range(300)))
        for b in buses:
            await b.close()
    assert sorted(r.request_id for r in replies) == sorted(f"r{i}" for i in range(300))
    counts = [len(w.seen) for w in workers]
    assert sum(counts) == 300
    assert all(c > 0 for c in counts), counts


async def test_stream_yields_chunks_then_ends(bus: Bus) -> None:
    await bus.serve(Gateway())
    client = gateway_bus.GatewayServiceClient(bus, "acme")
    chunks = [c async for c in client.stream(llm_request("one two three"))]
    assert [c.delta for c in chunks] == ["one", "two", "three"]
    assert [c.index for c in chunks] == [0, 1, 2]


async def test_stream_failure_ends_with_an_error(bus: Bus) -> None:
    await bus.serve(Gateway())
    client = gateway_bus.GatewayServiceClient(bus, "acme")
    got: list[str] = []
    with pytest.raises(RemoteError) as info:
        async for c in client.stream(llm_request("one boom")):
            got.append(c.delta)
    assert got == ["one"]
    assert info.value.code_name == "CODE_INTERNAL"
    assert "stream broke" not in str(info.value)


async def test_timeout_is_typed_and_an_asyncio_timeout(bus: Bus) -> None:
    await bus.serve(Gateway(delay=1.0))
    client = gateway_bus.GatewayServiceClient(bus, "acme")
    with pytest.raises(RequestTimeout) as info:
        await client.requests(llm_request(), timeout=0.1)
    assert isinstance(info.value, asyncio.TimeoutError)
    assert info.value.subject == "ai.gateway.requests.acme"


async def test_no_responders(bus: Bus) -> None:
    client = gateway_bus.GatewayServiceClient(bus, "nobody-serves-this")
    with pytest.raises(NoResponders):
        await client.requests(llm_request())
    with pytest.raises(NoResponders):
        async for _ in client.stream(llm_request()):
            pass


async def test_invalid_request_is_refused_before_sending(bus: Bus) -> None:
    client = gateway_bus.GatewayServiceClient(bus, "acme")
    with pytest.raises(ContractViolation) as info:
        await client.requests(gateway_pb2.LlmRequest(prompt="no id"))
    assert {v.field for v in info.value.violations} == {"request_id", "model"}
    with pytest.raises(TypeError):
        await client.requests(agent_pb2.AgentMessage())  # type: ignore[arg-type]


async def test_handler_exception_is_internal_without_details(bus: Bus) -> None:
    await bus.serve(Gateway())
    client = gateway_bus.GatewayServiceClient(bus, "acme")
    with pytest.raises(RemoteError) as info:
        await client.requests(llm_request("boom"))
    assert info.value.code_name == "CODE_INTERNAL"
    assert "secret" not in str(info.value)
    # The worker still answers.
    assert (await client.requests(llm_request("ok"))).response == "gw: ok"


async def test_prefix_is_configurable(nats_url: str) -> None:
    async with Bus(nats_url, BusSettings(prefix="staging.ai")) as b:
        svc = await b.serve(Gateway())
        assert svc.endpoints[0].subject.startswith("staging.ai.gateway.")
        reply = await gateway_bus.GatewayServiceClient(b, "acme").requests(llm_request())
        assert reply.request_id == "r1"


async def test_serving_nothing_is_an_error(bus: Bus) -> None:
    from runtime.errors import PlatformError

    with pytest.raises(PlatformError, match="overrides no operation"):
        await bus.serve(gateway_bus.GatewayServiceHandler())



async def test_header_mirroring_for_foreign_consumers(nats_url: str) -> None:
    got: list[dict[str, str]] = []
    async with Bus(nats_url, BusSettings(mirror_headers=True)) as mirrored, Bus(nats_url) as plain:
        async def raw(msg: object) -> None:
            # Only this test's messages: the subject is shared by the session.
            if b"header-mirroring" in getattr(msg, "data"):
                got.append(dict(getattr(msg, "headers") or {}))

        await plain.nc.subscribe("ai.agent.status.acme", cb=raw)
        await plain.flush()
        status = agent_pb2.AgentStatus(agent_id="header-mirroring", state=agent_pb2.AGENT_STATE_IDLE)
        await agent_bus.AgentServiceClient(mirrored, "acme").status(status)
        await agent_bus.AgentServiceClient(plain, "acme").status(status)
        await until(lambda: len(got) == 2)
    # Two connections: their arrival order is not guaranteed, even after a flush.
    bare, mirrored_headers = sorted(got, key=len)
    assert mirrored_headers["ce-type"] == "ai.agent.v1.AgentStatus" and mirrored_headers["ai-tenant-id"] == "acme"
    assert bare == {}, "no headers on the hot path unless asked"
