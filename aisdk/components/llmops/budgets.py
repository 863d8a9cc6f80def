"""Per-tenant spending budgets, from a TOML file and/or environment variables.

    AISDK_LLMOPS_BUDGETS="acme=100/month/hard,acme@chat=5/day,*=5/day"
        # US dollars per period; * = every other tenant; /hard = the gateway
        # refuses calls that could cross it; TENANT@MODEL = a cap on one model
    AISDK_LLMOPS_ALERT_THRESHOLDS="0.5,0.8,1"       # fractions of the budget that raise a CostAlert
    AISDK_LLMOPS_CONFIG=llmops.toml                  # the same, with per-tenant thresholds:

    thresholds = [0.5, 0.8, 1.0]
    [budgets.acme]
    limit = 100.0
    period = "month"            # day | week (from Monday) | month, in UTC
    thresholds = [0.9, 1.0]
    hard = true                 # the gateway caps spend at the limit
    [budgets.acme.models."chat"]
    limit = 5.0                 # a per-model budget is always hard
    period = "day"
    [budgets."*"]
    limit = 5.0
    period = "day"

Entries of AISDK_LLMOPS_BUDGETS replace the file's entry for the same tenant
(or tenant and model). A per-model budget is a cap the gateway enforces;
the CostAlerts of LLMOps are per tenant.
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
    # Hard: the gateway reserves each call's maximum cost against the limit
    # and refuses the calls that do not fit (not only alerts).
    hard: bool = False

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


    def resets_at(self, at: datetime) -> datetime:
        return self.bounds(at)[1]


@dataclass(frozen=True, slots=True)
class Cap:
    """A hard budget as the gateway applies it: its name (for errors and
    its ledger), the tenant and model it covers ("" = every model)."""

    name: str
    tenant: str
    model: str
    budget: Budget


@dataclass(frozen=True, slots=True)
class Budgets:
    by_tenant: Mapping[str, Budget] = field(default_factory=dict)
    # (tenant or "*", model name or alias) -> a hard budget of that model.
    by_model: Mapping[tuple[str, str], Budget] = field(default_factory=dict)

    def for_tenant(self, tenant: str) -> Budget | None:
        return self.by_tenant.get(tenant) or self.by_tenant.get(ANY_TENANT)

    def caps(self, tenant: str, models: Iterable[str]) -> list[Cap]:
        """The hard budgets a call of `tenant` to any of `models` (the name
        asked for and the model that serves it) counts against."""
        out = []
        budget = self.for_tenant(tenant)
        if budget is not None and budget.hard:
            out.append(Cap(f"{tenant}/{budget.period}", tenant, "", budget))
        for model in dict.fromkeys(models):
            budget = self.by_model.get((tenant, model)) or self.by_model.get((ANY_TENANT, model))
            if budget is not None:
                out.append(Cap(f"{tenant}@{model}/{budget.period}", tenant, model, budget))
        return out

    @property
    def any_hard(self) -> bool:
        return bool(self.by_model) or any(b.hard for b in self.by_tenant.values())


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


def _from_env_entry(entry: str, thresholds: tuple[float, ...]) -> tuple[str, str, Budget]:
    """TENANT[@MODEL]=LIMIT[/PERIOD][/hard] as (tenant, model or "", budget)."""
    who, sep, spec = entry.partition("=")
    tenant, _, model = who.partition("@")
    limit, *rest = spec.split("/")
    hard = bool(rest) and rest[-1].strip() == "hard"
    if hard:
        rest.pop()
    if not sep or not tenant.strip() or not limit.strip() or len(rest) > 1 or ("@" in who and not model.strip()):
        raise BudgetConfigError(f"{BUDGETS_ENV}: {entry!r} is not TENANT[@MODEL]=LIMIT[/PERIOD][/hard]")
    try:
        amount = float(limit)
    except ValueError:
        raise BudgetConfigError(f"{BUDGETS_ENV}: the limit of {entry!r} is not a number") from None
    with _entry(f"{BUDGETS_ENV}: {entry!r}"):
        period = rest[0].strip() if rest else ""
        # A per-model budget has no alerts of its own: it is a cap or nothing.
        return tenant.strip(), model.strip(), Budget(amount, period or "month", thresholds, hard or bool(model))


def _from_table(tenant: str, table: Any, thresholds: tuple[float, ...], keys: frozenset[str]) -> Budget:
    if not isinstance(table, dict) or "limit" not in table:
        raise BudgetConfigError(f"budgets.{tenant}: a table with at least `limit` is expected")
    unknown = set(table) - keys
    if unknown:
        raise BudgetConfigError(f"budgets.{tenant}: unknown keys {', '.join(sorted(unknown))}")
    try:
        limit = float(table["limit"])
    except (TypeError, ValueError):
        raise BudgetConfigError(f"budgets.{tenant}: limit must be a number, not {table['limit']!r}") from None
    hard = table.get("hard", False)
    if not isinstance(hard, bool):
        raise BudgetConfigError(f"budgets.{tenant}: hard must be true or false, not {hard!r}")
    with _entry(f"budgets.{tenant}"):
        return Budget(limit, str(table.get("period", "month")), _thresholds(table.get("thresholds", thresholds)),
                      hard)


_TENANT_KEYS = frozenset({"limit", "period", "thresholds", "hard", "models"})
_MODEL_KEYS = frozenset({"limit", "period", "hard"})


def _model_tables(tenant: str, table: Any, thresholds: tuple[float, ...]) -> Iterator[tuple[str, Budget]]:
    models = table.get("models", {}) if isinstance(table, dict) else {}
    if not isinstance(models, dict):
        raise BudgetConfigError(f"budgets.{tenant}.models: a table of models is expected")
    for model, entry in models.items():
        budget = _from_table(f"{tenant}.models.{model}", entry, thresholds, _MODEL_KEYS)
        if isinstance(entry, dict) and entry.get("hard") is False:
            raise BudgetConfigError(f"budgets.{tenant}.models.{model}: a per-model budget is always hard")
        yield model, Budget(budget.limit, budget.period, budget.thresholds, True)


def load_budgets(env: Mapping[str, str] | None = None) -> Budgets:
    """Budgets from AISDK_LLMOPS_CONFIG and AISDK_LLMOPS_BUDGETS (none: no alerts)."""
    env = os.environ if env is None else env
    listed = [t for t in env.get(THRESHOLDS_ENV, "").split(",") if t.strip()]
    with _entry(THRESHOLDS_ENV):
        thresholds = _thresholds(listed) if listed else DEFAULT_THRESHOLDS
    budgets: dict[str, Budget] = {}
    per_model: dict[tuple[str, str], Budget] = {}
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
            if set(table) - {"models"} if isinstance(table, dict) else True:
                budgets[tenant] = _from_table(tenant, table, thresholds, _TENANT_KEYS)
            for model, budget in _model_tables(tenant, table, thresholds):
                per_model[(tenant, model)] = budget
    for entry in env.get(BUDGETS_ENV, "").split(","):
        if entry.strip():
            tenant, model, budget = _from_env_entry(entry.strip(), thresholds)
            if model:
                per_model[(tenant, model)] = budget
            else:
                budgets[tenant] = budget
    return Budgets(budgets, per_model)
