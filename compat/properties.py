"""Compatibility as properties, checked on messages derived from the
descriptors (compat.strategies), for every message type of the contracts:

- round trip: upb decodes what it encoded, to an equal message;
- betterproto: a second, independent implementation (generated/ai_betterproto)
  reads upb's bytes and writes bytes upb reads back to the same message;
- JSON: json_format's mapping round-trips;
- relay: a message of a newer schema (every message given extra fields of
  every wire type) survives decoding and re-encoding by today's code, so a
  component that has not upgraded forwards fields it does not know;
- forward / backward, per released baseline: what today's code writes, the
  baseline's code reads, and the other way round (same checks as the relay);
- envelope: an Envelope written by a baseline, with a payload of each of its
  subjects, is read by today's runtime, schema version included;
- rules, per released baseline and in the package's compatibility mode:
  messages valid under the baseline's rules pass today's validators
  (BACKWARD, FULL), messages valid under today's rules pass the baseline's
  validators (FORWARD, FULL).

The current contracts are the generated modules on the import path (the
code the runtime runs); baselines are loaded into pools of their own.
`aisdk check` runs the suite in a child interpreter with the project's
generated/ first on the import path; the pytest module runs the same list.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any, cast

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, text_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor, FileDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from codegen.model import COMPATIBILITY
from compat import baseline_validators
from compat.images import PROTO_DIR, Image
from compat.report import Finding
from compat.strategies import messages
from runtime.contract import Validator
from runtime.versions import check_schema_version

EXAMPLES = 30
_FLOAT32_MAX = 3.4028234663852886e38
_TIME_TYPES = ("google.protobuf.Timestamp", "google.protobuf.Duration")
_FLOATS = (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE)
_STRINGS = (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES)
_ENVELOPE = "ai.envelope.v1.Envelope"
# Extra fields of a "newer" schema, one per wire type (LEN, VARINT, I32, I64,
# packed LEN), numbered after everything a message declares or reserves.
_PROBES = (
    ("compat_probe_text", FieldDescriptor.TYPE_STRING, False),
    ("compat_probe_number", FieldDescriptor.TYPE_SINT64, False),
    ("compat_probe_fixed", FieldDescriptor.TYPE_FIXED32, False),
    ("compat_probe_double", FieldDescriptor.TYPE_DOUBLE, False),
    ("compat_probe_list", FieldDescriptor.TYPE_INT32, True),
)


@dataclass(frozen=True)
class Property:
    name: str  # "round trip", "forward to v1.0.0", ...
    descriptor: Descriptor  # the message type it is about (as today's code knows it, if it does)
    strategy: st.SearchStrategy[Any]
    check: Callable[[Any], None]

    @property
    def id(self) -> str:
        return f"{self.descriptor.full_name}: {self.name}"

    @property
    def where(self) -> str:
        return f"{PROTO_DIR}/{self.descriptor.file.name}"


# ---- what is compared -------------------------------------------------------


def descriptor_of(msg: Message) -> Descriptor:
    # The stubs type DESCRIPTOR as a union with upb's own class; it is one.
    return cast(Descriptor, msg.DESCRIPTOR)


def _short(msg: Message, limit: int = 240) -> str:
    text = text_format.MessageToString(msg, as_one_line=True)
    return text if len(text) <= limit else text[:limit] + "..."


def _differences(want: Message, got: Message) -> str:
    a = {f.name: v for f, v in want.ListFields()}
    b = {f.name: v for f, v in got.ListFields()}
    names = sorted(n for n in a.keys() | b.keys() if a.get(n) != b.get(n))
    return f"fields {', '.join(names)} differ" if names else "unknown fields differ"


def _same(want: Message, got: Message, what: str) -> None:
    assert got == want, f"{what}: {_differences(want, got)} in {{{_short(want)}}}"


def _messages_in(msg: Message) -> Iterator[Message]:
    """msg and every message inside it; children are listed after the
    parent is yielded, so a caller may edit the parent first."""
    yield msg
    for field, value in msg.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            if field.message_type.fields_by_name["value"].message_type is not None:
                for item in list(value.values()):
                    yield from _messages_in(item)
        elif field.is_repeated:
            for item in list(value):
                yield from _messages_in(item)
        else:
            yield from _messages_in(value)


def project(msg: Message, reader: Descriptor) -> Message:
    """msg without the fields `reader` does not declare (by number), at
    every depth: what a reader that drops unknown fields keeps."""
    out = type(msg)()
    out.CopyFrom(msg)
    _project(out, reader)
    return out


def _project(msg: Message, reader: Descriptor) -> None:
    for field, value in msg.ListFields():
        known = reader.fields_by_number.get(field.number)
        if known is None:
            msg.ClearField(field.name)
        elif field.message_type is not None and known.message_type is not None:
            if field.message_type.GetOptions().map_entry:
                inner = known.message_type.fields_by_name.get("value")
                if inner is not None and inner.message_type is not None:
                    for item in value.values():
                        _project(item, inner.message_type)
            elif field.is_repeated:
                for item in value:
                    _project(item, known.message_type)
            else:
                _project(value, known.message_type)


# ---- the properties ---------------------------------------------------------


def round_trip(msg: Message) -> None:
    data = msg.SerializeToString()
    back = type(msg).FromString(data)
    _same(msg, back, "decoding what upb encoded")
    assert back.SerializeToString(deterministic=True) == msg.SerializeToString(deterministic=True), (
        f"deterministic encoding changed after a round trip of {{{_short(msg)}}}"
    )


def crosses(msg: Message, reader: Descriptor) -> None:
    """A reader of another version of msg's schema decodes its bytes, keeps
    what it does not know through a relay, and agrees on what it does."""
    label = f"read as {reader.full_name}"
    cls = GetMessageClass(reader)
    try:
        decoded = cls.FromString(msg.SerializeToString())
    except DecodeError as e:
        raise AssertionError(f"{label}: cannot decode {{{_short(msg)}}}: {e}") from None
    _same(msg, type(msg).FromString(decoded.SerializeToString()), f"{label} and re-encoded")
    decoded.DiscardUnknownFields()
    _same(project(msg, reader), type(msg).FromString(decoded.SerializeToString()), f"{label}, known fields")


def betterproto_class(descriptor: Descriptor) -> Any:
    """The betterproto dataclass of a message: ai_betterproto.<package>,
    nested names joined in PascalCase (Error.FieldViolation -> ErrorFieldViolation)."""
    from betterproto.casing import pascal_case

    package = descriptor.file.package
    module = importlib.import_module(f"ai_betterproto.{package}")
    name = "".join(pascal_case(part) for part in descriptor.full_name[len(package) + 1 :].split("."))
    return getattr(module, name)


def betterproto_view(msg: Message) -> Message:
    """What betterproto can carry of msg. Known losses, each pinned by a
    test so an upgrade that fixes one shows up:

    - Timestamp and Duration become datetime/timedelta: nanoseconds are cut
      to microseconds, and a zero value (the epoch, no time) is not sent;
    - a map entry whose key and string value are both empty is not sent
      (with a number value it is: {"": 0.0} survives);
    - -0.0 in a float field without presence equals the default 0.0, so it
      is not sent (upb sends it, as the spec asks).
    """
    out = type(msg)()
    out.CopyFrom(msg)
    for sub in _messages_in(out):
        for field, value in sub.ListFields():
            kind = field.message_type.full_name if field.message_type is not None else ""
            if field.type in _FLOATS and not field.is_repeated and not field.has_presence and value == 0:
                sub.ClearField(field.name)
            elif kind in _TIME_TYPES and not field.is_repeated:
                value.nanos = int(value.nanos / 1000) * 1000
                if value.seconds == 0 and value.nanos == 0:
                    sub.ClearField(field.name)
            elif field.message_type is not None and field.message_type.GetOptions().map_entry:
                if field.message_type.fields_by_name["value"].type in _STRINGS:
                    for key in [k for k, v in value.items() if not k and not v]:
                        del value[key]
    return out


def betterproto_agrees(msg: Message) -> None:
    parsed = betterproto_class(descriptor_of(msg))().parse(msg.SerializeToString())
    _same(betterproto_view(msg), type(msg).FromString(bytes(parsed)), "betterproto decoded and re-encoded")


def _float32_max_in(msg: Message) -> bool:
    for sub in _messages_in(msg):
        for field, value in sub.ListFields():
            if field.type == FieldDescriptor.TYPE_FLOAT:
                values = value if field.is_repeated else [value]
                if any(abs(v) == _FLOAT32_MAX for v in values):
                    return True
    return False


def json_round_trip(msg: Message) -> None:
    # json_format prints the largest float32 as 3.4028235e+38, which is above
    # the largest float32 and which its own parser then refuses (pinned by a test).
    assume(not _float32_max_in(msg))
    text = json_format.MessageToJson(msg)
    _same(msg, json_format.Parse(text, type(msg)()), "JSON mapping round trip")


def accepted(msg: Message, reader: Descriptor, validate: Validator, whose: str) -> None:
    """A consumer whose schema is `reader` decodes msg and its validator
    finds nothing wrong."""
    violations = validate(GetMessageClass(reader).FromString(msg.SerializeToString()))
    broken = "; ".join(f"{v.field} {v.rule}: {v.description}" for v in violations)
    assert not violations, f"{whose} validator refuses {{{_short(msg)}}}: {broken}"


def mode_of(d: Descriptor) -> str:
    """The compatibility mode of d's package, as today's contracts declare it."""
    from ai.options.v1 import options_pb2

    ext: Any = options_pb2.contract
    opts = d.file.GetOptions()
    value = opts.Extensions[ext].compatibility if opts.HasExtension(ext) else 0
    return COMPATIBILITY.get(value, "BACKWARD")


def _rules_properties(image: Image) -> list[Property]:
    """Valid under one version's rules, accepted by the other's validators,
    in the direction(s) each package's mode asks for."""
    from ai.envelope.v1 import envelope_pb2
    from ai.registry import VALIDATORS

    try:
        theirs = baseline_validators.load(image)
    except Exception as e:  # noqa: BLE001 - reported as the property that could not run
        problem = f"the validators of {image.label} do not load: {type(e).__name__}: {e}"

        def fail(_: object) -> None:
            raise AssertionError(problem)

        return [Property(f"rules of {image.label}", descriptor_of(envelope_pb2.Envelope()), st.just(None), fail)]
    props: list[Property] = []
    for d in contract_messages():
        old = _in(image, d.full_name)
        if old is None:
            continue
        mode = mode_of(d)
        ours = VALIDATORS.get(d.full_name)
        if mode in ("BACKWARD", "FULL") and ours is not None:
            check = partial(accepted, reader=d, validate=ours, whose="today's")
            props.append(Property(f"rules of {image.label} accepted today", d, messages(old), check))
        if mode in ("FORWARD", "FULL") and d.full_name in theirs:
            check = partial(accepted, reader=old, validate=theirs[d.full_name], whose=f"{image.label}'s")
            props.append(Property(f"today's rules accepted by {image.label}", d, messages(d), check))
    return props


