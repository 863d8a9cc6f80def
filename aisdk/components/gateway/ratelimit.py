"""Rate limits per tenant and model (requests and tokens, per minute and per
hour), enforced across every gateway worker.

The counts of one (tenant, model) live in one JetStream KV entry holding a
fixed window per length: `{"60": [window start, requests, tokens], "3600":
[...]}`. An acquisition reads the entry, checks every limit, and writes the new
counts back with compare-and-set on the entry's revision; a worker that lost
the race reads again. One entry per pair makes the check of all four limits
and the increment one atomic step, so a refused request counts nowhere and
there is nothing to roll back. See docs/components.md for the alternatives.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from google.protobuf.duration_pb2 import Duration
import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from ai.gateway.v1 import gateway_pb2
from aisdk.components.gateway.kv import Bucket, Connected, check_tenant, jetstream, open_bucket, token

log = logging.getLogger("aisdk.gateway.ratelimit")

DEFAULT_BUCKET = "gateway_ratelimit"
MINUTE = 60
HOUR = 3600
WINDOWS = (MINUTE, HOUR)
# Compare-and-set rounds before giving up; each round admits or refuses at
# least one contender, so this is only reached under extreme contention.
MAX_ATTEMPTS = 200


class RateLimitUnavailable(Exception):
    """The shared counters could not be updated (contention or no JetStream)."""


# What an unreachable or failing store raises: nats-py's errors (no
# JetStream, a deleted bucket, a timeout, a closed connection) and endless
# contention.
STORE_ERRORS: tuple[type[Exception], ...] = (RateLimitUnavailable, nats.errors.Error, TimeoutError)


@dataclass(frozen=True)
class LimitSet:
    """Limits of one scope; None inherits from the less specific level, 0 means
    no limit."""

    requests_per_minute: int | None = None
    requests_per_hour: int | None = None
    tokens_per_minute: int | None = None
    tokens_per_hour: int | None = None

    @classmethod
    def parse(cls, where: str, data: Mapping[str, Any]) -> LimitSet:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{where}: unknown limit {', '.join(unknown)} (known: {', '.join(sorted(names))})")
        values: dict[str, int] = {}
        for name, value in data.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{where}.{name} must be a whole number >= 0, not {value!r}")
            values[name] = value
        return cls(**values)

    def over(self, base: LimitSet) -> LimitSet:
        """These limits, falling back to base where unset."""
        return LimitSet(**{f.name: getattr(base, f.name) if getattr(self, f.name) is None else getattr(self, f.name)
                           for f in fields(self)})

    def limit(self, scope: str, window_s: int) -> int:
        value = getattr(self, f"{scope}_per_{'minute' if window_s == MINUTE else 'hour'}")
        return int(value or 0)


_ENV = {
    "AISDK_GATEWAY_REQUESTS_PER_MINUTE": "requests_per_minute",
    "AISDK_GATEWAY_REQUESTS_PER_HOUR": "requests_per_hour",
    "AISDK_GATEWAY_TOKENS_PER_MINUTE": "tokens_per_minute",
    "AISDK_GATEWAY_TOKENS_PER_HOUR": "tokens_per_hour",
}


@dataclass(frozen=True)
class Limits:
    """Defaults, then per-model, per-tenant and per-(tenant, model) overrides,
    each more specific level winning limit by limit."""

    default: LimitSet = field(default_factory=LimitSet)
    models: Mapping[str, LimitSet] = field(default_factory=dict)
    tenants: Mapping[str, LimitSet] = field(default_factory=dict)
    tenant_models: Mapping[tuple[str, str], LimitSet] = field(default_factory=dict)

    def resolve(self, tenant: str, model: str) -> LimitSet:
        empty = LimitSet()
        return (self.tenant_models.get((tenant, model), empty)
                .over(self.tenants.get(tenant, empty))
                .over(self.models.get(model, empty))
                .over(self.default))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "limits") -> Limits:
        """From a table such as:

            requests_per_minute = 60          # defaults
            [models."local/extractive"]
            tokens_per_minute = 100000
            [tenants.acme]
            requests_per_hour = 5000
            [tenants.acme.models."gpt-4o"]
            requests_per_minute = 10
        """
        top = {k: v for k, v in data.items() if k not in ("models", "tenants")}
        models = {m: LimitSet.parse(f"{where}.models.{m}", v) for m, v in _table(data, "models", where).items()}
        tenants: dict[str, LimitSet] = {}
        pairs: dict[tuple[str, str], LimitSet] = {}
        for tenant, table in _table(data, "tenants", where).items():
            check_tenant(tenant)
            t_where = f"{where}.tenants.{tenant}"
            own = {k: v for k, v in _mapping(table, t_where).items() if k != "models"}
            tenants[tenant] = LimitSet.parse(t_where, own)
            for model, v in _table(table, "models", t_where).items():
                pairs[(tenant, model)] = LimitSet.parse(f"{t_where}.models.{model}", v)
        return cls(LimitSet.parse(where, top), models, tenants, pairs)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Limits:
        """AISDK_GATEWAY_LIMITS names a TOML file (see from_mapping); the
        AISDK_GATEWAY_{REQUESTS,TOKENS}_PER_{MINUTE,HOUR} variables set the
        defaults, over the file's."""
        limits = cls()
        path = environ.get("AISDK_GATEWAY_LIMITS", "").strip()
        if path:
            try:
                data = tomllib.loads(Path(path).read_text())
            except (OSError, tomllib.TOMLDecodeError) as e:
                raise ValueError(f"AISDK_GATEWAY_LIMITS={path!r}: {e}") from None
            limits = cls.from_mapping(data, where=path)
        overrides: dict[str, int] = {}
        for var, name in _ENV.items():
            raw = environ.get(var, "").strip()
            if raw:
                if not raw.isdigit():
                    raise ValueError(f"{var}={raw!r} must be a whole number >= 0 (0: no limit)")
                overrides[name] = int(raw)
        return replace(limits, default=replace(limits.default, **overrides)) if overrides else limits


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be a table, not {value!r}")
    return value


