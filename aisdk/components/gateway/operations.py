"""One LlmOperation per gateway call (completion, stream, embedding, cache
hit, refusal) on the durable llmops.operations queue, where LLMOps stores it
by operation id."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ai.gateway.v1 import gateway_pb2
from ai.llmops.v1 import llmops_bus, llmops_pb2

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
        op.occurred_at.GetCurrentTime()
        return op


class OperationLog:
    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._clients: dict[str, llmops_bus.LlmopsServiceClient] = {}
        self.failed = 0

    async def emit(self, tenant: str, operation: Operation) -> None:
        """Publish to JetStream with the operation id as message id, so a
        retried publish is deduplicated by the stream as well as by LLMOps.
        A failure is logged and counted: the caller's answer is not withheld
        because the log is unreachable."""
        client = self._clients.get(tenant)
        if client is None:
            client = self._clients[tenant] = llmops_bus.LlmopsServiceClient(self._bus, tenant)
        try:
            await client.operations(operation.to_proto(), message_id=operation.operation_id)
        except Exception as e:  # noqa: BLE001 - see the docstring
            self.failed += 1
            log.warning("could not log operation %s for tenant %s: %s", operation.operation_id, tenant, e)
