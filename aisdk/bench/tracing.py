"""Tracing set-ups compared: every span is really produced and handed to a
BatchSpanProcessor, whose exporter then drops it, so the figures are the
cost of tracing in the process and not of a collector's network."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

from runtime.bus import Bus

UNAVAILABLE = "telemetry not available (no runtime.telemetry.setup or Bus(telemetry=...)): traced rows are null"


class NoopExporter(SpanExporter):
    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exported += len(spans)
        return SpanExportResult.SUCCESS


def tracer_provider(sampled: bool) -> tuple[TracerProvider, NoopExporter]:
    exporter = NoopExporter()
    provider = TracerProvider(sampler=ALWAYS_ON if sampled else ALWAYS_OFF)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider, exporter


def ours(sampled: bool) -> tuple[dict[str, Any], NoopExporter] | None:
    """Bus keyword arguments that turn our tracing on (and the exporter that
    counts its spans), or None while the runtime has no telemetry to give."""
    try:
        telemetry = importlib.import_module("runtime.telemetry")
    except ImportError:
        return None
    if "telemetry" not in inspect.signature(Bus).parameters:
        return None
    # Explicit arguments, so that OTEL_* variables in the environment cannot
    # change what is measured.
    tel = telemetry.setup("aisdk-bench", exporter="none", metrics_exporter="none",
                          sampler_ratio=1.0 if sampled else 0.0)
    exporter = NoopExporter()
    provider = tel.tracer_provider
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return {"telemetry": tel}, exporter
