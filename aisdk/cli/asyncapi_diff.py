"""`aisdk check`'s AsyncAPI step: the AsyncAPI document of a released
baseline beside today's, compared the way a consumer of the document sees
them (a channel removed, another message type on an operation, a payload
property removed, retyped or newly required), next to buf's and the
registry's findings on the same change.

Both documents are built by aisdk.cli.asyncapi from contract images (the
baseline's descriptors and today's build), so they differ only where the
contracts do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf import message_factory

from aisdk.cli import asyncapi
from compat.images import Image
from compat.report import Finding, Severity
from compat.subjects import registry
from runtime.contract import Durability, Pattern, SubjectSpec, Violation

STEP = "asyncapi"


def _accept(message: Any) -> list[Violation]:
    """Validators are not part of a document: nothing is sent."""
    return []


def specs(image: Image) -> list[SubjectSpec[Any, Any]]:
    """The image's subjects as the registry's SubjectSpecs, their types the
    image's own messages (a pool of its own, so versions sit side by side)."""
    versions = {fm.name: f"{fm.major}.{fm.minor}" for fm in image.model.files}
    out: list[SubjectSpec[Any, Any]] = []
    for entry in registry(image).values():
        d = entry.durability
        out.append(SubjectSpec(
            component=entry.key.split(".", 1)[0], operation=entry.operation, service=entry.service, rpc=entry.rpc,
            pattern=Pattern[entry.pattern], queue_group=entry.queue_group,
            request_type=message_factory.GetMessageClass(image.pool.FindMessageTypeByName(entry.request_type)),
            reply_type=message_factory.GetMessageClass(image.pool.FindMessageTypeByName(entry.reply_type)),
            timeout_ms=0, reply_event=entry.reply_event, schema_version=versions.get(entry.file, ""),
            source=entry.file, validate_request=_accept, validate_reply=_accept,
            durability=None if d is None else Durability(d.retention, d.max_deliver, d.ack_wait_ms, d.backoff_ms,
                                                         d.duplicate_window_ms, d.max_age_s),
        ))
    return sorted(out, key=lambda s: s.key)


def document(image: Image) -> dict[str, Any]:
    return asyncapi.document(specs(image), image.label)


def check(old: Image, new: Image) -> list[Finding]:
    return diff(document(old), document(new))


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[Finding]:
    found: list[Finding] = []

    def add(where: str, text: str, rule: str, severity: Severity = "error") -> None:
        found.append(Finding(STEP, where, text, rule, severity))

    before, after = old["channels"], new["channels"]
    for key in sorted(before.keys() - after.keys()):
        add(f"channels/{key}", f"{_channel(key, before[key])} removed", "ASYNCAPI_CHANNEL_REMOVED")
    for key in sorted(after.keys() - before.keys()):
        add(f"channels/{key}", f"{_channel(key, after[key])} added", "ASYNCAPI_CHANNEL_ADDED", "info")
    for key in sorted(old["operations"].keys() & new["operations"].keys()):
        was, now = _messages(old, old["operations"][key]), _messages(new, new["operations"][key])
        if was != now:
            add(f"operations/{key}", f"message changed from {was} to {now}", "ASYNCAPI_OPERATION_MESSAGE")
        was, now = _messages(old, old["operations"][key].get("reply")), _messages(new, new["operations"][key].get("reply"))
        if was != now:
            add(f"operations/{key}", f"reply message changed from {was or '(none)'} to {now or '(none)'}",
                "ASYNCAPI_OPERATION_REPLY")
    old_schemas, new_schemas = old["components"]["schemas"], new["components"]["schemas"]
    for name in sorted(old_schemas.keys() & new_schemas.keys()):
        _schema(name, old_schemas[name], new_schemas[name], add)
    return found


def _channel(key: str, channel: dict[str, Any]) -> str:
    address = channel["address"]
    return f"channel {address}" if address else f"the reply channel of {key.removesuffix('.reply')}"


def _messages(doc: dict[str, Any], holder: dict[str, Any] | None) -> list[str]:
    """The proto types an operation (or its reply) carries."""
    if not holder:
        return []
    return sorted(_resolve(doc, ref["$ref"])["x-proto-type"] for ref in holder["messages"])


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return _resolve(doc, node["$ref"]) if isinstance(node, dict) and set(node) == {"$ref"} else node


def _schema(name: str, old: dict[str, Any], new: dict[str, Any],
            add: Callable[[str, str, str, Severity], None]) -> None:
    """A payload's properties: removed, retyped, newly required, a bound tightened."""
    where = f"components/schemas/{name}"
    props_old, props_new = old.get("properties", {}), new.get("properties", {})
    for prop in sorted(props_old.keys() - props_new.keys()):
        add(where, f"{old['x-proto-type']}.{prop} removed from the payload", "ASYNCAPI_PROPERTY_REMOVED", "error")
    for prop in sorted(props_old.keys() & props_new.keys()):
        a, b = props_old[prop], props_new[prop]
        if _shape(a) != _shape(b):
            add(where, f"{old['x-proto-type']}.{prop} changed from {_shape(a)} to {_shape(b)}",
                "ASYNCAPI_PROPERTY_TYPE", "error")
        for bound in ("maxLength", "maxItems", "maximum"):
            if bound in b and (bound not in a or b[bound] < a[bound]):
                add(where, f"{old['x-proto-type']}.{prop} {bound} tightened from {a.get(bound, 'none')} to "
                    f"{b[bound]}", "ASYNCAPI_BOUND_TIGHTENED", "warning")
    for prop in sorted(set(new.get("required", ())) - set(old.get("required", ()))):
        add(where, f"{old['x-proto-type']}.{prop} became required", "ASYNCAPI_NEWLY_REQUIRED", "warning")


def _shape(schema: dict[str, Any]) -> str:
    """What a property is, without its bounds: its type, an item's, a reference."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if schema.get("type") == "array":
        return f"array of {_shape(schema.get('items', {}))}"
    if "anyOf" in schema:
        return " or ".join(_shape(s) for s in schema["anyOf"])
    if "enum" in schema and "type" not in schema:
        return "enum"
    kind = schema.get("type", "any")
    return "/".join(kind) if isinstance(kind, list) else str(kind)
