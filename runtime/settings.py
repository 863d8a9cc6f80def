"""Everything a Bus can be configured with, in one checked, immutable value.

    Bus(servers, settings=BusSettings(name="gateway", drain_timeout=10))

A bad value fails here, when the settings are built, with the field named:
not later, on the first message.
"""

from __future__ import annotations

import math
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from runtime.contract import DEFAULT_PREFIX, Durability, check_prefix
from runtime.errors import InvalidSubject, InvalidSettings

DEFAULT_PENDING_MSGS = 65_536
DEFAULT_PENDING_BYTES = 64 * 1024 * 1024
_REGISTRY_KEY = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def _positive(owner: str, name: str, value: float, *, zero: bool = False) -> None:
    # NaN compares false with everything: it would slip through `< 0`.
    if math.isnan(value) or value < 0 or (value == 0 and not zero):
        raise InvalidSettings(owner, name, value, "must be >= 0" if zero else "must be > 0")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """In-process retries of a failing handler on core NATS subjects, and
    the backoff of a client's request retries (CallOptions `retries`).

    An error that carries a retry-after (Error.retry_after) is retried no
    sooner than that; one longer than `max_retry_after` is not waited for
    in process: it is raised (or the message nak'ed with that delay)."""

    attempts: int = 3
    initial_backoff: float = 0.05
    multiplier: float = 2.0
    max_backoff: float = 2.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        _positive("RetryPolicy", "attempts", self.attempts)
        _positive("RetryPolicy", "initial_backoff", self.initial_backoff, zero=True)
        _positive("RetryPolicy", "max_backoff", self.max_backoff, zero=True)
        _positive("RetryPolicy", "max_retry_after", self.max_retry_after, zero=True)
        if not self.multiplier >= 1:
            raise InvalidSettings("RetryPolicy", "multiplier", self.multiplier, "must be >= 1")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait before retry number `attempt`: the backoff, or the
        error's retry-after when that is longer."""
        backoff = float(min(self.initial_backoff * self.multiplier ** (attempt - 1), self.max_backoff))
        return max(backoff, retry_after or 0.0)

    def wait(self, attempt: int, retry_after: float | None = None) -> float | None:
        """delay(), or None when the retry-after is longer than this policy
        waits for in process (the caller gives up instead)."""
        if retry_after is not None and retry_after > self.max_retry_after:
            return None
        return self.delay(attempt, retry_after)


@dataclass(frozen=True, slots=True)
class BusSettings:
    """The options of one Bus; see docs/runtime.md for the table."""

    name: str = "aisdk"
    prefix: str = DEFAULT_PREFIX
    source: str | None = None
    validate: bool = True
    retry: RetryPolicy = RetryPolicy()
    user_credentials: str | None = None
    nkeys_seed: str | None = None
    tls: ssl.SSLContext | None = None
    tls_hostname: str | None = None
    inbox_prefix: str | None = None
    provision_streams: bool = True
    user: str | None = None
    password: str | None = None
    token: str | None = None
    connect_timeout: float = 2.0
    reconnect_time_wait: float = 0.5
    max_reconnect_wait: float = 10.0
    max_reconnect_attempts: int = -1
    outbound_buffer_bytes: int = 8 * 1024 * 1024
    pending_msgs_limit: int = DEFAULT_PENDING_MSGS
    pending_bytes_limit: int = DEFAULT_PENDING_BYTES
    publish_wait: float = 5.0
    drain_timeout: float = 30.0
    jetstream_timeout: float = 5.0
    mirror_headers: bool = False
    durability_overrides: Mapping[str, Durability] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidSettings("BusSettings", "name", self.name, "must not be empty")
        try:
            check_prefix(self.prefix)
        except InvalidSubject as e:
            raise InvalidSettings("BusSettings", "prefix", self.prefix, e.reason) from None
        for name in ("connect_timeout", "max_reconnect_wait", "outbound_buffer_bytes", "pending_msgs_limit",
                     "pending_bytes_limit", "drain_timeout", "jetstream_timeout"):
            _positive("BusSettings", name, getattr(self, name))
        for name in ("reconnect_time_wait", "publish_wait"):
            _positive("BusSettings", name, getattr(self, name), zero=True)
        if self.max_reconnect_wait < self.reconnect_time_wait:
            raise InvalidSettings("BusSettings", "max_reconnect_wait", self.max_reconnect_wait,
                                  f"must be >= reconnect_time_wait ({self.reconnect_time_wait})")
        if self.inbox_prefix is not None:
            try:
                check_prefix(self.inbox_prefix)
            except InvalidSubject as e:
                raise InvalidSettings("BusSettings", "inbox_prefix", self.inbox_prefix, e.reason) from None
        if self.max_reconnect_attempts < -1:
            raise InvalidSettings("BusSettings", "max_reconnect_attempts", self.max_reconnect_attempts,
                                  "must be -1 (forever) or >= 0")
        if not isinstance(self.retry, RetryPolicy):
            raise InvalidSettings("BusSettings", "retry", self.retry, "must be a RetryPolicy")
        overrides = dict(self.durability_overrides)
        for key, durability in overrides.items():
            if _REGISTRY_KEY.fullmatch(key) is None:
                raise InvalidSettings("BusSettings", "durability_overrides", key,
                                      "keys are registry keys such as 'agent.tasks'")
            if not isinstance(durability, Durability):
                raise InvalidSettings("BusSettings", f"durability_overrides[{key!r}]", durability,
                                      "must be a Durability")
        # A copy nobody can change behind the bus's back.
        object.__setattr__(self, "durability_overrides", MappingProxyType(overrides))


# -- credentials and TLS from files -------------------------------------------

_CREDS_MARKER = "-----BEGIN NATS USER JWT-----"


def _readable(what: str, path: str) -> str:
    try:
        with open(path, "rb"):
            return path
    except OSError as e:
        raise InvalidSettings("BusSettings", what, path, f"cannot be read ({e.strerror})") from None


def credentials(path: str) -> dict[str, Any]:
    """BusSettings fields for a credentials file: a .creds file (user JWT and
    seed) or a bare nkey seed (what `aisdk auth init` writes).

        BusSettings(name="rag", **credentials("acme.nk"))
    """
    with open(_readable("credentials", path), encoding="utf-8", errors="replace") as f:
        text = f.read()
    if _CREDS_MARKER in text:
        return {"user_credentials": path}
    if text.strip().startswith("SU"):
        return {"nkeys_seed": path}
    raise InvalidSettings("BusSettings", "credentials", path,
                          "is neither a .creds file nor an nkey user seed (SU...)")


def tls_context(ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None) -> ssl.SSLContext:
    """A client TLS context: the servers' CA (default: the system's), and this
    client's certificate and key for servers that require one (mutual TLS)."""
    if (cert_file is None) != (key_file is None):
        raise InvalidSettings("BusSettings", "tls", cert_file or key_file,
                              "a client certificate needs both its certificate and key files")
    try:
        context = ssl.create_default_context(cafile=_readable("tls CA", ca_file) if ca_file else None)
        if cert_file is not None and key_file is not None:
            context.load_cert_chain(_readable("tls certificate", cert_file), _readable("tls key", key_file))
    except ssl.SSLError as e:
        raise InvalidSettings("BusSettings", "tls", cert_file or ca_file, f"is not usable ({e.reason or e})") from None
    return context
