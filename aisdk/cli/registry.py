"""The generated subject registry as the CLI reads it: operations by key,
and the fields a command may fill in for the user."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from google.protobuf.message import Message

from aisdk.cli.errors import CommandError
from runtime.contract import Pattern, SubjectSpec


def load() -> ModuleType:
    try:
        import ai.registry as registry
    except ImportError as e:
        raise CommandError(f"generated code is missing or broken ({e}): run `aisdk gen`") from e
    return registry


def spec(operation: str, patterns: tuple[Pattern, ...]) -> SubjectSpec[Any, Any]:
    found: SubjectSpec[Any, Any] | None = load().BY_KEY.get(operation)
    if found is None:
        raise CommandError(f"unknown operation {operation!r}: see `aisdk subjects` (e.g. gateway.requests)")
    if found.pattern not in patterns:
        allowed = "/".join(p.value for p in patterns)
        raise CommandError(f"{operation} is {found.pattern.value}; this command takes {allowed} operations")
    return found


def fill_generated_ids(message: Message) -> list[str]:
    """Set every empty field the contract marks `generated_id` to a new id, as
    a client library would for a request id; return the fields set. Fields
    the contract does not mark (template_id, agent_id) stay as given, so that
    `required` still catches them."""
    from runtime.codec import new_id

    filled = []
    for name in load().GENERATED_IDS.get(message.DESCRIPTOR.full_name, ()):
        if not getattr(message, name):
            setattr(message, name, new_id())
            filled.append(name)
    return filled
