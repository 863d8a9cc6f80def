"""The codec alone, no network: our envelope + payload encode and decode, as
the Bus and an Endpoint do it per message, beside raw upb on the payload."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from ai.agent.v1 import agent_bus, agent_pb2
from aisdk.bench import payloads
from aisdk.bench.harness import Sample
from runtime import codec
from runtime.bus import Bus
from runtime.endpoint import Endpoint
from runtime.errors import ContractViolation
from runtime.settings import BusSettings

SPEC = agent_bus.AGENT_MESSAGE
TENANT = "bench"
SUBJECT = SPEC.subject(TENANT)
TYPE = SPEC.request_name
SOURCE = "bench/host/1"
# Per-operation timings for the seeds' p95 target; a loop gives the mean.
TIMED_EACH = 2_000

Op = Callable[[], object]


def raw(message: agent_pb2.AgentMessage) -> Op:
    cls = type(message)

    def op() -> object:
        return cls.FromString(message.SerializeToString())

    return op


def ours(message: agent_pb2.AgentMessage, validate: bool) -> Op:
    """What Bus._envelope does before the wire, then what the serving
    Endpoint does with the bytes (Endpoint.open: parse, tenant and version
    checks, payload, validation), on a Bus that never connects."""
    check = agent_bus.validate_agent_message if validate else None
    version = SPEC.schema_version
    endpoint = Endpoint(Bus(settings=BusSettings(validate=validate)), SPEC, _handler, queue_group="", concurrency=1,
                        subject=SPEC.wildcard())

    def op() -> object:
        if check is not None:
            violations = check(message)
            if violations:
                raise ContractViolation(TYPE, violations)
        data = codec.envelope(TYPE, version, TENANT, SOURCE, message.SerializeToString()).SerializeToString()
        return endpoint.open(SUBJECT, data)[1]

    return op


async def _handler(request: agent_pb2.AgentMessage, ctx: object) -> None:
    return None


def measure(op: Op) -> Callable[[int], Awaitable[Sample]]:
    """The value is the mean time of `n` back-to-back operations; the
    latencies are single operations, each timed on its own."""

    async def run(n: int) -> Sample:
        now = time.perf_counter_ns
        t0 = now()
        for _ in range(n):
            op()
        mean = (now() - t0) / n
        latencies = []
        for _ in range(min(n, TIMED_EACH)):
            t = now()
            op()
            latencies.append(now() - t)
        return Sample(mean, latencies)

    return run


def cases() -> dict[str, Op]:
    message = payloads.agent_message()
    return {"ours": ours(message, True), "ours_unvalidated": ours(message, False), "raw": raw(message)}
