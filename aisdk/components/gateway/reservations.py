"""Hard budgets: spend that cannot cross a cap, however many workers run.

Before a call the gateway reserves the call's maximum cost (the counted
prompt at the input price, plus `max_tokens` or the model's output ceiling at
the output price) against every hard budget the call counts against; after
the call it settles the reservation to the real cost (a failed call settles
to what it cost, usually nothing). A call whose maximum does not fit beside
the spend and the other calls' reservations is refused.

The ledger is one JetStream key-value entry per (tenant, budget), changed only
by compare-and-set on its revision, so two workers can never both take the
last room under a cap. An entry holds the period it counts, the settled spend
and the open reservations, each with an expiry: a worker that dies between
reserving and settling holds its room only until then.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from aisdk.components.gateway.kv import Bucket, Connected, check_tenant, jetstream, open_bucket, token
from aisdk.components.gateway.providers import litellm
from aisdk.components.llmops.budgets import Cap

log = logging.getLogger("aisdk.gateway.budgets")

DEFAULT_BUCKET = "gateway_budgets"
# A ledger entry outlives its period (at most a month) by a day.
MAX_AGE_S = 32 * 86400.0
# A reservation lapses this long after the call's deadline.
GRACE_S = 60.0
MAX_ATTEMPTS = 200
# The answer's ceiling of a model whose price list names none (e.g. the
# local models), when the request sets no max_tokens.
DEFAULT_OUTPUT_CEILING = 4096


def max_cost(models: Sequence[str], prompt_tokens: int, max_tokens: int | None) -> float | None:
    """The most a call can cost on any of the models that may serve it (the
    deployment chain): the prompt at the input price plus max_tokens, or the
    model's output ceiling, at the output price. None when a model's price
    is unknown, as no cap can then be kept."""
    worst = 0.0
    for model in models:
        try:
            info = litellm().get_model_info(model)
        except Exception:  # noqa: BLE001 - litellm raises several kinds for an unmapped model
            return None
        inp, out = info.get("input_cost_per_token"), info.get("output_cost_per_token")
        if inp is None or out is None:
            return None
        # 0 is a ceiling too: an embedding writes no tokens.
        ceiling = max_tokens if max_tokens is not None else (
            info.get("max_output_tokens") or info.get("max_tokens") or DEFAULT_OUTPUT_CEILING)
        worst = max(worst, prompt_tokens * float(inp) + int(ceiling) * float(out))
    return worst


class BudgetUnavailable(RuntimeError):
    """The ledger stayed contended, or could not be reached."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a call does not fit under a cap, in the caller's words."""

    cap: Cap
    spent: float
    reserved: float
    wanted: float
    resets_at: datetime

    def message(self) -> str:
        b = self.cap.budget
        return (f"hard budget {self.cap.name} (${b.limit:.6g} per {b.period}) has no room for this call: "
                f"${self.spent:.6g} spent and ${self.reserved:.6g} reserved by calls in flight, and this call "
                f"may cost up to ${self.wanted:.6g}; it resets at {self.resets_at:%Y-%m-%dT%H:%M:%SZ}")


@dataclass(slots=True)
class Reservation:
    """Room held under some caps for one call, until settle()."""

    id: str
    amount: float
    caps: list[Cap] = field(default_factory=list)


@dataclass(slots=True)
class _Ledger:
    period: float  # the period's start, epoch seconds
    spent: float
    holds: dict[str, list[float]]  # reservation id -> [amount, expires at]

    @classmethod
    def decode(cls, data: bytes | None, period: float, now: float) -> _Ledger:
        try:
            raw: dict[str, Any] = json.loads(data) if data else {}
            ledger = cls(float(raw.get("period", period)), float(raw.get("spent", 0.0)),
                         {str(k): [float(v[0]), float(v[1])] for k, v in dict(raw.get("holds", {})).items()})
        except (ValueError, TypeError, KeyError, IndexError):
            log.warning("unreadable budget ledger %r, counting from zero", data[:100] if data else data)
            ledger = cls(period, 0.0, {})
        if ledger.period != period:
            # A new period: the spend starts again; calls still in flight keep their room.
            ledger.period, ledger.spent = period, 0.0
        ledger.holds = {k: v for k, v in ledger.holds.items() if v[1] > now}
        return ledger

    def encode(self) -> bytes:
        return json.dumps({"period": self.period, "spent": self.spent, "holds": self.holds},
                          separators=(",", ":")).encode()

    @property
    def reserved(self) -> float:
        return sum(v[0] for v in self.holds.values())


