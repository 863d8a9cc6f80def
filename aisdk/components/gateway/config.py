"""The gateway's configuration, from environment variables (the model list
may live in a YAML or TOML file, see components.gateway.models)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from aisdk.components.environment import number, whole
from aisdk.components.gateway import models, providers, validation
from aisdk.components.gateway.breaker import BreakerConfig
from aisdk.components.gateway.cache import CacheConfig
from aisdk.components.gateway.operations import DEFAULT_OUTBOX
from aisdk.components.gateway.reservations import DEFAULT_BUCKET as BUDGET_BUCKET
from aisdk.components.llmops.budgets import Budgets, load_budgets
from runtime import check_tenant  # the facade's lazy exports are invisible to mypy

_OFF = {"0", "off", "false", "no"}


def _switch(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() not in _OFF


@dataclass(frozen=True)
class GatewayConfig:
    models: models.ModelList = field(default_factory=lambda: models.with_local(models.ModelList(())))
    # Retries of one deployment on a provider fault before the next one is tried.
    retries: int = providers.DEFAULT_RETRIES
    max_answer_chars: int = validation.DEFAULT_MAX_CHARS
    cache: CacheConfig | None = field(default_factory=CacheConfig)
    rate_limits: bool = True
    # A circuit breaker per deployment, and gateway.health events.
    breakers: bool = True
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    # gateway.health events: every state change, and this often.
    health_interval_s: float = 30.0
    # Provider health is not a tenant's: it goes out under this tenant id.
    health_tenant: str = "system"
    # The budgets of LLMOps' configuration: the hard ones cap spend here.
    budgets: Budgets = field(default_factory=Budgets)
    budget_bucket: str = BUDGET_BUCKET
    # Operation records waiting for JetStream before new work is refused.
    outbox: int = DEFAULT_OUTBOX

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> GatewayConfig:
        return cls(
            models=models.from_env(env),
            retries=whole(env, "AISDK_GATEWAY_RETRIES", providers.DEFAULT_RETRIES),
            max_answer_chars=whole(env, "AISDK_GATEWAY_MAX_ANSWER_CHARS", validation.DEFAULT_MAX_CHARS),
            cache=CacheConfig.from_env(env) if _switch(env, "AISDK_GATEWAY_CACHE") else None,
            rate_limits=_switch(env, "AISDK_GATEWAY_RATE_LIMITS"),
            breakers=_switch(env, "AISDK_GATEWAY_BREAKERS"),
            breaker=BreakerConfig.from_env(env),
            health_interval_s=number(env, "AISDK_GATEWAY_HEALTH_INTERVAL_S", 30.0),
            health_tenant=check_tenant(env.get("AISDK_GATEWAY_HEALTH_TENANT", "").strip() or "system"),
            budgets=load_budgets(env),
            budget_bucket=env.get("AISDK_GATEWAY_BUDGET_BUCKET", "").strip() or BUDGET_BUCKET,
            outbox=whole(env, "AISDK_GATEWAY_OUTBOX", DEFAULT_OUTBOX, minimum=1),
        )
