"""What generated code is written against: subject specs, validation results,
the handler context and the transport a typed client calls.

Everything here is resolved once, when the generated module is imported, so
that nothing on the per-message path has to look anything up.
"""

from __future__ import annotations

import enum
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypedDict, TypeVar

from runtime.errors import InvalidSubject

if TYPE_CHECKING:
    from ai.envelope.v1 import envelope_pb2
    from runtime.bus import Bus

DEFAULT_PREFIX = "ai"
TENANT_MAX_LEN = 64
# A tenant id is exactly one subject token: no '.', wildcards or whitespace.
_TENANT_RE = re.compile(r"[A-Za-z0-9_-]+")
_PREFIX_RE = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


class Pattern(enum.Enum):
    """How a subject is used on the bus (ai.options.v1.Pattern)."""

    EVENT = "event"
    WORK_QUEUE = "work_queue"
    REQUEST_REPLY = "request_reply"
    STREAM = "stream"


@dataclass(frozen=True, slots=True)
class Durability:
    """JetStream settings of a durable subject (ai.options.v1.Durability)."""

    retention: str
    max_deliver: int
    ack_wait_ms: int
    backoff_ms: tuple[int, ...]
    duplicate_window_ms: int
    max_age_s: int


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken validation rule: dotted field path, rule name, explanation."""

    field: str
    rule: str
    description: str


ReqT = TypeVar("ReqT")
RepT = TypeVar("RepT")
Validator = Callable[[Any], list[Violation]]


def no_violations(message: object, prefix: str = "") -> list[Violation]:
    """The validator of a message whose contract has no rules."""
    return []


def check_tenant(tenant_id: str) -> str:
    """Return tenant_id if it is one safe subject token, else raise InvalidSubject."""
    if len(tenant_id) > TENANT_MAX_LEN:
        raise InvalidSubject("tenant id", tenant_id, f"longer than {TENANT_MAX_LEN} characters")
    if _TENANT_RE.fullmatch(tenant_id) is None:
        raise InvalidSubject(
            "tenant id",
            tenant_id,
            "must be non-empty and use only letters, digits, '_' and '-'",
        )
    return tenant_id


def check_prefix(prefix: str) -> str:
    """Return prefix if it is one or more safe subject tokens joined by '.'."""
    if _PREFIX_RE.fullmatch(prefix) is None:
        raise InvalidSubject(
            "subject prefix",
            prefix,
            "must be dot-separated tokens of letters, digits, '_' and '-'",
        )
    return prefix


@dataclass(frozen=True, slots=True)
class SubjectSpec(Generic[ReqT, RepT]):
    """One entry of the subject registry, generated from an rpc's options."""

    component: str
    operation: str
    service: str
    rpc: str
    pattern: Pattern
    queue_group: str
    request_type: type[ReqT]
    reply_type: type[RepT]
    timeout_ms: int
    durability: Durability | None
    reply_event: str
    schema_version: str
    source: str
    validate_request: Validator
    validate_reply: Validator
    # Full proto names, resolved once: the hot path compares them per message.
    request_name: str = field(init=False)
    reply_name: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "request_name", str(getattr(self.request_type, "DESCRIPTOR").full_name))
        object.__setattr__(self, "reply_name", str(getattr(self.reply_type, "DESCRIPTOR").full_name))

    @property
    def key(self) -> str:
        """The registry key, e.g. "gateway.requests"."""
        return f"{self.component}.{self.operation}"

    @property
    def template(self) -> str:
        """The subject template with the default prefix, e.g. "ai.agent.message.{tenant_id}"."""
        return f"{DEFAULT_PREFIX}.{self.component}.{self.operation}.{{tenant_id}}"


    @property
    def durable(self) -> bool:
        return self.durability is not None

    def subject(self, tenant_id: str, prefix: str = DEFAULT_PREFIX) -> str:
        """The concrete subject for a tenant; rejects an unsafe tenant id."""
        check_tenant(tenant_id)
        if prefix != DEFAULT_PREFIX:
            check_prefix(prefix)
        return f"{prefix}.{self.component}.{self.operation}.{tenant_id}"

    def wildcard(self, prefix: str = DEFAULT_PREFIX) -> str:
        """The subject of every tenant, for subscribers that serve all tenants."""
        return f"{prefix}.{self.component}.{self.operation}.*"


