"""gateway.health from the breakers: an event for a deployment whenever its
breaker changes state or a call fell back from it, and one for every
deployment periodically. Health is judged from real traffic only: no probe
request is ever sent, so health costs no tokens (the half-open probe is a
caller's own request)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from ai.gateway.v1 import gateway_pb2
from aisdk.components.gateway.breaker import BreakerConfig, BreakerState, CircuitBreaker, HealthTracker
from aisdk.components.gateway.providers import Outcome
from aisdk.components.gateway.sharedbreakers import SharedBreakers

log = logging.getLogger("aisdk.gateway.health")
Publish = Callable[[gateway_pb2.ProviderHealth], Awaitable[None]]


class DeploymentHealth:
    """The breakers of this worker, their gateway.health events, and (with
    `shared` set before start()) their states shared with every worker."""

    def __init__(self, deployments: Iterable[str], publish: Publish, *, interval_s: float,
                 config: BreakerConfig | None = None) -> None:
        self.tracker = HealthTracker(config or BreakerConfig.from_env(), on_change=self._changed)
        for deployment in deployments:
            self.tracker.breaker(deployment)
        self.publish = publish
        self.interval_s = interval_s
        self.shared: SharedBreakers | None = None
        self.outcome = Outcome(
            allow=lambda d: self.tracker.breaker(d).allow(),
            success=lambda d, s: self.tracker.breaker(d).record_success(s),
            failure=self._failure,
            wait=lambda d: self.tracker.breaker(d).wait(),
        )
        self._pending: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None
        self._reported: dict[str, int] = {}  # deployment -> its call count at its last fallback event

    def _failure(self, deployment: str, retry_after_s: float | None) -> None:
        breaker = self.tracker.breaker(deployment)
        breaker.record_failure(retry_after_s=retry_after_s)
        # A failure that opened the breaker was shared as open, hold included
        # (SharedBreakers.opened): a second record would overwrite it.
        if retry_after_s and self.shared is not None and breaker.state is not BreakerState.OPEN:
            self.shared.held(deployment, retry_after_s)

    def _changed(self, breaker: CircuitBreaker, old: BreakerState, new: BreakerState) -> None:
        # Called from inside a call's outcome: send without making it wait.
        log.info("circuit of %s: %s -> %s", breaker.deployment, old, new)
        self.send(breaker.deployment)
        if self.shared is not None:
            if new is BreakerState.OPEN:
                self.shared.opened(breaker)
            elif new is BreakerState.CLOSED:
                self.shared.closed(breaker)

    def fell_back(self, deployment: str) -> None:
        """A call fell back from deployment: publish its health when that
        call changed it (it was tried and failed). A deployment skipped
        while open or held changed nothing, and under load every request
        would send the same event again."""
        calls = self.tracker.calls.get(deployment, 0)
        if calls != self._reported.get(deployment):
            self._reported[deployment] = calls
            self.send(deployment)

    def send(self, deployment: str) -> None:
        """Publish the deployment's health now, in the background."""
        task = asyncio.create_task(self._send(self.tracker.health(deployment)))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send(self, event: gateway_pb2.ProviderHealth) -> None:
        try:
            await self.publish(event)
        except Exception as e:  # noqa: BLE001 - a lost health event must not fail a call
            log.warning("could not publish the health of %s: %s", event.provider, e)

    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            for event in self.tracker.report():
                await self._send(event)

    async def start(self) -> None:
        if self.shared is not None:
            await self.shared.start()
        if self.interval_s > 0:
            self._loop = asyncio.create_task(self._periodic(), name="gateway health")

    async def stop(self) -> None:
        if self.shared is not None:
            await self.shared.stop()
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
