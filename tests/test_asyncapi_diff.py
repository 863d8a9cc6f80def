"""`aisdk check`'s AsyncAPI step: the documents of two contract versions
compared as a consumer of the document sees them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from aisdk.cli import asyncapi_diff
from compat import images
from tests.support import ROOT, aisdk


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    out = aisdk(ROOT, "asyncapi")
    assert out.returncode == 0, out.stderr
    loaded: dict[str, Any] = json.loads(out.stdout)
    return loaded


def rules(found: list[Any]) -> dict[str, str]:
    return {f.rule: f.severity for f in found}


def test_a_document_against_itself_has_no_findings(doc: dict[str, Any]) -> None:
    assert asyncapi_diff.diff(doc, doc) == []


def test_a_removed_channel_and_a_changed_message_type_are_errors(doc: dict[str, Any]) -> None:
    new = copy.deepcopy(doc)
    del new["channels"]["agent.status"]
    new["operations"] = {k: v for k, v in new["operations"].items() if not k.startswith("agent.status.")}
    # agent.tasks now carries another payload type.
    other = "ai_agent_v1_AgentMessage"
    new["components"]["messages"]["ai_agent_v1_AgentTask"] = copy.deepcopy(new["components"]["messages"][other])
    found = asyncapi_diff.diff(doc, new)
    assert rules(found)["ASYNCAPI_CHANNEL_REMOVED"] == "error"
    assert rules(found)["ASYNCAPI_OPERATION_MESSAGE"] == "error"
    changed = [f for f in found if f.rule == "ASYNCAPI_OPERATION_MESSAGE" and "agent.tasks.send" in f.where]
    assert changed and "ai.agent.v1.AgentTask" in changed[0].text and "ai.agent.v1.AgentMessage" in changed[0].text
    removed = next(f for f in found if f.rule == "ASYNCAPI_CHANNEL_REMOVED")
    assert "ai.agent.status.{tenant_id}" in removed.text


def test_payload_changes_are_named_by_property(doc: dict[str, Any]) -> None:
    new = copy.deepcopy(doc)
    schema = new["components"]["schemas"]["ai_gateway_v1_LlmRequest"]
    del schema["properties"]["prompt"]
    schema["properties"]["model"] = {"type": "integer"}
    schema["properties"]["requestId"]["maxLength"] = 16
    schema["required"] = [*schema["required"], "tools"]
    found = {f.rule: f for f in asyncapi_diff.diff(doc, new)}
    assert "ai.gateway.v1.LlmRequest.prompt removed" in found["ASYNCAPI_PROPERTY_REMOVED"].text
    assert "model changed from string to integer" in found["ASYNCAPI_PROPERTY_TYPE"].text
    assert "maxLength tightened from 128 to 16" in found["ASYNCAPI_BOUND_TIGHTENED"].text
    assert "tools became required" in found["ASYNCAPI_NEWLY_REQUIRED"].text


def test_the_released_baseline_against_today_only_adds(tmp_path: Path) -> None:
    """The image path: both documents built from descriptors, a version each."""
    [baseline] = images.baselines(ROOT)
    now = images.current(ROOT, tmp_path)
    found = asyncapi_diff.check(baseline, now)
    assert found and {f.severity for f in found} == {"info"}, [f.line() for f in found if f.severity != "info"]
    assert any("ai.mlops.models.{tenant_id} added" in f.text for f in found)


def test_aisdk_check_prints_the_asyncapi_section() -> None:
    out = aisdk(ROOT, "check", "--skip", "properties", "--skip", "drift")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "asyncapi against v1.0.0: ok" in out.stdout