class CallOptions(TypedDict, total=False):
    """Per-call options a typed client passes through to the transport."""

    timeout: float
    correlation_id: str
    message_id: str
    deadline: float
    attributes: dict[str, str]
    # Requests only: how many times to send the request again after a
    # retryable error reply, waiting its retry_after (else the Bus's
    # RetryPolicy backoff). Default 0: the first error is raised.
    retries: int


class Context(Protocol):
    """What a handler knows about the message it is handling
    (runtime.context.MessageContext is the runtime's)."""

    @property
    def tenant_id(self) -> str: ...

    @property
    def subject(self) -> str:
        """The concrete subject the message arrived on."""
        ...

    @property
    def message_id(self) -> str:
        """The envelope id: stable across redeliveries, an idempotency key."""
        ...

    @property
    def correlation_id(self) -> str:
        """The envelope's correlation id, or its id when it has none."""
        ...

    @property
    def attempt(self) -> int:
        """Which delivery this is: 1, then 2... on retries and redeliveries."""
        ...

    @property
    def deadline(self) -> float | None:
        """Unix time after which the sender no longer wants an answer, or None."""
        ...

    @property
    def envelope(self) -> envelope_pb2.Envelope:
        """The whole envelope (trace context, source, schema version, time)."""
        ...

    @property
    def attributes(self) -> dict[str, str]:
        """The envelope's free-form attributes (a copy)."""
        ...

    def time_left(self) -> float | None:
        """Seconds until the message's deadline (negative once passed), or None if it has none."""
        ...


class Transport(Protocol):
    """What a generated client needs from the bus."""

    async def publish(
        self, spec: SubjectSpec[ReqT, Any], payload: ReqT, tenant_id: str, options: CallOptions
    ) -> None: ...

    async def request(
        self, spec: SubjectSpec[ReqT, RepT], payload: ReqT, tenant_id: str, options: CallOptions
    ) -> RepT: ...

    def stream(
        self, spec: SubjectSpec[ReqT, RepT], payload: ReqT, tenant_id: str, options: CallOptions
    ) -> AsyncIterator[RepT]: ...


Operation = tuple[SubjectSpec[Any, Any], str]
"""A registry entry and the name of the handler method that serves it (the
runtime's Endpoint is what serves one on the bus)."""


class ServiceHandler:
    """Base of generated handler classes.

    A subclass overrides the operations this process serves; the runtime
    subscribes to those only. The generated defaults raise Unimplemented.
    """

    SERVICE: ClassVar[str] = ""
    ENDPOINTS: ClassVar[Sequence[Operation]] = ()

    async def start(self, bus: Bus) -> None:
        """Called by Bus.serve before any subscription: open stores, make the
        clients of other services. A failure here serves nothing."""

    async def stop(self) -> None:
        """Called by Bus.close once in-flight messages are done, while the
        connection is still up (a last event can still go out)."""

    def concurrency(self, spec: SubjectSpec[Any, Any]) -> int | None:
        """Handlers in flight this service wants for one operation (None: the
        bus's default, 1 for events and work queues, 64 for requests).
        `Bus.serve(concurrency=...)` overrides it for every operation."""
        return None

    def implemented(self) -> list[Operation]:
        """The operations whose method the subclass overrides."""
        own = type(self)
        base = next(c for c in own.__mro__ if "ENDPOINTS" in c.__dict__)
        return [
            (spec, name)
            for spec, name in self.ENDPOINTS
            if getattr(own, name) is not getattr(base, name)
        ]
