"""The names registry against the seed documents and the pinned semantic conventions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from runtime.telemetry import names
from runtime.telemetry.names import ALL_METRICS, ALL_SPANS, ATTR, METRIC, MetricKind

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
SEED = SEEDS / "004_3168da205b954e0f.txt"


def seed_text() -> str:
    if not SEED.exists():
        pytest.skip("the seed documents are not beside this checkout")
    return SEED.read_text(encoding="utf-8")


def seed_spans(text: str) -> set[str]:
    called = re.findall(r'start_(?:span|trace)\("([^"]+)"', text)
    tabled = re.findall(r"^\|[^|]+\| `([a-z_.-]+)` \|[^|]*\|[^|]*\|$", text, re.MULTILINE)
    return set(called) | set(tabled)


def seed_metrics(text: str) -> set[str]:
    called = re.findall(r'(?:increment_counter|record_histogram)\("([^"]+)"', text)
    tabled: set[str] = set()
    for row in re.findall(r"^\|[^|]+\| `[a-z_.-]+` \|[^|]*\|([^|]*)\|$", text, re.MULTILINE):
        tabled.update(m.strip() for m in row.split(",") if m.strip())
    return set(called) | tabled


# The names the seed documents use, extracted once by the functions above; the
# snapshot keeps the registry checked where the seed documents are not at hand.
SNAPSHOT = json.loads((Path(__file__).parent / "data" / "seed_names.json").read_text(encoding="utf-8"))


def test_snapshot_matches_the_seed_documents() -> None:
    text = seed_text()
    assert sorted(seed_spans(text)) == SNAPSHOT["spans"]
    assert sorted(seed_metrics(text)) == SNAPSHOT["metrics"]


def test_every_seed_span_is_registered() -> None:
    found = set(SNAPSHOT["spans"])
    assert "gateway.rate-limit.check" in found and len(found) > 20
    assert found - {s.name for s in ALL_SPANS} == set()
    assert {s.name for s in ALL_SPANS if s.seed} == found


def test_every_seed_metric_is_registered() -> None:
    found = set(SNAPSHOT["metrics"])
    assert "gateway.tokens.used" in found and len(found) > 30
    assert found - {m.name for m in ALL_METRICS} == set()
    assert {m.name for m in ALL_METRICS if m.seed} == found


def test_names_are_unique_and_well_formed() -> None:
    for registry in (ALL_SPANS, ALL_METRICS):
        assert len({x.name for x in registry}) == len(registry)
    for m in ALL_METRICS:
        assert re.fullmatch(r"[a-z][a-z0-9_.-]*", m.name), m.name
        assert m.unit and m.description
        if m.name.endswith(".duration"):
            assert (m.kind, m.unit) == (MetricKind.HISTOGRAM, "s"), m.name


def test_attribute_keys_match_the_pinned_semantic_conventions() -> None:
    from opentelemetry.semconv import schemas
    from opentelemetry.semconv._incubating.attributes import messaging_attributes as ma
    from opentelemetry.semconv._incubating.metrics import messaging_metrics as mm
    from opentelemetry.semconv.attributes import error_attributes, service_attributes

    assert ATTR.MESSAGING_SYSTEM == ma.MESSAGING_SYSTEM
    assert ATTR.DESTINATION_NAME == ma.MESSAGING_DESTINATION_NAME
    assert ATTR.DESTINATION_TEMPLATE == ma.MESSAGING_DESTINATION_TEMPLATE
    assert ATTR.OPERATION_TYPE == ma.MESSAGING_OPERATION_TYPE
    assert ATTR.OPERATION_NAME == ma.MESSAGING_OPERATION_NAME
    assert ATTR.CONSUMER_GROUP == ma.MESSAGING_CONSUMER_GROUP_NAME
    assert ATTR.MESSAGE_ID == ma.MESSAGING_MESSAGE_ID
    assert ATTR.CONVERSATION_ID == ma.MESSAGING_MESSAGE_CONVERSATION_ID
    assert ATTR.BODY_SIZE == ma.MESSAGING_MESSAGE_BODY_SIZE
    assert ATTR.ENVELOPE_SIZE == ma.MESSAGING_MESSAGE_ENVELOPE_SIZE
    assert ATTR.ERROR_TYPE == error_attributes.ERROR_TYPE
    assert ATTR.SERVICE_NAME == service_attributes.SERVICE_NAME
    assert names.OP.SEND == ma.MessagingOperationTypeValues.SEND.value
    assert names.OP.PROCESS == ma.MessagingOperationTypeValues.PROCESS.value
    assert METRIC.SENT.name == mm.MESSAGING_CLIENT_SENT_MESSAGES
    assert METRIC.CONSUMED.name == mm.MESSAGING_CLIENT_CONSUMED_MESSAGES
    assert METRIC.PROCESS_DURATION.name == mm.MESSAGING_PROCESS_DURATION
    assert METRIC.OPERATION_DURATION.name == mm.MESSAGING_CLIENT_OPERATION_DURATION
    assert names.SCHEMA_URL == schemas.Schemas.V1_44_0.value


def test_the_docs_name_every_span_and_metric() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "telemetry.md").read_text(encoding="utf-8")
    missing = [x.name for x in (*ALL_SPANS, *ALL_METRICS) if f"`{x.name}`" not in docs]
    assert missing == []