class BudgetLedger:
    """Use `await BudgetLedger.open(bus)`."""

    def __init__(self, bucket: Bucket, clock: Callable[[], float] = time.time) -> None:
        self.bucket = bucket
        self.clock = clock
        self.conflicts = 0  # compare-and-set rounds lost to another worker
        # This worker's changes of one ledger queue here, so they race only
        # with other workers' and not with each other.
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    @classmethod
    async def open(cls, js_or_bus: JetStreamContext | Connected, *, bucket: str = DEFAULT_BUCKET,
                   clock: Callable[[], float] = time.time) -> BudgetLedger:
        b = await open_bucket(jetstream(js_or_bus), bucket, max_age_s=MAX_AGE_S, description="gateway hard budgets")
        return cls(b, clock)

    @staticmethod
    def _key(cap: Cap) -> str:
        return f"{check_tenant(cap.tenant)}.{token(cap.model or '*')}.{token(cap.name)}"

    async def _change(self, cap: Cap, step: Callable[[_Ledger, float], Refusal | None]) -> Refusal | None:
        """Apply step to the cap's ledger until the write wins the race (or
        step refuses, which writes nothing)."""
        key = self._key(cap)
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                return await self._race(cap, key, step)
        finally:
            # Bounded by the ledgers in use: an idle one's lock goes.
            users[0] -= 1
            if not users[0]:
                del self._locks[key]

    async def _race(self, cap: Cap, key: str, step: Callable[[_Ledger, float], Refusal | None]) -> Refusal | None:
        for attempt in range(MAX_ATTEMPTS):
            try:
                entry = await self.bucket.kv.get(key)
                data, revision = entry.value, entry.revision or 0
            except KeyNotFoundError:
                data, revision = None, 0
            now = self.clock()
            start = cap.budget.bounds(datetime.fromtimestamp(now, UTC))[0].timestamp()
            ledger = _Ledger.decode(data, start, now)
            refused = step(ledger, now)
            if refused is not None:
                return refused
            try:
                if revision:
                    await self.bucket.kv.update(key, ledger.encode(), last=revision)
                else:
                    await self.bucket.kv.create(key, ledger.encode())
                return None
            except KeyWrongLastSequenceError:
                self.conflicts += 1
            # Spread the losers out so they do not collide again in lockstep.
            await asyncio.sleep(random.uniform(0, 0.001 * min(attempt + 1, 20)))
        raise BudgetUnavailable(f"the ledger of budget {cap.name} stayed contended for {MAX_ATTEMPTS} rounds")

    async def reserve(self, caps: Sequence[Cap], amount: float, hold_s: float) -> Reservation | Refusal:
        """Hold `amount` dollars under every cap for at most hold_s seconds,
        or hold nothing and say which cap has no room."""
        if amount < 0:
            raise ValueError(f"a reservation must not be negative, not {amount}")
        reservation = Reservation(uuid.uuid4().hex, amount)

        for cap in caps:
            def step(ledger: _Ledger, now: float, cap: Cap = cap) -> Refusal | None:
                if ledger.spent + ledger.reserved + amount > cap.budget.limit:
                    return Refusal(cap, ledger.spent, ledger.reserved, amount,
                                   cap.budget.resets_at(datetime.fromtimestamp(now, UTC)))
                ledger.holds[reservation.id] = [amount, now + hold_s]
                return None

            refused = await self._change(cap, step)
            if refused is not None:
                await self.settle(reservation, 0.0)
                return refused
            reservation.caps.append(cap)
        return reservation

    async def settle(self, reservation: Reservation, cost: float) -> None:
        """Replace the reservation by the call's real cost (0: release it)."""
        for cap in reservation.caps:
            def step(ledger: _Ledger, now: float) -> None:
                # A hold that lapsed or belongs to the last period still costs what it cost.
                ledger.holds.pop(reservation.id, None)
                ledger.spent += max(cost, 0.0)
                return None

            await self._change(cap, step)
        reservation.caps.clear()

    async def spent(self, cap: Cap) -> tuple[float, float]:
        """(settled spend, open reservations) of a cap in its current period."""
        try:
            data = (await self.bucket.kv.get(self._key(cap))).value
        except KeyNotFoundError:
            data = None
        now = self.clock()
        ledger = _Ledger.decode(data, cap.budget.bounds(datetime.fromtimestamp(now, UTC))[0].timestamp(), now)
        return ledger.spent, ledger.reserved
