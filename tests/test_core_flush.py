"""Bus.flush and serve: once they return, the server has every command the
connection sent, so another connection's request finds its responder."""

from __future__ import annotations

from typing import Any

from ai.prompt.v1 import prompt_bus, prompt_pb2
from runtime.bus import Bus
from runtime.contract import Context
import uuid


class Recorder:
    """Records what reaches nats-py's transport, in order (observation only:
    every write still goes to the real socket)."""

    def __init__(self, transport: Any) -> None:
        self.wire: list[bytes] = []
        self._write, self._writelines = transport.write, transport.writelines
        transport.write, transport.writelines = self.write, self.writelines

    def write(self, data: bytes) -> None:
        self.wire.append(bytes(data))
        self._write(data)

    def writelines(self, lines: list[bytes]) -> None:
        self.wire.extend(bytes(line) for line in lines)
        self._writelines(lines)


async def test_flush_puts_queued_subscriptions_on_the_wire_before_its_ping(bus: Bus) -> None:
    recorder = Recorder(bus.nc._transport)
    await bus.nc.subscribe("flush.order.probe")  # queued for nats-py's flusher task
    await bus.flush()
    wire = b"".join(recorder.wire)
    assert b"SUB flush.order.probe" in wire
    assert wire.index(b"SUB flush.order.probe") < wire.index(b"PING"), wire


class Echo(prompt_bus.PromptServiceHandler):
    async def context(self, request: prompt_pb2.ContextRequest, ctx: Context) -> prompt_pb2.ContextResult:
        return prompt_pb2.ContextResult(request_id=request.request_id, prompt="ok")


async def test_a_request_right_after_serve_finds_its_responder(nats_url: str) -> None:
    async with Bus(nats_url) as caller:
        for _ in range(50):
            tenant = f"t{uuid.uuid4().hex[:12]}"
            async with Bus(nats_url) as worker:
                await worker.serve(Echo(), tenants=[tenant])
                reply = await prompt_bus.PromptServiceClient(caller, tenant).context(
                    prompt_pb2.ContextRequest(request_id="r", template_id="t"))
                assert reply.prompt == "ok"
