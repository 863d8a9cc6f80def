"""The runtime's own spans, started without the SDK's per-attribute work.

Tracer.start_span cleans every attribute it is given (type checks, sequence
copies, length limits) under a lock: about 40% of a span's cost, spent on
attributes the runtime builds itself from strings and integers. FixedSpans
makes the very span the SDK would (an SDK `Span`, the tracer's sampler, id
generator, resource, limits and span processors, which see it start and end
as usual) and puts those attributes in place as they are. Whatever a handler
adds later goes through the SDK's checks.

It falls back to Tracer.start_span whenever skipping the checks could change
the result: a tracer that is not the SDK's, span limits that truncate values
or would drop some of these attributes, or a sampler that may add attributes
of its own (only the SDK's standard samplers pass the given ones through)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    TraceFlags,
    Tracer,
    get_current_span,
)
from opentelemetry.util.types import AttributeValue

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)


def _passes_attributes_through(sampler: Any) -> bool:
    """The SDK's own samplers return the attributes they were given."""
    from opentelemetry.sdk.trace import sampling

    if isinstance(sampler, sampling.ParentBased):
        return all(_passes_attributes_through(s) for s in (
            sampler._root, sampler._remote_parent_sampled, sampler._remote_parent_not_sampled,
            sampler._local_parent_sampled, sampler._local_parent_not_sampled,
        ))
    return type(sampler) in (sampling.StaticSampler, sampling.TraceIdRatioBased)


class FixedSpans:
    """Starts spans whose attributes are already valid OTel values (str, int)
    and at most `most` of them."""

    def __init__(self, tracer: Tracer, most: int = 16) -> None:
        self.tracer = tracer
        self._sdk: Any = None
        self._span_cls: Any = None
        try:
            from opentelemetry.sdk.trace import Tracer as SdkTracer
            from opentelemetry.sdk.trace import _Span
        except ImportError:  # the API alone: its tracer is all there is
            return
        if type(tracer) is not SdkTracer:
            return
        limits = tracer._span_limits
        if limits.max_span_attribute_length is not None:
            return
        if limits.max_span_attributes is not None and limits.max_span_attributes < most:
            return
        if not _passes_attributes_through(tracer.sampler):
            return
        self._sdk = tracer
        self._span_cls = _Span

    @property
    def fast(self) -> bool:
        """Whether spans skip the SDK's attribute checks (False: plain start_span)."""
        return self._sdk is not None

    def start(self, name: str, context: Context | None, kind: SpanKind,
              attributes: Mapping[str, AttributeValue]) -> Span:
        """Tracer.start_span(name, context, kind, attributes), step for step,
        but for the attribute checks."""
        t = self._sdk
        if t is None or not t._is_enabled():
            return self.tracer.start_span(name, context, kind, attributes)
        parent: SpanContext | None = get_current_span(context).get_span_context()
        ids = t.id_generator
        if parent is None or not parent.is_valid:
            parent = None
            trace_id = ids.generate_trace_id()
            random_id = ids.is_trace_id_random()
        else:
            trace_id = parent.trace_id
            random_id = parent.trace_flags.random_trace_id
        result = t.sampler.should_sample(context, trace_id, name, kind, attributes, ())
        decision = result.decision
        flags = _SAMPLED if decision.is_sampled() else _NOT_SAMPLED
        if random_id:
            flags = TraceFlags(flags | TraceFlags.RANDOM_TRACE_ID)
        span_context = SpanContext(trace_id, ids.generate_span_id(), is_remote=False, trace_flags=flags,
                                   trace_state=result.trace_state)
        record_end_metrics = t._tracer_metrics.start_span(parent, decision)
        if not decision.is_recording():
            return NonRecordingSpan(span_context)
        span = self._span_cls(
            name=name, context=span_context, parent=parent, sampler=t.sampler, resource=t.resource,
            span_processor=t.span_processor, kind=kind, instrumentation_info=t.instrumentation_info,
            limits=t._span_limits, instrumentation_scope=t._instrumentation_scope,
            record_end_metrics=record_end_metrics,
        )
        # The checks skipped: str and int values, fewer than the limit.
        span._attributes._dict.update(result.attributes)
        span.start(parent_context=context)
        return span  # type: ignore[no-any-return]
