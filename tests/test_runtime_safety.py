"""Bad input always gets a clear answer and never kills a subscriber; tenants
never leak into each other; expired work is dropped."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ai.agent.v1 import agent_bus, agent_pb2
from ai.envelope.v1 import envelope_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from runtime import codec
from runtime.bus import Bus
from runtime.contract import Context
from runtime.errors import Backpressure, DecodeError, RemoteError
from runtime.server import EmbeddedServer
from runtime.settings import BusSettings
from runtime.versions import parse_schema_version
from tests.support import Gateway, llm_request, until

Error = envelope_pb2.Error
MARKER = agent_pb2.AgentMessage(message_id="marker", source_agent_id="test")


def raw_envelope(spec: object, payload: bytes, tenant: str, **fields: object) -> bytes:
    env = envelope_pb2.Envelope(
        id=codec.new_id(),
        type=getattr(spec, "request_name"),
        schema_version=getattr(spec, "schema_version"),
        tenant_id=tenant,
        data=payload,
    )
    for k, v in fields.items():
        setattr(env, k, v)
    return env.SerializeToString()


async def ask(bus: Bus, subject: str, data: bytes) -> envelope_pb2.Error:
    msg = await bus.nc.request(subject, data, timeout=5)
    env = envelope_pb2.Envelope.FromString(msg.data)
    assert env.type == "ai.envelope.v1.Error"
    return envelope_pb2.Error.FromString(env.data)


class Agents(agent_bus.AgentServiceHandler):
    def __init__(self) -> None:
        self.messages: list[agent_pb2.AgentMessage] = []

    async def message(self, request: agent_pb2.AgentMessage, ctx: Context) -> None:
        self.messages.append(request)


@pytest.fixture
async def served(bus: Bus) -> tuple[Bus, Agents]:
    agents = Agents()
    await bus.serve(Gateway())
    await bus.serve(agents)
    await bus.flush()
    return bus, agents


async def test_undecodable_request_is_invalid_argument(served: tuple[Bus, Agents]) -> None:
    bus, _ = served
    err = await ask(bus, "ai.gateway.requests.acme", b"\x00\xffnot protobuf")
    assert err.code == Error.CODE_INVALID_ARGUMENT
    assert "cannot decode" in err.message


async def test_wrong_payload_type_is_invalid_argument(served: tuple[Bus, Agents]) -> None:
    bus, _ = served
    data = raw_envelope(agent_bus.AGENT_MESSAGE, b"", "acme")
    err = await ask(bus, "ai.gateway.requests.acme", data)
    assert err.code == Error.CODE_INVALID_ARGUMENT
    assert "expected payload ai.gateway.v1.LlmRequest, got ai.agent.v1.AgentMessage" in err.message


async def test_failed_validation_lists_the_violations(served: tuple[Bus, Agents]) -> None:
    bus, _ = served
    bad = gateway_pb2.LlmRequest(request_id="r", model="m")
    bad.parameters.temperature = 9
    err = await ask(bus, "ai.gateway.requests.acme", raw_envelope(gateway_bus.GATEWAY_REQUESTS, bad.SerializeToString(), "acme"))
    assert err.code == Error.CODE_INVALID_ARGUMENT
    assert [(v.field, v.rule) for v in err.violations] == [("parameters.temperature", "lte")]


async def test_tenant_mismatch_is_refused(served: tuple[Bus, Agents]) -> None:
    bus, agents = served
    payload = llm_request().SerializeToString()
    err = await ask(bus, "ai.gateway.requests.acme", raw_envelope(gateway_bus.GATEWAY_REQUESTS, payload, "evil"))
    assert err.code == Error.CODE_PERMISSION_DENIED
    msg = agent_pb2.AgentMessage(message_id="m", source_agent_id="a")
    await bus.nc.publish("ai.agent.message.acme", raw_envelope(agent_bus.AGENT_MESSAGE, msg.SerializeToString(), "evil"))
    # One connection, one subscriber: once the marker sent after it is in,
    # the refused message would have been too.
    await agent_bus.AgentServiceClient(bus, "acme").message(MARKER)
    await until(lambda: MARKER in agents.messages)
    assert agents.messages == [MARKER]


async def test_expired_deadline_is_dropped_and_counted(bus: Bus) -> None:
    agents = Agents()
    svc = await bus.serve(agents, tenants=["acme"])
    client = agent_bus.AgentServiceClient(bus, "acme")
    msg = agent_pb2.AgentMessage(message_id="late", source_agent_id="a")
    await client.message(msg, deadline=time.time() - 1)
    await client.message(agent_pb2.AgentMessage(message_id="on-time", source_agent_id="a"), deadline=time.time() + 60)
    await until(lambda: len(agents.messages) == 1)
    assert agents.messages[0].message_id == "on-time"
    assert svc.endpoints[0].stats.expired == 1


async def test_expired_request_is_answered_deadline_exceeded(served: tuple[Bus, Agents]) -> None:
    bus, _ = served
    client = gateway_bus.GatewayServiceClient(bus, "acme")
    with pytest.raises(RemoteError) as info:
        await client.requests(llm_request(), deadline=time.time() - 1)
    assert info.value.code_name == "CODE_DEADLINE_EXCEEDED"


async def test_newer_minor_is_accepted_unknown_major_refused(served: tuple[Bus, Agents]) -> None:
    bus, _ = served
    spec = gateway_bus.GATEWAY_REQUESTS
    major, minor = parse_schema_version(spec.schema_version)  # whatever the contract says today
    payload = llm_request().SerializeToString() + b"\xf8\x3e\x01"  # plus an unknown field 999
    newer = raw_envelope(spec, payload, "acme", schema_version=f"{major}.{minor + 6}")
    msg = await bus.nc.request("ai.gateway.requests.acme", newer, timeout=5)
    assert envelope_pb2.Envelope.FromString(msg.data).type == "ai.gateway.v1.LlmResponse"
    unknown = f"{major + 1}.0"
    err = await ask(bus, "ai.gateway.requests.acme", raw_envelope(spec, payload, "acme", schema_version=unknown))
    assert err.code == Error.CODE_INVALID_ARGUMENT
    assert f"'{unknown}'" in err.message and f"'{spec.schema_version}'" in err.message


def test_unknown_fields_survive_decoding() -> None:
    payload = llm_request().SerializeToString() + b"\xf8\x3e\x01"
    env = envelope_pb2.Envelope.FromString(raw_envelope(gateway_bus.GATEWAY_REQUESTS, payload, "acme", schema_version="1.3"))
    codec.check_version("s", env, "1.0")
    decoded = codec.open_payload("s", env, gateway_pb2.LlmRequest, "ai.gateway.v1.LlmRequest")
    assert decoded.SerializeToString() == payload
    with pytest.raises(DecodeError):
        env.schema_version = "one"
        codec.check_version("s", env, "1.0")


async def test_garbage_on_every_subject_never_kills_a_worker(bus: Bus) -> None:
    from ai import registry

    agents = Agents()
    await bus.serve(Gateway())
    await bus.serve(agents)
    await bus.flush()
    subjects = [s.subject("acme") for s in (gateway_bus.GATEWAY_REQUESTS, gateway_bus.GATEWAY_STREAM,
                                            gateway_bus.GATEWAY_EMBEDDINGS, agent_bus.AGENT_MESSAGE)]
    blobs: list[bytes] = []

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.binary(max_size=256) | st.builds(
        lambda t, d: envelope_pb2.Envelope(type=t, tenant_id="acme", schema_version="1.0", data=d).SerializeToString(),
        st.sampled_from([s.request_name for s in registry.SUBJECTS] + ["x"]),
        st.binary(max_size=64),
    ))
    def collect(blob: bytes) -> None:
        blobs.append(blob)

    collect()
    for blob in blobs:
        for subject in subjects:
            await bus.nc.publish(subject, blob, reply=bus.nc.new_inbox() if "requests" in subject else "")
    # Every subscriber, after all that garbage, still takes the next message.
    await agent_bus.AgentServiceClient(bus, "acme").message(MARKER)
    await until(lambda: MARKER in agents.messages)
    reply = await gateway_bus.GatewayServiceClient(bus, "acme").requests(llm_request("still here"))
    assert reply.response == "gw: still here"
    chunks = [c.delta async for c in gateway_bus.GatewayServiceClient(bus, "acme").stream(llm_request("a b"))]
    assert chunks == ["a", "b"]


async def test_micro_discovery(served: tuple[Bus, Agents]) -> None:
    bus, _ = served
    ping = json.loads((await bus.nc.request("$SRV.PING.gateway", b"", timeout=2)).data)
    assert ping["type"] == "io.nats.micro.v1.ping_response" and ping["name"] == "gateway"
    info = json.loads((await bus.nc.request("$SRV.INFO.gateway", b"", timeout=2)).data)
    by_name = {e["name"]: e for e in info["endpoints"]}
    assert by_name["Requests"]["subject"] == "ai.gateway.requests.*"
    assert by_name["Requests"]["queue_group"] == "gateway.workers"
    assert by_name["Requests"]["metadata"]["request_type"] == "ai.gateway.v1.LlmRequest"
    assert by_name["Requests"]["metadata"]["reply_type"] == "ai.gateway.v1.LlmResponse"
    await gateway_bus.GatewayServiceClient(bus, "acme").requests(llm_request())
    stats = json.loads((await bus.nc.request(f"$SRV.STATS.gateway.{info['id']}", b"", timeout=2)).data)
    row = next(e for e in stats["endpoints"] if e["name"] == "Requests")
    assert row["num_requests"] >= 1 and row["processing_time"] > 0


async def test_publish_backpressure_when_disconnected() -> None:
    with EmbeddedServer(jetstream=False) as server:
        b = Bus(server.url, BusSettings(outbound_buffer_bytes=4096, publish_wait=0.2, max_reconnect_attempts=-1))
        await b.connect()
        server.stop()
        await until(lambda: not b.nc.is_connected)
        client = agent_bus.AgentServiceClient(b, "acme")
        msg = agent_pb2.AgentMessage(message_id="m", source_agent_id="a", content="x" * 1000)
        with pytest.raises(Backpressure):
            for _ in range(10):
                await client.message(msg)
        await b.close()
        assert b.nc.is_closed
