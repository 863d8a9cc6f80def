"""One root for every error the platform raises; data lives in attributes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ai.envelope.v1 import envelope_pb2

    from runtime.contract import SubjectSpec, Violation


class PlatformError(Exception):
    """Root of all platform errors."""


class InvalidSubject(PlatformError, ValueError):
    """A tenant id or prefix that is not a safe NATS subject token."""

    def __init__(self, what: str, value: str, reason: str) -> None:
        self.what = what
        self.value = value
        self.reason = reason
        super().__init__(f"invalid {what} {value!r}: {reason}")


class ContractViolation(PlatformError, ValueError):
    """A message that breaks the validation rules of its contract."""

    def __init__(self, type_name: str, violations: Sequence[Violation]) -> None:
        self.type_name = type_name
        self.violations = tuple(violations)
        details = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(f"{type_name} is invalid: {details}")

    def to_proto(self) -> envelope_pb2.Error:
        from ai.envelope.v1 import envelope_pb2

        return envelope_pb2.Error(
            code=envelope_pb2.Error.CODE_INVALID_ARGUMENT,
            message=str(self),
            violations=[
                envelope_pb2.Error.FieldViolation(
                    field=v.field, rule=v.rule, description=v.description
                )
                for v in self.violations
            ],
        )


class Unimplemented(PlatformError, NotImplementedError):
    """A handler base method that the service implementation did not override."""

    def __init__(self, spec: SubjectSpec[Any, Any]) -> None:
        self.spec = spec
        super().__init__(f"{spec.service}.{spec.rpc} ({spec.key}) is not implemented")