# ---- a newer schema for the relay ------------------------------------------


def _add_probes(mp: descriptor_pb2.DescriptorProto) -> None:
    for nested in mp.nested_type:
        _add_probes(nested)
    if mp.options.map_entry:
        return
    taken = [f.number for f in mp.field] + [r.end - 1 for r in mp.reserved_range]
    taken += [r.end - 1 for r in mp.extension_range]
    number = max(taken, default=0) + 1
    for i, (name, kind, repeated) in enumerate(_PROBES):
        mp.field.add(
            name=name,
            number=number + i,
            type=kind,
            label=FieldDescriptor.LABEL_REPEATED if repeated else FieldDescriptor.LABEL_OPTIONAL,
            json_name="".join(p.capitalize() if j else p for j, p in enumerate(name.split("_"))),
        )


@cache
def _newer_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(fd: FileDescriptor) -> None:
        if fd.name in added:
            return
        for dep in fd.dependencies:
            add(dep)
        fdp = descriptor_pb2.FileDescriptorProto()
        fd.CopyToProto(fdp)
        if not fdp.name.startswith("google/"):
            for mp in fdp.message_type:
                _add_probes(mp)
        pool.Add(fdp)
        added.add(fd.name)

    for d in contract_messages():
        add(d.file)
    return pool


