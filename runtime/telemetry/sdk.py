"""Tracer and meter providers from arguments or the standard OTEL_* variables."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from runtime.telemetry.counts import DEFAULT_TENANT_LIMIT
from runtime.telemetry.errors import TelemetryError
from runtime.telemetry.handle import Telemetry
from runtime.telemetry.names import ATTR

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricReader
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler

EXPORTERS = ("none", "console", "otlp", "memory", "prometheus")
# The OpenTelemetry specification's defaults for OTEL_EXPORTER_PROMETHEUS_*.
PROMETHEUS_HOST, PROMETHEUS_PORT = "localhost", 9464
TENANT_LIMIT_ENV = "AISDK_METRICS_TENANT_LIMIT"
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
        if name not in EXPORTERS or (name == "prometheus" and signal == "TRACES"):
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


def _prometheus(host: str | None, port: int | None) -> tuple[MetricReader, Callable[[], object]]:
    """A reader in Prometheus' format on its own registry, served over HTTP
    (prometheus_client's server, in a thread) at /metrics."""
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError:
        raise TelemetryError(
            "the Prometheus exporter is not installed: pip install 'aisdk-contracts[prometheus]'"
        ) from None
    host = host or _env("OTEL_EXPORTER_PROMETHEUS_HOST") or PROMETHEUS_HOST
    raw = _env("OTEL_EXPORTER_PROMETHEUS_PORT")
    try:
        port = port if port is not None else int(raw) if raw else PROMETHEUS_PORT
    except ValueError:
        raise TelemetryError(f"OTEL_EXPORTER_PROMETHEUS_PORT {raw!r} is not a port number") from None
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(registry=registry)
    try:
        server, _ = start_http_server(port, host, registry=registry)
    except OSError as e:
        raise TelemetryError(f"cannot serve Prometheus metrics on {host}:{port}: {e.strerror or e}") from None
    return reader, server.shutdown


def _tenant_limit(given: int | None) -> int:
    if given is not None:
        return given
    raw = _env(TENANT_LIMIT_ENV)
    try:
        return int(raw) if raw else DEFAULT_TENANT_LIMIT
    except ValueError:
        raise TelemetryError(f"{TENANT_LIMIT_ENV} {raw!r} is not a number") from None


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
    prometheus_host: str | None = None,
    prometheus_port: int | None = None,
    tenant_limit: int | None = None,
) -> Telemetry:
    """Tracer and meter providers from arguments, else the standard OTEL_*
    variables: OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_EXPORTER,
    OTEL_METRICS_EXPORTER, OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]ENDPOINT and
    _PROTOCOL, OTEL_TRACES_SAMPLER[_ARG], OTEL_BSP_*, OTEL_METRIC_EXPORT_INTERVAL,
    OTEL_SDK_DISABLED.

    exporter / metrics_exporter: "none", "console", "otlp" or "memory"
    (comma-separated for several); metrics also "prometheus", a scrape
    endpoint at http://prometheus_host:prometheus_port/metrics
    (OTEL_EXPORTER_PROMETHEUS_HOST/_PORT, default localhost:9464).
    sampler_ratio: a parent-based trace-id ratio sampler. set_global: also
    install the providers as the globals. tenant_limit (or
    AISDK_METRICS_TENANT_LIMIT, default 100): tenants that label metrics
    with their own id; the rest share one `_other` series.
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
    closers: list[Callable[[], object]] = []
    limit = _tenant_limit(tenant_limit)
    for name in _exporter_names(metrics_exporter, "OTEL_METRICS_EXPORTER", "METRICS"):
        if name == "prometheus":
            reader, close = _prometheus(prometheus_host, prometheus_port)
            readers.append(reader)
            closers.append(close)
        elif name == "memory":
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
        tenant_limit=limit,
        on_shutdown=closers,
    )
