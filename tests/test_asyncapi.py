"""`aisdk asyncapi` and docs/subjects.md: every reference resolves, channels,
operations and messages have the fields the 3.0 specification requires,
each says what the registry says, and a payload schema accepts a real
message in protobuf's JSON form and refuses one that breaks a rule. The
official parser reads the document in tests/test_asyncapi_parser.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ai.registry import SUBJECTS
from ai.gateway.v1 import gateway_pb2
from ai.rag.v1 import rag_pb2
from google.protobuf import json_format
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from aisdk.cli.asyncapi import document
from aisdk.cli.contracts import CATALOGUE, catalogue_of
from runtime.contract import Pattern
from tests.support import ROOT, aisdk


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("asyncapi") / "asyncapi.json"
    result = aisdk(ROOT, "asyncapi", "-o", str(out))
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = json.loads(out.read_text())
    return loaded


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    # An operation's message is the channel's, which is a component's.
    return resolve(doc, node["$ref"]) if isinstance(node, dict) and set(node) == {"$ref"} else node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [node["$ref"]] if set(node) == {"$ref"} else [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def test_the_document_is_asyncapi_3(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0"
    assert {"title", "version"} <= set(doc["info"])
    assert set(doc) <= {"asyncapi", "id", "info", "servers", "defaultContentType", "channels", "operations", "components"}
    local = [r for r in refs(doc) if r.startswith("#/")]
    assert local, "the document references nothing"
    for ref in local:
        resolve(doc, ref)  # raises KeyError on a dangling reference


def test_a_channel_per_subject_with_its_tenant_parameter(doc: dict[str, Any]) -> None:
    for spec in SUBJECTS:
        channel = doc["channels"][spec.key]
        assert channel["address"] == spec.template
        assert "{tenant_id}" in channel["address"] and set(channel["parameters"]) == {"tenant_id"}
        payloads = [resolve(doc, m["$ref"])["name"] for m in channel["messages"].values()]
        assert payloads == [spec.request_name]


def test_operations_carry_pattern_queue_group_and_reply(doc: dict[str, Any]) -> None:
    for spec in SUBJECTS:
        for action in ("send", "receive"):
            op = doc["operations"][f"{spec.key}.{action}"]
            assert op["action"] == action
            assert resolve(doc, op["channel"]["$ref"]) is doc["channels"][spec.key]
            assert op["x-pattern"] == spec.pattern.value and op["x-queue-group"] == spec.queue_group
            if spec.pattern in (Pattern.REQUEST_REPLY, Pattern.STREAM):
                reply = [resolve(doc, m["$ref"])["name"] for m in op["reply"]["messages"]]
                assert reply == [spec.reply_name]
                assert resolve(doc, op["reply"]["channel"]["$ref"])["address"] is None
            else:
                assert "reply" not in op
        receive = doc["operations"][f"{spec.key}.receive"]
        if spec.queue_group:
            assert receive["bindings"]["nats"]["queue"] == spec.queue_group
        else:
            assert "bindings" not in receive


def test_messages_reference_their_protobuf_types(doc: dict[str, Any]) -> None:
    messages = doc["components"]["messages"]
    assert {m["name"] for m in messages.values()} == {n for s in SUBJECTS for n in (s.request_name, s.reply_name)
                                                      if s.pattern in (Pattern.REQUEST_REPLY, Pattern.STREAM)
                                                      or n == s.request_name}
    for message in messages.values():
        payload = resolve(doc, message["payload"]["$ref"])
        assert payload["x-proto-type"] == message["x-proto-type"] == message["name"]
        source = message["x-proto-source"]
        assert payload["x-proto-source"] == source and (ROOT / source).is_file(), source
        package = message["name"].rsplit(".", 1)[0]
        assert f"package {package};" in (ROOT / source).read_text()


def validator(doc: dict[str, Any], full_name: str) -> Draft202012Validator:
    """The payload schema of a message, its references resolved in the document."""
    root = {"$ref": f"#/components/schemas/{full_name.replace('.', '_')}", "components": doc["components"]}
    return Draft202012Validator(root)


def test_a_payload_schema_accepts_a_real_message_in_its_json_form(doc: dict[str, Any]) -> None:
    request = gateway_pb2.LlmRequest(
        request_id="r-1", model="chat", prompt="What is the refund policy?",
        parameters=gateway_pb2.LlmParameters(max_tokens=64, temperature=0.2),
        messages=[gateway_pb2.ChatMessage(role=gateway_pb2.ROLE_USER, content="hi")],
    )
    check = validator(doc, "ai.gateway.v1.LlmRequest")
    check.validate(json.loads(json_format.MessageToJson(request)))
    document_ = rag_pb2.RagDocument(document_id="d", data=b"%PDF-1.4", metadata={"lang": "en"},
                                    chunks=[rag_pb2.Chunk(chunk_id="c", embedding=[0.5, 0.25])])
    validator(doc, "ai.rag.v1.RagDocument").validate(json.loads(json_format.MessageToJson(document_)))
    result = rag_pb2.RagResult(query_id="q", status=rag_pb2.ANSWER_STATUS_NOT_FOUND, cost=0.0)
    result.duration.FromMilliseconds(1500)
    validator(doc, "ai.rag.v1.RagResult").validate(json.loads(json_format.MessageToJson(result)))


def test_a_payload_schema_holds_the_contracts_rules(doc: dict[str, Any]) -> None:
    check = validator(doc, "ai.gateway.v1.LlmRequest")
    schema = doc["components"]["schemas"]["ai_gateway_v1_LlmRequest"]
    assert set(schema["required"]) == {"requestId", "model"}
    assert schema["properties"]["requestId"]["maxLength"] == 128
    too_long = json.loads(json_format.MessageToJson(gateway_pb2.LlmRequest(request_id="r" * 129, model="chat")))
    with pytest.raises(ValidationError, match="is too long"):
        check.validate(too_long)
    with pytest.raises(ValidationError, match="'model' is a required property"):
        check.validate({"requestId": "r-1"})
    query = validator(doc, "ai.rag.v1.RagQuery")
    with pytest.raises(ValidationError, match="greater than the maximum of 100"):
        query.validate({"queryId": "q", "query": "x", "parameters": {"topK": 101}})
    status = validator(doc, "ai.rag.v1.IngestStatus")
    with pytest.raises(ValidationError):
        status.validate({"documentId": "d", "state": "INGEST_STATE_NO_SUCH"})


def test_stdout_is_the_same_document(doc: dict[str, Any]) -> None:
    result = aisdk(ROOT, "asyncapi")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == doc == json.loads(json.dumps(document(SUBJECTS, doc["info"]["version"])))


def test_docs_subjects_md_is_current() -> None:
    """docs/subjects.md is what `aisdk gen` writes from generated/: a
    registry change without regenerating it fails here, like generated/'s drift."""
    committed = (ROOT / CATALOGUE).read_text()
    assert committed == catalogue_of(ROOT), "docs/subjects.md is stale: run `aisdk gen` and commit it"
    for spec in SUBJECTS:
        assert f"`{spec.template}`" in committed


def test_catalogue_follows_the_registry(tmp_path: Path) -> None:
    """The drift check can fail: a registry with one subject less renders
    another catalogue."""
    from aisdk.cli.asyncapi import catalogue

    assert catalogue(SUBJECTS[1:]) != catalogue(SUBJECTS)
    assert f"`{SUBJECTS[0].template}`" not in catalogue([s for s in SUBJECTS if s.key != SUBJECTS[0].key])
