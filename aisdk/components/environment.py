"""Numbers read from the environment, one way for every component: a value
that is not a number, or is out of range, stops the start with the
variable's name and value instead of falling back to a default unnoticed."""

from __future__ import annotations

from collections.abc import Mapping


def number(env: Mapping[str, str], name: str, default: float, *, minimum: float | None = 0.0) -> float:
    """The variable as a number; `default` when unset or blank. Below
    `minimum` (None: no floor) is an error."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if minimum is not None and value < minimum:
        floor = "must not be negative" if minimum == 0 else f"must be at least {minimum:g}"
        raise ValueError(f"{name}={raw!r} {floor}")
    return value


def whole(env: Mapping[str, str], name: str, default: int, *, minimum: int | None = 0) -> int:
    """The variable as a whole number (a count, a size in bytes)."""
    value = float(number(env, name, default, minimum=minimum))
    if not value.is_integer():
        raise ValueError(f"{name}={env.get(name, '').strip()!r} must be a whole number")
    return int(value)
