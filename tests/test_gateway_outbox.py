"""The reply path on a real nats-server with JetStream: a gateway reply never
waits for its operation record's PubAck; records wait in a bounded outbox
and are retried until stored; a full outbox refuses new work."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from ai.envelope.v1 import envelope_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from ai.llmops.v1 import llmops_bus, llmops_pb2
from aisdk.components.gateway.config import GatewayConfig
from aisdk.components.gateway.service import Gateway
from runtime import Bus, Context, RemoteError
from runtime.settings import BusSettings
from tests.support import until

Code = envelope_pb2.Error
PROMPT = "Refunds are given within 30 days of purchase. What is the refund policy?"


class Operations(llmops_bus.LlmopsServiceHandler):
    """A real durable consumer of llmops.operations: what LLMOps would store."""

    def __init__(self) -> None:
        self.received: list[llmops_pb2.LlmOperation] = []

    async def operations(self, request: llmops_pb2.LlmOperation, ctx: Context) -> None:
        self.received.append(request)


async def set_max_msg_size(bus: Bus, tenant: str, size: int) -> None:
    """JetStream refuses (size 1) or takes (size -1) every record, while the
    broker's request/reply keeps flowing."""
    js = bus.nc.jetstream()
    name = await js.find_stream_name_by_subject(llmops_bus.LLMOPS_OPERATIONS.subject(tenant))
    config = (await js.stream_info(name)).config
    await js.update_stream(dataclasses.replace(config, max_msg_size=size))


async def test_replies_flow_while_jetstream_refuses_records_then_every_record_is_stored(
        nats_url: str, bus: Bus) -> None:
    t = f"t{uuid.uuid4().hex[:10]}"
    store = Operations()
    await bus.serve(store, tenants=[t])
    client = gateway_bus.GatewayServiceClient(bus, t)
    async with Bus(nats_url, BusSettings(name="gateway-outbox")) as worker_bus:
        gateway = Gateway(GatewayConfig(cache=None, rate_limits=False, breakers=False, retries=0, outbox=5))
        await worker_bus.serve(gateway)
        # Positive control: with JetStream taking records, the record arrives.
        await client.requests(gateway_pb2.LlmRequest(request_id="r0", model="chat", prompt=PROMPT))
        await until(lambda: len(store.received) == 1)

        await set_max_msg_size(bus, t, 1)
        replies = [await client.requests(gateway_pb2.LlmRequest(request_id=f"r{i}", model="chat", prompt=PROMPT))
                   for i in range(1, 6)]
        assert [r.request_id for r in replies] == [f"r{i}" for i in range(1, 6)], "every reply came back"
        await until(lambda: gateway.ops.failed >= 5)
        assert gateway.ops.pending == 5 and len(store.received) == 1, "JetStream took none of them"

        # The outbox is full: new work is refused, as retryable, rather than a record lost.
        with pytest.raises(RemoteError) as full:
            await client.requests(gateway_pb2.LlmRequest(request_id="r6", model="chat", prompt=PROMPT))
        assert full.value.code == Code.CODE_UNAVAILABLE and full.value.retryable
        assert "operation log is 5 records behind" in full.value.message
        with pytest.raises(RemoteError):
            await client.embeddings(gateway_pb2.EmbeddingRequest(request_id="e1", model="embedding", texts=["x"]))

        await set_max_msg_size(bus, t, -1)
        await until(lambda: len(store.received) == 6, timeout=30)
        assert gateway.ops.pending == 0
        assert sorted(op.request_id for op in store.received) == [f"r{i}" for i in range(6)]
        assert len({op.operation_id for op in store.received}) == 6
        # Room again: the gateway takes work.
        assert (await client.requests(gateway_pb2.LlmRequest(request_id="r7", model="chat", prompt=PROMPT))).response
        await until(lambda: len(store.received) == 7)
