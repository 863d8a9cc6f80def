"""Replies encoded as their per-message fields followed by the endpoint's
pre-encoded head (runtime.codec.reply): a protobuf message is the
concatenation of its fields, in any order, so every reader, the released
baseline's Envelope and betterproto included, sees the message that
codec.envelope would have built field by field."""

from __future__ import annotations

import pytest
from google.protobuf.message_factory import GetMessageClass

from ai.envelope.v1 import envelope_pb2
from compat import images
from compat.properties import betterproto_class, descriptor_of
from runtime import codec
from tests.support import ROOT

TRACEPARENT = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
HEAD = ("ai.gateway.v1.LlmResponse", "1.3", "acme", "gateway/host/7")


def spliced(traceparent: str = "", tracestate: str = "") -> tuple[bytes, envelope_pb2.Envelope]:
    """The spliced bytes, and what codec.envelope builds with the same id and time."""
    data = b"\x0a\x05hello"
    out = codec.reply(codec.head(*HEAD), data, "corr-1", traceparent, tracestate)
    got = envelope_pb2.Envelope.FromString(out)
    want = codec.envelope(*HEAD, data, message_id=got.id, correlation_id="corr-1", traceparent=traceparent,
                          tracestate=tracestate)
    want.time.CopyFrom(got.time)
    return out, want


@pytest.mark.parametrize("trace", [("", ""), (TRACEPARENT, ""), (TRACEPARENT, "k=v")])
def test_reply_is_the_envelope_codec_builds(trace: tuple[str, str]) -> None:
    out, want = spliced(*trace)
    got = envelope_pb2.Envelope.FromString(out)
    assert got == want
    assert got.id and got.HasField("time")
    # Canonical re-encoding is byte for byte what the field-by-field build gives.
    assert got.SerializeToString(deterministic=True) == want.SerializeToString(deterministic=True)


def test_released_readers_read_a_spliced_reply() -> None:
    out, want = spliced(TRACEPARENT)
    for image in images.baselines(ROOT):
        released = GetMessageClass(image.pool.FindMessageTypeByName(descriptor_of(want).full_name))
        assert released.FromString(out).SerializeToString(deterministic=True) == want.SerializeToString(
            deterministic=True), image.label
    parsed = betterproto_class(descriptor_of(want))().parse(out)
    assert (parsed.id, parsed.type, parsed.schema_version, parsed.tenant_id, parsed.source, parsed.correlation_id,
            parsed.traceparent, parsed.data) == (want.id, *HEAD, "corr-1", TRACEPARENT, want.data)


def test_head_is_fields_two_to_five_alone() -> None:
    assert codec.head(*HEAD) == envelope_pb2.Envelope(
        type=HEAD[0], schema_version=HEAD[1], tenant_id=HEAD[2], source=HEAD[3]).SerializeToString()
