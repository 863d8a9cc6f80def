"""The compatibility properties (compat.properties) on every message type of
the contracts against every released baseline, the same list `aisdk check`
runs; proof that they catch a real break; and the known divergences of the
libraries, pinned so an upgrade that fixes one shows up here."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import descriptor_pb2, json_format
from google.protobuf.message_factory import GetMessageClass

from ai.agent.v1 import agent_pb2
from ai.envelope.v1 import envelope_pb2
from ai.gateway.v1 import gateway_pb2
from ai.mlops.v1 import mlops_pb2
from compat import images, properties
from compat.properties import Property, as_test, betterproto_class, contract_messages, crosses, newer, suite
from tests.support import ROOT

BASELINES = images.baselines(ROOT)
SUITE = suite(BASELINES)
AGENT_MESSAGE = properties.descriptor_of(agent_pb2.AgentMessage())


@pytest.mark.parametrize("prop", SUITE, ids=lambda p: p.id)
def test_property(prop: Property) -> None:
    as_test(prop)()


def test_suite_covers_every_message_of_every_contract(image: descriptor_pb2.FileDescriptorSet) -> None:
    declared = set()

    def walk(scope: str, protos: Any) -> None:
        for mp in protos:
            if not mp.options.map_entry:
                declared.add(f"{scope}.{mp.name}")
                walk(f"{scope}.{mp.name}", mp.nested_type)

    for f in image.file:
        if f.name.startswith("ai/"):
            walk(f.package, f.message_type)
    assert {d.full_name for d in contract_messages()} == declared
    names = {p.name for p in SUITE}
    assert {"round trip", "betterproto agrees", "JSON round trip", "relay keeps unknown fields"} <= names
    for b in BASELINES:
        per_baseline = {f"forward to {b.label}", f"backward from {b.label}", f"envelope of {b.label} read by today's runtime"}
        assert per_baseline <= names


def test_every_message_has_a_betterproto_class() -> None:
    for d in contract_messages():
        assert betterproto_class(d).__name__.endswith(d.name)


def _broken_baseline() -> images.Image:
    """v1.0.0 as if AgentMessage.content had been an int64."""
    files = descriptor_pb2.FileDescriptorSet()
    files.CopyFrom(BASELINES[0].files)
    agent = next(f for f in files.file if f.name == "ai/agent/v1/agent.proto")
    message = next(m for m in agent.message_type if m.name == "AgentMessage")
    content = next(f for f in message.field if f.name == "content")
    content.type = descriptor_pb2.FieldDescriptorProto.TYPE_INT64
    content.ClearField("options")
    return images.Image("broken", files)


@pytest.mark.parametrize("direction", ["forward to broken", "backward from broken"])
def test_properties_catch_a_type_change(direction: str) -> None:
    [prop] = [p for p in suite([_broken_baseline()]) if p.id == f"ai.agent.v1.AgentMessage: {direction}"]
    with pytest.raises(AssertionError, match="fields content differ"):
        as_test(prop, examples=50)()


def test_relay_through_older_code_keeps_a_newer_field() -> None:
    newer_cls = GetMessageClass(newer(AGENT_MESSAGE))
    msg: Any = newer_cls(message_id="m1", content="hi", compat_probe_text="from the future", compat_probe_list=[1, -2])
    msg.metadata["k"] = "v"
    crosses(msg, AGENT_MESSAGE)
    relayed: Any = newer_cls.FromString(agent_pb2.AgentMessage.FromString(msg.SerializeToString()).SerializeToString())
    assert relayed.compat_probe_text == "from the future"
    assert list(relayed.compat_probe_list) == [1, -2]


def test_a_reader_that_drops_unknown_fields_is_caught() -> None:
    newer_cls = GetMessageClass(newer(AGENT_MESSAGE))
    msg: Any = newer_cls(message_id="m1", compat_probe_number=7)
    dropped = agent_pb2.AgentMessage.FromString(msg.SerializeToString())
    dropped.DiscardUnknownFields()
    assert newer_cls.FromString(dropped.SerializeToString()) != msg
    with pytest.raises(AssertionError, match="fields compat_probe_number differ"):
        properties._same(msg, newer_cls.FromString(dropped.SerializeToString()), "relay")


# Known divergences. Each is allowed for in compat.properties with the
# narrowest exception that covers it; if one of these tests starts failing,
# the library fixed it and the exception can go.


def _via_betterproto(msg: Any) -> Any:
    parsed = betterproto_class(msg.DESCRIPTOR)().parse(msg.SerializeToString())
    return type(msg).FromString(bytes(parsed))


def test_betterproto_cuts_timestamps_to_microseconds() -> None:
    env = envelope_pb2.Envelope(id="e")
    env.time.seconds, env.time.nanos = 1_700_000_000, 123_456_789
    assert _via_betterproto(env).time.nanos == 123_456_000
    assert properties.betterproto_view(env) == _via_betterproto(env)


def test_betterproto_drops_a_zero_timestamp() -> None:
    env = envelope_pb2.Envelope(id="e")
    env.deadline.SetInParent()
    assert not _via_betterproto(env).HasField("deadline")
    assert properties.betterproto_view(env) == _via_betterproto(env)


def test_betterproto_drops_an_empty_map_entry() -> None:
    msg = agent_pb2.AgentMessage(message_id="m", metadata={"": "", "k": ""})
    assert dict(_via_betterproto(msg).metadata) == {"k": ""}
    assert properties.betterproto_view(msg) == _via_betterproto(msg)


def test_betterproto_keeps_an_empty_key_with_a_zero_number() -> None:
    msg = mlops_pb2.ModelVersion(version="1", metrics={"": 0.0})
    assert dict(_via_betterproto(msg).metrics) == {"": 0.0}
    assert properties.betterproto_view(msg) == _via_betterproto(msg)


def test_betterproto_drops_negative_zero() -> None:
    msg = gateway_pb2.ProviderHealth(provider="p", error_rate=-0.0)
    assert msg.SerializeToString() != gateway_pb2.ProviderHealth(provider="p").SerializeToString()
    assert _via_betterproto(msg).SerializeToString() == gateway_pb2.ProviderHealth(provider="p").SerializeToString()


def test_json_format_cannot_read_back_the_largest_float32() -> None:
    result = gateway_pb2.EmbeddingResult()
    result.embeddings.add().values.append(properties._FLOAT32_MAX)
    text = json_format.MessageToJson(result)
    assert "3.4028235e+38" in text
    with pytest.raises(json_format.ParseError, match="Float value too large"):
        json_format.Parse(text, gateway_pb2.EmbeddingResult())
