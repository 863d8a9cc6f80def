"""The hook chain (runtime.hooks) on a real nats-server: hooks chosen when a
bus is built or a service is served, called in order, told of refusals and
dead letters, and let go of when the bus closes."""

from __future__ import annotations

from typing import Any

from ai.agent.v1 import agent_bus, agent_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from runtime import telemetry
from runtime.bus import Bus
from runtime.contract import CallOptions, Context, SubjectSpec
from runtime.endpoint import Endpoint, RetryPolicy
from runtime.errors import PlatformError
from runtime.hooks import BusHooks, Handler, HookChain, Send, SendOperation
from runtime.settings import BusSettings
from tests.support import until

TENANT = "acme"


class Echo(gateway_bus.GatewayServiceHandler):
    async def requests(self, request: gateway_pb2.LlmRequest, ctx: Context) -> gateway_pb2.LlmResponse:
        return gateway_pb2.LlmResponse(request_id=request.request_id, response=request.prompt, model=request.model)


class Status(agent_bus.AgentServiceHandler):
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    async def status(self, request: agent_pb2.AgentStatus, ctx: Context) -> None:
        if self.fail:
            raise ValueError("cannot store status")


class Recorder(BusHooks):
    """Writes down what the bus and its endpoints tell it, in order, into a
    log it may share with other recorders."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def wrap_send(self, bus: Bus, operation: SendOperation, send: Send) -> Send:
        async def recorded(spec: SubjectSpec[Any, Any], payload: Any, tenant_id: str, options: CallOptions) -> Any:
            self.log.append(f"{self.name} {operation} {spec.key}")
            return await send(spec, payload, tenant_id, options)

        return recorded

    def wrap_handler(self, endpoint: Endpoint, method: Handler) -> Handler:
        async def recorded(payload: Any, ctx: Context) -> Any:
            self.log.append(f"{self.name} handles {endpoint.spec.key}")
            return await method(payload, ctx)

        return recorded

    def refused(self, endpoint: Endpoint, subject: str, data: bytes, error: PlatformError) -> None:
        self.log.append(f"{self.name} refused {type(error).__name__} on {subject}")

    def dead_lettered(self, endpoint: Endpoint, subject: str, data: bytes, reason: str, attempts: int) -> None:
        self.log.append(f"{self.name} dead-lettered {subject} after {attempts}")

    def detach(self, bus: Bus) -> None:
        self.log.append(f"{self.name} detached")


async def test_hooks_wrap_in_order_and_service_hooks_see_their_service_only(nats_url: str) -> None:
    log: list[str] = []
    outer, inner, audit = Recorder("outer", log), Recorder("inner", log), Recorder("audit", log)
    async with Bus(nats_url, hooks=[outer, inner]) as bus:
        await bus.serve(Echo(), tenants=[TENANT], hooks=[audit])
        await bus.serve(Status(), tenants=[TENANT])
        await gateway_bus.GatewayServiceClient(bus, TENANT).requests(
            gateway_pb2.LlmRequest(request_id="r", prompt="hi", model="m")
        )
        assert log == [
            "outer request gateway.requests",
            "inner request gateway.requests",
            "outer handles gateway.requests",
            "inner handles gateway.requests",
            "audit handles gateway.requests",
        ]
        log.clear()
        await agent_bus.AgentServiceClient(bus, TENANT).status(agent_pb2.AgentStatus(agent_id="a1", state=agent_pb2.AGENT_STATE_IDLE))
        await until(lambda: "inner handles agent.status" in log)
        assert not any(entry.startswith("audit") for entry in log)
        log.clear()
    # Once per hook: the bus's own, then the service's; closing again tells no one.
    assert log == ["outer detached", "inner detached", "audit detached"]
    await bus.close()
    assert log == ["outer detached", "inner detached", "audit detached"] and not bus.hooks


async def test_hooks_are_told_of_refused_input_and_dead_letters(nats_url: str) -> None:
    log: list[str] = []
    async with Bus(nats_url, BusSettings(retry=RetryPolicy(attempts=2, initial_backoff=0.001)), hooks=[Recorder("h", log)]) as bus:
        await bus.serve(Status(fail=True), tenants=[TENANT])
        await bus.publish_bytes("ai.agent.status.acme", b"\xff\x00 not an envelope")
        await until(lambda: any("dead-lettered" in entry for entry in log))
        assert log == [
            "h refused DecodeError on ai.agent.status.acme",
            "h dead-lettered ai.agent.status.acme after 0",
        ]
        log.clear()
        await agent_bus.AgentServiceClient(bus, TENANT).status(agent_pb2.AgentStatus(agent_id="a1", state=agent_pb2.AGENT_STATE_IDLE))
        await until(lambda: any("dead-lettered" in entry for entry in log))
        assert log[-1] == "h dead-lettered ai.agent.status.acme after 2"
        assert log.count("h handles agent.status") == 2


def test_a_chain_drops_no_op_hooks_and_repeats() -> None:
    a, b = Recorder("a", []), Recorder("b", [])
    chain = HookChain([BusHooks(), a, HookChain([b, a])])
    assert chain.hooks == (a, b)
    assert (chain + [b, BusHooks()]).hooks == (a, b)
    assert not HookChain([BusHooks(), telemetry.Telemetry.disabled().hooks])
