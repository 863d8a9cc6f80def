"""OpenTelemetry for the bus: one trace across every hop, metrics from counts.

    tel = telemetry.setup(service_name="gateway", exporter="otlp", sampler_ratio=0.1)
    async with Bus(url, telemetry=tel) as bus: ...

A Bus without `telemetry=` does no telemetry work at all. With it:

- every publish/request/stream gets a PRODUCER span and stamps the W3C trace
  context into the Envelope (not NATS headers: they cost nats-py 2-3x);
- every handler call runs inside a CONSUMER span whose parent is that
  context, made current so that whatever the handler publishes is its child;
- refused input and dead letters get error spans;
- counts (per endpoint: runtime.stats.EndpointStats; per subject: sent
  messages) are plain integers read by observable instruments at export time.

Cost is the design constraint. An unsampled message (trace flags 00 under a
parent-based sampler) costs no span at all: the incoming traceparent string is
carried, untouched, to whatever the handler sends. traceparent is formatted
and parsed by slicing the 55-character header, not through the generic
propagator. Histograms are recorded for sampled messages only; exact totals
come from the counters. docs/telemetry.md has the measured figures.

Nothing here installs a global provider unless `setup(set_global=True)`.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Histogram, Meter, MeterProvider, Observation
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TracerProvider,
    TraceState,
    set_span_in_context,
)
from opentelemetry.util.types import AttributeValue

from runtime.contract import Pattern, SubjectSpec
from runtime.errors import PlatformError
from runtime.telemetry_names import (
    ATTR,
    INSTRUMENTATION_NAME,
    MESSAGING_SYSTEM,
    METRIC,
    OP,
    SCHEMA_URL,
    MetricKind,
    MetricName,
    SpanName,
)
from runtime.telemetry_view import dump_spans, load_spans, render_waterfall

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricReader
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler

    from runtime.bus import Bus
    from runtime.context import MessageContext
    from runtime.endpoint import Endpoint

__all__ = [
    "Telemetry",
    "TelemetryError",
    "dump_spans",
    "format_traceparent",
    "load_spans",
    "parse_traceparent",
    "render_waterfall",
    "setup",
]

_T = TypeVar("_T")
Attributes = Mapping[str, AttributeValue]
_perf_ns = time.perf_counter_ns
_attach = otel_context.attach
_detach = otel_context.detach
_current_span = trace.get_current_span
_ROOT = Context()
# Last hex digit of the trace flags: even means the sampled bit is clear.
_UNSAMPLED_DIGITS = frozenset("02468ace")
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_VERSION = "1.0.0"
_NO_OPTIONS: dict[str, Any] = {}


class TelemetryError(PlatformError):
    """A telemetry configuration the platform cannot honour."""


# -- W3C trace context -------------------------------------------------------


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


def _is_unsampled(traceparent: str) -> bool:
    return len(traceparent) == 55 and traceparent[54] in _UNSAMPLED_DIGITS


class _Carried(NonRecordingSpan):
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


def _unsampled(span: Span) -> bool:
    """A non-recording span that stands for an unsampled trace (not the
    absence of one)."""
    if type(span) is _Carried:
        return True
    ctx = span.get_span_context()
    return ctx.is_valid and not ctx.trace_flags.sampled


def _remote_parent(traceparent: str, tracestate: str) -> Context:
    parent = parse_traceparent(traceparent, tracestate) if traceparent else None
    # An explicit empty context: a subscription task may have inherited
    # whatever span was current when serve() was called.
    return _ROOT if parent is None else set_span_in_context(NonRecordingSpan(parent))


def _fail(span: Span, exc: BaseException) -> None:
    if span.is_recording():
        span.record_exception(exc)
        span.set_attribute(ATTR.ERROR_TYPE, type(exc).__name__)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


# -- local counts behind observable instruments ------------------------------


def _key(attributes: Attributes | None) -> tuple[tuple[str, AttributeValue], ...]:
    return tuple(sorted(attributes.items())) if attributes else ()


class Count:
    """A counter counted in a dict and read at export time: the same numbers
    as an SDK Counter at a fraction of the cost per call."""

    __slots__ = ("metric", "_values")

    def __init__(self, metric: MetricName) -> None:
        self.metric = metric
        self._values: dict[tuple[tuple[str, AttributeValue], ...], float] = {}

    def add(self, amount: float = 1, attributes: Attributes | None = None) -> None:
        if amount < 0 and self.metric.kind is MetricKind.COUNTER:
            raise TelemetryError(f"{self.metric.name} is a counter: it cannot go down by {amount}")
        key = _key(attributes)
        self._values[key] = self._values.get(key, 0) + amount

    def value(self, attributes: Attributes | None = None) -> float:
        return self._values.get(_key(attributes), 0)

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        # list(): the export thread reads while the event loop may add keys.
        return [Observation(v, dict(k)) for k, v in list(self._values.items())]


class Metrics:
    """The metrics of the registry by name: `metrics.counter(METRIC.X).add(1)`,
    `metrics.histogram(METRIC.Y).record(0.2)`. Instruments are created once."""

    def __init__(self, meter: Meter) -> None:
        self._meter = meter
        self._counts: dict[str, Count] = {}
        self._histograms: dict[str, Histogram] = {}

    def counter(self, metric: MetricName) -> Count:
        """A COUNTER or UPDOWN metric, counted locally."""
        found = self._counts.get(metric.name)
        if found is not None:
            return found
        if metric.kind is MetricKind.HISTOGRAM:
            raise TelemetryError(f"{metric.name} is a histogram: use metrics.histogram()")
        count = Count(metric)
        create = (
            self._meter.create_observable_counter
            if metric.kind is MetricKind.COUNTER
            else self._meter.create_observable_up_down_counter
        )
        create(metric.name, [count.observe], metric.unit, metric.description)
        self._counts[metric.name] = count
        return count

    def histogram(self, metric: MetricName) -> Histogram:
        found = self._histograms.get(metric.name)
        if found is not None:
            return found
        if metric.kind is not MetricKind.HISTOGRAM:
            raise TelemetryError(f"{metric.name} is a {metric.kind.value}: use metrics.counter()")
        hist = self._meter.create_histogram(metric.name, metric.unit, metric.description)
        self._histograms[metric.name] = hist
        return hist


# -- the handle ----------------------------------------------------------------


class Telemetry:
    """Tracer and meter providers, and what the bus needs from them.

    Build it with setup(), or from providers you already have:
    `Telemetry(trace.get_tracer_provider(), metrics.get_meter_provider())`.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
        *,
        span_exporter: InMemorySpanExporter | None = None,
        metric_reader: InMemoryMetricReader | None = None,
        owns_providers: bool = False,
        enabled: bool = True,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.span_exporter = span_exporter
        self.metric_reader = metric_reader
        self.enabled = enabled
        self._owns_providers = owns_providers
        self.tracer = tracer_provider.get_tracer(INSTRUMENTATION_NAME, _VERSION, SCHEMA_URL)
        self.meter = meter_provider.get_meter(INSTRUMENTATION_NAME, _VERSION, SCHEMA_URL)
        self.metrics = Metrics(self.meter)
        self.honours_parent = _honours_parent(getattr(tracer_provider, "sampler", None))
        self._bindings: list[BusTelemetry] = []
        self._process_duration = self.metrics.histogram(METRIC.PROCESS_DURATION)
        self._operation_duration = self.metrics.histogram(METRIC.OPERATION_DURATION)
        observed: Sequence[tuple[MetricName, Callable[[CallbackOptions], Iterable[Observation]]]] = (
            (METRIC.SENT, self._observe_sent),
            (METRIC.CONSUMED, self._endpoint_observer("received")),
            (METRIC.HANDLED, self._endpoint_observer("handled")),
            (METRIC.HANDLER_ERRORS, self._endpoint_observer("errors")),
            (METRIC.INVALID, self._endpoint_observer("invalid")),
            (METRIC.EXPIRED, self._endpoint_observer("expired")),
            (METRIC.RETRIED, self._endpoint_observer("retried")),
            (METRIC.DEAD_LETTERED, self._endpoint_observer("dead_lettered")),
            (METRIC.HANDLER_TIME, self._endpoint_observer("processing_ns", 1e-9)),
        )
        for metric, callback in observed:
            self.meter.create_observable_counter(metric.name, [callback], metric.unit, metric.description)

    @classmethod
    def disabled(cls) -> Telemetry:
        """No-op providers: spans and metrics of components cost nothing, and
        a Bus given this does no telemetry work at all."""
        return cls(trace.NoOpTracerProvider(), otel_metrics.NoOpMeterProvider(), enabled=False)

    # -- for components ---------------------------------------------------

    @contextlib.contextmanager
    def span(
        self, name: SpanName, attributes: Attributes | None = None, kind: SpanKind = SpanKind.INTERNAL
    ) -> Iterator[Span]:
        """A component span (SPAN.GATEWAY_GENERATE, ...), child of the current
        one; inside an unsampled message it is the carried context, for free."""
        current = _current_span()
        if self.honours_parent and not current.is_recording() and _unsampled(current):
            yield current
            return
        with self.tracer.start_as_current_span(name.name, kind=kind, attributes=attributes) as span:
            yield span

    # -- results ----------------------------------------------------------

    def finished_spans(self) -> tuple[ReadableSpan, ...]:
        """What the in-memory exporter holds (exporter "memory")."""
        if self.span_exporter is None:
            raise TelemetryError('finished_spans() needs the in-memory exporter: setup(exporter="memory")')
        return self.span_exporter.get_finished_spans()

    def waterfall(self, *, width: int = 100, color: bool = False) -> str:
        """The finished spans as a terminal waterfall (exporter "memory")."""
        return render_waterfall(load_spans(self.finished_spans()), width=width, color=color)

    def force_flush(self) -> None:
        for provider in (self.tracer_provider, self.meter_provider):
            flush = getattr(provider, "force_flush", None)
            if flush is not None:
                flush()

    def shutdown(self) -> None:
        """Flush and stop the providers setup() made (never the globals of someone else)."""
        if not self._owns_providers:
            return
        for provider in (self.tracer_provider, self.meter_provider):
            stop = getattr(provider, "shutdown", None)
            if stop is not None:
                stop()

    # -- the bus's side ---------------------------------------------------

    def bind(self, bus: Bus) -> BusTelemetry:
        binding = BusTelemetry(self, bus)
        self._bindings.append(binding)
        return binding

    def _endpoints(self) -> Iterator[Endpoint]:
        for binding in self._bindings:
            for service in binding.bus.services:
                yield from service.endpoints

    def _endpoint_observer(
        self, field: str, scale: float = 1.0
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            totals: dict[tuple[tuple[str, AttributeValue], ...], float] = {}
            for ep in self._endpoints():
                key = _key(_endpoint_attributes(ep))
                value = getattr(ep.stats, field)
                totals[key] = totals.get(key, 0) + (value if scale == 1 else value * scale)
            return [Observation(v, dict(k)) for k, v in totals.items()]

        return observe

    def _observe_sent(self, options: CallbackOptions) -> Iterable[Observation]:
        totals: dict[tuple[tuple[str, AttributeValue], ...], int] = {}
        for binding in self._bindings:
            for producer in list(binding.producers.values()):
                failed = 0
                for error_type, n in list(producer.failures.items()):
                    key = _key({**producer.metric_attributes, ATTR.ERROR_TYPE: error_type})
                    totals[key] = totals.get(key, 0) + n
                    failed += n
                key = _key(producer.metric_attributes)
                totals[key] = totals.get(key, 0) + producer.sent - failed
        return [Observation(v, dict(k)) for k, v in totals.items()]


def _honours_parent(sampler: Sampler | None) -> bool:
    """Whether an unsampled parent means an unsampled child (ParentBased with
    its default delegates), so that such messages may skip the SDK entirely."""
    if sampler is None:
        return False
    description = sampler.get_description()
    return (
        description.startswith("ParentBased{")
        and "remoteParentNotSampled:AlwaysOffSampler" in description
        and "localParentNotSampled:AlwaysOffSampler" in description
    )


def _template(prefix: str, spec: SubjectSpec[Any, Any]) -> str:
    return f"{prefix}.{spec.component}.{spec.operation}.{{tenant_id}}"


def _endpoint_attributes(ep: Endpoint) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {
        ATTR.MESSAGING_SYSTEM: MESSAGING_SYSTEM,
        ATTR.DESTINATION_NAME: ep.subject,
        ATTR.DESTINATION_TEMPLATE: _template(ep.bus.prefix, ep.spec),
        ATTR.OPERATION_TYPE: OP.PROCESS,
        ATTR.OPERATION_NAME: OP.PROCESS,
    }
    if ep.queue_group:
        attrs[ATTR.CONSUMER_GROUP] = ep.queue_group
    return attrs


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


class _Consumer:
    __slots__ = ("name", "metric_attributes", "dead_letter_name")

    def __init__(self, ep: Endpoint) -> None:
        template = _template(ep.bus.prefix, ep.spec)
        self.name = f"{OP.PROCESS} {template}"
        self.dead_letter_name = f"{OP.DEAD_LETTER} {template}"
        self.metric_attributes = _endpoint_attributes(ep)


class _Send:
    """One traced send: set by the wrapper, filled in when the envelope is built."""

    __slots__ = ("operation", "producer", "span")

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.producer: _Producer | None = None
        self.span: Span | None = None


_SENDING: ContextVar[_Send | None] = ContextVar("aisdk_sending", default=None)


def _stamp(env: Any, ctx: SpanContext) -> None:
    env.traceparent = format_traceparent(ctx)
    if ctx.trace_state:
        env.tracestate = ctx.trace_state.to_header()


class BusTelemetry:
    """Instruments one Bus and its endpoints by wrapping their bound methods
    on that instance only: a Bus without telemetry runs its own code, with
    not even an `is None` check per message."""

    def __init__(self, telemetry: Telemetry, bus: Bus) -> None:
        self.telemetry = telemetry
        self.bus = bus
        self.tracer = telemetry.tracer
        self.honours_parent = telemetry.honours_parent
        self.producers: dict[tuple[int, str], _Producer] = {}
        # setattr, not assignment: these are the class's methods, and only
        # this instance gets the traced versions.
        setattr(bus, "publish", self._traced_send(bus.publish, OP.PUBLISH))
        setattr(bus, "request", self._traced_send(bus.request, OP.REQUEST))
        setattr(bus, "stream", self._traced_stream(bus.stream))
        setattr(bus, "_envelope", self._stamping(bus._envelope))

    # -- producer -----------------------------------------------------------

    def _producer(self, spec: SubjectSpec[Any, Any], operation: str) -> _Producer:
        key = (id(spec), operation)
        producer = self.producers.get(key)
        if producer is None:
            producer = self.producers[key] = _Producer(self.bus.prefix, spec, operation)
        producer.sent += 1
        return producer

    def _stamping(self, envelope: Callable[..., Any]) -> Callable[..., Any]:
        """Bus._envelope, then, inside a traced send, the producer span (or
        the carried unsampled context) stamped into the envelope. Starting
        here, not before, means a payload refused locally sends nothing and
        records nothing, and every attribute is known when the span starts."""
        bus = self.bus
        tracer = self.tracer
        honours = self.honours_parent

        def stamped(spec: SubjectSpec[Any, Any], payload: Any, tenant_id: str, options: Any, deadline: Any) -> Any:
            env = envelope(spec, payload, tenant_id, options, deadline)
            sending = _SENDING.get()
            if sending is None:
                return env
            producer = sending.producer = self._producer(spec, sending.operation)
            parent = _current_span()
            if honours and not parent.is_recording() and _unsampled(parent):
                if type(parent) is _Carried:
                    env.traceparent = parent.traceparent
                    env.tracestate = parent.tracestate
                else:
                    _stamp(env, parent.get_span_context())
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
            span = tracer.start_span(producer.name, kind=SpanKind.PRODUCER, attributes=attrs)
            _stamp(env, span.get_span_context())
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
            _fail(span, exc)
        span.end()
        # A publish is a buffer write: its duration would be noise.
        if producer.operation != OP.PUBLISH:
            start, end = getattr(span, "start_time", None), getattr(span, "end_time", None)
            if start is not None and end is not None:
                self.telemetry._operation_duration.record((end - start) / 1e9, producer.metric_attributes)

    def _traced_send(self, send: Callable[..., Awaitable[_T]], operation: str) -> Callable[..., Awaitable[_T]]:
        async def traced(
            spec: SubjectSpec[Any, Any], payload: Any, tenant_id: str, options: Any = _NO_OPTIONS
        ) -> _T:
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
                self._sent(sending, failure)

        return traced

    def _traced_stream(self, stream: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
        async def traced(
            spec: SubjectSpec[Any, Any], payload: Any, tenant_id: str, options: Any = _NO_OPTIONS
        ) -> AsyncIterator[Any]:
            sending = _Send(OP.STREAM)
            failure: BaseException | None = None
            try:
                async for chunk in _steps(stream(spec, payload, tenant_id, options), None, sending):
                    yield chunk
            except Exception as e:
                failure = e
                raise
            finally:
                self._sent(sending, failure)

        return traced

    # -- consumer -----------------------------------------------------------

    def instrument_endpoint(self, ep: Endpoint) -> None:
        consumer = _Consumer(ep)
        ep.method = self._traced_handler(consumer, ep)
        refuse, dead_letter = ep._refuse, ep._dead_letter

        async def refused(subject: str, data: bytes, exc: PlatformError, reply: str, attempts: int) -> None:
            self._refused(consumer, subject, data, exc)
            await refuse(subject, data, exc, reply, attempts)

        async def dead_lettered(subject: str, data: bytes, code: int, reason: str, attempts: int, group: str) -> None:
            self._dead_lettered(consumer, subject, data, reason, attempts)
            await dead_letter(subject, data, code, reason, attempts, group)

        setattr(ep, "_refuse", refused)
        setattr(ep, "_dead_letter", dead_lettered)

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
        parent = _remote_parent(env.traceparent, env.tracestate)
        return self.tracer.start_span(consumer.name, parent, SpanKind.CONSUMER, attrs)

    def _context_of(self, consumer: _Consumer, ctx: MessageContext) -> tuple[Context, Span | None, int]:
        """What the handler runs in: the carried context of an unsampled
        message, or a consumer span (and when it started, if recorded)."""
        env = ctx.envelope
        if self.honours_parent and _is_unsampled(env.traceparent):
            return set_span_in_context(_Carried(env.traceparent, env.tracestate)), None, 0
        span = self._start(consumer, ctx)
        return set_span_in_context(span), span, _perf_ns() if span.is_recording() else 0

    def _processed(self, consumer: _Consumer, span: Span | None, t0: int, exc: BaseException | None) -> None:
        if span is None:
            return
        if exc is not None:
            _fail(span, exc)
        span.end()
        if t0:
            self.telemetry._process_duration.record((_perf_ns() - t0) / 1e9, consumer.metric_attributes)

    def _traced_handler(self, consumer: _Consumer, ep: Endpoint) -> Callable[..., Any]:
        """The handler inside a consumer span (or, for an unsampled message,
        the carried context), current while it runs."""
        method = ep.method
        context_of, processed = self._context_of, self._processed

        if ep.spec.pattern is Pattern.STREAM:

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
        from runtime import codec

        try:
            env = codec.Envelope.FromString(data)
        except Exception:  # noqa: BLE001 - garbage has no context to continue
            env = None
        if env is not None:
            if self.honours_parent and _is_unsampled(env.traceparent):
                return None
            parent = _remote_parent(env.traceparent, env.tracestate)
            if env.id:
                attrs[ATTR.MESSAGE_ID] = env.id
        else:
            parent = _ROOT
        span = self.tracer.start_span(name, parent, kind, attrs)
        return span if span.is_recording() else None

    def _refused(self, consumer: _Consumer, subject: str, data: bytes, exc: PlatformError) -> None:
        attrs = {**consumer.metric_attributes, ATTR.DESTINATION_NAME: subject, ATTR.ENVELOPE_SIZE: len(data)}
        span = self._error_span(consumer.name, SpanKind.CONSUMER, data, attrs)
        if span is not None:
            _fail(span, exc)
            span.end()

    def _dead_lettered(self, consumer: _Consumer, subject: str, data: bytes, reason: str, attempts: int) -> None:
        from runtime import jetstream

        attrs: dict[str, AttributeValue] = {
            **consumer.metric_attributes,
            ATTR.OPERATION_TYPE: OP.SEND,
            ATTR.OPERATION_NAME: OP.DEAD_LETTER,
            ATTR.DESTINATION_NAME: jetstream.dlq_subject(self.bus.prefix, subject),
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


# -- setup ---------------------------------------------------------------------

EXPORTERS = ("none", "console", "otlp", "memory")
_SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def _exporter_names(given: str | None, env_name: str, signal: str) -> list[str]:
    value = given or _env(env_name)
    if value is None:
        # The spec's default is otlp; sending to a collector nobody started
        # only fills the log with export failures, so ask for an endpoint.
        endpoint = _env("OTEL_EXPORTER_OTLP_ENDPOINT", f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
        value = "otlp" if endpoint else "none"
    names = [n.strip().lower() for n in value.split(",") if n.strip()]
    for name in names:
        if name not in EXPORTERS:
            raise TelemetryError(f"unknown {signal.lower()} exporter {name!r} (from {env_name} or the exporter "
                                 f"argument): use one of {', '.join(EXPORTERS)}")
    return [n for n in names if n != "none"]


def _sampler(ratio: float | None) -> Sampler:
    from opentelemetry.sdk.trace import sampling

    if ratio is not None:
        if not 0.0 <= ratio <= 1.0:
            raise TelemetryError(f"sampler ratio {ratio} is not between 0 and 1")
        return sampling.ParentBased(sampling.TraceIdRatioBased(ratio))
    name = (_env("OTEL_TRACES_SAMPLER") or "parentbased_always_on").lower()
    if name not in _SAMPLERS:
        raise TelemetryError(f"unknown OTEL_TRACES_SAMPLER {name!r}: use one of {', '.join(_SAMPLERS)}")
    arg = _env("OTEL_TRACES_SAMPLER_ARG")
    try:
        rate = 1.0 if arg is None else float(arg)
    except ValueError:
        raise TelemetryError(f"OTEL_TRACES_SAMPLER_ARG {arg!r} is not a number") from None
    root: Sampler = {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "traceidratio": sampling.TraceIdRatioBased(rate),
    }[name.removeprefix("parentbased_")]
    return sampling.ParentBased(root) if name.startswith("parentbased_") else root


def _otlp(signal: str, protocol: str | None, endpoint: str | None) -> Any:
    proto = (protocol or _env(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
             or "http/protobuf").lower()
    if proto not in ("grpc", "http/protobuf"):
        raise TelemetryError(f"OTLP protocol {proto!r} is not supported: use grpc or http/protobuf")
    kind = "grpc" if proto == "grpc" else "http"
    name = "OTLPSpanExporter" if signal == "TRACES" else "OTLPMetricExporter"
    module = f"opentelemetry.exporter.otlp.proto.{kind}.{'trace_exporter' if signal == 'TRACES' else 'metric_exporter'}"
    try:
        exporter_cls = getattr(__import__(module, fromlist=[name]), name)
    except ImportError:
        raise TelemetryError(
            "the OTLP exporter is not installed: pip install 'aisdk-contracts[otlp]'"
        ) from None
    if endpoint is None:
        return exporter_cls()
    if kind == "http":
        endpoint = f"{endpoint.rstrip('/')}/v1/{signal.lower()}"
    return exporter_cls(endpoint=endpoint)


def setup(
    service_name: str | None = None,
    *,
    exporter: str | None = None,
    metrics_exporter: str | None = None,
    sampler_ratio: float | None = None,
    sampler: Sampler | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    resource_attributes: Mapping[str, str] | None = None,
    metric_readers: Sequence[MetricReader] = (),
    set_global: bool = False,
) -> Telemetry:
    """Tracer and meter providers from arguments, else the standard OTEL_*
    variables: OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_EXPORTER,
    OTEL_METRICS_EXPORTER, OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]ENDPOINT and
    _PROTOCOL, OTEL_TRACES_SAMPLER[_ARG], OTEL_BSP_*, OTEL_METRIC_EXPORT_INTERVAL,
    OTEL_SDK_DISABLED.

    exporter / metrics_exporter: "none", "console", "otlp" or "memory"
    (comma-separated for several). sampler_ratio: a parent-based trace-id
    ratio sampler. set_global: also install the providers as the globals.
    """
    if (_env("OTEL_SDK_DISABLED") or "").lower() == "true":
        return Telemetry.disabled()
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        InMemoryMetricReader,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    attrs: dict[str, AttributeValue] = dict(resource_attributes or {})
    if service_name:
        attrs[ATTR.SERVICE_NAME] = service_name
    resource = Resource.create(attrs)
    if sampler is not None and sampler_ratio is not None:
        raise TelemetryError("give sampler or sampler_ratio, not both")
    tracer_provider = SdkTracerProvider(resource=resource, sampler=sampler or _sampler(sampler_ratio))
    memory_spans: InMemorySpanExporter | None = None
    for name in _exporter_names(exporter, "OTEL_TRACES_EXPORTER", "TRACES"):
        if name == "memory":
            memory_spans = InMemorySpanExporter()
            # Synchronous, so a test sees a span the moment it ends.
            tracer_provider.add_span_processor(SimpleSpanProcessor(memory_spans))
        elif name == "console":
            tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        else:
            tracer_provider.add_span_processor(BatchSpanProcessor(_otlp("TRACES", protocol, endpoint)))

    readers: list[MetricReader] = list(metric_readers)
    memory_metrics: InMemoryMetricReader | None = None
    for name in _exporter_names(metrics_exporter, "OTEL_METRICS_EXPORTER", "METRICS"):
        if name == "memory":
            memory_metrics = InMemoryMetricReader()
            readers.append(memory_metrics)
        elif name == "console":
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
        else:
            readers.append(PeriodicExportingMetricReader(_otlp("METRICS", protocol, endpoint)))
    meter_provider = SdkMeterProvider(resource=resource, metric_readers=readers)

    if set_global:
        trace.set_tracer_provider(tracer_provider)
        otel_metrics.set_meter_provider(meter_provider)
    return Telemetry(
        tracer_provider,
        meter_provider,
        span_exporter=memory_spans,
        metric_reader=memory_metrics,
        owns_providers=True,
    )
