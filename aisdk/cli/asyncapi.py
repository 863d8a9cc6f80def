"""The subject registry as an AsyncAPI 3.0 document, and as the Markdown
catalogue docs/subjects.md.

Both read the generated registry (`ai.registry.SUBJECTS`), so they say
exactly what the runtime binds: a channel per subject template with its
`tenant_id` parameter, a send and a receive operation per subject carrying
the pattern, the queue group (as the NATS operation binding) and the
reply, and a message per protobuf type. A message's payload is the JSON
Schema of the type's protobuf JSON mapping with the contract's rules
(aisdk.cli.protoschema), which every AsyncAPI tool reads; its
`x-proto-type` and `x-proto-source` name the type and its .proto file. The
official parser with the protobuf schema plugin cannot read the sources
themselves (they import other files), so they are linked, not inlined.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aisdk.cli import protoschema
from runtime.contract import Pattern, SubjectSpec

ASYNCAPI_VERSION = "3.0.0"
PROTOBUF = "application/vnd.google.protobuf;version=3"
NATS_BINDING = "0.1.0"
TENANT = {"description": "The tenant: one subject token (letters, digits, '_' and '-', at most 64 characters)."}
_WITH_REPLY = (Pattern.REQUEST_REPLY, Pattern.STREAM)


def _message_id(full_name: str) -> str:
    return full_name.replace(".", "_")


def _message(cls: Any) -> dict[str, Any]:
    """A protobuf message: its JSON mapping's schema, its full name and the
    proto file that declares it."""
    full_name = str(cls.DESCRIPTOR.full_name)
    source = str(cls.DESCRIPTOR.file.name)
    return {
        "name": full_name,
        "title": full_name.rsplit(".", 1)[-1],
        "contentType": "application/protobuf",
        "summary": f"{full_name}, carried in an ai.envelope.v1.Envelope.",
        "description": f"On the wire: protobuf ({PROTOBUF}) inside an Envelope. The payload schema is the JSON "
                       f"mapping of {full_name} (what MessageToJson writes), with the contract's rules.",
        "payload": {"$ref": f"#/components/schemas/{protoschema.schema_id(full_name)}"},
        "x-proto-type": full_name,
        "x-proto-source": f"proto/{source}",
    }


def _ref(*parts: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(p.replace("/", "~1") for p in parts)}


def document(specs: Sequence[SubjectSpec[Any, Any]], version: str) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of these subjects."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    types: list[Any] = []
    for spec in specs:
        types.append(spec.request_type.DESCRIPTOR)
        if spec.pattern in _WITH_REPLY:
            types.append(spec.reply_type.DESCRIPTOR)
        request = _message_id(spec.request_name)
        messages.setdefault(request, _message(spec.request_type))
        channels[spec.key] = {
            "address": spec.template,
            "title": f"{spec.service}.{spec.rpc}",
            "parameters": {"tenant_id": TENANT},
            "messages": {request: _ref("components", "messages", request)},
        }
        reply: dict[str, Any] | None = None
        if spec.pattern in _WITH_REPLY:
            answer = _message_id(spec.reply_name)
            messages.setdefault(answer, _message(spec.reply_type))
            channels[f"{spec.key}.reply"] = {
                "address": None,  # the requester's own inbox, named per request
                "title": f"replies of {spec.key}",
                "messages": {answer: _ref("components", "messages", answer)},
            }
            reply = {
                "channel": _ref("channels", f"{spec.key}.reply"),
                "messages": [_ref("channels", f"{spec.key}.reply", "messages", answer)],
            }
        for action in ("send", "receive"):
            op: dict[str, Any] = {
                "action": action,
                "channel": _ref("channels", spec.key),
                "title": f"{action} {spec.key}",
                "summary": _summary(spec),
                "messages": [_ref("channels", spec.key, "messages", request)],
                "x-pattern": spec.pattern.value,
                "x-queue-group": spec.queue_group,
            }
            if reply is not None:
                op["reply"] = reply
            if action == "receive" and spec.queue_group:
                op["bindings"] = {"nats": {"queue": spec.queue_group, "bindingVersion": NATS_BINDING}}
            operations[f"{spec.key}.{action}"] = op
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "aisdk contracts",
            "version": version,
            "description": "Subjects of the platform, generated from the subject registry in proto/.",
        },
        "defaultContentType": "application/protobuf",
        "servers": {"nats": {"host": "localhost:4222", "protocol": "nats"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": dict(sorted(messages.items())), "schemas": protoschema.schemas(types)},
    }


def _summary(spec: SubjectSpec[Any, Any]) -> str:
    parts = [spec.pattern.value.replace("_", " ")]
    if spec.queue_group:
        parts.append(f"queue group {spec.queue_group}")
    if spec.pattern is Pattern.REQUEST_REPLY:
        parts.append(f"replies {spec.reply_name} within {spec.timeout_ms} ms")
    if spec.pattern is Pattern.STREAM:
        parts.append(f"streams {spec.reply_name} then an ai.envelope.v1.StreamEnd")
    if spec.durable:
        parts.append("durable (JetStream)")
    if spec.reply_event:
        parts.append(f"every reply also published on {spec.component}.{spec.reply_event}")
    return "; ".join(parts)


def catalogue(specs: Sequence[SubjectSpec[Any, Any]]) -> str:
    """docs/subjects.md: every subject, grouped by component."""
    lines = [
        "# Subjects",
        "",
        "<!-- Generated from proto/ by `aisdk gen` (docs/versioning.md); do not edit. -->",
        "",
        "Every subject is `{prefix}.{component}.{operation}.{tenant_id}` with the",
        "prefix `ai`. `aisdk asyncapi` writes the same registry as an AsyncAPI 3.0",
        "document.",
    ]
    for component in sorted({s.component for s in specs}):
        lines += ["", f"## {component}", "",
                  "| subject | pattern | queue group | payload | reply | delivery | version | source |",
                  "|---|---|---|---|---|---|---|---|"]
        for s in sorted((s for s in specs if s.component == component), key=lambda s: s.key):
            reply = "" if s.pattern not in _WITH_REPLY else f"`{s.reply_name}` ({s.timeout_ms} ms)"
            if s.reply_event:
                reply += f", also on `{s.component}.{s.reply_event}`"
            delivery = "core NATS"
            if s.durability is not None:
                delivery = f"JetStream, {s.durability.retention}, max {s.durability.max_deliver} deliveries"
            row = [f"`{s.template}`", s.pattern.value, f"`{s.queue_group}`" if s.queue_group else "",
                   f"`{s.request_name}`", reply, delivery, s.schema_version, f"`proto/{s.source}`"]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """`python -m aisdk.cli.asyncapi`: the catalogue of the registry on the import
    path, for `aisdk gen` and the drift test (run with generated/ first)."""
    import ai.registry

    print(catalogue(ai.registry.SUBJECTS), end="")


if __name__ == "__main__":
    main()
