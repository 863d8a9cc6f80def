"""W3C trace context carried in the Envelope: traceparent formatted and parsed
by slicing the 55-character header (not through the generic propagator), and
the context of an unsampled message carried on without being parsed."""

from __future__ import annotations

import re
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    NonRecordingSpan,
    Span,
    SpanContext,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from runtime.telemetry.names import ATTR

__all__ = ["format_traceparent", "parse_traceparent"]

current_span = trace.get_current_span
ROOT = Context()
# Last hex digit of the trace flags: even means the sampled bit is clear.
_UNSAMPLED_DIGITS = frozenset("02468ace")
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")


def format_traceparent(ctx: SpanContext) -> str:
    """The W3C traceparent header of a span context (version 00)."""
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


def parse_traceparent(traceparent: str, tracestate: str = "") -> SpanContext | None:
    """A remote SpanContext from a W3C traceparent, or None if it is not one.
    Follows the spec's rules: version ff and all-zero ids are invalid, a
    version-00 header is exactly 55 characters, later versions may append."""
    m = _TRACEPARENT.fullmatch(traceparent)
    if m is None:
        return None
    version, trace_hex, span_hex, flags_hex, rest = m.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    trace_id = int(trace_hex, 16)
    span_id = int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    state = TraceState.from_header([tracestate]) if tracestate else None
    return SpanContext(trace_id, span_id, True, TraceFlags(int(flags_hex, 16)), state)


def is_unsampled(traceparent: str) -> bool:
    """A version-00 traceparent whose sampled flag is clear, from one character."""
    return len(traceparent) == 55 and traceparent[54] in _UNSAMPLED_DIGITS


class Carried(NonRecordingSpan):
    """The trace context of an unsampled message, carried to what its handler
    sends without being parsed, unless something asks for it."""

    def __init__(self, traceparent: str, tracestate: str) -> None:
        super().__init__(INVALID_SPAN_CONTEXT)
        self.traceparent = traceparent
        self.tracestate = tracestate
        self._parsed = False

    def get_span_context(self) -> SpanContext:
        if not self._parsed:
            self._parsed = True
            self._context = parse_traceparent(self.traceparent, self.tracestate) or INVALID_SPAN_CONTEXT
        return self._context


def unsampled(span: Span) -> bool:
    """A non-recording span that stands for an unsampled trace (not the
    absence of one)."""
    if type(span) is Carried:
        return True
    ctx = span.get_span_context()
    return ctx.is_valid and not ctx.trace_flags.sampled


def carried_context(traceparent: str, tracestate: str) -> Context:
    return set_span_in_context(Carried(traceparent, tracestate))


def remote_parent(traceparent: str, tracestate: str) -> Context:
    parent = parse_traceparent(traceparent, tracestate) if traceparent else None
    # An explicit empty context: a subscription task may have inherited
    # whatever span was current when serve() was called.
    return ROOT if parent is None else set_span_in_context(NonRecordingSpan(parent))


def stamp(env: Any, span: Span) -> None:
    """Write a span's context into an Envelope; a carried context as it came."""
    if type(span) is Carried:
        env.traceparent = span.traceparent
        env.tracestate = span.tracestate
        return
    ctx = span.get_span_context()
    env.traceparent = format_traceparent(ctx)
    if ctx.trace_state:
        env.tracestate = ctx.trace_state.to_header()


def fail(span: Span, exc: BaseException) -> None:
    """Mark a recording span as failed by `exc`."""
    if span.is_recording():
        span.record_exception(exc)
        span.set_attribute(ATTR.ERROR_TYPE, type(exc).__name__)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
