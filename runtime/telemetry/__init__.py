"""OpenTelemetry for the bus: one trace across every hop, metrics from counts.

    tel = telemetry.setup(service_name="gateway", exporter="otlp", sampler_ratio=0.1)
    async with Bus(url, telemetry=tel) as bus: ...

The package, module by module:

- `context`: W3C trace context in the Envelope (traceparent formatted and
  parsed by slicing; an unsampled context carried on unparsed);
- `counts`: counters counted locally and read by observable instruments;
- `handle`: `Telemetry`, the providers, component spans and metrics;
- `instrument`: `TelemetryHooks`, the bus's spans and counts as hooks
  (runtime.hooks), attached through a bus's hook chain and detached when it
  closes;
- `sdk`: `setup()`, providers from arguments or OTEL_* variables;
- `names`: every span, metric and attribute name the platform emits;
- `view`: span dumps and the terminal waterfall;
- `cost`: what telemetry costs per message (`python -m runtime.telemetry.cost`).

A Bus without telemetry (or any other hook) does no telemetry work at all.
Nothing here installs a global provider unless `setup(set_global=True)`.
docs/telemetry.md has the details and the measured figures.
"""

from __future__ import annotations

from runtime.telemetry.context import format_traceparent, parse_traceparent
from runtime.telemetry.errors import TelemetryError
from runtime.telemetry.handle import Telemetry
from runtime.telemetry.instrument import TelemetryHooks
from runtime.telemetry.sdk import EXPORTERS, setup
from runtime.telemetry.view import dump_spans, load_spans, render_waterfall

__all__ = [
    "EXPORTERS",
    "Telemetry",
    "TelemetryError",
    "TelemetryHooks",
    "dump_spans",
    "format_traceparent",
    "load_spans",
    "parse_traceparent",
    "render_waterfall",
    "setup",
]
