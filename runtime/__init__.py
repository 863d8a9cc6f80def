"""The runtime that binds generated contracts to NATS and OpenTelemetry."""

from runtime.contract import (
    DEFAULT_PREFIX,
    Durability,
    Pattern,
    SubjectSpec,
    Violation,
    check_prefix,
    check_tenant,
)
from runtime.errors import ContractViolation, InvalidSubject, PlatformError, Unimplemented

__all__ = [
    "DEFAULT_PREFIX",
    "ContractViolation",
    "Durability",
    "InvalidSubject",
    "Pattern",
    "PlatformError",
    "SubjectSpec",
    "Unimplemented",
    "Violation",
    "check_prefix",
    "check_tenant",
]
