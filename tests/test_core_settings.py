"""BusSettings: the old keyword defaults, checked when built, with the field
named; the bus reads them from one place."""

from __future__ import annotations

import math

import pytest

from runtime import Bus, BusSettings, InvalidSettings, RetryPolicy
from runtime.contract import Durability


def test_defaults() -> None:
    s = BusSettings()
    assert (s.name, s.prefix, s.validate, s.drain_timeout, s.publish_wait) == ("aisdk", "ai", True, 30.0, 5.0)
    assert (s.pending_msgs_limit, s.outbound_buffer_bytes, s.max_reconnect_attempts) == (65_536, 8 << 20, -1)
    assert s.retry == RetryPolicy() and dict(s.durability_overrides) == {}


@pytest.mark.parametrize(("field", "value"), [
    ("drain_timeout", 0), ("drain_timeout", math.nan), ("publish_wait", -1), ("pending_msgs_limit", 0),
    ("prefix", "ai.*"), ("name", ""), ("max_reconnect_attempts", -2), ("max_reconnect_wait", 0.1),
])
def test_bad_values_are_refused_by_name(field: str, value: object) -> None:
    with pytest.raises(InvalidSettings, match=f"BusSettings.{field} = "):
        BusSettings(**{field: value})  # type: ignore[arg-type]


def test_overrides_are_checked_and_frozen() -> None:
    with pytest.raises(InvalidSettings, match="registry keys"):
        BusSettings(durability_overrides={"tasks": Durability("work_queue", 3, 1000, (), 0, 0)})
    mine = {"agent.tasks": Durability("work_queue", 3, 1000, (), 0, 0)}
    s = BusSettings(durability_overrides=mine)
    mine.clear()
    assert list(s.durability_overrides) == ["agent.tasks"]
    with pytest.raises(TypeError):
        s.durability_overrides["x.y"] = mine  # type: ignore[index]


def test_retry_policy_is_checked() -> None:
    with pytest.raises(InvalidSettings, match="RetryPolicy.attempts"):
        RetryPolicy(attempts=0)


def test_the_bus_takes_its_settings() -> None:
    bus = Bus("nats://127.0.0.1:1", BusSettings(name="gw", prefix="staging.ai", validate=False))
    assert (bus.name, bus.prefix, bus.validate) == ("gw", "staging.ai", False)
    assert bus.source.startswith("gw/")
