"""The bus's telemetry, as hooks (runtime.hooks): a PRODUCER span per send,
stamped into the envelope; a CONSUMER span around every handler call, current
while it runs; error spans for refused input and dead letters; the counts
behind the observable messaging metrics.

An unsampled message (trace flags 00 under a parent-based sampler) costs no
span at all: the incoming traceparent string is carried, untouched, to
whatever the handler sends. Histograms are recorded for sampled messages
only; exact totals come from the counts (runtime.stats.EndpointStats on the
consumer side, sent messages here)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Histogram, Observation
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, set_span_in_context
from opentelemetry.util.types import AttributeValue

from runtime import codec
from runtime.contract import CallOptions, Pattern, SubjectSpec
from runtime.hooks import BuildEnvelope, BusHooks, Handler, Send, SendOperation, StreamSend
from runtime.telemetry.context import (
    ROOT,
    carried_context,
    current_span,
    fail,
    is_unsampled,
    remote_parent,
    stamp,
    unsampled,
)
from runtime.telemetry.counts import Key, add, key, observations
from runtime.telemetry.names import ATTR, MESSAGING_SYSTEM, OP
from runtime.telemetry.spans import FixedSpans

if TYPE_CHECKING:
    from ai.envelope.v1.envelope_pb2 import Envelope
    from runtime.bus import Bus
    from runtime.context import MessageContext
    from runtime.endpoint import Endpoint
    from runtime.errors import PlatformError

_T = TypeVar("_T")
_perf_ns = time.perf_counter_ns
_attach = otel_context.attach
_detach = otel_context.detach
_NO_OPTIONS: CallOptions = {}
Observer = Callable[[CallbackOptions], Iterable[Observation]]


def _template(prefix: str, spec: SubjectSpec[Any, Any]) -> str:
    return f"{prefix}.{spec.component}.{spec.operation}.{{tenant_id}}"


class _Producer:
    """What does not change per message of one subject and operation."""

    __slots__ = ("name", "operation", "metric_attributes", "sent", "failures")

    def __init__(self, prefix: str, spec: SubjectSpec[Any, Any], operation: str) -> None:
        template = _template(prefix, spec)
        self.name = f"{operation} {template}"
        self.operation = operation
        self.metric_attributes: dict[str, AttributeValue] = {
            ATTR.MESSAGING_SYSTEM: MESSAGING_SYSTEM,
            ATTR.DESTINATION_TEMPLATE: template,
            ATTR.OPERATION_TYPE: OP.SEND,
            ATTR.OPERATION_NAME: operation,
        }
        self.sent = 0
        self.failures: dict[str, int] = {}

    def failed(self, exc: BaseException) -> None:
        name = type(exc).__name__
        self.failures[name] = self.failures.get(name, 0) + 1

    def count_into(self, totals: dict[Key, float]) -> None:
        """Sent messages by outcome: failures carry error.type."""
        failed = 0
        for error_type, n in list(self.failures.items()):
            add(totals, key({**self.metric_attributes, ATTR.ERROR_TYPE: error_type}), n)
            failed += n
        add(totals, key(self.metric_attributes), self.sent - failed)


class _Consumer:
    __slots__ = ("endpoint", "name", "dead_letter_name", "metric_attributes", "key")

    def __init__(self, ep: Endpoint) -> None:
        template = _template(ep.bus.prefix, ep.spec)
        self.endpoint = ep
        self.name = f"{OP.PROCESS} {template}"
        self.dead_letter_name = f"{OP.DEAD_LETTER} {template}"
        self.metric_attributes: dict[str, AttributeValue] = {
            ATTR.MESSAGING_SYSTEM: MESSAGING_SYSTEM,
            ATTR.DESTINATION_NAME: ep.subject,
            ATTR.DESTINATION_TEMPLATE: template,
            ATTR.OPERATION_TYPE: OP.PROCESS,
            ATTR.OPERATION_NAME: OP.PROCESS,
        }
        if ep.queue_group:
            self.metric_attributes[ATTR.CONSUMER_GROUP] = ep.queue_group
        self.key = key(self.metric_attributes)

    def count_into(self, totals: dict[Key, float], field: str, scale: float) -> None:
        value = getattr(self.endpoint.stats, field)
        add(totals, self.key, value if scale == 1 else value * scale)


class _Attached:
    """One bus's producers and consumers, until the bus closes."""

    __slots__ = ("bus", "producers", "consumers")

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.producers: dict[tuple[int, str], _Producer] = {}
        self.consumers: dict[int, _Consumer] = {}


