"""Configuration (arguments and OTEL_* variables) and the W3C trace context codec."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import metrics, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanContext, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from runtime import telemetry
from runtime.telemetry import TelemetryError, format_traceparent, parse_traceparent
from runtime.telemetry.names import SPAN

PROPAGATOR = TraceContextTextMapPropagator()


@pytest.fixture(autouse=True)
def _no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


# -- traceparent ---------------------------------------------------------------

ids = st.tuples(st.integers(1, 2**128 - 1), st.integers(1, 2**64 - 1), st.sampled_from([0, 1, 2, 3]))


@given(ids)
def test_traceparent_matches_the_propagator_both_ways(t: tuple[int, int, int]) -> None:
    trace_id, span_id, flags = t
    ctx = SpanContext(trace_id, span_id, True, TraceFlags(flags))
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, trace.set_span_in_context(trace.NonRecordingSpan(ctx)))
    assert format_traceparent(ctx) == carrier["traceparent"]
    parsed = parse_traceparent(carrier["traceparent"])
    extracted = trace.get_current_span(PROPAGATOR.extract(carrier)).get_span_context()
    assert parsed is not None
    assert (parsed.trace_id, parsed.span_id, parsed.trace_flags, parsed.is_remote) == (
        extracted.trace_id, extracted.span_id, extracted.trace_flags, extracted.is_remote
    )


@pytest.mark.parametrize(
    "header",
    [
        "",
        "00-" + "0" * 32 + "-" + "1" * 16 + "-01",  # zero trace id
        "00-" + "1" * 32 + "-" + "0" * 16 + "-01",  # zero span id
        "ff-" + "1" * 32 + "-" + "1" * 16 + "-01",  # forbidden version
        "00-" + "A" * 32 + "-" + "1" * 16 + "-01",  # upper case
        "00-" + "1" * 32 + "-" + "1" * 16 + "-01-extra",  # version 00 has no tail
        "00-0x" + "1" * 30 + "-" + "1" * 16 + "-01",  # int() would take it
        "00-" + "1" * 31 + "-" + "1" * 17 + "-01",
        "garbage",
    ],
)
def test_malformed_traceparent_is_refused(header: str) -> None:
    assert parse_traceparent(header) is None


def test_future_version_may_append_and_tracestate_is_kept() -> None:
    ctx = parse_traceparent("01-" + "1" * 32 + "-" + "2" * 16 + "-01-what-comes-next", "vendor=x,other=y")
    assert ctx is not None and ctx.trace_state.get("vendor") == "x"


# -- setup -----------------------------------------------------------------------


def test_setup_installs_no_global_unless_asked() -> None:
    before = trace.get_tracer_provider()
    tel = telemetry.setup("svc", exporter="memory")
    assert trace.get_tracer_provider() is before
    assert tel.tracer_provider is not before
    tel.shutdown()


def test_service_name_from_argument_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    tel = telemetry.setup(exporter="memory")
    with tel.span(SPAN.RAG_QUERY):
        pass
    [span] = tel.finished_spans()
    assert span.resource.attributes["service.name"] == "from-env"
    tel = telemetry.setup("from-arg", exporter="memory")
    assert tel.tracer_provider.resource.attributes["service.name"] == "from-arg"  # type: ignore[attr-defined]


def test_exporters_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console,memory")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "memory")
    tel = telemetry.setup("svc")
    assert tel.span_exporter is not None and tel.metric_reader is not None
    tel.shutdown()


def test_no_exporter_by_default_and_otlp_once_an_endpoint_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    tel = telemetry.setup("svc")
    assert tel.span_exporter is None
    processors = tel.tracer_provider._active_span_processor._span_processors  # type: ignore[attr-defined]
    assert processors == ()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
    tel = telemetry.setup("svc", metrics_exporter="none")
    [processor] = tel.tracer_provider._active_span_processor._span_processors  # type: ignore[attr-defined]
    assert type(processor._batch_processor._exporter).__module__.endswith("http.trace_exporter")
    tel.shutdown()


@pytest.mark.parametrize(
    ("protocol", "module", "expected"),
    [
        ("grpc", "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "127.0.0.1:4317"),
        ("http/protobuf", "opentelemetry.exporter.otlp.proto.http.trace_exporter", "http://127.0.0.1:4318/v1/traces"),
    ],
)
def test_otlp_protocols(protocol: str, module: str, expected: str) -> None:
    endpoint = "127.0.0.1:4317" if protocol == "grpc" else "http://127.0.0.1:4318"
    tel = telemetry.setup("svc", exporter="otlp", metrics_exporter="none", protocol=protocol, endpoint=endpoint)
    [processor] = tel.tracer_provider._active_span_processor._span_processors  # type: ignore[attr-defined]
    exporter = processor._batch_processor._exporter
    assert type(exporter).__module__ == module
    assert expected in str(getattr(exporter, "_endpoint", ""))
    tel.shutdown()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "unknown traces exporter 'zipkin'"),
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "unknown OTEL_TRACES_SAMPLER 'sometimes'"),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "half"}, "is not a number"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_TRACES_EXPORTER": "otlp"}, "not supported"),
    ],
)
def test_bad_configuration_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(TelemetryError, match=message):
        telemetry.setup("svc", metrics_exporter="none")


def test_ratio_out_of_range() -> None:
    with pytest.raises(TelemetryError, match="between 0 and 1"):
        telemetry.setup("svc", sampler_ratio=1.5)


@pytest.mark.parametrize(
    ("env", "honours", "description"),
    [
        ({}, True, "ParentBased{root:AlwaysOnSampler"),
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}, True,
         "ParentBased{root:TraceIdRatioBased{0.25}"),
        ({"OTEL_TRACES_SAMPLER": "always_on"}, False, "AlwaysOnSampler"),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"}, False, "TraceIdRatioBased{0.5}"),
    ],
)
def test_sampler_from_environment(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], honours: bool, description: str
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    tel = telemetry.setup("svc")
    assert tel.honours_parent is honours
    assert tel.tracer_provider.sampler.get_description().startswith(description)  # type: ignore[attr-defined]


def test_sdk_disabled_gives_a_telemetry_that_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    tel = telemetry.setup("svc", exporter="memory")
    assert not tel.enabled
    with tel.span(SPAN.GATEWAY_GENERATE) as span:
        assert not span.is_recording()


def test_telemetry_from_existing_providers() -> None:
    provider = TracerProvider()
    tel = telemetry.Telemetry(provider, metrics.NoOpMeterProvider())
    assert tel.honours_parent
    tel.shutdown()  # not ours: left running
    assert provider.get_tracer("x").start_span("still").is_recording()


def test_metric_kinds_are_checked() -> None:
    from runtime.telemetry.names import METRIC

    tel = telemetry.setup("svc", metrics_exporter="memory")
    with pytest.raises(TelemetryError, match="histogram"):
        tel.metrics.counter(METRIC.GATEWAY_COST)
    with pytest.raises(TelemetryError, match="counter"):
        tel.metrics.histogram(METRIC.GATEWAY_CACHE_HITS)
    with pytest.raises(TelemetryError, match="cannot go down"):
        tel.metrics.counter(METRIC.GATEWAY_CACHE_HITS).add(-1)
    assert tel.metrics.counter(METRIC.GATEWAY_CACHE_HITS) is tel.metrics.counter(METRIC.GATEWAY_CACHE_HITS)
    tel.shutdown()


def test_component_span_inside_an_unsampled_context_costs_nothing() -> None:
    tel = telemetry.setup("svc", exporter="memory", sampler_ratio=1.0)
    parent = trace.NonRecordingSpan(SpanContext(random.getrandbits(64) | 1, 7, True, TraceFlags(0)))
    with trace.use_span(parent), tel.span(SPAN.RAG_VECTOR_SEARCH) as span:
        assert span is parent
    with tel.span(SPAN.RAG_VECTOR_SEARCH):
        pass
    assert [s.name for s in tel.finished_spans()] == ["rag.vector.search"]
