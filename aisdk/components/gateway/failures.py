"""What a failed provider call means: the request's fault or the provider's.

Client errors (an invalid request, a context too long for the model, content
the provider's policy refuses, bad credentials) would fail the same way on
every retry and on any worker: they are answered at once with a
non-retryable code and the provider's message, and they neither count
against the deployment's circuit breaker nor fall back (one tenant's
oversized prompts must not push every tenant onto the fallback).

Provider faults (timeouts, connection errors, 5xx, 429 and anything
unrecognised) count against the breaker and fall back to the next
deployment; a 429's Retry-After keeps the deployment aside that long.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ai.envelope.v1 import envelope_pb2

Code = envelope_pb2.Error


@dataclass(frozen=True, slots=True)
class Failure:
    """A classified provider error."""

    # The request's fault: answer with `code`, no breaker, no fallback.
    client: bool
    code: int
    # The provider asked to be left alone (HTTP 429).
    rate_limited: bool = False
    # Seconds the provider asked to wait (Retry-After), when it said.
    retry_after: float | None = None


PROVIDER_FAULT = Failure(client=False, code=Code.CODE_UNAVAILABLE)
# litellm's prefixes in front of the provider's words: "litellm.BadRequestError:
# ContextWindowExceededError: OpenAIException - <the provider's message>".
_PREFIXES = re.compile(r"^(?:(?:litellm\.)?[A-Za-z]+(?:Error|Exception)(?::\s*|\s+-\s+))+")


def provider_message(error: BaseException) -> str:
    """The provider's own message in a litellm error, with the HTTP status
    when there is one: "HTTP 400: This model's maximum context length is ..."."""
    text = (str(getattr(error, "message", "") or error).splitlines() or [""])[0]
    text = _PREFIXES.sub("", text).strip()[:1000] or type(error).__name__
    status = getattr(error, "status_code", None)
    return f"HTTP {status}: {text}" if isinstance(status, int) else text


def classify(error: BaseException) -> Failure:
    """litellm's exception classes (mapped from every provider's own) to a
    Failure. The subclasses come first: ContextWindowExceededError and
    ContentPolicyViolationError are BadRequestErrors."""
    from aisdk.components.gateway.providers import litellm  # imported on first use, like everywhere

    e = litellm().exceptions
    if isinstance(error, e.ContextWindowExceededError):
        return Failure(True, Code.CODE_FAILED_PRECONDITION)
    if isinstance(error, e.ContentPolicyViolationError):
        return Failure(True, Code.CODE_INVALID_ARGUMENT)
    if isinstance(error, (e.AuthenticationError, e.PermissionDeniedError)):
        return Failure(True, Code.CODE_PERMISSION_DENIED)
    if isinstance(error, (e.BadRequestError, e.UnprocessableEntityError)):
        return Failure(True, Code.CODE_INVALID_ARGUMENT)
    if isinstance(error, e.RateLimitError):
        return Failure(False, Code.CODE_RESOURCE_EXHAUSTED, True, retry_after(response_headers(error)))
    return PROVIDER_FAULT


def response_headers(error: BaseException) -> Mapping[str, str]:
    """The provider's response headers, where litellm keeps them."""
    headers: Any = getattr(error, "litellm_response_headers", None)
    if headers is None:
        response = getattr(error, "response", None)
        headers = getattr(response, "headers", None)
    return headers if isinstance(headers, Mapping) or hasattr(headers, "get") else {}


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds from `retry-after-ms`, or `retry-after` in seconds or as an
    HTTP date; None when absent or unreadable."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            value = float(raw_ms) / 1000
            if math.isfinite(value) and value >= 0:
                return value
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        value = float(raw)
        return value if math.isfinite(value) and value >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
