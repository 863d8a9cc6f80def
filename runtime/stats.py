"""Per-endpoint counters: plain integers on the hot path, read by $SRV.STATS
and by observable instruments."""

from __future__ import annotations


class EndpointStats:
    __slots__ = (
        "received",
        "handled",
        "errors",
        "invalid",
        "expired",
        "retried",
        "dead_lettered",
        "dead_letter_failed",
        "internal_errors",
        "processing_ns",
        "last_error",
    )

    def __init__(self) -> None:
        self.received = 0
        self.handled = 0
        self.errors = 0
        self.invalid = 0
        self.expired = 0
        self.retried = 0
        # Dead letters by what happened: stored, or lost (logged) because
        # the store failed.
        self.dead_lettered = 0
        self.dead_letter_failed = 0
        # Failures of the runtime around a message, not of its handler: an
        # ack, a reply or an error reply that could not be sent.
        self.internal_errors = 0
        self.processing_ns = 0
        self.last_error = ""

    def as_dict(self) -> dict[str, int | str]:
        return {name: getattr(self, name) for name in self.__slots__}
