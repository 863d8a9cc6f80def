"""Validation rules are part of the contract: `aisdk check` compares them
between versions in each package's compatibility mode, and the property
suite proves the verdict by running one version's validators on messages
valid under the other's rules. Every case edits a project of its own (the
frozen v1.0.0 contracts, their code and baseline) and runs the real buf."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from codegen import toolchain
from codegen.model import Rules
from compat import baseline_validators, images
from compat.check import run_check
from compat.report import Finding
from compat.rules import compare_rules
from tests.support import ROOT, released_project

AGENT = "proto/ai/agent/v1/agent.proto"
GATEWAY = "proto/ai/gateway/v1/gateway.proto"
MESSAGE_ID = "string message_id = 1 [(ai.options.v1.rules) = {required: true, max_len: 128}];"
TARGET = "string target_agent_id = 3 [(ai.options.v1.rules) = {max_len: 128}];"
TASK_TYPE = 'max_len: 64, pattern: "^[a-z][a-z0-9_.-]*$"}];'
TEMPERATURE = "optional double temperature = 1 [(ai.options.v1.rules) = {gte: 0, lte: 2}];"
SESSION = "  string session_id = 7 [(ai.options.v1.rules) = {max_len: 128}];\n"
MINOR = "option (ai.options.v1.contract) = {minor: 0};"


def mode(name: str) -> tuple[str, str, str]:
    return (AGENT, MINOR, f"option (ai.options.v1.contract) = {{minor: 1, compatibility: COMPATIBILITY_{name}}};")


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return released_project(tmp_path_factory.mktemp("released"))


@pytest.fixture
def tree(released: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(released, tmp_path / "project"))


def edit(tree: Path, path: str, old: str, new: str) -> None:
    file = tree / path
    text = file.read_text()
    assert old in text, f"{path} no longer contains the text this test edits"
    file.write_text(text.replace(old, new, 1))


def rule_errors(tree: Path) -> tuple[list[str], str]:
    out = io.StringIO()
    found = run_check(tree, skip={"lint", "breaking", "registry", "versions", "drift", "properties"}, out=out)
    return [f.line() for f in found if f.check == "rules" and f.severity == "error"], out.getvalue()


BREAKING = {
    "max_len lowered": (
        [(AGENT, MESSAGE_ID, MESSAGE_ID.replace("128", "16"))],
        'ai.agent.v1.AgentMessage field "message_id": max_len tightened from 128 to 16: consumers with the new '
        "rules reject what producers with the old rules send (BACKWARD package) [RULE_BACKWARD_COMPATIBLE]",
    ),
    "field made required": (
        [(AGENT, TARGET, TARGET.replace("{max_len", "{required: true, max_len"))],
        'ai.agent.v1.AgentMessage field "target_agent_id": required tightened from false to true',
    ),
    "pattern changed": (
        [(AGENT, TASK_TYPE, TASK_TYPE.replace("[a-z0-9_.-]", "[a-z0-9]"))],
        'ai.agent.v1.AgentTask field "task_type": pattern changed from "^[a-z][a-z0-9_.-]*$" to "^[a-z][a-z0-9]*$"',
    ),
    "range narrowed": (
        [(GATEWAY, TEMPERATURE, TEMPERATURE.replace("lte: 2", "lte: 1.5"))],
        'ai.gateway.v1.LlmParameters field "temperature": lte tightened from 2 to 1.5',
    ),
    "new required field": (
        [(AGENT, SESSION, SESSION + '  string trace_id = 8 [(ai.options.v1.rules) = {required: true}];\n')],
        'ai.agent.v1.AgentMessage field "trace_id" (new field): required tightened from false to true',
    ),
    "loosened in a FORWARD package": (
        [mode("FORWARD"), (AGENT, MESSAGE_ID, MESSAGE_ID.replace("128", "256"))],
        'ai.agent.v1.AgentMessage field "message_id": max_len loosened from 128 to 256: consumers with the old '
        "rules reject what producers with the new rules send (FORWARD package) [RULE_FORWARD_COMPATIBLE]",
    ),
    "loosened in a FULL package": (
        [mode("FULL"), (AGENT, MESSAGE_ID, MESSAGE_ID.replace("required: true, ", ""))],
        'ai.agent.v1.AgentMessage field "message_id": required loosened from true to false',
    ),
    "tightened in a FULL package": (
        [mode("FULL"), (AGENT, MESSAGE_ID, MESSAGE_ID.replace("128", "16"))],
        "max_len tightened from 128 to 16",
    ),
}


@pytest.mark.parametrize("case", sorted(BREAKING))
def test_breaking_rule_change_names_field_rule_and_values(tree: Path, case: str) -> None:
    edits, expected = BREAKING[case]
    for path, old, new in edits:
        edit(tree, path, old, new)
    errors, printed = rule_errors(tree)
    assert len(errors) == 1, printed
    assert expected in errors[0], printed
    assert errors[0].startswith(f"{AGENT if AGENT in {e[0] for e in edits} else GATEWAY}: ")


PASSING = {
    "max_len raised": [(AGENT, MESSAGE_ID, MESSAGE_ID.replace("128", "256"))],
    "required dropped": [(AGENT, MESSAGE_ID, MESSAGE_ID.replace("required: true, ", ""))],
    "range widened": [(GATEWAY, TEMPERATURE, TEMPERATURE.replace("lte: 2", "lte: 4"))],
    "new field with a maximum": [(AGENT, SESSION, SESSION + '  string trace_id = 8 [(ai.options.v1.rules) = {max_len: 64}];\n')],
    "tightened in a FORWARD package": [mode("FORWARD"), (AGENT, MESSAGE_ID, MESSAGE_ID.replace("128", "16"))],
    "mode changed, rules unchanged": [mode("FULL")],
}


@pytest.mark.parametrize("case", sorted(PASSING))
def test_compatible_rule_change_passes(tree: Path, case: str) -> None:
    for path, old, new in PASSING[case]:
        edit(tree, path, old, new)
    errors, printed = rule_errors(tree)
    assert errors == [], printed
    assert "rules against v1.0.0: ok" in printed


def test_bounds_compare_as_bounds() -> None:
    where = "m"
    assert [c.ways for c in compare_rules(where, Rules(gte=1.0), Rules(gte=0.0))] == [frozenset({"loosened"})]
    assert [c.ways for c in compare_rules(where, Rules(gte=None), Rules(gte=0.0))] == [frozenset({"tightened"})]
    assert [c.ways for c in compare_rules(where, Rules(max_items=3), Rules())] == [frozenset({"loosened"})]
    assert list(compare_rules(where, Rules(min_len=0), Rules())) == []  # a minimum of 0 is no bound
    assert list(compare_rules(where, Rules(generated_id=True), Rules())) == []  # not a check


def properties(tree: Path, monkeypatch: pytest.MonkeyPatch) -> list[Finding]:
    """The property suite of the edited tree, regenerated, against its baseline."""
    toolchain.generate(root=tree)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the child imports compat from this checkout
    steps = {"lint", "breaking", "registry", "rules", "versions", "drift"}
    return run_check(tree, skip=steps, examples=60, out=io.StringIO())


def test_properties_catch_a_lowered_max_len(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    edit(tree, AGENT, MESSAGE_ID, MESSAGE_ID.replace("128", "16"))
    texts = [f.text for f in properties(tree, monkeypatch)]
    hit = [t for t in texts if t.startswith("ai.agent.v1.AgentMessage: rules of v1.0.0 accepted today fails")]
    assert hit, texts
    assert "today's validator refuses" in hit[0] and "message_id max_len" in hit[0]


def test_properties_check_the_other_direction_in_forward_mode(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    edit(tree, *mode("FORWARD"))
    edit(tree, AGENT, MESSAGE_ID, MESSAGE_ID.replace("required: true, ", ""))
    texts = [f.text for f in properties(tree, monkeypatch)]
    hit = [t for t in texts if t.startswith("ai.agent.v1.AgentMessage: today's rules accepted by v1.0.0 fails")]
    assert hit, texts
    assert "v1.0.0's validator refuses" in hit[0] and "message_id required" in hit[0]
    # FORWARD asks nothing of the backward direction: dropping `required` is fine there.
    assert not any("rules of v1.0.0 accepted today" in t for t in texts), texts


def test_baseline_validators_are_the_released_ones() -> None:
    """The validators rebuilt from the v1.0.0 baseline judge by its rules,
    nested messages included."""
    from ai.agent.v1 import agent_pb2
    from ai.gateway.v1 import gateway_pb2

    validators = baseline_validators.load(images.baselines(ROOT)[0])
    assert validators["ai.agent.v1.AgentMessage"](agent_pb2.AgentMessage(message_id="m", source_agent_id="a")) == []
    refused = validators["ai.agent.v1.AgentMessage"](agent_pb2.AgentMessage(message_id="x" * 129, source_agent_id="a"))
    assert [(v.field, v.rule) for v in refused] == [("message_id", "max_len")]
    request = gateway_pb2.LlmRequest(request_id="r", model="m", messages=[gateway_pb2.ChatMessage()])
    nested = validators["ai.gateway.v1.LlmRequest"](request)
    assert nested and all(v.field.startswith("messages[0].") for v in nested), nested
