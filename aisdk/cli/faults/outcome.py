"""What a scenario reports, and the bounded wait every scenario uses."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Generous: the machine may be busy; a bounded wait ends on the event, and
# only a condition never reached uses it all.
WAIT = 60.0


@dataclass(frozen=True, slots=True)
class Size:
    """How much work a scenario sends: `quick` in the tests, `full` in `aisdk chaos`."""

    messages: int
    slow_messages: int


QUICK = Size(messages=20, slow_messages=2_000)
FULL = Size(messages=200, slow_messages=20_000)


@dataclass(slots=True)
class Outcome:
    name: str
    sent: int = 0
    processed: int = 0
    lost: int = 0
    duplicates: int = 0
    # Scenario-specific checks beyond lost and duplicates: name -> passed.
    checks: dict[str, bool] = field(default_factory=dict)
    # Counts that explain the result (redeliveries, dropped, dead letters...).
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.lost == 0 and self.duplicates == 0 and all(self.checks.values())

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "sent": self.sent, "processed": self.processed, "lost": self.lost,
                "duplicates": self.duplicates, "passed": self.passed, "checks": dict(self.checks),
                "detail": dict(self.detail)}


async def until(cond: Callable[[], Any], timeout: float = WAIT, poll: float = 0.05) -> bool:
    """Wait for `cond()` (sync or async) to be true; False if it never was within `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = cond()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(poll)
