"""The floor: nats-py with pre-encoded bytes and no framework, on subjects of
the same shape as ours, with the transport options the Bus uses (so the
ratio is our layer alone, not a different buffer size)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from ai.agent.v1 import agent_bus
from ai.gateway.v1 import gateway_bus
from aisdk.bench import payloads
from aisdk.bench.measure import Messaging
from runtime.contract import SubjectSpec

PREFIX = "raw"
OPTIONS: dict[str, Any] = {"pending_size": 8 * 1024 * 1024, "skip_subject_validation": True}
REQUEST_TIMEOUT_S = 10.0
FETCH_BATCH = 64


def subject(spec: SubjectSpec[Any, Any], tenant: str) -> str:
    return spec.subject(tenant, PREFIX)


class Raw(Messaging):
    """A publishing connection and `workers` subscribing ones (a queue group
    when there are several)."""

    def __init__(self, name: str, url: str, tenant: str, *, workers: int = 1) -> None:
        super().__init__(name)
        self.url = url
        self.tenant = tenant
        self.workers = workers
        self.agent_subject = subject(agent_bus.AGENT_MESSAGE, tenant)
        self.request_subject = subject(gateway_bus.GATEWAY_REQUESTS, tenant)
        self.agent_bytes = payloads.agent_message().SerializeToString()
        request = payloads.llm_request()
        self.request_bytes = request.SerializeToString()
        self.reply_bytes = payloads.llm_response(request).SerializeToString()
        self.connections: list[Client] = []

    async def _connect(self) -> Client:
        nc = await nats.connect(self.url, **OPTIONS)
        self.connections.append(nc)
        return nc

    async def start(self) -> None:
        group = gateway_bus.GATEWAY_REQUESTS.queue_group if self.workers > 1 else ""
        for _ in range(self.workers):
            nc = await self._connect()
            await nc.subscribe(self.agent_subject, cb=self._on_message)
            await nc.subscribe(self.request_subject, queue=group, cb=self._on_request)
        self.nc = await self._connect()
        for nc in self.connections:
            await nc.flush()

    async def stop(self) -> None:
        # Close, not drain: every run has completed, and draining a
        # connection with an abandoned pull request waits out its timeout.
        for nc in self.connections:
            with contextlib.suppress(nats.errors.Error):
                await nc.close()

    async def _on_message(self, msg: Msg) -> None:
        self.sink.delivered()

    async def _on_request(self, msg: Msg) -> None:
        await msg.respond(self.reply_bytes)

    async def publish(self) -> None:
        await self.nc.publish(self.agent_subject, self.agent_bytes)

    async def request(self) -> None:
        await self.nc.request(self.request_subject, self.request_bytes, REQUEST_TIMEOUT_S)


class RawDurable(Raw):
    """JetStream the way a careful nats-py user writes it: a work-queue
    stream like ours, publish awaiting each ack, a pull consumer fetching
    batches and acking every message."""

    async def start(self) -> None:
        self.nc = await self._connect()
        self.js = self.nc.jetstream()
        spec = agent_bus.AGENT_TASKS
        self.task_subject = subject(spec, self.tenant)
        stream = f"{PREFIX}_{spec.component}_{spec.operation}".upper()
        await self.js.add_stream(
            api.StreamConfig(
                name=stream,
                subjects=[spec.wildcard(PREFIX)],
                retention=api.RetentionPolicy.WORK_QUEUE,
                storage=api.StorageType.FILE,
            )
        )
        self.task_bytes = payloads.agent_task().SerializeToString()
        consumer = await self._connect()
        psub = await consumer.jetstream().pull_subscribe(self.task_subject, durable="raw_workers", stream=stream)
        self.consumer = asyncio.create_task(self._consume(psub))

    async def _consume(self, psub: JetStreamContext.PullSubscription) -> None:
        while True:
            try:
                msgs = await psub.fetch(FETCH_BATCH, timeout=1.0)
            except TimeoutError:
                # Not only nats.errors.TimeoutError: a batch fetch that finds
                # nothing can raise the builtin one.
                continue
            for m in msgs:
                await m.ack()
                self.sink.delivered()

    async def stop(self) -> None:
        self.consumer.cancel()
        await asyncio.gather(self.consumer, return_exceptions=True)
        await super().stop()

    async def publish(self) -> None:
        await self.js.publish(self.task_subject, self.task_bytes)
