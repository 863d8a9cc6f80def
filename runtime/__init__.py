"""The runtime that binds generated contracts to NATS and OpenTelemetry.

This module is the public API: import from `runtime`, not from its modules.

    from runtime import Bus, HandlerError, RemoteError

Names are loaded on first use, so that generated code (which imports
runtime.contract) does not pay for the NATS client or the OTel SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime.bus import Bus, Observed, Service
    from runtime.context import MessageContext
    from runtime.contract import (
        DEFAULT_PREFIX,
        CallOptions,
        Context,
        Durability,
        Pattern,
        ServiceHandler,
        SubjectSpec,
        Violation,
        check_prefix,
        check_tenant,
    )
    from runtime.errors import (
        Backpressure,
        ConnectionFailed,
        ContractViolation,
        DecodeError,
        HandlerError,
        InvalidSettings,
        InvalidSubject,
        NoResponders,
        PlatformError,
        RemoteError,
        RequestTimeout,
        TenantMismatch,
        Unimplemented,
    )
    from runtime.jetstream import ConfigMismatch, JetStreamError, JetStreamUnavailable
    from runtime.server import EmbeddedCluster, EmbeddedServer
    from runtime.settings import BusSettings, RetryPolicy

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "Bus": "runtime.bus",
    "Observed": "runtime.bus",
    "Service": "runtime.bus",
    "DEFAULT_PREFIX": "runtime.contract",
    "CallOptions": "runtime.contract",
    "Context": "runtime.contract",
    "MessageContext": "runtime.context",
    "Durability": "runtime.contract",
    "Pattern": "runtime.contract",
    "ServiceHandler": "runtime.contract",
    "SubjectSpec": "runtime.contract",
    "Violation": "runtime.contract",
    "check_prefix": "runtime.contract",
    "check_tenant": "runtime.contract",
    "BusSettings": "runtime.settings",
    "RetryPolicy": "runtime.settings",
    "Backpressure": "runtime.errors",
    "ConnectionFailed": "runtime.errors",
    "ContractViolation": "runtime.errors",
    "DecodeError": "runtime.errors",
    "HandlerError": "runtime.errors",
    "InvalidSettings": "runtime.errors",
    "InvalidSubject": "runtime.errors",
    "NoResponders": "runtime.errors",
    "PlatformError": "runtime.errors",
    "RemoteError": "runtime.errors",
    "RequestTimeout": "runtime.errors",
    "TenantMismatch": "runtime.errors",
    "Unimplemented": "runtime.errors",
    "ConfigMismatch": "runtime.jetstream",
    "JetStreamError": "runtime.jetstream",
    "JetStreamUnavailable": "runtime.jetstream",
    "EmbeddedCluster": "runtime.server",
    "EmbeddedServer": "runtime.server",
}

# A literal list: mypy reads it to know what the facade re-exports (a
# computed one would hide every name); a test keeps it equal to _EXPORTS.
__all__ = [
    "Backpressure",
    "Bus",
    "BusSettings",
    "CallOptions",
    "ConfigMismatch",
    "ConnectionFailed",
    "Context",
    "ContractViolation",
    "DEFAULT_PREFIX",
    "DecodeError",
    "Durability",
    "EmbeddedCluster",
    "EmbeddedServer",
    "HandlerError",
    "InvalidSettings",
    "InvalidSubject",
    "JetStreamError",
    "JetStreamUnavailable",
    "MessageContext",
    "NoResponders",
    "Observed",
    "Pattern",
    "PlatformError",
    "RemoteError",
    "RequestTimeout",
    "RetryPolicy",
    "Service",
    "ServiceHandler",
    "SubjectSpec",
    "TenantMismatch",
    "Unimplemented",
    "Violation",
    "check_prefix",
    "check_tenant",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
