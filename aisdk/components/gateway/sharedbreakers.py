"""Circuit breakers shared by every gateway worker through JetStream KV.

A worker whose breaker opens (or whose provider answered 429 with a
Retry-After) writes the deployment's state to bucket `gateway_breakers`:
`{"deployment": identity, "state": "open" | "held" | "closed", "until": epoch
seconds, "worker": id}`, under a hash of the deployment's identity (its id,
provider model and endpoint: models.Deployment.identity).
Every worker watches the bucket and sets its own breaker from what others
wrote, so a deployment one worker found dead is skipped by all of them
without another failed call, and a worker that starts later reads the
current states before it serves. A probe's success writes `closed`.

The watch keeps `allow()` local (no round trip on the path of a call); the
price is the watch's delivery delay, during which another worker may still
make a call or two. Half-open probes are not coordinated: each worker lets
its own probe through when the shared cool-down ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from nats.js.kv import KeyValue

from aisdk.components.gateway.breaker import DEFAULT_BUCKET, CircuitBreaker, HealthTracker
from aisdk.components.gateway.kv import Connected, jetstream, open_bucket, token

log = logging.getLogger("aisdk.gateway.breakers")
# States older than this say nothing about a provider any more.
MAX_AGE_S = 24 * 3600.0
OPEN, HELD, CLOSED = "open", "held", "closed"


class SharedBreakers:
    """Use `await SharedBreakers.open(bus, tracker)`, then start()."""

    def __init__(self, kv: KeyValue, tracker: HealthTracker, identities: Mapping[str, str], *,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.kv = kv
        self.tracker = tracker
        # deployment id -> what names it across workers (models.Deployment.identity)
        self.identities = dict(identities)
        self._deployments = {identity: d for d, identity in self.identities.items()}
        self.wall_clock = wall_clock
        self.worker = uuid.uuid4().hex[:12]
        self._watch: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._pending: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(cls, bus: Connected, tracker: HealthTracker, identities: Mapping[str, str], *,
                   bucket: str = DEFAULT_BUCKET) -> SharedBreakers:
        b = await open_bucket(jetstream(bus), bucket, max_age_s=MAX_AGE_S, description="gateway circuit breakers")
        return cls(b.kv, tracker, identities)

    # -- writing: what this worker learnt ------------------------------------

    def share(self, deployment: str, state: str, seconds: float = 0.0) -> None:
        """Write a state in the background: called from a call's outcome,
        which must not wait for the store (nor fail when it is down)."""
        identity = self.identities.get(deployment)
        if identity is None:
            return
        record = {"deployment": identity, "state": state, "until": self.wall_clock() + seconds, "worker": self.worker}
        task = asyncio.create_task(self._put(identity, record))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _put(self, identity: str, record: dict[str, Any]) -> None:
        try:
            await self.kv.put(token(identity), json.dumps(record).encode())
        except Exception as e:  # noqa: BLE001 - the local breaker still protects this worker
            log.warning("could not share the breaker of %s: %s", identity, e)

    def opened(self, breaker: CircuitBreaker) -> None:
        # wait(): until the probe, or the provider's Retry-After when later.
        self.share(breaker.deployment, OPEN, breaker.wait())

    def held(self, deployment: str, seconds: float) -> None:
        self.share(deployment, HELD, seconds)

    def closed(self, breaker: CircuitBreaker) -> None:
        self.share(breaker.deployment, CLOSED)

    # -- reading: what other workers learnt ----------------------------------

    def apply(self, record: dict[str, Any]) -> None:
        """Set this worker's breaker from another worker's record (not this
        worker's own, not an expired one)."""
        deployment, state = self._deployments.get(str(record.get("deployment"))), record.get("state")
        if record.get("worker") == self.worker or deployment is None:
            return
        left = float(record.get("until", 0.0)) - self.wall_clock()
        breaker = self.tracker.breaker(deployment)
        if state == CLOSED:
            breaker.adopt_closed()
        elif state == OPEN and left > 0:
            breaker.adopt_open(left)
        elif state == HELD and left > 0:
            breaker.hold(left)

    async def _follow(self) -> None:
        watcher = await self.kv.watchall()
        try:
            async for entry in watcher:
                if entry is None:  # the current states are all read
                    self._ready.set()
                    continue
                if entry.value:
                    try:
                        self.apply(json.loads(entry.value))
                    except (ValueError, TypeError, AttributeError) as e:
                        log.warning("unreadable breaker state under %s: %s", entry.key, e)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    async def start(self) -> None:
        """Follow the bucket; returns once the states already written apply."""
        self._watch = asyncio.create_task(self._follow(), name="gateway breakers")
        ready = asyncio.create_task(self._ready.wait())
        await asyncio.wait({ready, self._watch}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if self._watch.done():
            self._watch.result()  # the watch could not start: say why

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
