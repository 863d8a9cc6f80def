"""What a handler sees of the message it handles."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ai.envelope.v1 import envelope_pb2

if TYPE_CHECKING:
    from runtime.contract import Context


class MessageContext:
    """Implements runtime.contract.Context; one per handled message."""

    __slots__ = ("subject", "tenant_id", "envelope", "deadline", "attempt")

    def __init__(
        self, subject: str, tenant_id: str, envelope: envelope_pb2.Envelope, deadline: float | None, attempt: int = 1
    ) -> None:
        self.subject = subject
        self.tenant_id = tenant_id
        self.envelope = envelope
        self.deadline = deadline
        self.attempt = attempt

    @property
    def message_id(self) -> str:
        return self.envelope.id

    @property
    def correlation_id(self) -> str:
        return self.envelope.correlation_id or self.envelope.id

    @property
    def attributes(self) -> dict[str, str]:
        return dict(self.envelope.attributes)

    def time_left(self) -> float | None:
        """Seconds until the deadline (negative once passed), or None without one."""
        return None if self.deadline is None else self.deadline - time.time()


if TYPE_CHECKING:

    def _implements(ctx: MessageContext) -> Context:
        # mypy proves here that MessageContext is a full Context.
        return ctx
