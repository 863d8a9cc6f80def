"""Hypothesis strategies derived from message descriptors.

Every generated message satisfies its contract's validation rules, so the
same strategies serve validator tests ("valid messages pass") and the
compatibility properties (round trips, cross-implementation decoding).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any, Literal

from ai.options.v1 import options_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

MAX_ITEMS = 3
MAX_TEXT = 24
MAX_DEPTH = 3
MAX_EDGE = 512
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_NO_RULES = options_pb2.FieldRules()


# protoc's .pyi types module-level extensions as plain FieldDescriptor.
_RULES_EXT: Any = options_pb2.rules


def rules_of(field: FieldDescriptor) -> options_pb2.FieldRules:
    opts = field.GetOptions()
    if opts.HasExtension(_RULES_EXT):
        rules: options_pb2.FieldRules = opts.Extensions[_RULES_EXT]
        return rules
    return _NO_RULES


def _bound(rules: options_pb2.FieldRules, name: str) -> Any:
    return getattr(rules, name) if rules.HasField(name) else None


def _text(field: FieldDescriptor, rules: options_pb2.FieldRules, required: bool) -> st.SearchStrategy[Any]:
    lo = _bound(rules, "min_len") or 0
    lo = max(lo, 1) if required else lo
    hi = _bound(rules, "max_len")
    hi = MAX_TEXT if hi is None else min(hi, max(MAX_TEXT, lo))
    # Values exactly at a declared maximum beyond MAX_TEXT, so that a
    # maximum lowered between versions shows in the rules properties.
    top = _bound(rules, "max_len")
    edge = top if top is not None and max(MAX_TEXT, lo) < top <= MAX_EDGE else None
    if field.type == FieldDescriptor.TYPE_BYTES:
        data = st.binary(min_size=lo, max_size=hi)
        return data if edge is None else st.one_of(data, st.binary(min_size=edge, max_size=edge))
    if rules.pattern:
        pat = re.compile(rules.pattern)
        strat = st.from_regex(pat, fullmatch=True).filter(lambda s: lo <= len(s) <= hi)
        return strat if required else st.one_of(st.just(""), strat)
    chars = st.characters(codec="utf-8")
    text = st.text(chars, min_size=lo, max_size=hi)
    return text if edge is None else st.one_of(text, st.text(chars, min_size=edge, max_size=edge))


def _number(field: FieldDescriptor, rules: options_pb2.FieldRules, required: bool) -> st.SearchStrategy[Any]:
    gte, lte = _bound(rules, "gte"), _bound(rules, "lte")
    if field.type in _INT_RANGES:
        lo, hi = _INT_RANGES[field.type]
        lo = lo if gte is None else max(lo, int(-(-gte // 1)))
        hi = hi if lte is None else min(hi, int(lte // 1))
        if required and lo <= 0 <= hi:
            return st.integers(lo, hi).filter(bool)
        return st.integers(lo, hi)
    width: Literal[32, 64] = 32 if field.type == FieldDescriptor.TYPE_FLOAT else 64
    strat = st.floats(min_value=gte, max_value=lte, allow_nan=False, allow_infinity=False, width=width)
    return strat.filter(bool) if required else strat


def _scalar(field: FieldDescriptor, depth: int, required: bool) -> st.SearchStrategy[Any]:
    rules = rules_of(field)
    t = field.type
    if t in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
        return _text(field, rules, required)
    if t == FieldDescriptor.TYPE_BOOL:
        return st.just(True) if required else st.booleans()
    if t == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        values = sorted(v.number for v in field.enum_type.values if not (required and v.number == 0))
        return st.sampled_from(values)
    if t == FieldDescriptor.TYPE_MESSAGE:
        assert field.message_type is not None
        return messages(field.message_type, depth + 1)
    return _number(field, rules, required)


_JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.text(max_size=MAX_TEXT),
)


def _struct(cls: type[Message]) -> st.SearchStrategy[Message]:
    values = st.recursive(
        _JSON_LEAF,
        lambda inner: st.lists(inner, max_size=MAX_ITEMS) | st.dictionaries(st.text(max_size=8), inner, max_size=MAX_ITEMS),
        max_leaves=6,
    )

    # The class of the descriptor being drawn, not struct_pb2.Struct: a
    # baseline's pool has a Struct class of its own (with the same helpers).
    def build(d: dict[str, Any]) -> Message:
        s = cls()
        s.update(d)  # type: ignore[attr-defined]
        return s

    return st.dictionaries(st.text(max_size=8), values, max_size=MAX_ITEMS).map(build)


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of this type that satisfy every validation rule.

    Members of a real oneof are drawn independently; setting them in turn
    leaves the last one set, which is what the wire format does too.
    """
    return _messages(descriptor, min(depth, MAX_DEPTH))


@cache
def _messages(descriptor: Descriptor, depth: int) -> st.SearchStrategy[Message]:
    cls = GetMessageClass(descriptor)
    name = descriptor.full_name
    if name == "google.protobuf.Struct":
        return _struct(cls)
    if name in ("google.protobuf.Value", "google.protobuf.ListValue"):
        return st.just(cls())
    if name == "google.protobuf.Timestamp":
        return st.builds(cls, seconds=st.integers(-62135596800, 253402300799), nanos=st.integers(0, 999_999_999))
    if name == "google.protobuf.Duration":
        return st.builds(cls, seconds=st.integers(-315576000000 // 1000, 315576000000 // 1000), nanos=st.just(0))
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        rules = rules_of(field)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_f = field.message_type.fields_by_name["key"]
            val_f = field.message_type.fields_by_name["value"]
            lo = _bound(rules, "min_items") or 0
            hi = min(_bound(rules, "max_items") or MAX_ITEMS, MAX_ITEMS)
            parts[field.name] = st.dictionaries(_scalar(key_f, depth, False), _scalar(val_f, depth, False), min_size=lo, max_size=max(lo, hi))
            continue
        if field.is_repeated:
            lo = max(_bound(rules, "min_items") or 0, 1 if rules.required else 0)
            hi = min(_bound(rules, "max_items") or MAX_ITEMS, MAX_ITEMS)
            if depth >= MAX_DEPTH and field.message_type is not None:
                hi = lo
            parts[field.name] = st.lists(_scalar(field, depth, False), min_size=lo, max_size=max(lo, hi))
            continue
        value = _scalar(field, depth, rules.required)
        optional = field.has_presence and not rules.required
        if field.message_type is not None and depth >= MAX_DEPTH and not rules.required:
            continue
        parts[field.name] = st.one_of(st.none(), value) if optional else value

    def build(values: dict[str, Any]) -> Message:
        msg = cls()
        for field_name, value in values.items():
            if value is None:
                continue
            field = descriptor.fields_by_name[field_name]
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                target = getattr(msg, field_name)
                for k, v in value.items():
                    if isinstance(v, Message):
                        target[k].CopyFrom(v)
                    else:
                        target[k] = v
            elif field.is_repeated:
                getattr(msg, field_name).extend(value)
            elif field.message_type is not None:
                getattr(msg, field_name).CopyFrom(value)
            else:
                setattr(msg, field_name, value)
        return msg

    return st.fixed_dictionaries(parts).map(build)
