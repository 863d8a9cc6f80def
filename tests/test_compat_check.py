"""`aisdk check` on real edits: each breaking edit is reported with the
name of what broke, each additive edit passes. Every case runs the real buf
on a project of its own: the frozen v1.0.0 contracts of tests/data, their
generated code and baseline, edited by string replacement. Neither the
checkout's proto/ nor a user's edits to it are read or touched."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest

from compat import images
from compat.check import run_check
from compat.report import Finding
from tests.support import aisdk, released_project

AGENT = "proto/ai/agent/v1/agent.proto"
GATEWAY = "proto/ai/gateway/v1/gateway.proto"
ENVELOPE = "proto/ai/envelope/v1/envelope.proto"
CONTENT = "string content = 4 [(ai.options.v1.rules) = {max_len: 1048576}];\n  MessageKind kind"
SESSION = "  string session_id = 7 [(ai.options.v1.rules) = {max_len: 128}];\n"
REPLY_TO = "  optional string reply_to = 8 [(ai.options.v1.rules) = {max_len: 128}];\n"
STATUS_RPC = """  rpc Status(AgentStatus) returns (google.protobuf.Empty) {
    option (ai.options.v1.subject) = {operation: "status", pattern: PATTERN_EVENT};
  }
"""
RESULTS_DURABLE = "durability: {durable: true, retention: RETENTION_LIMITS"
STATUS_EVENT = "pattern: PATTERN_EVENT};\n  }\n  rpc Memory"
EMBEDDINGS = "rpc Embeddings(EmbeddingRequest) returns (EmbeddingResult)"
TOOL_RESULTS_RPC = '    option (ai.options.v1.subject) = {operation: "tool-results", pattern: PATTERN_EVENT};\n  }\n'
HEARTBEAT = """
// Sent by an agent every few seconds while it runs.
message AgentHeartbeat {
  string agent_id = 1 [(ai.options.v1.rules) = {required: true, max_len: 128}];
}
"""
HEARTBEAT_RPC = """  rpc Heartbeat(AgentHeartbeat) returns (google.protobuf.Empty) {
    option (ai.options.v1.subject) = {operation: "heartbeat", pattern: PATTERN_EVENT};
  }
}
"""


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return released_project(tmp_path_factory.mktemp("released"))


@pytest.fixture
def tree(released: Path, tmp_path: Path) -> Path:
    """A fresh copy of the released project per test: each edits its own."""
    return Path(shutil.copytree(released, tmp_path / "project"))


def edit(tree: Path, path: str, old: str, new: str) -> None:
    file = tree / path
    text = file.read_text()
    assert old in text, f"{path} no longer contains the text this test edits"
    file.write_text(text.replace(old, new, 1))


def check(tree: Path, against: str | None = None) -> tuple[list[Finding], str]:
    out = io.StringIO()
    found = run_check(tree, against, skip={"drift", "properties"}, out=out)
    return found, out.getvalue()


def lines(found: list[Finding], severity: str = "error") -> list[str]:
    return [f.line() for f in found if f.severity == severity]


def git(tree: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com", *args],
        cwd=tree, check=True, capture_output=True,
    )


BREAKING = {
    "field type changed": (
        [(AGENT, CONTENT, "int64 content = 4;\n  MessageKind kind")],
        'proto/ai/agent/v1/agent.proto:28: ai.agent.v1.AgentMessage field 4 "content": '
        "type changed from string to int64 [FIELD_WIRE_JSON_COMPATIBLE_TYPE]",
    ),
    "field renumbered": (
        [(AGENT, SESSION, SESSION.replace("= 7", "= 9"))],
        'ai.agent.v1.AgentMessage field 7 "session_id": renumbered to 9',
    ),
    "field removed without reserved": (
        [(AGENT, SESSION, "")],
        'ai.agent.v1.AgentMessage field 7 "session_id": deleted without reserving its number or its name',
    ),
    "field renamed": (
        [(AGENT, SESSION, SESSION.replace("session_id", "conversation_id"))],
        "ai.agent.v1.AgentMessage field 7: name changed from session_id to conversation_id [FIELD_SAME_NAME]",
    ),
    "message renamed": (
        [
            (AGENT, "message TaskResult {", "message TaskOutcome {"),
            (AGENT, "Results(TaskResult)", "Results(TaskOutcome)"),
        ],
        "ai.agent.v1.TaskResult: deleted from package ai.agent.v1 [PACKAGE_MESSAGE_NO_DELETE]",
    ),
    "envelope message renamed": (
        [(ENVELOPE, "message StreamEnd {", "message StreamDone {")],
        "ai.envelope.v1.StreamEnd: deleted from package ai.envelope.v1",
    ),
    "operation renamed": (
        [(AGENT, 'operation: "message"', 'operation: "messages"')],
        "ai.agent.v1.AgentService.Message (ai.agent.messages.{tenant_id}): subject renamed from "
        "ai.agent.message.{tenant_id} (operation 'message' -> 'messages')",
    ),
    "operation removed": (
        [(AGENT, STATUS_RPC, "")],
        "proto/ai/agent/v1/agent.proto: ai.agent.v1.AgentService.Status (ai.agent.status.{tenant_id}): "
        "subject removed",
    ),
    "pattern changed": (
        [(AGENT, STATUS_EVENT, STATUS_EVENT.replace("EVENT", 'WORK_QUEUE, queue_group: "agent.status"'))],
        "ai.agent.v1.AgentService.Status (ai.agent.status.{tenant_id}): pattern changed from EVENT to WORK_QUEUE",
    ),
    "durable made non-durable": (
        [(AGENT, RESULTS_DURABLE, RESULTS_DURABLE.replace("durable: true", "durable: false"))],
        "ai.agent.v1.AgentService.Results (ai.agent.results.{tenant_id}): durable subject made non-durable",
    ),
    "reply type changed": (
        [(GATEWAY, EMBEDDINGS, EMBEDDINGS.replace("(EmbeddingResult)", "(LlmResponse)"))],
        "ai.gateway.v1.GatewayService.Embeddings (ai.gateway.embeddings.{tenant_id}): reply type changed from "
        "ai.gateway.v1.EmbeddingResult to ai.gateway.v1.LlmResponse",
    ),
    "queue group changed": (
        [(AGENT, 'queue_group: "agent.workers"', 'queue_group: "agent.pool"')],
        "ai.agent.v1.AgentService.Tasks (ai.agent.tasks.{tenant_id}): "
        "queue group changed from agent.workers to agent.pool",
    ),
}


@pytest.mark.parametrize("case", sorted(BREAKING))
def test_breaking_edit_is_reported_by_name(tree: Path, case: str) -> None:
    edits, expected = BREAKING[case]
    for path, old, new in edits:
        edit(tree, path, old, new)
    found, printed = check(tree)
    errors = lines(found)
    assert any(expected in line for line in errors), printed
    assert expected in printed


ADDITIVE = {
    "new optional field": [(AGENT, SESSION, SESSION + REPLY_TO)],
    "new message": [(AGENT, "\n// Subjects ai.agent", HEARTBEAT + "\n// Subjects ai.agent")],
    "new operation": [
        (AGENT, "\n// Subjects ai.agent", HEARTBEAT + "\n// Subjects ai.agent"),
        (AGENT, TOOL_RESULTS_RPC + "}\n", TOOL_RESULTS_RPC + HEARTBEAT_RPC),
    ],
    "field removed with its number and name reserved": [(AGENT, SESSION, '  reserved 7;\n  reserved "session_id";\n')],
    "field deprecated": [(AGENT, SESSION, SESSION.replace("128}]", "128}, deprecated = true]"))],
}


@pytest.mark.parametrize("case", sorted(ADDITIVE))
def test_additive_edit_passes(tree: Path, case: str) -> None:
    for path, old, new in ADDITIVE[case]:
        edit(tree, path, old, new)
    found, printed = check(tree)
    assert lines(found) == [], printed
    assert f"{AGENT}: changed since v1.0.0 but (ai.options.v1.contract).minor is still 0" in printed


def test_new_operation_is_listed_as_added(tree: Path) -> None:
    for path, old, new in ADDITIVE["new operation"]:
        edit(tree, path, old, new)
    _, printed = check(tree)
    assert "ai.agent.v1.AgentService.Heartbeat (ai.agent.heartbeat.{tenant_id}): subject added (EVENT)" in printed


def test_bumped_minor_silences_the_version_warning(tree: Path) -> None:
    edit(tree, AGENT, SESSION, SESSION + REPLY_TO)
    edit(tree, AGENT, "option (ai.options.v1.contract) = {minor: 0};", "option (ai.options.v1.contract) = {minor: 1};")
    found, printed = check(tree)
    assert lines(found) == lines(found, "warning") == [], printed


def test_minor_going_back_is_an_error(tree: Path) -> None:
    edit(tree, AGENT, "{minor: 0}", "{minor: 2}")
    images.write_baseline(tree, images.next_baseline(tree, "v1.1.0"))
    edit(tree, AGENT, "{minor: 2}", "{minor: 1}")
    found, printed = check(tree)
    expected = f"{AGENT}: contract minor went back from 2 to 1 (released in v1.1.0) [CONTRACT_MINOR_NO_DECREASE]"
    assert expected in lines(found), printed


def test_v2_beside_v1_is_additive(tree: Path) -> None:
    """The migration plan of docs/versioning.md: ai.agent.v2 in its own
    package, its operations under a `v2.` token, both served at once."""
    v1 = (tree / AGENT).read_text()
    v2 = v1.replace("package ai.agent.v1;", "package ai.agent.v2;").replace('operation: "', 'operation: "v2.')
    v2 = v2.replace('reply_event: "', 'reply_event: "v2.')
    (tree / "proto/ai/agent/v2").mkdir()
    (tree / "proto/ai/agent/v2/agent.proto").write_text(v2)
    found, printed = check(tree)
    assert lines(found) == [], printed
    assert "ai.agent.v2.AgentService.Message (ai.agent.v2.message.{tenant_id}): subject added (EVENT)" in printed


def test_every_baseline_is_checked(tree: Path) -> None:
    """Transitive: a break against an older release is caught even when the
    newest release already contains it."""
    edit(tree, AGENT, SESSION, "")
    images.write_baseline(tree, images.next_baseline(tree, "v1.1.0"))
    _, printed = check(tree)
    assert "breaking against v1.1.0: ok" in printed
    assert "breaking against v1.0.0: 1 error" in printed


def test_a_contract_the_generator_refuses_is_an_error(tree: Path) -> None:
    edit(tree, AGENT, 'operation: "status"', 'operation: "Status!"')
    found, _ = check(tree)
    assert any("operation 'Status!' must be lower-case subject tokens" in line for line in lines(found))


def test_against_head_fails_on_a_type_change_and_passes_once_regenerated(tree: Path) -> None:
    git(tree, "init", "-q")
    git(tree, "add", "-A")
    git(tree, "commit", "-qm", "contracts")
    edit(tree, AGENT, CONTENT, "int64 content = 4;\n  MessageKind kind")
    out = aisdk(tree, "check", "--against", "HEAD", "--skip", "drift", "--skip", "properties")
    assert out.returncode == 1
    assert 'ai.agent.v1.AgentMessage field 4 "content": type changed from string to int64' in out.stdout
    # The AsyncAPI step says the same in the document's terms.
    assert "ai.agent.v1.AgentMessage.content changed from string to string/integer" in out.stdout
    assert out.stderr.strip() == "aisdk check: 2 errors: see above"

    edit(tree, AGENT, "int64 content = 4;\n  MessageKind kind", CONTENT)
    edit(tree, AGENT, SESSION, SESSION + REPLY_TO)
    assert aisdk(tree, "gen").returncode == 0
    out = aisdk(tree, "check", "--against", "HEAD", "--examples", "5")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "drift: ok" in out.stdout
    assert "properties against HEAD: ok" in out.stdout


def test_stale_generated_code_fails_the_drift_check(tree: Path) -> None:
    edit(tree, AGENT, SESSION, SESSION + REPLY_TO)
    out = io.StringIO()
    found = run_check(tree, skip={"lint", "breaking", "registry", "versions", "properties"}, out=out)
    stale = "generated/ai/agent/v1/agent_pb2.py: stale: run `aisdk gen` and commit generated/ [GENERATED_CURRENT]"
    assert stale in lines(found)
    # Only what the edit touched: the project was current before it.
    assert all("/agent/" in line for line in lines(found)), out.getvalue()


def test_unknown_ref_is_one_line(tree: Path) -> None:
    out = aisdk(tree, "check", "--against", "no-such-ref")
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "unknown git ref 'no-such-ref'" in out.stderr


def test_release_cuts_a_baseline_once(tree: Path) -> None:
    shutil.rmtree(tree / images.BASELINE_DIR)
    out = aisdk(tree, "release", "v1.0.0")
    assert out.returncode == 0, out.stderr
    assert "released v1.0.0: compat/baselines/v1.0.0.binpb" in out.stdout
    released = images.Image.load(tree / images.BASELINE_DIR / "v1.0.0.binpb")
    assert {f.name for f in released.contract_files()} >= {"ai/agent/v1/agent.proto", "ai/envelope/v1/envelope.proto"}
    assert not any(f.HasField("source_code_info") for f in released.files.file)

    again = aisdk(tree, "release", "v1.0.0")
    assert again.returncode == 1
    assert again.stderr.strip() == "aisdk release: v1.0.0 is not newer than the latest baseline v1.0.0"
    bad = aisdk(tree, "release", "1.1")
    assert "release version '1.1' is not vMAJOR.MINOR.PATCH" in bad.stderr


def test_release_refuses_a_breaking_tree(tree: Path) -> None:
    edit(tree, AGENT, SESSION, "")
    out = aisdk(tree, "release", "v1.1.0")
    assert out.returncode == 1
    assert "v1.1.0 not released" in out.stderr
    assert not (tree / images.BASELINE_DIR / "v1.1.0.binpb").exists()
