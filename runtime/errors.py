"""One root for every error the platform raises; data lives in attributes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ai.envelope.v1 import envelope_pb2

    from runtime.contract import SubjectSpec, Violation


class PlatformError(Exception):
    """Root of all platform errors."""


class CliError(PlatformError):
    """A command-line failure the user can act on; printed as one line."""


class InvalidSubject(PlatformError, ValueError):
    """A tenant id or prefix that is not a safe NATS subject token."""

    def __init__(self, what: str, value: str, reason: str) -> None:
        self.what = what
        self.value = value
        self.reason = reason
        super().__init__(f"invalid {what} {value!r}: {reason}")


class InvalidSettings(PlatformError, ValueError):
    """A Bus setting (runtime.settings) with a value it cannot work with."""

    def __init__(self, owner: str, name: str, value: object, reason: str) -> None:
        self.owner = owner
        self.name = name
        self.value = value
        self.reason = reason
        super().__init__(f"{owner}.{name} = {value!r}: {reason}")


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


def retry_after_text(seconds: float | None) -> str:
    """" (retry after 2.5 s)", the way every error shows its retry-after."""
    return f" (retry after {seconds:.1f} s)" if seconds is not None else ""


class RemoteError(PlatformError):
    """The responder answered with an ai.envelope.v1.Error. `retry_after` is
    its Error.retry_after in seconds, None when the responder did not say."""

    def __init__(
        self,
        code: int,
        message: str,
        violations: Sequence[Violation] = (),
        retryable: bool = False,
        subject: str = "",
        retry_after: float | None = None,
    ) -> None:
        from ai.envelope.v1 import envelope_pb2

        self.code = code
        self.code_name = envelope_pb2.Error.Code.Name(code) if code in envelope_pb2.Error.Code.values() else str(code)
        self.message = message
        self.violations = tuple(violations)
        self.retryable = retryable
        self.subject = subject
        self.retry_after = retry_after
        where = f" from {subject}" if subject else ""
        super().__init__(f"{self.code_name.removeprefix('CODE_')}{where}: {message}{retry_after_text(retry_after)}")

    @classmethod
    def from_proto(cls, error: envelope_pb2.Error, subject: str = "") -> RemoteError:
        from runtime.contract import Violation

        violations = [Violation(v.field, v.rule, v.description) for v in error.violations]
        after = error.retry_after.ToNanoseconds() / 1e9 if error.HasField("retry_after") else None
        return cls(error.code, error.message, violations, error.retryable, subject, after)


def _known_code(code: object) -> tuple[int, str]:
    """An ai.envelope.v1.Error code from a number or a name ("NOT_FOUND",
    "CODE_NOT_FOUND"), else INTERNAL and a note saying what was given."""
    from ai.envelope.v1 import envelope_pb2

    codes = envelope_pb2.Error.Code
    if isinstance(code, int) and not isinstance(code, bool):
        if code in codes.values() and code != envelope_pb2.Error.CODE_UNSPECIFIED:
            return int(code), ""
    elif isinstance(code, str):
        name = code.strip().upper()
        for candidate in (name, f"CODE_{name}"):
            if candidate in codes.keys() and candidate != "CODE_UNSPECIFIED":
                return int(codes.Value(candidate)), ""
    return envelope_pb2.Error.CODE_INTERNAL, f"unknown error code {code!r}, answered as INTERNAL"


class HandlerError(PlatformError):
    """Raised by a handler to answer a request with a specific error code
    (e.g. NOT_FOUND) instead of INTERNAL.

    `code` is an ai.envelope.v1.Error code, its number or its name ("NOT_FOUND"
    or "CODE_NOT_FOUND"); anything else becomes INTERNAL, and the message
    says which code was given: the requester is answered either way.
    `retry_after` (seconds) goes out as Error.retry_after: when a retry can
    succeed, if the handler knows (a negative one counts as 0)."""

    def __init__(self, code: int | str, message: str, retryable: bool = False,
                 retry_after: float | None = None) -> None:
        self.code, note = _known_code(code)
        self.message = f"{message} ({note})" if note else message
        self.retryable = retryable
        self.retry_after = None if retry_after is None else max(0.0, float(retry_after))
        super().__init__(self.message)


def retry_after_of(exc: BaseException) -> float | None:
    """The retry-after (seconds) an error carries: a handler's own, or the
    one a remote responder sent; None when neither said."""
    if isinstance(exc, (HandlerError, RemoteError)):
        return exc.retry_after
    return None


class RequestTimeout(PlatformError, asyncio.TimeoutError):
    """No reply within the timeout."""

    def __init__(self, subject: str, timeout: float) -> None:
        self.subject = subject
        self.timeout = timeout
        super().__init__(f"no reply on {subject} within {timeout:g} s")


class NoResponders(PlatformError):
    """Nobody serves the subject."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        super().__init__(f"no responders on {subject}: is a worker serving it?")


class Backpressure(PlatformError):
    """The client's outbound buffer is full (e.g. while reconnecting)."""

    def __init__(self, subject: str, pending_bytes: int) -> None:
        self.subject = subject
        self.pending_bytes = pending_bytes
        super().__init__(
            f"cannot publish to {subject}: outbound buffer full ({pending_bytes} bytes pending, not connected)"
        )


class DecodeError(PlatformError, ValueError):
    """Bytes that are not a valid envelope of the expected type."""

    def __init__(self, subject: str, reason: str) -> None:
        self.subject = subject
        self.reason = reason
        super().__init__(f"cannot decode message on {subject}: {reason}")


class TenantMismatch(PlatformError, ValueError):
    """The envelope's tenant, or the caller's account the server stamped on
    the request, differs from the tenant of its subject."""

    def __init__(self, subject: str, tenant_id: str, claimed_by: str = "envelope tenant") -> None:
        self.subject = subject
        self.tenant_id = tenant_id
        super().__init__(f"{claimed_by} {tenant_id!r} does not match subject {subject}")


class ConnectionFailed(PlatformError):
    """The bus could not connect to any of its NATS servers."""

    def __init__(self, servers: Sequence[str], reason: str) -> None:
        self.servers = tuple(servers)
        super().__init__(f"cannot connect to NATS at {', '.join(servers)}: {reason}")


@contextmanager
def passed_on(what: str, serve: str) -> Iterator[None]:
    """Inside a handler, around a call to another component: its failure is
    answered as this handler's own error, with the same code, retryability
    and retry-after and the component named, instead of INTERNAL. `serve`
    names what to start when nothing answers (`aisdk serve SERVE`)."""
    try:
        yield
    except RemoteError as e:
        raise HandlerError(e.code, f"{what}: {e.message}", e.retryable, e.retry_after) from e
    except NoResponders as e:
        raise HandlerError("UNAVAILABLE", f"{what}: nothing serves it (run `aisdk serve {serve}`)", True) from e
    except RequestTimeout as e:
        raise HandlerError("DEADLINE_EXCEEDED", f"{what}: {e}", True) from e