def _table(data: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    return {k: _mapping(v, f"{where}.{name}.{k}") for k, v in _mapping(data.get(name, {}), f"{where}.{name}").items()}


@dataclass(frozen=True)
class Decision:
    """The outcome of acquire(). Refused: the limit that refused (the one
    freeing up last if several did) and when to retry. Admitted: the limit
    closest to being reached, if any."""

    allowed: bool
    scope: str = ""  # "requests" | "tokens"; "" when no limit applies
    window_s: int = 0
    limit: int = 0
    current: int = 0  # the count in the window, this request included if admitted
    retry_after_s: float = 0.0
    # Refused for good: the request alone is more than the limit, so no
    # window will ever admit it (current is then the request's own count).
    never: bool = False

    def event(self, model: str) -> gateway_pb2.RateLimitEvent:
        """The gateway.rate-limit event that reports this decision."""
        return gateway_pb2.RateLimitEvent(
            model=model,
            scope=gateway_pb2.RATE_LIMIT_SCOPE_TOKENS if self.scope == "tokens" else gateway_pb2.RATE_LIMIT_SCOPE_REQUESTS,
            limit=float(self.limit),
            current=float(self.current),
            rejected=not self.allowed,
            window=Duration(seconds=self.window_s),
            retry_after=_duration(self.retry_after_s),
        )


def _duration(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


# window length -> [window start, requests, tokens]
_Counts = dict[int, list[int]]


def _decode(data: bytes | None, now: float) -> _Counts:
    try:
        raw = json.loads(data) if data else {}
        kept = {w: [int(x) for x in raw.get(str(w), ())] for w in WINDOWS}
    except (ValueError, TypeError, AttributeError):
        log.warning("unreadable rate-limit counts %r, counting from zero", data[:100] if data else data)
        kept = {}
    counts: _Counts = {}
    for w in WINDOWS:
        start = int(now // w * w)
        c = kept.get(w, [])
        counts[w] = c if len(c) == 3 and c[0] == start else [start, 0, 0]
    return counts


def _encode(counts: _Counts) -> bytes:
    return json.dumps({str(w): c for w, c in counts.items()}, separators=(",", ":")).encode()


class RateLimiter:
    """Use `await RateLimiter.open(bus, limits)`."""

    def __init__(self, bucket: Bucket, limits: Limits, clock: Callable[[], float] = time.time) -> None:
        self.bucket = bucket
        self.limits = limits
        # Epoch seconds, the same on every worker: windows are aligned to the clock.
        self.clock = clock
        self.conflicts = 0  # compare-and-set rounds lost to another worker
        # key -> (lock, users): this worker's acquisitions of one key queue
        # here, so they race only with other workers' and not with each other.
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    @classmethod
    async def open(
        cls,
        js_or_bus: JetStreamContext | Connected,
        limits: Limits,
        *,
        bucket: str = DEFAULT_BUCKET,
        clock: Callable[[], float] = time.time,
    ) -> RateLimiter:
        # An entry untouched for an hour holds only expired windows.
        b = await open_bucket(jetstream(js_or_bus), bucket, max_age_s=HOUR, description="gateway rate-limit counters")
        return cls(b, limits, clock)

    def _key(self, tenant: str, model: str) -> str:
        return f"{check_tenant(tenant)}.{token(model)}"

    async def _read(self, key: str) -> tuple[bytes | None, int]:
        try:
            entry = await self.bucket.kv.get(key)
        except KeyNotFoundError:
            return None, 0
        return entry.value, entry.revision or 0

    async def _write(self, key: str, data: bytes, revision: int) -> bool:
        try:
            if revision:
                await self.bucket.kv.update(key, data, last=revision)
            else:
                await self.bucket.kv.create(key, data)
        except KeyWrongLastSequenceError:
            self.conflicts += 1
            return False
        return True

    async def _change(self, tenant: str, model: str, step: Callable[[_Counts, float], Decision | None]) -> Decision | None:
        """Apply step to the current counts until the write wins the race.
        step edits the counts in place, or returns a Decision to write nothing."""
        key = self._key(tenant, model)
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                return await self._race(key, step)
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[key]

    async def _race(self, key: str, step: Callable[[_Counts, float], Decision | None]) -> Decision | None:
        for attempt in range(MAX_ATTEMPTS):
            data, revision = await self._read(key)
            now = self.clock()
            counts = _decode(data, now)
            refused = step(counts, now)
            if refused is not None:
                return refused
            if await self._write(key, _encode(counts), revision):
                return None
            # Spread the losers out so they do not collide again in lockstep.
            await asyncio.sleep(random.uniform(0, 0.001 * min(attempt + 1, 20)))
        raise RateLimitUnavailable(f"rate-limit counters {key} stayed contended for {MAX_ATTEMPTS} rounds")

    async def acquire(self, tenant: str, model: str, tokens: int) -> Decision:
        """Admit one request expected to use `tokens` tokens (prompt plus the
        completion it may produce), or refuse it without counting it."""
        if tokens < 0:
            raise ValueError(f"tokens must be >= 0, not {tokens}")
        limits = self.limits.resolve(tenant, model)
        checks = [(scope, w, limits.limit(scope, w)) for w in WINDOWS for scope in ("requests", "tokens")]
        checks = [c for c in checks if c[2]]
        if not checks:
            check_tenant(tenant)
            return Decision(allowed=True)
        for scope, w, limit in checks:
            if scope == "tokens" and tokens > limit:
                # Nothing to read or count: no window will ever hold it.
                check_tenant(tenant)
                return Decision(False, scope, w, limit, tokens, never=True)
        admitted: list[Decision] = []

        def step(counts: _Counts, now: float) -> Decision | None:
            admitted.clear()
            refusals: list[Decision] = []
            for scope, w, limit in checks:
                start, requests, used = counts[w]
                before = requests if scope == "requests" else used
                after = before + (1 if scope == "requests" else tokens)
                d = Decision(after <= limit, scope, w, limit, after if after <= limit else before,
                             max(0.0, start + w - now))
                (admitted if d.allowed else refusals).append(d)
            if refusals:
                return max(refusals, key=lambda d: d.retry_after_s)
            for w in WINDOWS:
                counts[w][1] += 1
                counts[w][2] += tokens
            return None

        refused = await self._change(tenant, model, step)
        if refused is not None:
            return refused
        tightest = max(admitted, key=lambda d: d.current / d.limit)
        return replace(tightest, retry_after_s=0.0)

    async def add_tokens(self, tenant: str, model: str, tokens: int) -> None:
        """Correct the token counts once the call's real usage is known: add
        the tokens used beyond what acquire() was told (negative: fewer).
        Never refuses; a later request sees the new count."""
        if tokens == 0 or not any(self.limits.resolve(tenant, model).limit("tokens", w) for w in WINDOWS):
            return

        def step(counts: _Counts, now: float) -> None:
            for w in WINDOWS:
                counts[w][2] = max(0, counts[w][2] + tokens)

        await self._change(tenant, model, step)
