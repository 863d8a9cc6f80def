"""The one error of the telemetry package."""

from __future__ import annotations

from runtime.errors import PlatformError


class TelemetryError(PlatformError):
    """A telemetry configuration, or a metric use, the platform cannot honour."""
