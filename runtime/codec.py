"""Payload <-> Envelope <-> bytes with google protobuf (upb).

Envelope metadata lives in the protobuf body, not in NATS headers: headers
cost nats-py 2-3x in throughput. Everything a message needs that does not
change per message is precomputed by the caller (see runtime.bus).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Mapping
from typing import Any

from google.protobuf.message import DecodeError as _ProtoDecodeError
from google.protobuf.message import Message

from ai.envelope.v1 import envelope_pb2
from ai.envelope.v1.envelope_bus import SCHEMA_VERSION as ENVELOPE_VERSION
from runtime.errors import DecodeError, TenantMismatch
from runtime.versions import SchemaVersionMismatch, check_schema_version

Envelope = envelope_pb2.Envelope
ERROR_TYPE = envelope_pb2.Error.DESCRIPTOR.full_name
STREAM_END_TYPE = envelope_pb2.StreamEnd.DESCRIPTOR.full_name
DEAD_LETTER_TYPE = envelope_pb2.DeadLetter.DESCRIPTOR.full_name

# Message ids: a random per-process prefix and a counter. Unique across
# processes (the JetStream dedup window needs that) at a fraction of uuid4's cost.
_ID_PREFIX = os.urandom(9).hex()
_ids = itertools.count(1)


def new_id() -> str:
    return f"{_ID_PREFIX}{next(_ids):x}"


def envelope(
    type_name: str,
    schema_version: str,
    tenant_id: str,
    source: str,
    data: bytes,
    *,
    message_id: str = "",
    correlation_id: str = "",
    deadline: float | None = None,
    traceparent: str = "",
    tracestate: str = "",
    attributes: Mapping[str, str] | None = None,
) -> Envelope:
    # Empty optional fields are left out of the constructor: each keyword
    # costs upb a field lookup, and most messages carry none of them.
    env = Envelope(
        id=message_id or new_id(), type=type_name, schema_version=schema_version, tenant_id=tenant_id,
        source=source, data=data,
    )
    if correlation_id:
        env.correlation_id = correlation_id
    if traceparent:
        env.traceparent = traceparent
    if tracestate:
        env.tracestate = tracestate
    ts = env.time
    ts.seconds, ts.nanos = divmod(time.time_ns(), 1_000_000_000)
    if deadline is not None:
        env.deadline.seconds, env.deadline.nanos = divmod(int(deadline * 1e9), 1_000_000_000)
    if attributes:
        env.attributes.update(attributes)
    return env


def head(type_name: str, schema_version: str, tenant_id: str, source: str) -> bytes:
    """Envelope fields 2-5 encoded, for reply() to append."""
    return Envelope(type=type_name, schema_version=schema_version, tenant_id=tenant_id,
                    source=source).SerializeToString()


def reply(head: bytes, data: bytes, correlation_id: str, traceparent: str = "", tracestate: str = "") -> bytes:
    """An encoded Envelope from its per-message fields and a head(): a
    protobuf message is the concatenation of its fields, in any order, so
    what is the same for every reply of an endpoint and tenant is encoded
    once (tests/test_codec_reply.py: every reader sees the same message)."""
    env = Envelope(id=new_id(), data=data, correlation_id=correlation_id)
    if traceparent:
        env.traceparent = traceparent
    if tracestate:
        env.tracestate = tracestate
    ts = env.time
    ts.seconds, ts.nanos = divmod(time.time_ns(), 1_000_000_000)
    return env.SerializeToString() + head


def deadline_of(env: Envelope) -> float | None:
    """The envelope's deadline as epoch seconds, or None."""
    if not env.HasField("deadline"):
        return None
    return env.deadline.seconds + env.deadline.nanos / 1e9


def open_envelope(subject: str, data: bytes) -> Envelope:
    try:
        env = Envelope.FromString(data)
    except _ProtoDecodeError as e:
        raise DecodeError(subject, f"not an ai.envelope.v1.Envelope ({e})") from None
    check_has_type(subject, env)
    return env


def check_has_type(subject: str, env: Envelope) -> None:
    """Any bytes, even none, parse as some Envelope: one without a payload
    type is not an envelope at all."""
    if not env.type:
        raise DecodeError(subject, "envelope has no payload type")


def check_tenant_matches(subject: str, env: Envelope) -> None:
    if subject.rpartition(".")[2] != env.tenant_id:
        raise TenantMismatch(subject, env.tenant_id)


def check_version(subject: str, env: Envelope, expected: str) -> None:
    """Same major, any minor (runtime.versions); the common case, an equal
    version, costs one string comparison."""
    got = env.schema_version
    if got == expected:
        return
    try:
        check_schema_version(expected, got)
    except SchemaVersionMismatch as e:
        raise DecodeError(subject, f"{env.type or 'payload'}: {e}") from None

def open_payload(subject: str, env: Envelope, cls: type[Any], type_name: str) -> Any:
    if env.type != type_name:
        raise DecodeError(subject, f"expected payload {type_name}, got {env.type}")
    try:
        return cls.FromString(env.data)
    except _ProtoDecodeError as e:
        raise DecodeError(subject, f"payload is not a valid {type_name} ({e})") from None


def error_envelope(
    tenant_id: str, source: str, error: envelope_pb2.Error, correlation_id: str, schema_version: str = ENVELOPE_VERSION
) -> bytes:
    return envelope(
        ERROR_TYPE, schema_version, tenant_id, source, error.SerializeToString(), correlation_id=correlation_id
    ).SerializeToString()


def payload_json(message: Message) -> str:
    from google.protobuf import json_format

    return json_format.MessageToJson(message, indent=None, preserving_proto_field_name=True)
