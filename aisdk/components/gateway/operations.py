"""One LlmOperation per gateway call (completion, stream, embedding, cache
hit, refusal) on the durable llmops.operations queue, where LLMOps stores it
by operation id.

A reply never waits for its record's PubAck: the record goes into a bounded
outbox that sender tasks drain, retrying each record until JetStream has
acknowledged it (at least once; the operation id as message id lets the
stream and LLMOps drop a repeat). A full outbox makes the gateway refuse new
work rather than drop records."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ai.gateway.v1 import gateway_pb2
from ai.llmops.v1 import llmops_bus, llmops_pb2
from aisdk.components.gateway.reservations import Reservation

if TYPE_CHECKING:
    from runtime import Bus  # the facade's lazy exports are invisible to mypy

log = logging.getLogger("aisdk.gateway.operations")
Type = llmops_pb2.OperationType
Status = llmops_pb2.OperationStatus


@dataclass(slots=True)
class Operation:
    """What the gateway knows of a call when it ends."""

    operation_id: str
    request_id: str
    type: llmops_pb2.OperationType
    model: str
    status: llmops_pb2.OperationStatus = Status.OPERATION_STATUS_SUCCESS
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency_s: float = 0.0
    # Room held under hard budgets until the call's cost is known.
    reservation: Reservation | None = None
    # The provider was called but its bill never arrived (a stream its
    # caller dropped part-way): the budget keeps the whole hold as spent.
    cost_unknown: bool = False

    def answered_from_cache(self, reply: gateway_pb2.LlmResponse) -> None:
        """A cache hit: the cached answer's tokens and model, no cost."""
        self.status = Status.OPERATION_STATUS_CACHED
        self.prompt_tokens, self.completion_tokens = reply.tokens.prompt, reply.tokens.completion
        self.model = reply.model or self.model

    def to_proto(self) -> llmops_pb2.LlmOperation:
        op = llmops_pb2.LlmOperation(
            operation_id=self.operation_id, operation_type=self.type, model=self.model[:128],
            tokens=gateway_pb2.TokenUsage(
                prompt=self.prompt_tokens, completion=self.completion_tokens,
                total=self.prompt_tokens + self.completion_tokens,
            ),
            cost=max(self.cost, 0.0), latency_ms=max(self.latency_s * 1000, 0.0), status=self.status,
            request_id=self.request_id[:128],
        )
        # FromNanoseconds: GetCurrentTime goes through a datetime, a tenth of
        # a cache hit's time in the gateway.
        op.occurred_at.FromNanoseconds(time.time_ns())
        return op


DEFAULT_OUTBOX = 10_000
SENDERS = 8
# Waits between attempts to publish one record: doubling, with a ceiling.
RETRY_FIRST_S, RETRY_MAX_S = 0.05, 2.0


class OperationLog:
    """Use `start()`, then `emit()` per call and `full` before taking work."""

    def __init__(self, bus: Bus, *, capacity: int = DEFAULT_OUTBOX, senders: int = SENDERS) -> None:
        if capacity < 1:
            raise ValueError(f"the operation outbox needs room for at least one record, not {capacity}")
        self._bus = bus
        self._clients: dict[str, llmops_bus.LlmopsServiceClient] = {}
        self.capacity = capacity
        self._outbox: deque[tuple[str, llmops_pb2.LlmOperation]] = deque()
        self._ready = asyncio.Event()
        self._senders = [asyncio.get_running_loop().create_task(self._send_loop(), name=f"gateway-oplog-{i}")
                         for i in range(senders)]
        self._in_flight = 0
        self.failed = 0  # publish attempts that failed (each retried)
        self.published = 0

    @property
    def pending(self) -> int:
        """Records not yet acknowledged by JetStream."""
        return len(self._outbox) + self._in_flight

    @property
    def full(self) -> bool:
        return self.pending >= self.capacity

    def emit(self, tenant: str, operation: Operation) -> None:
        """Queue the record and return at once. Callers check `full` before
        they take a call on, so a record always has room; one that does not
        (a call that started before the outbox filled) is kept all the same:
        the bound holds for new work, not for the records of work done."""
        self._outbox.append((tenant, operation.to_proto()))
        self._ready.set()

    async def _send_loop(self) -> None:
        while True:
            while not self._outbox:
                self._ready.clear()
                await self._ready.wait()
            tenant, record = self._outbox.popleft()
            self._in_flight += 1
            try:
                await self._deliver(tenant, record)
            finally:
                self._in_flight -= 1

    async def _deliver(self, tenant: str, record: llmops_pb2.LlmOperation) -> None:
        client = self._clients.get(tenant)
        if client is None:
            client = self._clients[tenant] = llmops_bus.LlmopsServiceClient(self._bus, tenant)
        wait = RETRY_FIRST_S
        while True:
            try:
                await client.operations(record, message_id=record.operation_id)
                self.published += 1
                return
            except asyncio.CancelledError:
                # Stopping: the record goes back for flush() to report.
                self._outbox.appendleft((tenant, record))
                raise
            except Exception as e:  # noqa: BLE001 - any failure is retried; the record is kept
                self.failed += 1
                log.warning("operation %s of tenant %s not logged yet, retrying in %.2f s: %s",
                            record.operation_id, tenant, wait, e)
            await asyncio.sleep(wait * random.uniform(0.5, 1.0))
            wait = min(wait * 2, RETRY_MAX_S)

    async def drain(self) -> None:
        """Wait until every queued record is acknowledged."""
        while self.pending:
            await asyncio.sleep(0.01)

    async def close(self, timeout: float = 5.0) -> int:
        """Send what is queued for at most `timeout` seconds, then stop; the
        number of records left unsent (logged) is returned."""
        try:
            await asyncio.wait_for(self.drain(), timeout)
        except TimeoutError:
            pass
        for task in self._senders:
            task.cancel()
        await asyncio.gather(*self._senders, return_exceptions=True)
        if self._outbox:
            log.error("%d operation records were not logged before the gateway stopped", len(self._outbox))
        return len(self._outbox)
