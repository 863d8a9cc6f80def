"""The telemetry handle: tracer and meter providers, component spans and
metrics by registry name, and the hooks that instrument a bus."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Span, SpanKind, TracerProvider
from opentelemetry.util.types import AttributeValue

from runtime.hooks import BusHooks
from runtime.telemetry.context import current_span, unsampled
from runtime.telemetry.counts import DEFAULT_TENANT_LIMIT, Metrics
from runtime.telemetry.errors import TelemetryError
from runtime.telemetry.instrument import TelemetryHooks
from runtime.telemetry.names import INSTRUMENTATION_NAME, METRIC, SCHEMA_URL, SpanName
from runtime.telemetry.view import load_spans, render_waterfall

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler

_VERSION = "1.0.0"
# EndpointStats field behind each of the runtime's observable counters.
_ENDPOINT_METRICS = (
    (METRIC.CONSUMED, "received"),
    (METRIC.HANDLED, "handled"),
    (METRIC.HANDLER_ERRORS, "errors"),
    (METRIC.INVALID, "invalid"),
    (METRIC.EXPIRED, "expired"),
    (METRIC.RETRIED, "retried"),
    (METRIC.DEAD_LETTERED, "dead_lettered"),
    (METRIC.HANDLER_TIME, "processing_ns"),
)


class Telemetry:
    """Tracer and meter providers, and what the bus needs from them.

    Build it with setup(), or from providers you already have:
    `Telemetry(trace.get_tracer_provider(), metrics.get_meter_provider())`.
    `Bus(url, telemetry=tel)` puts `tel.hooks` first in the bus's hook chain;
    `bus.serve(handler, hooks=[tel.hooks])` instruments one service only.
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
        tenant_limit: int = DEFAULT_TENANT_LIMIT,
        on_shutdown: Sequence[Callable[[], object]] = (),
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.span_exporter = span_exporter
        self.metric_reader = metric_reader
        self.enabled = enabled
        self._owns_providers = owns_providers
        self.tracer = tracer_provider.get_tracer(INSTRUMENTATION_NAME, _VERSION, SCHEMA_URL)
        self.meter = meter_provider.get_meter(INSTRUMENTATION_NAME, _VERSION, SCHEMA_URL)
        self.metrics = Metrics(self.meter, tenant_limit)
        self._on_shutdown = list(on_shutdown)
        self.honours_parent = _honours_parent(getattr(tracer_provider, "sampler", None))
        self.hooks: BusHooks = BusHooks()
        if enabled:
            # The runtime's own histograms carry no tenant label: the SDK's
            # instruments, without the bound's lookup per message.
            hooks = TelemetryHooks(
                self.tracer,
                self.honours_parent,
                operation_duration=self.metrics.histogram(METRIC.OPERATION_DURATION).sdk,
                process_duration=self.metrics.histogram(METRIC.PROCESS_DURATION).sdk,
            )
            self.meter.create_observable_counter(
                METRIC.SENT.name, [hooks.observe_sent], METRIC.SENT.unit, METRIC.SENT.description
            )
            for metric, field in _ENDPOINT_METRICS:
                self.meter.create_observable_counter(
                    metric.name, [hooks.endpoint_observer(field)], metric.unit, metric.description
                )
            self.hooks = hooks

    @classmethod
    def disabled(cls) -> Telemetry:
        """No-op providers: spans and metrics of components cost nothing, and
        its hooks do nothing (a Bus given it is not instrumented at all)."""
        return cls(trace.NoOpTracerProvider(), otel_metrics.NoOpMeterProvider(), enabled=False)

    # -- for components ---------------------------------------------------

    @contextlib.contextmanager
    def span(
        self, name: SpanName, attributes: Mapping[str, AttributeValue] | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> Iterator[Span]:
        """A component span (SPAN.GATEWAY_GENERATE, ...), child of the current
        one; inside an unsampled message it is the carried context, for free."""
        current = current_span()
        if self.honours_parent and not current.is_recording() and unsampled(current):
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
        while self._on_shutdown:
            self._on_shutdown.pop()()


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