class _Send:
    """One traced send: set by the send's wrapper, filled in when its
    envelope is built."""

    __slots__ = ("operation", "producer", "span")

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.producer: _Producer | None = None
        self.span: Span | None = None


_SENDING: ContextVar[_Send | None] = ContextVar("aisdk_sending", default=None)

# EndpointStats field -> scale, for the observable counters made from them.
ENDPOINT_FIELDS = {
    "received": 1.0,
    "handled": 1.0,
    "errors": 1.0,
    "invalid": 1.0,
    "expired": 1.0,
    "retried": 1.0,
    "dead_lettered": 1.0,
    "processing_ns": 1e-9,
}


class TelemetryHooks(BusHooks):
    """Telemetry attached to any number of buses and services through their
    hook chains; what it counts of a bus outlives the bus's close as final
    values, without holding on to the bus."""

    def __init__(
        self, tracer: Tracer, honours_parent: bool, *, operation_duration: Histogram, process_duration: Histogram
    ) -> None:
        self.tracer = tracer
        # The producer and consumer spans: every attribute is the runtime's own.
        self.spans = FixedSpans(tracer)
        self.honours_parent = honours_parent
        self._operation_duration = operation_duration
        self._process_duration = process_duration
        self._attached: dict[int, _Attached] = {}
        self._retired_sent: dict[Key, float] = {}
        self._retired = {field: dict[Key, float]() for field in ENDPOINT_FIELDS}

    def attached(self) -> list[Bus]:
        """The buses whose sends or endpoints this instruments, until they close."""
        return [a.bus for a in list(self._attached.values())]

    def _at(self, bus: Bus) -> _Attached:
        found = self._attached.get(id(bus))
        if found is None:
            found = self._attached[id(bus)] = _Attached(bus)
        return found

    def detach(self, bus: Bus) -> None:
        gone = self._attached.pop(id(bus), None)
        if gone is None:
            return
        for producer in gone.producers.values():
            producer.count_into(self._retired_sent)
        for field, totals in self._retired.items():
            for consumer in gone.consumers.values():
                consumer.count_into(totals, field, ENDPOINT_FIELDS[field])

    # -- observable counters --------------------------------------------------

    def observe_sent(self, options: CallbackOptions) -> Iterable[Observation]:
        totals = dict(self._retired_sent)
        for at in list(self._attached.values()):
            for producer in list(at.producers.values()):
                producer.count_into(totals)
        return observations(totals)

    def endpoint_observer(self, field: str) -> Observer:
        """Observes one EndpointStats field summed per endpoint attributes."""
        scale, retired = ENDPOINT_FIELDS[field], self._retired[field]

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            totals = dict(retired)
            for at in list(self._attached.values()):
                for consumer in list(at.consumers.values()):
                    consumer.count_into(totals, field, scale)
            return observations(totals)

        return observe

    # -- producer -------------------------------------------------------------

    def wrap_envelope(self, bus: Bus, build: BuildEnvelope) -> BuildEnvelope:
        """The envelope, then, inside a traced send, the producer span (or
        the carried unsampled context) stamped into it. Starting here, not
        before, means a payload refused locally sends nothing and records
        nothing, and every attribute is known when the span starts."""
        producers = self._at(bus).producers
        start_span = self.spans.start
        honours = self.honours_parent

        def stamped(
            spec: SubjectSpec[Any, Any], payload: Any, tenant_id: str, options: CallOptions, deadline: float | None
        ) -> Envelope:
            env = build(spec, payload, tenant_id, options, deadline)
            sending = _SENDING.get()
            if sending is None:
                return env
            pkey = (id(spec), sending.operation)
            producer = producers.get(pkey)
            if producer is None:
                producer = producers[pkey] = _Producer(bus.prefix, spec, sending.operation)
            producer.sent += 1
            sending.producer = producer
            parent = current_span()
            if honours and not parent.is_recording() and unsampled(parent):
                stamp(env, parent)
                return env
            attrs = {
                **producer.metric_attributes,
                ATTR.DESTINATION_NAME: bus.subject(spec, tenant_id),
                ATTR.MESSAGE_ID: env.id,
                ATTR.TENANT_ID: tenant_id,
                ATTR.BODY_SIZE: len(env.data),
            }
            if env.correlation_id:
                attrs[ATTR.CONVERSATION_ID] = env.correlation_id
            span = start_span(producer.name, None, SpanKind.PRODUCER, attrs)
            stamp(env, span)
            if span.is_recording():
                sending.span = span
            return env

        return stamped

    def _sent(self, sending: _Send, exc: BaseException | None) -> None:
        producer = sending.producer
        if producer is None:
            return  # refused before an envelope existed: nothing was sent
        if exc is not None:
            producer.failed(exc)
        span = sending.span
        if span is None:
            return
        if exc is not None:
            fail(span, exc)
        span.end()
        # A publish is a buffer write: its duration would be noise.
        if producer.operation != OP.PUBLISH:
            start, end = getattr(span, "start_time", None), getattr(span, "end_time", None)
            if start is not None and end is not None:
                self._operation_duration.record((end - start) / 1e9, producer.metric_attributes)

    def wrap_send(self, bus: Bus, operation: SendOperation, send: Send) -> Send:
        sent = self._sent

        async def traced(spec: SubjectSpec[Any, Any], payload: Any, tenant_id: str,
                         options: CallOptions = _NO_OPTIONS) -> Any:
            sending = _Send(operation)
            token = _SENDING.set(sending)
            failure: BaseException | None = None
            try:
                return await send(spec, payload, tenant_id, options)
            except Exception as e:
                failure = e
                raise
            finally:
                _SENDING.reset(token)
                sent(sending, failure)

        return traced

    def wrap_stream(self, bus: Bus, stream: StreamSend) -> StreamSend:
        sent = self._sent

        async def traced(spec: SubjectSpec[Any, Any], payload: Any, tenant_id: str,
                         options: CallOptions = _NO_OPTIONS) -> AsyncIterator[Any]:
            sending = _Send(OP.STREAM)
            failure: BaseException | None = None
            try:
                async for chunk in _steps(stream(spec, payload, tenant_id, options), None, sending):
                    yield chunk
            except Exception as e:
                failure = e
                raise
            finally:
                sent(sending, failure)

        return traced

    # -- consumer -------------------------------------------------------------

    def _consumer(self, ep: Endpoint) -> _Consumer:
        at = self._attached.get(id(ep.bus))
        found = None if at is None else at.consumers.get(id(ep))
        return _Consumer(ep) if found is None else found

    def _start(self, consumer: _Consumer, ctx: MessageContext) -> Span:
        env = ctx.envelope
        attrs = {
            **consumer.metric_attributes,
            ATTR.DESTINATION_NAME: ctx.subject,
            ATTR.MESSAGE_ID: env.id,
            ATTR.TENANT_ID: ctx.tenant_id,
            ATTR.BODY_SIZE: len(env.data),
        }
        if env.correlation_id:
            attrs[ATTR.CONVERSATION_ID] = env.correlation_id
        if ctx.attempt > 1:
            attrs[ATTR.ATTEMPT] = ctx.attempt
        parent = remote_parent(env.traceparent, env.tracestate)
        return self.spans.start(consumer.name, parent, SpanKind.CONSUMER, attrs)

    def _context_of(self, consumer: _Consumer, ctx: MessageContext) -> tuple[Context, Span | None, int]:
        """What the handler runs in: the carried context of an unsampled
        message, or a consumer span (and when it started, if recorded)."""
        env = ctx.envelope
        if self.honours_parent and is_unsampled(env.traceparent):
            return carried_context(env.traceparent, env.tracestate), None, 0
        span = self._start(consumer, ctx)
        return set_span_in_context(span), span, _perf_ns() if span.is_recording() else 0

    def _processed(self, consumer: _Consumer, span: Span | None, t0: int, exc: BaseException | None) -> None:
        if span is None:
            return
        if exc is not None:
            fail(span, exc)
        span.end()
        if t0:
            self._process_duration.record((_perf_ns() - t0) / 1e9, consumer.metric_attributes)

    def wrap_handler(self, endpoint: Endpoint, method: Handler) -> Handler:
        """The handler inside a consumer span (or, for an unsampled message,
        the carried context), current while it runs."""
        consumer = self._at(endpoint.bus).consumers.setdefault(id(endpoint), _Consumer(endpoint))
        context_of, processed = self._context_of, self._processed

        if endpoint.spec.pattern is Pattern.STREAM:

            async def traced_stream(payload: Any, ctx: MessageContext) -> AsyncIterator[Any]:
                current, span, t0 = context_of(consumer, ctx)
                failure: BaseException | None = None
                try:
                    async for chunk in _steps(method(payload, ctx), current):
                        yield chunk
                except Exception as e:
                    failure = e
                    raise
                finally:
                    processed(consumer, span, t0, failure)

            return traced_stream

        async def traced(payload: Any, ctx: MessageContext) -> Any:
            current, span, t0 = context_of(consumer, ctx)
            token = _attach(current)
            failure: BaseException | None = None
            try:
                return await method(payload, ctx)
            except Exception as e:
                failure = e
                raise
            finally:
                _detach(token)
                processed(consumer, span, t0, failure)

        return traced

    def _error_span(self, name: str, kind: SpanKind, data: bytes, attrs: dict[str, AttributeValue]) -> Span | None:
        """A span for a message that never reached its handler: child of the
        message's context if its envelope decodes, else a new trace."""
        try:
            env = codec.Envelope.FromString(data)
        except Exception:  # noqa: BLE001 - garbage has no context to continue
            env = None
        if env is not None:
            if self.honours_parent and is_unsampled(env.traceparent):
                return None
            parent = remote_parent(env.traceparent, env.tracestate)
            if env.id:
                attrs[ATTR.MESSAGE_ID] = env.id
        else:
            parent = ROOT
        span = self.tracer.start_span(name, parent, kind, attrs)
        return span if span.is_recording() else None

    def refused(self, endpoint: Endpoint, subject: str, data: bytes, error: PlatformError) -> None:
        consumer = self._consumer(endpoint)
        attrs = {**consumer.metric_attributes, ATTR.DESTINATION_NAME: subject, ATTR.ENVELOPE_SIZE: len(data)}
        span = self._error_span(consumer.name, SpanKind.CONSUMER, data, attrs)
        if span is not None:
            fail(span, error)
            span.end()

    def dead_lettered(self, endpoint: Endpoint, subject: str, data: bytes, reason: str, attempts: int) -> None:
        from runtime import jetstream

        consumer = self._consumer(endpoint)
        attrs: dict[str, AttributeValue] = {
            **consumer.metric_attributes,
            ATTR.OPERATION_TYPE: OP.SEND,
            ATTR.OPERATION_NAME: OP.DEAD_LETTER,
            ATTR.DESTINATION_NAME: jetstream.dlq_subject(endpoint.bus.prefix, subject),
            ATTR.DEAD_LETTER_REASON: reason,
        }
        if attempts:
            attrs[ATTR.ATTEMPT] = attempts
        span = self._error_span(consumer.dead_letter_name, SpanKind.PRODUCER, data, attrs)
        if span is not None:
            span.set_status(Status(StatusCode.ERROR, f"dead-lettered after {attempts} attempt(s): {reason}"))
            span.end()


async def _steps(chunks: AsyncIterator[_T], current: Context | None, sending: _Send | None = None) -> AsyncIterator[_T]:
    """Iterate with `current` (and the traced send) in effect while each step
    runs, never across a yield: an async generator may be finalized in
    another context."""
    it = chunks.__aiter__()
    while True:
        token = None if current is None else _attach(current)
        send_token = None if sending is None else _SENDING.set(sending)
        try:
            chunk = await it.__anext__()
        except StopAsyncIteration:
            return
        finally:
            if send_token is not None:
                _SENDING.reset(send_token)
            if token is not None:
                _detach(token)
        yield chunk
