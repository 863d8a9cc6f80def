"""A pytest plugin for projects built on the runtime: real parts, no fakes.

    # conftest.py
    pytest_plugins = ["runtime.testing"]

Fixtures:

- `nats_server` (session): a real nats-server with JetStream on a free
  loopback port and a temporary store; `nats_url` its URL;
- `bus`: a connected Bus per test, closed (drained) after it; traced into
  `telemetry` when the test asks for that fixture too;
- `telemetry`: telemetry with in-memory span and metric exporters, sampling
  everything; `spans` is its span exporter (`spans.get_finished_spans()`).

Helpers, for what happens after a call returns:

    async with expect_event(bus, gateway_bus.GATEWAY_RESPONSES, "acme") as seen:
        await client.requests(request)
    seen.payload.request_id

    async with expect_dead_letter(bus, agent_bus.AGENT_TASKS, "acme") as letter:
        await client.tasks(poison)
    letter.reason

An embedded PostgreSQL belongs to the components (their extra ships it), not
to the runtime: `pytest_plugins = ["aisdk.components.testing"]` adds its
`postgres_url` fixture on top of this plugin.

The async fixtures are pytest-asyncio fixtures, so they work in either of
pytest-asyncio's modes; in strict mode (the default) the tests that use them
need `@pytest.mark.asyncio`, as every async test there does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pytest

try:
    import pytest_asyncio
except ImportError as e:
    raise ImportError("runtime.testing needs pytest-asyncio: pip install pytest-asyncio") from e

from ai.envelope.v1 import envelope_pb2
from runtime.bus import Bus, Observed
from runtime.contract import SubjectSpec
from runtime.jetstream import dlq_subject
from runtime.server import EmbeddedServer
from runtime.settings import BusSettings

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from runtime.telemetry import Telemetry

__all__ = ["DeadLetterSeen", "EventSeen", "expect_dead_letter", "expect_event"]

T = TypeVar("T")

# How long a helper waits for what it expects, unless told otherwise.
DEFAULT_WAIT = 10.0


@pytest.fixture(scope="session")
def nats_server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(name="aisdk-test") as server:
        yield server


@pytest.fixture
def nats_url(nats_server: EmbeddedServer) -> str:
    return nats_server.url


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    from runtime.telemetry import setup

    tel = setup("test", exporter="memory", metrics_exporter="memory", sampler_ratio=1.0)
    yield tel
    tel.shutdown()


@pytest.fixture
def spans(telemetry: Telemetry) -> InMemorySpanExporter:
    assert telemetry.span_exporter is not None
    return telemetry.span_exporter


@pytest_asyncio.fixture
async def bus(nats_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    # Traced only when the test asks for telemetry: an untraced bus does no
    # telemetry work at all, which is what most tests want to exercise.
    tel = request.getfixturevalue("telemetry") if "telemetry" in request.fixturenames else None
    async with Bus(nats_url, BusSettings(name="test"), telemetry=tel) as b:
        yield b


# -- awaiting what a call causes ----------------------------------------------


@dataclass
class EventSeen(Generic[T]):
    """The first matching message, filled in when the `async with` block ends."""

    subject: str = ""
    payload: T = None  # type: ignore[assignment]  # set before the block's caller can read it
    envelope: envelope_pb2.Envelope = field(default_factory=envelope_pb2.Envelope)


@dataclass
class DeadLetterSeen:
    """The dead letter, filled in when the `async with` block ends."""

    subject: str = ""
    letter: envelope_pb2.DeadLetter = field(default_factory=envelope_pb2.DeadLetter)

    @property
    def reason(self) -> str:
        return self.letter.reason

    @property
    def code(self) -> int:
        return self.letter.code

    @property
    def original_subject(self) -> str:
        return self.letter.subject


async def _wait(got: asyncio.Future[None], timeout: float, what: str) -> None:
    try:
        await asyncio.wait_for(got, timeout)
    except TimeoutError:
        raise AssertionError(f"{what}: nothing within {timeout:g} s") from None


@asynccontextmanager
async def expect_event(
    bus: Bus,
    spec: SubjectSpec[T, Any],
    tenant_id: str | None = None,
    *,
    where: Callable[[T], bool] | None = None,
    timeout: float = DEFAULT_WAIT,
) -> AsyncIterator[EventSeen[T]]:
    """Subscribe to `spec` (one tenant, or all), run the block, then wait up
    to `timeout` seconds for the first decoded message that `where` accepts.
    Raises AssertionError naming the subject when none came."""
    seen: EventSeen[T] = EventSeen()
    got: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def on_message(o: Observed) -> None:
        if got.done() or o.envelope is None or (where is not None and not where(o.payload)):
            return
        seen.subject, seen.payload, seen.envelope = o.subject, o.payload, o.envelope
        got.set_result(None)

    sub = await bus.subscribe(spec, on_message, tenant_id=tenant_id)
    try:
        yield seen
        target = spec.wildcard(bus.prefix) if tenant_id is None else bus.subject(spec, tenant_id)
        await _wait(got, timeout, f"expected a message on {target}")
    finally:
        await sub.unsubscribe()


@asynccontextmanager
async def expect_dead_letter(
    bus: Bus,
    spec: SubjectSpec[Any, Any],
    tenant_id: str,
    *,
    where: Callable[[envelope_pb2.DeadLetter], bool] | None = None,
    timeout: float = DEFAULT_WAIT,
) -> AsyncIterator[DeadLetterSeen]:
    """Watch the dead letters of `spec` for one tenant, run the block, then
    wait up to `timeout` seconds for the first one `where` accepts."""
    seen = DeadLetterSeen()
    got: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    target = dlq_subject(bus.prefix, bus.subject(spec, tenant_id))

    async def on_message(msg: Msg) -> None:
        letter = envelope_pb2.DeadLetter.FromString(envelope_pb2.Envelope.FromString(msg.data).data)
        if got.done() or (where is not None and not where(letter)):
            return
        seen.subject, seen.letter = msg.subject, letter
        got.set_result(None)

    sub = await bus.nc.subscribe(target, cb=on_message)
    await bus.flush()
    try:
        yield seen
        await _wait(got, timeout, f"expected a dead letter on {target}")
    finally:
        await sub.unsubscribe()
