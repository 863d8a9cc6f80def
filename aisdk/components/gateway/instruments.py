"""The seed's gateway spans and metrics, from the bus's own tracer and meter
providers, so that they nest in the caller's trace (the handler runs inside
the consumer span the runtime opened from the request's envelope)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry import metrics, trace
from opentelemetry.trace import Tracer

if TYPE_CHECKING:
    from runtime import Bus  # the facade's lazy exports are invisible to mypy

SCOPE = "aisdk.components.gateway"


class Instruments:
    def __init__(self, bus: Bus) -> None:
        telemetry = bus.telemetry
        tracer_provider = telemetry.tracer_provider if telemetry is not None else trace.get_tracer_provider()
        meter_provider = telemetry.meter_provider if telemetry is not None else metrics.get_meter_provider()
        self.tracer: Tracer = tracer_provider.get_tracer(SCOPE)
        m = meter_provider.get_meter(SCOPE)
        self.requests_queued = m.create_counter("gateway.requests.queued", "{request}", "LLM requests taken by a worker")
        self.requests_completed = m.create_counter(
            "gateway.requests.completed", "{request}", "LLM requests answered, with status")
        self.request_duration = m.create_histogram("gateway.request.duration", "s", "LLM request time in the gateway")
        self.cache_hits = m.create_counter("gateway.cache.hits", "{hit}", "response cache hits")
        self.cache_misses = m.create_counter("gateway.cache.misses", "{miss}", "response cache misses")
        self.provider_calls = m.create_counter("gateway.provider.calls", "{call}", "calls to LLM providers")
        self.tokens_used = m.create_histogram("gateway.tokens.used", "{token}", "tokens per provider call")
        self.cost = m.create_histogram("gateway.cost", "{USD}", "cost per provider call")
        self.rate_limit_checks = m.create_counter("gateway.rate-limit.checks", "{check}", "rate limit checks")
        self.rate_limit_violations = m.create_counter(
            "gateway.rate-limit.violations", "{violation}", "requests over the rate limit")
        self.budget_refusals = m.create_counter(
            "gateway.budget.refusals", "{request}", "calls refused because a hard budget had no room")
        self.validation_checks = m.create_counter(
            "gateway.validation.checks", "{check}", "response validations, with outcome")
        self.fallbacks = m.create_counter(
            "gateway.fallbacks", "{fallback}", "calls answered by a fallback deployment, by from and to")
        self.rate_limit_unavailable = m.create_counter(
            "gateway.rate-limit.unavailable", "{request}", "requests admitted unchecked: the counters were unreachable")
