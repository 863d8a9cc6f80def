"""FixedSpans starts the runtime's own spans without the SDK's per-attribute
checks: the span it makes is the one Tracer.start_span makes, and wherever
skipping the checks could change the result it is Tracer.start_span."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, Sampler, SamplingResult, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from runtime.telemetry.spans import FixedSpans

ATTRS = {"messaging.system": "nats", "messaging.destination.name": "ai.agent.message.acme",
         "messaging.message.body.size": 248, "ai.tenant.id": "acme"}
PARENT = trace.set_span_in_context(NonRecordingSpan(SpanContext(7, 9, True, TraceFlags(1))))


def provider(**kwargs: Any) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    p = TracerProvider(**kwargs)
    p.add_span_processor(SimpleSpanProcessor(exporter))
    return p, exporter


def shape(span: ReadableSpan) -> tuple[Any, ...]:
    ctx = span.context
    assert ctx is not None
    return (span.name, span.kind, dict(span.attributes or {}), span.parent, ctx.trace_id if span.parent else None,
            ctx.trace_flags, span.status.status_code, span.resource, span.instrumentation_scope)


def both(spans: FixedSpans, parent: Context | None) -> None:
    """The same span through Tracer.start_span, then through FixedSpans."""
    for start in (spans.tracer.start_span, spans.start):
        span = start("process ai.agent.message.{tenant_id}", parent, SpanKind.CONSUMER, ATTRS)
        span.set_attribute("handler.tags", ["a", "b"])  # a handler's own attribute: the SDK's checks
        span.end()


def test_the_span_is_the_sdks_span() -> None:
    p, exporter = provider(sampler=ParentBased(TraceIdRatioBased(1.0)))
    spans = FixedSpans(p.get_tracer("t"))
    assert spans.fast
    for parent in (PARENT, None):
        exporter.clear()
        both(spans, parent)
        sdk, fixed = exporter.get_finished_spans()
        assert shape(fixed) == shape(sdk)
        assert fixed.attributes is not None and fixed.attributes["handler.tags"] == ("a", "b")
        assert fixed.context is not None and sdk.context is not None
        assert fixed.context.span_id != sdk.context.span_id


def test_an_unsampled_parent_gives_a_non_recording_span() -> None:
    p, exporter = provider()
    spans = FixedSpans(p.get_tracer("t"))
    unsampled = trace.set_span_in_context(NonRecordingSpan(SpanContext(7, 9, True, TraceFlags(0))))
    span = spans.start("x", unsampled, SpanKind.CONSUMER, ATTRS)
    assert not span.is_recording() and span.get_span_context().trace_id == 7
    span.end()
    assert exporter.get_finished_spans() == ()


class Tagging(Sampler):
    """A sampler that adds an attribute of its own: its result must be cleaned."""

    def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: Any = None,
                      attributes: Any = None, links: Any = None, trace_state: Any = None) -> SamplingResult:
        return ALWAYS_ON.should_sample(parent_context, trace_id, name, kind, {**(attributes or {}), "s": [1, 2]})

    def get_description(self) -> str:
        return "tagging"


def test_limits_and_foreign_samplers_take_the_sdks_path() -> None:
    p, exporter = provider(span_limits=SpanLimits(max_span_attribute_length=4))
    spans = FixedSpans(p.get_tracer("t"))
    assert not spans.fast
    spans.start("x", None, SpanKind.PRODUCER, ATTRS).end()
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None and span.attributes["messaging.system"] == "nats"
    assert span.attributes["messaging.destination.name"] == "ai.a"  # truncated, as the limit says
    assert not FixedSpans(provider(span_limits=SpanLimits(max_span_attributes=3))[0].get_tracer("t")).fast
    assert not FixedSpans(provider(sampler=Tagging())[0].get_tracer("t")).fast
    assert not FixedSpans(trace.NoOpTracer()).fast
