"""Hooks: how instrumentation (telemetry, or an application's own) attaches to
a Bus and its endpoints without touching their code or attributes.

    bus = Bus(url, hooks=[MyHooks()])                  # every send and endpoint
    await bus.serve(handler, hooks=[AuditHooks()])     # that service's endpoints only

A hook overrides what it needs of `BusHooks`; the base does nothing. The
`wrap_*` methods are called once, when the bus or an endpoint is built, and
return the callable used from then on: with no hook the bus and its
endpoints call their own methods, so an uninstrumented message pays nothing.
`refused` and `dead_lettered` are called on those (rare) paths. `detach` is
called once when the bus closes: a hook lets go of the bus there, so nothing
it feeds (an observable metric, say) reads a closed bus afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ai.envelope.v1.envelope_pb2 import Envelope
    from runtime.bus import Bus
    from runtime.contract import CallOptions, SubjectSpec
    from runtime.endpoint import Endpoint
    from runtime.errors import PlatformError

__all__ = ["BuildEnvelope", "BusHooks", "Handler", "HookChain", "Send", "SendOperation", "StreamSend"]

SendOperation = Literal["publish", "request"]
Send = Callable[["SubjectSpec[Any, Any]", Any, str, "CallOptions"], Coroutine[Any, Any, Any]]
"""Bus.publish or Bus.request: (spec, payload, tenant_id, options) -> awaitable result."""
StreamSend = Callable[["SubjectSpec[Any, Any]", Any, str, "CallOptions"], AsyncIterator[Any]]
"""Bus.stream: (spec, payload, tenant_id, options) -> the reply's chunks."""
BuildEnvelope = Callable[["SubjectSpec[Any, Any]", Any, str, "CallOptions", "float | None"], "Envelope"]
"""What a send builds its envelope with: (spec, payload, tenant_id, options, deadline).
It runs inside the send, after the payload passed its checks."""
Handler = Callable[..., Any]
"""A handler method: (payload, ctx) -> awaitable reply, or an async iterator of chunks."""


class BusHooks:
    """No-op base of a hook; override what you need."""

    def wrap_send(self, bus: Bus, operation: SendOperation, send: Send) -> Send:
        """Bus.publish ("publish") or Bus.request ("request")."""
        return send

    def wrap_stream(self, bus: Bus, stream: StreamSend) -> StreamSend:
        return stream

    def wrap_envelope(self, bus: Bus, build: BuildEnvelope) -> BuildEnvelope:
        """Stamp (or read) every envelope the bus sends through publish,
        request or stream."""
        return build

    def wrap_handler(self, endpoint: Endpoint, method: Handler) -> Handler:
        """The handler method one endpoint calls (endpoint.spec.pattern says
        whether it returns a reply, chunks, or nothing)."""
        return method

    def refused(self, endpoint: Endpoint, subject: str, data: bytes, error: PlatformError) -> None:
        """Input refused before its handler: undecodable, wrong tenant or
        version, contract violation. The endpoint answers or dead-letters it."""

    def dead_lettered(self, endpoint: Endpoint, subject: str, data: bytes, reason: str, attempts: int) -> None:
        """A message about to be moved to the dead-letter subject."""

    def detach(self, bus: Bus) -> None:
        """The bus has closed."""


class HookChain(BusHooks):
    """Hooks in order: the first wraps outermost and is told first. Empty, it
    returns every callable unchanged."""

    def __init__(self, hooks: Iterable[BusHooks] = ()) -> None:
        chain: list[BusHooks] = []
        for hook in hooks:
            for h in hook.hooks if isinstance(hook, HookChain) else (hook,):
                # The base class does nothing; the same hook twice would wrap twice.
                if type(h) is not BusHooks and all(h is not seen for seen in chain):
                    chain.append(h)
        self.hooks: tuple[BusHooks, ...] = tuple(chain)

    def __bool__(self) -> bool:
        return bool(self.hooks)

    def __add__(self, more: Iterable[BusHooks]) -> HookChain:
        return HookChain((*self.hooks, *more))

    def wrap_send(self, bus: Bus, operation: SendOperation, send: Send) -> Send:
        for hook in reversed(self.hooks):
            send = hook.wrap_send(bus, operation, send)
        return send

    def wrap_stream(self, bus: Bus, stream: StreamSend) -> StreamSend:
        for hook in reversed(self.hooks):
            stream = hook.wrap_stream(bus, stream)
        return stream

    def wrap_envelope(self, bus: Bus, build: BuildEnvelope) -> BuildEnvelope:
        for hook in reversed(self.hooks):
            build = hook.wrap_envelope(bus, build)
        return build

    def wrap_handler(self, endpoint: Endpoint, method: Handler) -> Handler:
        for hook in reversed(self.hooks):
            method = hook.wrap_handler(endpoint, method)
        return method

    def refused(self, endpoint: Endpoint, subject: str, data: bytes, error: PlatformError) -> None:
        for hook in self.hooks:
            hook.refused(endpoint, subject, data, error)

    def dead_lettered(self, endpoint: Endpoint, subject: str, data: bytes, reason: str, attempts: int) -> None:
        for hook in self.hooks:
            hook.dead_lettered(endpoint, subject, data, reason, attempts)

    def detach(self, bus: Bus) -> None:
        for hook in self.hooks:
            hook.detach(bus)
