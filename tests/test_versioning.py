"""Version rules: which schema versions a reader accepts, the generated
versions, the baselines on disk, and how buf's findings are reworded."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import ai.registry as registry
from compat import images
from compat.breaking import _merge_deleted_fields, _rewrite
from runtime.errors import PlatformError
from runtime.versions import SchemaVersionMismatch, check_schema_version, parse_schema_version
from tests.support import ROOT

minors = st.integers(0, 10_000)
V1 = images.baselines(ROOT)[0]


@given(minors, minors)
def test_same_major_any_minor_is_accepted(mine: int, theirs: int) -> None:
    check_schema_version(f"1.{mine}", f"1.{theirs}")


@given(st.integers(1, 50), st.integers(1, 50), minors)
def test_another_major_is_refused_naming_both(expected: int, got: int, minor: int) -> None:
    assume(expected != got)
    with pytest.raises(SchemaVersionMismatch) as e:
        check_schema_version(f"{expected}.0", f"{got}.{minor}")
    assert f"'{got}.{minor}'" in str(e.value) and f"'{expected}.0'" in str(e.value)
    assert f"major {got} is unknown here" in str(e.value)
    assert (e.value.expected, e.value.got) == (f"{expected}.0", f"{got}.{minor}")


@pytest.mark.parametrize("bad", ["", "1", "1.", ".1", "1.x", "v1.0", "01.0", "1.0.0", " 1.0", "1.0\n", "-1.0"])
def test_malformed_versions_are_refused(bad: str) -> None:
    with pytest.raises(SchemaVersionMismatch, match="not a MAJOR.MINOR version"):
        check_schema_version("1.0", bad)
    with pytest.raises(SchemaVersionMismatch, match="the expected version"):
        check_schema_version(bad, "1.0")


def test_mismatch_is_a_platform_error() -> None:
    assert issubclass(SchemaVersionMismatch, PlatformError)
    assert parse_schema_version("12.345") == (12, 345)


def test_generated_versions_follow_package_and_contract_minor() -> None:
    for package, version in registry.SCHEMA_VERSIONS.items():
        major = int(package.rsplit(".v", 1)[1])
        assert parse_schema_version(version)[0] == major
    for spec in registry.SUBJECTS:
        check_schema_version(registry.SCHEMA_VERSIONS[spec.service.rsplit(".", 1)[0]], spec.schema_version)


def test_v1_0_0_baseline_is_committed_and_loads() -> None:
    [first, *_] = images.baselines(ROOT)
    assert first.label == "v1.0.0"
    assert {f.name for f in first.contract_files()} >= {"ai/agent/v1/agent.proto", "ai/options/v1/options.proto"}
    assert first.pool.FindMessageTypeByName("ai.envelope.v1.Envelope").fields_by_name["schema_version"].number == 3


PACKAGES = {"ai/agent/v1/agent.proto": "ai.agent.v1", "ai/envelope/v1/envelope.proto": "ai.envelope.v1"}


def _buf(message: str, rule: str, path: str = "proto/ai/agent/v1/agent.proto", line: int = 28) -> str:
    row = {"path": path, "start_line": line, "type": rule, "message": message}
    return _rewrite(row, PACKAGES, V1).line()


@pytest.mark.parametrize(
    ("message", "rule", "expected"),
    [
        (
            'Field "4" with name "content" on message "AgentMessage" changed type from "string" to "int64". '
            "See https://developers.google.com/protocol-buffers/docs/proto3#updating for wire compatibility rules.",
            "FIELD_WIRE_JSON_COMPATIBLE_TYPE",
            'proto/ai/agent/v1/agent.proto:28: ai.agent.v1.AgentMessage field 4 "content": '
            "type changed from string to int64 [FIELD_WIRE_JSON_COMPATIBLE_TYPE]",
        ),
        (
            'Field "7" on message "AgentMessage" changed name from "session_id" to "conversation_id".',
            "FIELD_SAME_NAME",
            "proto/ai/agent/v1/agent.proto:28: ai.agent.v1.AgentMessage field 7: "
            "name changed from session_id to conversation_id [FIELD_SAME_NAME]",
        ),
        (
            'Previously present enum value "3" on enum "MessageKind" was deleted without reserving the number "3".',
            "ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED",
            "proto/ai/agent/v1/agent.proto:28: ai.agent.v1.MessageKind value 3: "
            "deleted without reserving the number 3 [ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED]",
        ),
        (
            'RPC "Results" on service "AgentService" changed request type from "ai.agent.v1.TaskResult" '
            'to "ai.agent.v1.TaskOutcome".',
            "RPC_SAME_REQUEST_TYPE",
            "proto/ai/agent/v1/agent.proto:28: ai.agent.v1.AgentService.Results: "
            "request type changed from ai.agent.v1.TaskResult to ai.agent.v1.TaskOutcome [RPC_SAME_REQUEST_TYPE]",
        ),
        (
            'Field "3" with name "violations" on message "Error.FieldViolation" moved from oneof "a" to oneof "b".',
            "FIELD_SAME_ONEOF",
            "proto/ai/envelope/v1/envelope.proto:28: ai.envelope.v1.Error.FieldViolation field 3 "
            '"violations": moved from oneof a to oneof b [FIELD_SAME_ONEOF]',
        ),
        (
            'Previously present reserved range "[5,6)" on message "AgentMessage" is missing.',
            "RESERVED_MESSAGE_NO_DELETE",
            'proto/ai/agent/v1/agent.proto:28: Previously present reserved range [5,6) on message '
            'ai.agent.v1.AgentMessage is missing [RESERVED_MESSAGE_NO_DELETE]',
        ),
    ],
)
def test_buf_findings_are_reworded_with_full_names(message: str, rule: str, expected: str) -> None:
    path = "proto/ai/envelope/v1/envelope.proto" if "FieldViolation" in message else "proto/ai/agent/v1/agent.proto"
    assert _buf(message, rule, path) == expected


def test_an_unreserved_deletion_is_one_line() -> None:
    rows = [
        {"path": "proto/ai/agent/v1/agent.proto", "start_line": 23, "type": rule,
         "message": f'Previously present field "7" with name "session_id" on message "AgentMessage" '
         f'was deleted without reserving the {what} "{value}".'}
        for rule, what, value in (
            ("FIELD_NO_DELETE_UNLESS_NAME_RESERVED", "name", "session_id"),
            ("FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED", "number", "7"),
        )
    ]
    [merged] = _merge_deleted_fields([_rewrite(r, PACKAGES, V1) for r in rows])
    assert merged.line() == (
        'proto/ai/agent/v1/agent.proto:23: ai.agent.v1.AgentMessage field 7 "session_id": '
        "deleted without reserving its number or its name [FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED]"
    )
