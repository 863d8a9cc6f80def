"""Numbers from the environment: one reader for every component, which names
the variable and its value when the value cannot be used."""

from __future__ import annotations

import pytest

from aisdk.components import offload
from aisdk.components.environment import number, whole
from aisdk.components.gateway.breaker import BreakerConfig
from aisdk.components.gateway.cache import CacheConfig
from aisdk.components.gateway.config import GatewayConfig


def test_unset_or_blank_is_the_default_and_a_value_is_read() -> None:
    assert number({}, "X", 2.5) == 2.5
    assert number({"X": "  "}, "X", 2.5) == 2.5
    assert number({"X": "0.25"}, "X", 2.5) == 0.25
    assert whole({"X": "12"}, "X", 3) == 12
    assert whole({"X": "12.0"}, "X", 3) == 12


@pytest.mark.parametrize(("env", "read", "message"), [
    ({"X": "lots"}, lambda e: number(e, "X", 1.0), "X='lots' is not a number"),
    ({"X": "-1"}, lambda e: number(e, "X", 1.0), "X='-1' must not be negative"),
    ({"X": "0"}, lambda e: whole(e, "X", 1, minimum=1), "X='0' must be at least 1"),
    ({"X": "2.5"}, lambda e: whole(e, "X", 1), "X='2.5' must be a whole number"),
    ({"X": "-3"}, lambda e: number(e, "X", 1.0, minimum=None), None),
])
def test_what_cannot_be_used_is_refused_by_name_and_value(env: dict[str, str], read: object,
                                                         message: str | None) -> None:
    if message is None:
        assert read(env) == -3.0  # type: ignore[operator]
        return
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        read(env)  # type: ignore[operator]


@pytest.mark.parametrize(("build", "env", "message"), [
    (GatewayConfig.from_env, {"AISDK_GATEWAY_RETRIES": "2.5"}, "AISDK_GATEWAY_RETRIES='2.5' must be a whole number"),
    (GatewayConfig.from_env, {"AISDK_GATEWAY_OUTBOX": "0"}, "AISDK_GATEWAY_OUTBOX='0' must be at least 1"),
    (CacheConfig.from_env, {"AISDK_GATEWAY_CACHE_TTL_S": "soon"}, "is not a number"),
    (CacheConfig.from_env, {"AISDK_GATEWAY_CACHE_LRU_SIZE": "-1"}, "must not be negative"),
    (BreakerConfig.from_env, {"AISDK_GATEWAY_BREAKER_FAILURES": "1.5"}, "must be a whole number"),
])
def test_each_component_reads_its_numbers_the_same_way(build: object, env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        build(env)  # type: ignore[operator]


def test_the_offload_pools_need_at_least_one_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(offload.THREADS_ENV, "0")
    with pytest.raises(ValueError, match="AISDK_OFFLOAD_THREADS='0' must be at least 1"):
        offload._limit(offload.THREADS_ENV)
    monkeypatch.setenv(offload.THREADS_ENV, "3")
    assert offload._limit(offload.THREADS_ENV) == 3