def newer(descriptor: Descriptor) -> Descriptor:
    """The same message in a schema where every message has extra fields."""
    return _newer_pool().FindMessageTypeByName(descriptor.full_name)


# ---- the suite --------------------------------------------------------------


@cache
def contract_messages() -> tuple[Descriptor, ...]:
    """Every message type of the generated contracts (map entries aside)."""
    import ai

    found: list[Descriptor] = []

    def walk(d: Descriptor) -> None:
        if d.GetOptions().map_entry:
            return
        found.append(d)
        for nested in d.nested_types:
            walk(nested)

    for info in pkgutil.walk_packages(ai.__path__, "ai."):
        if info.name.endswith("_pb2"):
            for d in importlib.import_module(info.name).DESCRIPTOR.message_types_by_name.values():
                walk(d)
    return tuple(sorted(found, key=lambda d: d.full_name))


def _in(image: Image, name: str) -> Descriptor | None:
    try:
        return image.pool.FindMessageTypeByName(name)
    except KeyError:
        return None


def _envelope_from(image: Image) -> Property | None:
    """An envelope as a baseline publisher writes it, read by today's runtime."""
    from ai.envelope.v1 import envelope_pb2
    from ai.registry import SCHEMA_VERSIONS

    old_env = _in(image, _ENVELOPE)
    if old_env is None:
        return None
    versions = {f.package: f"{f.major}.{f.minor}" for f in image.model.files}
    rpcs = [r for f in image.model.files for svc in f.services for r in svc.rpcs]
    payloads = sorted({t for r in rpcs for t in (r.request_type, r.reply_type) if not t.startswith("google.protobuf.")})
    pool = image.pool

    def draw(name: str) -> st.SearchStrategy[tuple[Message, Message]]:
        return st.tuples(messages(old_env), messages(pool.FindMessageTypeByName(name)))

    def check(pair: tuple[Any, Message]) -> None:
        env, payload = pair
        package = descriptor_of(payload).file.package
        env.type = descriptor_of(payload).full_name
        env.schema_version = versions[package]
        env.data = payload.SerializeToString()
        crosses(env, descriptor_of(envelope_pb2.Envelope()))
        got = envelope_pb2.Envelope.FromString(env.SerializeToString())
        current = SCHEMA_VERSIONS.get(package)
        assert current is not None, f"{got.type}: package {package} of {image.label} is gone"
        check_schema_version(current, got.schema_version)
        crosses(payload, descriptor_pool.Default().FindMessageTypeByName(got.type))

    return Property(
        f"envelope of {image.label} read by today's runtime",
        descriptor_of(envelope_pb2.Envelope()),
        st.sampled_from(payloads).flatmap(draw),
        check,
    )


