"""`make demo`: the smallest real end-to-end run of the contracts.

A typed gateway request is built, validated by the generated checks, wrapped
in the Envelope, encoded, decoded and checked again, and the subject it would
travel on is printed. (The runtime issue replaces this with a live exchange
over an embedded nats-server.)
"""

from __future__ import annotations

import uuid

from google.protobuf import json_format

from ai.envelope.v1 import envelope_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from runtime.errors import ContractViolation


def main() -> int:
    spec = gateway_bus.GATEWAY_REQUESTS
    request = gateway_pb2.LlmRequest(request_id=str(uuid.uuid4()), prompt="What is the refund policy?", model="gpt-4o-mini")
    request.parameters.temperature = 0.2
    print(f"subject      {spec.subject('acme')}  ({spec.pattern.value}, queue {spec.queue_group!r})")
    print(f"request      {json_format.MessageToJson(request, indent=None)}")

    envelope = envelope_pb2.Envelope(
        id=str(uuid.uuid4()), type=spec.request_name, schema_version=spec.schema_version, tenant_id="acme"
    )
    envelope.time.GetCurrentTime()
    envelope.data = request.SerializeToString()
    wire = envelope.SerializeToString()
    print(f"wire         {len(wire)} bytes ({len(envelope.data)} payload)")

    decoded = envelope_pb2.Envelope.FromString(wire)
    payload = spec.request_type.FromString(decoded.data)
    assert payload == request and decoded.type == spec.request_name
    print(f"decoded      {decoded.type} v{decoded.schema_version}, valid: {spec.validate_request(payload) == []}")

    bad = gateway_pb2.LlmRequest(prompt="no id, no model")
    bad.parameters.temperature = 3.5
    print(f"invalid      {ContractViolation(spec.request_name, spec.validate_request(bad))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
