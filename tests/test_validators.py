"""Generated validators: valid messages pass, each rule's violation is
reported with its field path."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ai.registry as registry
from ai.agent.v1 import agent_bus, agent_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from compat.strategies import messages
from runtime import ContractViolation, Violation

MESSAGE_TYPES = sorted(
    {t for s in registry.SUBJECTS for t in (s.request_type, s.reply_type) if t.DESCRIPTOR.full_name in registry.VALIDATORS},
    key=lambda c: c.DESCRIPTOR.full_name,
)


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=lambda c: c.DESCRIPTOR.full_name)
def test_valid_messages_pass(cls: Any) -> None:
    validate = registry.VALIDATORS[cls.DESCRIPTOR.full_name]

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(messages(cls.DESCRIPTOR))
    def check(msg: Any) -> None:
        assert validate(msg) == []

    check()


def _valid_request() -> gateway_pb2.LlmRequest:
    return gateway_pb2.LlmRequest(request_id="r1", prompt="Hi", model="gpt-4o-mini")


def _rules(violations: list[Violation]) -> set[tuple[str, str]]:
    return {(v.field, v.rule) for v in violations}


def test_required() -> None:
    assert _rules(gateway_bus.validate_llm_request(gateway_pb2.LlmRequest())) == {
        ("request_id", "required"),
        ("model", "required"),
    }


@given(st.integers(129, 400))
def test_max_len(n: int) -> None:
    msg = _valid_request()
    msg.request_id = "r" * n
    [v] = gateway_bus.validate_llm_request(msg)
    assert (v.field, v.rule) == ("request_id", "max_len")
    assert str(n) in v.description


@given(st.floats(min_value=2.0, exclude_min=True, allow_nan=False) | st.floats(max_value=0.0, exclude_max=True))
def test_range_on_nested_optional_field(t: float) -> None:
    msg = _valid_request()
    msg.parameters.temperature = t
    [v] = gateway_bus.validate_llm_request(msg)
    assert v.field == "parameters.temperature"
    assert v.rule == ("gte" if t < 0 else "lte")


def test_unset_optional_field_is_not_checked() -> None:
    msg = _valid_request()
    msg.parameters.SetInParent()
    assert gateway_bus.validate_llm_request(msg) == []


def test_pattern() -> None:
    task = agent_pb2.AgentTask(task_id="t", agent_id="a", task_type="Bad Type!")
    assert _rules(agent_bus.validate_agent_task(task)) == {("task_type", "pattern")}


def test_min_and_max_items() -> None:
    req = gateway_pb2.EmbeddingRequest(request_id="e", model="m")
    assert _rules(gateway_bus.validate_embedding_request(req)) == {("texts", "min_items")}
    req.texts.extend(["x"] * 2049)
    assert _rules(gateway_bus.validate_embedding_request(req)) == {("texts", "max_items")}


def test_defined_enum_values() -> None:
    msg = agent_pb2.AgentMessage(message_id="m", source_agent_id="a", kind=42)  # type: ignore[arg-type]
    [v] = agent_bus.validate_agent_message(msg)
    assert (v.field, v.rule) == ("kind", "defined_only")


def test_repeated_nested_paths_carry_the_index() -> None:
    msg = _valid_request()
    msg.messages.add(role=gateway_pb2.ROLE_USER, content="hi")
    msg.messages.add()  # role missing
    assert _rules(gateway_bus.validate_llm_request(msg)) == {("messages[1].role", "required")}


def test_contract_violation_carries_the_violations() -> None:
    violations = gateway_bus.validate_llm_request(gateway_pb2.LlmRequest())
    err = ContractViolation("ai.gateway.v1.LlmRequest", violations)
    assert isinstance(err, ValueError)
    proto = err.to_proto()
    assert [v.field for v in proto.violations] == ["request_id", "model"]
    assert "request_id: must be set" in str(err)
