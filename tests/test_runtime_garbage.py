"""Garbage on every subject of the registry, served all at once: every
subscriber survives and every request/reply subject still answers."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import NonInteractiveExampleWarning

import ai.registry as registry
from compat.strategies import messages
from runtime.bus import Bus
from runtime.settings import BusSettings
from runtime.contract import Durability, Pattern, ServiceHandler, SubjectSpec
from runtime.server import EmbeddedServer
from tests.support import until

TENANT = "garbage"
QUICK = {
    s.key: Durability(s.durability.retention, 2, 1000, (10,), 60_000, 0)
    for s in registry.SUBJECTS
    if s.durability is not None
}


def example(spec_type: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonInteractiveExampleWarning)
        return messages(spec_type.DESCRIPTOR).example()


def serve_everything(cls: type[ServiceHandler]) -> ServiceHandler:
    """A handler overriding every operation: events are accepted, requests
    answered with a valid reply of the contract."""
    methods: dict[str, Any] = {}
    for spec, name in cls.ENDPOINTS:
        reply = example(spec.reply_type)
        if spec.pattern is Pattern.STREAM:
            async def stream(self: Any, request: Any, ctx: Any, _r: Any = reply) -> AsyncIterator[Any]:
                yield _r
            methods[name] = stream
        elif spec.pattern is Pattern.REQUEST_REPLY:
            async def answer(self: Any, request: Any, ctx: Any, _r: Any = reply) -> Any:
                return _r
            methods[name] = answer
        else:
            async def accept(self: Any, request: Any, ctx: Any) -> None:
                return None
            methods[name] = accept
    return type(f"Everything{cls.__name__}", (cls,), methods)()


@pytest.fixture(scope="module")
def nats_server() -> Iterator[EmbeddedServer]:
    """A server of this module's own: serving every subject for all tenants
    takes the all-tenant consumer of each work-queue stream, which a stream
    refuses beside the per-tenant consumers other modules' workers leave."""
    with EmbeddedServer(name="aisdk-garbage-test") as server:
        yield server


async def test_garbage_everywhere(nats_url: str) -> None:
    blobs: list[bytes] = []

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.binary(max_size=128))
    def collect(blob: bytes) -> None:
        blobs.append(blob)

    collect()
    async with Bus(nats_url, BusSettings(name="everything", durability_overrides=QUICK)) as bus:
        services = [await bus.serve(serve_everything(h), tenants=[TENANT]) for h in registry.HANDLERS.values()]
        await bus.flush()
        js = bus.nc.jetstream()
        for spec in registry.SUBJECTS:
            subject = bus.subject(spec, TENANT)
            for blob in blobs:
                if spec.durability is not None:
                    await js.publish(subject, blob)
                else:
                    await bus.nc.publish(subject, blob, reply=bus.nc.new_inbox())

        def invalid() -> int:
            return sum(ep.stats.invalid for svc in services for ep in svc.endpoints)

        await until(lambda: invalid() >= len(blobs) and bus.dead_letters > 0)

        async def still_answers(spec: SubjectSpec[Any, Any]) -> None:
            # A valid request of the contract, answered with the contract's reply.
            request = example(spec.request_type)
            if spec.pattern is Pattern.STREAM:
                chunks = [c async for c in bus.stream(spec, request, TENANT, {"timeout": 5})]
                assert chunks and all(isinstance(c, spec.reply_type) for c in chunks), spec.key
            else:
                assert isinstance(await bus.request(spec, request, TENANT, {"timeout": 5}), spec.reply_type), spec.key

        await asyncio.gather(*(still_answers(s) for s in registry.SUBJECTS
                               if s.pattern in (Pattern.REQUEST_REPLY, Pattern.STREAM)))
