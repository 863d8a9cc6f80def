"""Counters counted locally, in plain numbers, and read by observable
instruments at export time: the same exported values as an SDK Counter at a
fraction of the cost per call."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from opentelemetry.metrics import CallbackOptions, Histogram, Meter, Observation
from opentelemetry.util.types import AttributeValue

from runtime.telemetry.errors import TelemetryError
from runtime.telemetry.names import ATTR, MetricKind, MetricName

Attributes = Mapping[str, AttributeValue]
Key = tuple[tuple[str, AttributeValue], ...]
"""Attributes as a dict key."""


def key(attributes: Attributes | None) -> Key:
    return tuple(sorted(attributes.items())) if attributes else ()


def observations(totals: Mapping[Key, float]) -> list[Observation]:
    # list() first: the export thread reads while the event loop may add keys.
    return [Observation(v, dict(k)) for k, v in list(totals.items())]


def add(totals: dict[Key, float], k: Key, amount: float) -> None:
    totals[k] = totals.get(k, 0) + amount


# Tenants that label metrics by default; later ones share OTHER_TENANTS.
DEFAULT_TENANT_LIMIT = 100
OTHER_TENANTS = "_other"


class TenantLimit:
    """Bounds the cardinality a tenant label gives every metric: the first
    `limit` tenant ids seen keep their own series, the rest share one
    labelled OTHER_TENANTS (a scrape of thousands of tenants stays small)."""

    __slots__ = ("limit", "_seen")

    def __init__(self, limit: int = DEFAULT_TENANT_LIMIT) -> None:
        if limit < 0:
            raise TelemetryError(f"the tenant limit must not be negative, not {limit}")
        self.limit = limit
        self._seen: set[AttributeValue] = set()

    def __call__(self, attributes: Attributes | None) -> Attributes | None:
        tenant = attributes.get(ATTR.TENANT_ID) if attributes else None
        if tenant is None or tenant in self._seen:
            return attributes
        if len(self._seen) < self.limit:
            self._seen.add(tenant)
            return attributes
        return {**attributes, ATTR.TENANT_ID: OTHER_TENANTS}  # type: ignore[dict-item]


class Count:
    """One counter's values by attributes."""

    __slots__ = ("metric", "_values", "_tenants")

    def __init__(self, metric: MetricName, tenants: TenantLimit | None = None) -> None:
        self.metric = metric
        self._values: dict[Key, float] = {}
        self._tenants = tenants or TenantLimit()

    def add(self, amount: float = 1, attributes: Attributes | None = None) -> None:
        if amount < 0 and self.metric.kind is MetricKind.COUNTER:
            raise TelemetryError(f"{self.metric.name} is a counter: it cannot go down by {amount}")
        add(self._values, key(self._tenants(attributes)), amount)

    def value(self, attributes: Attributes | None = None) -> float:
        return self._values.get(key(attributes), 0)

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        return observations(self._values)


class TenantHistogram:
    """An SDK histogram whose tenant label is bounded like a Count's."""

    __slots__ = ("sdk", "_tenants")

    def __init__(self, sdk: Histogram, tenants: TenantLimit) -> None:
        self.sdk = sdk
        self._tenants = tenants

    def record(self, amount: float, attributes: Attributes | None = None) -> None:
        self.sdk.record(amount, self._tenants(attributes))


class Metrics:
    """The metrics of the registry by name: `metrics.counter(METRIC.X).add(1)`,
    `metrics.histogram(METRIC.Y).record(0.2)`. Instruments are created once."""

    def __init__(self, meter: Meter, tenant_limit: int = DEFAULT_TENANT_LIMIT) -> None:
        self._meter = meter
        self.tenants = TenantLimit(tenant_limit)
        self._counts: dict[str, Count] = {}
        self._histograms: dict[str, TenantHistogram] = {}

    def counter(self, metric: MetricName) -> Count:
        """A COUNTER or UPDOWN metric, counted locally."""
        found = self._counts.get(metric.name)
        if found is not None:
            return found
        if metric.kind is MetricKind.HISTOGRAM:
            raise TelemetryError(f"{metric.name} is a histogram: use metrics.histogram()")
        count = Count(metric, self.tenants)
        create = (
            self._meter.create_observable_counter
            if metric.kind is MetricKind.COUNTER
            else self._meter.create_observable_up_down_counter
        )
        create(metric.name, [count.observe], metric.unit, metric.description)
        self._counts[metric.name] = count
        return count

    def histogram(self, metric: MetricName) -> TenantHistogram:
        found = self._histograms.get(metric.name)
        if found is not None:
            return found
        if metric.kind is not MetricKind.HISTOGRAM:
            raise TelemetryError(f"{metric.name} is a {metric.kind.value}: use metrics.counter()")
        hist = TenantHistogram(self._meter.create_histogram(metric.name, metric.unit, metric.description),
                               self.tenants)
        self._histograms[metric.name] = hist
        return hist
