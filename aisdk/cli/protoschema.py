"""JSON Schema of protobuf's JSON mapping, from the message descriptors, with
the contract's rules as JSON Schema keywords: what AsyncAPI tools (the
official parser, Studio, the generator, diff) read and render.

The mapping is protobuf's own (what `MessageToJson` writes and `Parse`
reads): lowerCamelCase field names, 64-bit integers as decimal strings,
bytes as base64, enums by name, well-known types in their JSON forms. Each
message is one schema under components/schemas, named like its AsyncAPI
message, with `x-proto-type` and `x-proto-source` (the .proto file).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

Type = FieldDescriptor
_INT32 = {Type.TYPE_INT32, Type.TYPE_SINT32, Type.TYPE_SFIXED32, Type.TYPE_UINT32, Type.TYPE_FIXED32}
_INT64 = {Type.TYPE_INT64, Type.TYPE_SINT64, Type.TYPE_SFIXED64, Type.TYPE_UINT64, Type.TYPE_FIXED64}
_UNSIGNED = {Type.TYPE_UINT32, Type.TYPE_FIXED32, Type.TYPE_UINT64, Type.TYPE_FIXED64}
_FLOAT = {Type.TYPE_FLOAT, Type.TYPE_DOUBLE}
_NON_FINITE = ["NaN", "Infinity", "-Infinity"]
_WRAPPERS = {
    "google.protobuf.DoubleValue": Type.TYPE_DOUBLE, "google.protobuf.FloatValue": Type.TYPE_FLOAT,
    "google.protobuf.Int64Value": Type.TYPE_INT64, "google.protobuf.UInt64Value": Type.TYPE_UINT64,
    "google.protobuf.Int32Value": Type.TYPE_INT32, "google.protobuf.UInt32Value": Type.TYPE_UINT32,
    "google.protobuf.BoolValue": Type.TYPE_BOOL, "google.protobuf.StringValue": Type.TYPE_STRING,
    "google.protobuf.BytesValue": Type.TYPE_BYTES,
}
# Well-known types have JSON forms of their own (protobuf's JSON mapping).
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Empty": {"type": "object", "maxProperties": 0},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Any": {"type": "object", "required": ["@type"], "properties": {"@type": {"type": "string"}}},
}


def schema_id(full_name: str) -> str:
    return full_name.replace(".", "_")


def _ref(full_name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{schema_id(full_name)}"}


RULES = "ai.options.v1.rules"


def _rules(field: FieldDescriptor) -> Any:
    """The field's FieldRules option, if it has one. Importing options_pb2
    registers the extension, so the parsed options carry it."""
    from ai.options.v1 import options_pb2  # noqa: F401

    return next((value for fd, value in field.GetOptions().ListFields() if fd.full_name == RULES), None)


def _enum(enum: EnumDescriptor, defined_only: bool) -> dict[str, Any]:
    names: list[Any] = [v.name for v in enum.values]
    if defined_only:
        return {"enum": names + [v.number for v in enum.values]}
    # Numbers the contract does not define are kept by proto3 readers.
    return {"anyOf": [{"type": "string", "enum": names}, {"type": "integer"}]}


def _scalar(field: FieldDescriptor, kind: int, rules: Any) -> dict[str, Any]:
    if kind in _INT32:
        out: dict[str, Any] = {"type": "integer"}
    elif kind in _INT64:
        # A decimal string (what MessageToJson writes) or a number.
        out = {"type": ["string", "integer"], "pattern": r"^-?[0-9]+$"}
    elif kind in _FLOAT:
        return {"anyOf": [_bounded({"type": "number"}, rules), {"enum": _NON_FINITE}]}
    elif kind == Type.TYPE_BOOL:
        return {"type": "boolean"}
    elif kind == Type.TYPE_BYTES:
        out = {"type": "string", "contentEncoding": "base64"}
        if rules is not None and rules.HasField("max_len"):
            out["maxLength"] = 4 * ((rules.max_len + 2) // 3)
        return out
    elif kind == Type.TYPE_ENUM and field.enum_type is not None:
        return _enum(field.enum_type, bool(rules is not None and rules.defined_only))
    else:
        out = {"type": "string"}
        if rules is not None:
            if rules.HasField("min_len"):
                out["minLength"] = rules.min_len
            if rules.HasField("max_len"):
                out["maxLength"] = rules.max_len
            if rules.pattern:
                out["pattern"] = f"^(?:{rules.pattern})$"
        return out
    if kind in _UNSIGNED:
        out["minimum"] = 0
    return _bounded(out, rules)


def _bounded(out: dict[str, Any], rules: Any) -> dict[str, Any]:
    if rules is not None and rules.HasField("gte"):
        out["minimum"] = max(out.get("minimum", rules.gte), rules.gte)
    if rules is not None and rules.HasField("lte"):
        out["maximum"] = rules.lte
    return out


def _value(field: FieldDescriptor, rules: Any) -> dict[str, Any]:
    """The schema of one value of the field (an element, if repeated)."""
    if field.type == Type.TYPE_MESSAGE and field.message_type is not None:
        name = field.message_type.full_name
        if name in _WRAPPERS:
            return _scalar(field, _WRAPPERS[name], rules)
        return dict(_WELL_KNOWN.get(name) or _ref(name))
    return _scalar(field, field.type, rules)


def _field(field: FieldDescriptor) -> dict[str, Any]:
    rules = _rules(field)
    message = field.message_type
    if message is not None and message.GetOptions().map_entry:
        out: dict[str, Any] = {"type": "object", "additionalProperties": _value(message.fields_by_name["value"], None)}
        if rules is not None and rules.HasField("min_items"):
            out["minProperties"] = rules.min_items
        if rules is not None and rules.HasField("max_items"):
            out["maxProperties"] = rules.max_items
        return out
    if field.is_repeated:
        out = {"type": "array", "items": _value(field, rules)}
        if rules is not None and rules.HasField("min_items"):
            out["minItems"] = rules.min_items
        if rules is not None and rules.HasField("max_items"):
            out["maxItems"] = rules.max_items
        return out
    return _value(field, rules)


def message_schema(message: Descriptor) -> dict[str, Any]:
    """One message's schema; nested messages by reference."""
    properties = {f.json_name: _field(f) for f in message.fields}
    required = sorted(f.json_name for f in message.fields if (r := _rules(f)) is not None and r.required)
    out: dict[str, Any] = {
        "type": "object",
        "title": message.name,
        "properties": properties,
        "x-proto-type": message.full_name,
        "x-proto-source": f"proto/{message.file.name}",
    }
    if required:
        out["required"] = required
    return out


def schemas(roots: Iterable[Descriptor]) -> dict[str, dict[str, Any]]:
    """The schemas of the root messages and of every message they reach."""
    out: dict[str, dict[str, Any]] = {}
    todo = list(roots)
    while todo:
        message = todo.pop()
        key = schema_id(message.full_name)
        if key in out or message.full_name in _WELL_KNOWN or message.full_name in _WRAPPERS:
            continue
        out[key] = message_schema(message)
        for f in message.fields:
            nested = f.message_type
            if nested is None:
                continue
            if nested.GetOptions().map_entry:
                nested = nested.fields_by_name["value"].message_type
            if nested is not None:
                todo.append(nested)
    return dict(sorted(out.items()))
