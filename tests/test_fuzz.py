"""Bad input on every handler entry. Hypothesis drives the envelope decoder
and the admission of every operation in the registry with random bytes and
hostile but well-formed envelopes; a real server and a served handler then
take hostile requests, each of which must be answered with an Error while
the service keeps serving and holds no work in flight."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import nats.errors
import pytest
from google.protobuf import struct_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ai import registry
from ai.envelope.v1 import envelope_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from runtime import codec
from runtime.bus import Bus
from runtime.contract import SubjectSpec
from runtime.endpoint import Endpoint
from runtime.errors import PlatformError, RemoteError
from runtime.server import EmbeddedServer
from runtime.settings import BusSettings
from tests.support import Gateway, llm_request

SPECS = list(registry.SUBJECTS)
REQUESTS = gateway_bus.GATEWAY_REQUESTS
Code = envelope_pb2.Error


async def _never(payload: Any, ctx: Any) -> None:
    raise AssertionError("admission only")


def endpoint(spec: SubjectSpec[Any, Any]) -> Endpoint:
    # A bus that is never connected: admission needs only its settings.
    return Endpoint(Bus("nats://127.0.0.1:1", BusSettings(name="fuzz")), spec, _never, queue_group="q",
                    concurrency=1, subject=spec.subject("acme"))


ENDPOINTS = {spec.key: endpoint(spec) for spec in SPECS}


def admit(spec: SubjectSpec[Any, Any], data: bytes) -> None:
    """Admission either accepts the message or refuses it with a PlatformError."""
    try:
        ENDPOINTS[spec.key].open(spec.subject("acme"), data)
    except PlatformError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SPECS), st.binary(max_size=2048))
def test_random_bytes_are_refused_cleanly(spec: SubjectSpec[Any, Any], data: bytes) -> None:
    admit(spec, data)


envelopes = st.builds(
    envelope_pb2.Envelope,
    id=st.text(max_size=64),
    type=st.one_of(st.sampled_from([s.request_name for s in SPECS]), st.text(max_size=64)),
    schema_version=st.one_of(st.sampled_from(["1.0", "1.9", "2.0", "0.1", "", "x.y"]), st.text(max_size=8)),
    tenant_id=st.sampled_from(["acme", "globex", "", "ACME", "acme.x"]),
    data=st.binary(max_size=1024),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SPECS), envelopes, st.binary(max_size=64))
def test_hostile_envelopes_are_refused_cleanly(spec: SubjectSpec[Any, Any], env: envelope_pb2.Envelope,
                                               unknown: bytes) -> None:
    # Unknown fields (field 1000, length-delimited) appended to a valid envelope.
    tail = b"\xc2\x3e" + bytes([len(unknown)]) + unknown
    admit(spec, env.SerializeToString())
    admit(spec, env.SerializeToString() + tail)


def nest(node: struct_pb2.Struct, depth: int) -> None:
    """Built in place: copying it would make protobuf parse it, which the depth forbids."""
    for _ in range(depth):
        node = node.fields["x"].struct_value
    node.fields["leaf"].string_value = "bottom"


def envelope(payload: bytes, *, tenant: str = "acme", type_name: str = REQUESTS.request_name,
             deadline: float | None = None) -> bytes:
    return codec.envelope(type_name, REQUESTS.schema_version, tenant, "fuzz", payload,
                          deadline=deadline).SerializeToString()


def hostile() -> dict[str, bytes]:
    """Well-formed NATS messages whose content a service must refuse."""
    deep = gateway_pb2.LlmRequest(request_id="deep", prompt="p", model="m")
    nest(deep.tools.add(name="deep").parameters, 200)
    valid = llm_request(request_id="ok").SerializeToString()
    return {
        "random bytes": b"\x08\xff\xff\xff\xff\x0f garbage",
        "empty": b"",
        "a huge string": envelope(gateway_pb2.LlmRequest(request_id="huge", prompt="p", model="m" * 900_000)
                                  .SerializeToString()),
        "a deep Struct": envelope(deep.SerializeToString()),
        "the wrong type": envelope(valid, type_name="ai.rag.v1.RagQuery"),
        "a payload that is not the type": envelope(b"\x0a\x05hello\x12\xff"),
        "the wrong tenant": envelope(valid, tenant="globex"),
        "an expired deadline": envelope(valid, deadline=time.time() - 60),
        "a missing required field": envelope(gateway_pb2.LlmRequest(prompt="p").SerializeToString()),
    }


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(name="fuzz-test", jetstream=False) as s:
        yield s


@pytest.fixture
async def served(server: EmbeddedServer) -> AsyncIterator[tuple[Bus, Bus]]:
    async with Bus(server.url, BusSettings(name="fuzz-worker")) as worker, \
            Bus(server.url, BusSettings(name="fuzz-client")) as client:
        await worker.serve(Gateway())
        yield worker, client


async def test_every_hostile_request_is_answered_with_an_error(served: tuple[Bus, Bus]) -> None:
    worker, client = served
    subject = client.subject(REQUESTS, "acme")
    answers: dict[str, int] = {}
    for name, data in hostile().items():
        reply = await client.nc.request(subject, data, timeout=10)
        env = envelope_pb2.Envelope.FromString(reply.data)
        assert env.type == codec.ERROR_TYPE, name
        answers[name] = envelope_pb2.Error.FromString(env.data).code
    assert answers["the wrong tenant"] == Code.CODE_PERMISSION_DENIED
    assert answers["an expired deadline"] == Code.CODE_DEADLINE_EXCEEDED
    assert answers["a missing required field"] == Code.CODE_INVALID_ARGUMENT
    assert answers["a deep Struct"] == Code.CODE_INVALID_ARGUMENT
    assert answers["a huge string"] == Code.CODE_INVALID_ARGUMENT
    # Still serving, and nothing left in flight.
    ok = await gateway_bus.GatewayServiceClient(client, "acme").requests(llm_request(request_id="after"))
    assert ok.request_id == "after"
    assert all(not ep.in_flight() for ep in worker._endpoints)


async def test_a_payload_over_max_payload_fails_at_the_sender(served: tuple[Bus, Bus]) -> None:
    _, client = served
    too_big = llm_request(prompt="x" * (client.nc.max_payload + 1))
    with pytest.raises((nats.errors.MaxPayloadError, PlatformError, RemoteError)):
        await gateway_bus.GatewayServiceClient(client, "acme").requests(too_big)
    ok = await gateway_bus.GatewayServiceClient(client, "acme").requests(llm_request(request_id="still"))
    assert ok.request_id == "still"


async def test_a_burst_of_garbage_leaves_the_service_whole(served: tuple[Bus, Bus]) -> None:
    worker, client = served
    subject = client.subject(REQUESTS, "acme")
    replies = await asyncio.gather(*(client.nc.request(subject, bytes([i % 256]) * (i % 97), timeout=10)
                                     for i in range(500)))
    assert all(envelope_pb2.Envelope.FromString(r.data).type == codec.ERROR_TYPE for r in replies)
    assert all(not ep.in_flight() for ep in worker._endpoints)


def test_atheris_finds_no_crash_in_admission() -> None:
    """Optional: with AISDK_FUZZ=1 and atheris installed (it is not a
    dependency); instrumenting the imports alone takes about 20 s."""
    import os
    import subprocess

    if not os.environ.get("AISDK_FUZZ"):
        pytest.skip("set AISDK_FUZZ=1 to run the atheris fuzzer")
    pytest.importorskip("atheris")
    import sys

    from tests.support import ROOT, checkout_env

    run = subprocess.run([sys.executable, str(ROOT / "tests" / "fuzz_admission.py"), "-runs=20000", "-max_total_time=5"],
                         capture_output=True, text=True, env=checkout_env(), timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
