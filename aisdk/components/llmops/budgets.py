"""Per-tenant spending budgets, from a TOML file and/or environment variables.

    AISDK_LLMOPS_BUDGETS="acme=100/month,*=5/day"   # US dollars per period; * = every other tenant
    AISDK_LLMOPS_ALERT_THRESHOLDS="0.5,0.8,1"       # fractions of the budget that raise a CostAlert
    AISDK_LLMOPS_CONFIG=llmops.toml                  # the same, with per-tenant thresholds:

    thresholds = [0.5, 0.8, 1.0]
    [budgets.acme]
    limit = 100.0
    period = "month"            # day | week (from Monday) | month, in UTC
    thresholds = [0.9, 1.0]
    [budgets."*"]
    limit = 5.0
    period = "day"

Entries of AISDK_LLMOPS_BUDGETS replace the file's entry for the same tenant.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BUDGETS_ENV = "AISDK_LLMOPS_BUDGETS"
THRESHOLDS_ENV = "AISDK_LLMOPS_ALERT_THRESHOLDS"
CONFIG_ENV = "AISDK_LLMOPS_CONFIG"
ANY_TENANT = "*"
PERIODS = ("day", "week", "month")
DEFAULT_THRESHOLDS = (0.5, 0.8, 1.0)


class BudgetConfigError(ValueError):
    """The budget configuration cannot be read; the message names the entry."""


@dataclass(frozen=True, slots=True)
class Budget:
    limit: float
    period: str = "month"
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS

    def __post_init__(self) -> None:
        if not self.limit > 0:
            raise BudgetConfigError(f"a budget limit must be above 0, not {self.limit}")
        if self.period not in PERIODS:
            raise BudgetConfigError(f"unknown budget period {self.period!r}: choose from {', '.join(PERIODS)}")
        if not self.thresholds or any(not t > 0 for t in self.thresholds):
            raise BudgetConfigError(f"thresholds must be fractions above 0, not {list(self.thresholds)}")
        object.__setattr__(self, "thresholds", tuple(sorted(set(self.thresholds))))

    def bounds(self, at: datetime) -> tuple[datetime, datetime]:
        """The UTC period [start, end) that contains `at`."""
        day = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        if self.period == "day":
            return day, day + timedelta(days=1)
        if self.period == "week":
            start = day - timedelta(days=day.weekday())
            return start, start + timedelta(days=7)
        start = day.replace(day=1)
        return start, (start + timedelta(days=32)).replace(day=1)

    def crossed(self, spend: float) -> list[float]:
        """The thresholds that a spend has reached."""
        return [t for t in self.thresholds if spend >= t * self.limit]


@dataclass(frozen=True, slots=True)
class Budgets:
    by_tenant: Mapping[str, Budget] = field(default_factory=dict)

    def for_tenant(self, tenant: str) -> Budget | None:
        return self.by_tenant.get(tenant) or self.by_tenant.get(ANY_TENANT)


@contextmanager
def _entry(where: str) -> Iterator[None]:
    """Name the configuration entry an error comes from."""
    try:
        yield
    except BudgetConfigError as e:
        raise BudgetConfigError(f"{where}: {e}") from None


def _thresholds(values: Iterable[Any]) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in values)
    except (TypeError, ValueError):
        raise BudgetConfigError(f"thresholds must be numbers, not {values!r}") from None


def _from_env_entry(entry: str, thresholds: tuple[float, ...]) -> tuple[str, Budget]:
    tenant, sep, spec = entry.partition("=")
    limit, _, period = spec.partition("/")
    if not sep or not tenant.strip() or not limit.strip():
        raise BudgetConfigError(f"{BUDGETS_ENV}: {entry!r} is not TENANT=LIMIT[/PERIOD]")
    try:
        amount = float(limit)
    except ValueError:
        raise BudgetConfigError(f"{BUDGETS_ENV}: the limit of {entry!r} is not a number") from None
    with _entry(f"{BUDGETS_ENV}: {entry!r}"):
        return tenant.strip(), Budget(amount, period.strip() or "month", thresholds)


def _from_table(tenant: str, table: Any, thresholds: tuple[float, ...]) -> Budget:
    if not isinstance(table, dict) or "limit" not in table:
        raise BudgetConfigError(f"budgets.{tenant}: a table with at least `limit` is expected")
    unknown = set(table) - {"limit", "period", "thresholds"}
    if unknown:
        raise BudgetConfigError(f"budgets.{tenant}: unknown keys {', '.join(sorted(unknown))}")
    try:
        limit = float(table["limit"])
    except (TypeError, ValueError):
        raise BudgetConfigError(f"budgets.{tenant}: limit must be a number, not {table['limit']!r}") from None
    with _entry(f"budgets.{tenant}"):
        return Budget(limit, str(table.get("period", "month")), _thresholds(table.get("thresholds", thresholds)))


def load_budgets(env: Mapping[str, str] | None = None) -> Budgets:
    """Budgets from AISDK_LLMOPS_CONFIG and AISDK_LLMOPS_BUDGETS (none: no alerts)."""
    env = os.environ if env is None else env
    listed = [t for t in env.get(THRESHOLDS_ENV, "").split(",") if t.strip()]
    with _entry(THRESHOLDS_ENV):
        thresholds = _thresholds(listed) if listed else DEFAULT_THRESHOLDS
    budgets: dict[str, Budget] = {}
    path = env.get(CONFIG_ENV)
    if path:
        try:
            doc = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise BudgetConfigError(f"{CONFIG_ENV}={path}: {e}") from None
        if "thresholds" in doc and not env.get(THRESHOLDS_ENV):
            with _entry(path):
                thresholds = _thresholds(doc["thresholds"])
        for tenant, table in dict(doc.get("budgets", {})).items():
            budgets[tenant] = _from_table(tenant, table, thresholds)
    for entry in env.get(BUDGETS_ENV, "").split(","):
        if entry.strip():
            tenant, budget = _from_env_entry(entry.strip(), thresholds)
            budgets[tenant] = budget
    return Budgets(budgets)