def suite(baselines: Sequence[Image] = ()) -> list[Property]:
    props: list[Property] = []
    for d in contract_messages():
        props += [
            Property("round trip", d, messages(d), round_trip),
            Property("betterproto agrees", d, messages(d), betterproto_agrees),
            Property("JSON round trip", d, messages(d), json_round_trip),
            Property("relay keeps unknown fields", d, messages(newer(d)), partial(crosses, reader=d)),
        ]
        for image in baselines:
            old = _in(image, d.full_name)
            if old is None:
                continue
            props += [
                Property(f"forward to {image.label}", d, messages(d), partial(crosses, reader=old)),
                Property(f"backward from {image.label}", d, messages(old), partial(crosses, reader=d)),
            ]
    for image in baselines:
        prop = _envelope_from(image)
        if prop is not None:
            props.append(prop)
        props += _rules_properties(image)
    return props


def as_test(prop: Property, examples: int = EXAMPLES, counter: list[int] | None = None) -> Callable[[], None]:
    """The property as a hypothesis test (call it to run it)."""

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    @given(prop.strategy)
    def test(value: Any) -> None:
        if counter is not None:
            counter[0] += 1
        prop.check(value)

    return test


def run(props: Sequence[Property], examples: int = EXAMPLES) -> tuple[list[Finding], int]:
    """Run each property; a failure is one finding (its first line), the
    example that failed included."""
    found: list[Finding] = []
    counter = [0]
    for prop in props:
        try:
            as_test(prop, examples, counter)()
        except Exception as e:  # noqa: BLE001 - any failure of a property is a finding
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            found.append(Finding("properties", prop.where, f"{prop.id} fails: {first}", "PROPERTY"))
    return found, counter[0]


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m compat.properties [--examples N] [BASELINE.binpb ...]`:
    one JSON line per failure, then a JSON summary."""
    parser = argparse.ArgumentParser(prog="python -m compat.properties")
    parser.add_argument("--examples", type=int, default=EXAMPLES)
    parser.add_argument("images", nargs="*", metavar="LABEL=IMAGE")
    args = parser.parse_args(argv)
    images = []
    for spec in args.images:
        label, _, path = spec.rpartition("=")
        images.append(Image.load(Path(path), label or None))
    started = time.monotonic()
    props = suite(images)
    found, examples = run(props, args.examples)
    for f in found:
        print(json.dumps({"where": f.where, "text": f.text, "rule": f.rule}))
    summary = {"properties": len(props), "examples": examples, "seconds": round(time.monotonic() - started, 1)}
    print(json.dumps({"summary": summary}))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
