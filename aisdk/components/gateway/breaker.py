"""Provider health: a circuit breaker per deployment, and the error rate and
latency of each deployment's recent calls, reported as ProviderHealth.

A breaker opens after `failure_threshold` consecutive failures and refuses
calls (the router then falls back to another deployment). After
`reset_timeout_s` it lets one probe through (half-open): a success closes it,
a failure opens it for another period. A provider's 429 with a Retry-After
holds the deployment aside that long, whatever the state.

`allow()` sits on the hot path of every call, so it reads this worker's
breaker, never a store; what one worker learns reaches the others through
JetStream KV (sharedbreakers.py), which sets their breakers with adopt_*()
without publishing the change again.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from ai.gateway.v1 import gateway_pb2
from aisdk.components.environment import number, whole

# The JetStream KV bucket that shares breaker states between workers.
DEFAULT_BUCKET = "gateway_breakers"
DEFAULT_FAILURE_THRESHOLD = 5
DEFAULT_RESET_TIMEOUT_S = 30.0
DEFAULT_WINDOW_S = 300.0
DEFAULT_MAX_SAMPLES = 1000
DEFAULT_DEGRADED_ERROR_RATE = 0.1


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


# (breaker, old state, new state); called synchronously, so it must not block
# (schedule the publication of a gateway.health event instead).
OnChange = Callable[["CircuitBreaker", BreakerState, BreakerState], None]


@dataclass(frozen=True)
class BreakerConfig:
    """Settings of the breakers and health tracking, from AISDK_GATEWAY_BREAKER_*."""

    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD
    reset_timeout_s: float = DEFAULT_RESET_TIMEOUT_S
    window_s: float = DEFAULT_WINDOW_S
    degraded_error_rate: float = DEFAULT_DEGRADED_ERROR_RATE
    # The JetStream KV bucket that shares breaker states between workers.
    bucket: str = DEFAULT_BUCKET

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, not {self.failure_threshold}")
        if self.reset_timeout_s <= 0 or self.window_s <= 0:
            raise ValueError("reset_timeout_s and window_s must be positive")
        if not 0 < self.degraded_error_rate <= 1:
            raise ValueError(f"degraded_error_rate must be in (0, 1], not {self.degraded_error_rate}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> BreakerConfig:
        def rate(var: str, default: float) -> float:
            return number(environ, var, default, minimum=None)  # __post_init__ says what is out of range

        failures = whole(environ, "AISDK_GATEWAY_BREAKER_FAILURES", DEFAULT_FAILURE_THRESHOLD, minimum=None)
        return cls(
            failure_threshold=failures,
            reset_timeout_s=rate("AISDK_GATEWAY_BREAKER_RESET_S", DEFAULT_RESET_TIMEOUT_S),
            window_s=rate("AISDK_GATEWAY_HEALTH_WINDOW_S", DEFAULT_WINDOW_S),
            degraded_error_rate=rate("AISDK_GATEWAY_HEALTH_DEGRADED_ERROR_RATE", DEFAULT_DEGRADED_ERROR_RATE),
            bucket=environ.get("AISDK_GATEWAY_BREAKER_BUCKET", "").strip() or cls.bucket,
        )


class CircuitBreaker:
    """The breaker of one deployment. Ask allow() before a call, then report
    record_success(latency_s) or record_failure()."""

    def __init__(
        self,
        deployment: str,
        *,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        reset_timeout_s: float = DEFAULT_RESET_TIMEOUT_S,
        on_change: OnChange | None = None,
        clock: Callable[[], float] = time.monotonic,
        tracker: HealthTracker | None = None,
    ) -> None:
        self.deployment = deployment
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self.on_change = on_change
        self.clock = clock
        self.tracker = tracker
        self.failures = 0  # consecutive
        self._state = BreakerState.CLOSED
        self._since = clock()  # when the state was entered, or the probe let through
        self._probing = False
        self._held_until = 0.0  # a provider's Retry-After, on this clock

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self.clock() - self._since >= self.reset_timeout_s:
            self._enter(BreakerState.HALF_OPEN)
        return self._state

    def _enter(self, state: BreakerState, notify: bool = True) -> None:
        old, self._state = self._state, state
        self._since = self.clock()
        self._probing = False
        if state is BreakerState.CLOSED:
            self.failures = 0
        if old is not state and notify and self.on_change is not None:
            self.on_change(self, old, state)

    def hold(self, seconds: float) -> None:
        """Refuse calls for `seconds` (a provider's Retry-After)."""
        self._held_until = max(self._held_until, self.clock() + seconds)

    def wait(self) -> float:
        """Seconds until allow() may say yes again (0: now)."""
        now = self.clock()
        held = self._held_until - now
        if self.state is BreakerState.OPEN:
            return max(held, self.reopens_at() - now, 0.0)
        return max(held, 0.0)

    def reopens_at(self) -> float:
        """When an open breaker lets a probe through, on this clock."""
        return self._since + self.reset_timeout_s

    def adopt_open(self, seconds_left: float) -> None:
        """Another worker opened this breaker: open it here too, letting a
        probe through when that worker's does."""
        if self.state is not BreakerState.OPEN:
            self._enter(BreakerState.OPEN, notify=False)
        self._since = self.clock() + seconds_left - self.reset_timeout_s

    def adopt_closed(self) -> None:
        """Another worker's probe succeeded: close this breaker too."""
        if self.state is not BreakerState.CLOSED:
            self._enter(BreakerState.CLOSED, notify=False)

    def allow(self) -> bool:
        """May a call go to this deployment now? Not while held; in half-open,
        one probe at a time; a probe that never reported back is replaced
        after reset_timeout_s."""
        if self._held_until and self.clock() < self._held_until:
            return False
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        if self._probing and self.clock() - self._since < self.reset_timeout_s:
            return False
        self._probing, self._since = True, self.clock()
        return True

    def record_success(self, latency_s: float) -> None:
        if self.tracker is not None:
            self.tracker.record(self.deployment, True, latency_s)
        state = self.state
        if state is BreakerState.HALF_OPEN:
            self._enter(BreakerState.CLOSED)
        elif state is BreakerState.CLOSED:
            self.failures = 0
        # While open, a success can only be a call let through before it
        # opened: it says nothing about the provider now.

    def record_failure(self, latency_s: float | None = None, retry_after_s: float | None = None) -> None:
        if self.tracker is not None:
            self.tracker.record(self.deployment, False, latency_s)
        if retry_after_s:
            self.hold(retry_after_s)
        state = self.state
        self.failures += 1
        if state is BreakerState.HALF_OPEN or (state is BreakerState.CLOSED and self.failures >= self.failure_threshold):
            self._enter(BreakerState.OPEN)


def _duration(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(round(seconds * 1e9))
    return d


class HealthTracker:
    """Breakers and recent calls of every deployment this worker calls."""

    def __init__(
        self,
        config: BreakerConfig = BreakerConfig(),
        *,
        on_change: OnChange | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        max_samples: int = DEFAULT_MAX_SAMPLES,
    ) -> None:
        self.config = config
        self.on_change = on_change
        self.clock = clock
        self.wall_clock = wall_clock
        self.max_samples = max_samples
        self._breakers: dict[str, CircuitBreaker] = {}
        # deployment -> (time, ok, latency or None), oldest first
        self._samples: dict[str, deque[tuple[float, bool, float | None]]] = {}
        # deployment -> calls recorded since start (the window forgets, this does not)
        self.calls: dict[str, int] = {}

    def breaker(self, deployment: str) -> CircuitBreaker:
        b = self._breakers.get(deployment)
        if b is None:
            b = self._breakers[deployment] = CircuitBreaker(
                deployment, failure_threshold=self.config.failure_threshold,
                reset_timeout_s=self.config.reset_timeout_s, on_change=self._changed, clock=self.clock, tracker=self,
            )
        return b

    def _changed(self, breaker: CircuitBreaker, old: BreakerState, new: BreakerState) -> None:
        if self.on_change is not None:
            self.on_change(breaker, old, new)

    @property
    def deployments(self) -> list[str]:
        return sorted(self._breakers.keys() | self._samples.keys())

    def record(self, deployment: str, ok: bool, latency_s: float | None) -> None:
        samples = self._samples.setdefault(deployment, deque(maxlen=self.max_samples))
        samples.append((self.clock(), ok, latency_s))
        self.calls[deployment] = self.calls.get(deployment, 0) + 1

    def _recent(self, deployment: str) -> deque[tuple[float, bool, float | None]]:
        samples = self._samples.get(deployment, deque())
        horizon = self.clock() - self.config.window_s
        while samples and samples[0][0] < horizon:
            samples.popleft()
        return samples

    def error_rate(self, deployment: str) -> float:
        samples = self._recent(deployment)
        return sum(not ok for _, ok, _ in samples) / len(samples) if samples else 0.0

    def latency_p95(self, deployment: str) -> float:
        """The 95th percentile (nearest rank) of the recent calls' latencies."""
        latencies = sorted(lat for _, _, lat in self._recent(deployment) if lat is not None)
        return latencies[math.ceil(0.95 * len(latencies)) - 1] if latencies else 0.0

    def health(self, deployment: str) -> gateway_pb2.ProviderHealth:
        """A gateway.health event for one deployment: unhealthy while its
        breaker is open, degraded while half-open or above the error rate."""
        state = self.breaker(deployment).state
        rate = self.error_rate(deployment)
        if state is BreakerState.OPEN:
            health = gateway_pb2.HEALTH_STATE_UNHEALTHY
        elif state is BreakerState.HALF_OPEN or rate >= self.config.degraded_error_rate:
            health = gateway_pb2.HEALTH_STATE_DEGRADED
        else:
            health = gateway_pb2.HEALTH_STATE_HEALTHY
        checked = Timestamp()
        checked.FromNanoseconds(round(self.wall_clock() * 1e9))
        return gateway_pb2.ProviderHealth(provider=deployment, state=health, error_rate=rate,
                                          latency_p95=_duration(self.latency_p95(deployment)), checked_at=checked)

    def report(self) -> list[gateway_pb2.ProviderHealth]:
        """The periodic gateway.health events: one per known deployment."""
        return [self.health(d) for d in self.deployments]
