"""Span dumps and the waterfall `aisdk trace` draws, as library code."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from runtime import telemetry
from runtime.telemetry.names import SPAN
from runtime.telemetry.view import SpanRecord, TraceFileError, load_spans, parse_spans, render_waterfall


def sample_spans(exporter: object) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # type: ignore[arg-type]
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("request ai.rag.queries.{tenant_id}", kind=SpanKind.PRODUCER,
                                      attributes={"tenant.id": "acme"}):
        with tracer.start_as_current_span("process ai.rag.queries.{tenant_id}", kind=SpanKind.CONSUMER,
                                          attributes={"messaging.consumer.group.name": "rag.workers"}):
            with tracer.start_as_current_span(SPAN.RAG_VECTOR_SEARCH.name, attributes={"results.count": 3}) as s:
                s.set_status(Status(StatusCode.ERROR, "index offline"))
    return provider


@pytest.fixture
def spans_file(tmp_path: Path) -> Path:
    exporter = InMemorySpanExporter()
    sample_spans(exporter)
    return telemetry.dump_spans(exporter.get_finished_spans(), tmp_path / "spans.json")


def test_dump_roundtrips(spans_file: Path) -> None:
    doc = json.loads(spans_file.read_text())
    assert doc["format"] == "aisdk.spans" and doc["version"] == 1 and len(doc["spans"]) == 3
    spans = load_spans(spans_file)
    assert [s.to_json() for s in spans] == doc["spans"]
    # A bare list of spans is accepted too.
    assert load_spans(spans_file) == parse_spans(json.dumps(doc["spans"]))


def test_waterfall_draws_the_tree(spans_file: Path) -> None:
    text = render_waterfall(load_spans(spans_file), width=160)
    lines = text.splitlines()
    assert lines[0].startswith("trace ") and "3 spans" in lines[0] and "1 error" in lines[0]
    assert lines[1].startswith("request ai.rag.queries.{tenant_id}")
    assert lines[2].startswith("└─ process ai.rag.queries.{tenant_id}")
    assert lines[3].startswith("   └─ rag.vector.search")
    assert "tenant=acme" in lines[1] and "group=rag.workers" in lines[2]
    assert "results.count=3" in lines[3] and "✗ index offline" in lines[3]
    bars = [line.split("│")[1] for line in lines[1:]]
    assert len({len(b) for b in bars}) == 1  # one time axis
    assert bars[0].startswith("█")


def test_console_exporter_output_is_read() -> None:
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    out = io.StringIO()
    sample_spans(ConsoleSpanExporter(out=out))
    spans = parse_spans(out.getvalue(), "console")
    assert sorted(s.name for s in spans) == sorted(
        ["request ai.rag.queries.{tenant_id}", "process ai.rag.queries.{tenant_id}", "rag.vector.search"]
    )
    search = next(s for s in spans if s.name == "rag.vector.search")
    assert search.status == "ERROR" and search.kind == "INTERNAL" and search.parent_span_id is not None
    assert len(render_waterfall(spans).splitlines()) == 4


def test_otlp_json_is_read() -> None:
    doc = {
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "gateway"}}]},
            "scopeSpans": [{"spans": [
                {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "root",
                 "kind": 4, "startTimeUnixNano": "1000", "endTimeUnixNano": "5000",
                 "attributes": [{"key": "tenant.id", "value": {"stringValue": "acme"}},
                                {"key": "n", "value": {"intValue": "3"}}]},
                {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b173",
                 "parentSpanId": "eee19b7ec3c1b174", "name": "child", "kind": "SPAN_KIND_CONSUMER",
                 "startTimeUnixNano": "2000", "endTimeUnixNano": "4000", "status": {"code": 2, "message": "x"}},
            ]}],
        }]
    }
    text = json.dumps(doc) + "\n" + json.dumps(doc) + "\n"  # the collector's file exporter: one per line
    spans = parse_spans(text)
    assert len(spans) == 4
    root, child = spans[0], spans[1]
    assert (root.kind, root.service, root.attributes) == ("PRODUCER", "gateway", {"tenant.id": "acme", "n": 3})
    assert (child.kind, child.status, child.parent_span_id) == ("CONSUMER", "ERROR", root.span_id)


def test_trace_filter_and_orphans() -> None:
    a = SpanRecord("aa" * 16, "01" * 8, "ff" * 8, "orphan", "CONSUMER", 0, 10)
    b = SpanRecord("bb" * 16, "02" * 8, None, "other", "INTERNAL", 0, 0)
    text = render_waterfall([a, b], trace_id="AA")
    assert "orphan" in text and "other" not in text


def test_waterfall_without_color_has_no_escapes(spans_file: Path) -> None:
    text = render_waterfall(load_spans(spans_file), width=100, color=False)
    assert "└─ process ai.rag.queries.{tenant_id}" in text and "\x1b[" not in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("{not json", "is not JSON (line 1, column 2"),
        ('{"hello": 1}', "is not an aisdk span dump"),
        ("[]", "holds no spans"),
        ('[{"trace_id": "ab", "name": "x"}]', "a span has no 'span_id'"),
    ],
)
def test_unreadable_span_files_are_one_line_errors(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "spans.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TraceFileError) as caught:
        load_spans(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_an_unknown_trace_id_draws_nothing(spans_file: Path) -> None:
    assert render_waterfall(load_spans(spans_file), trace_id="nope") == ""


def test_importing_telemetry_loads_no_command_line_code() -> None:
    import subprocess
    import sys

    probe = (
        "import sys, runtime.telemetry, runtime.telemetry.view, runtime.telemetry.cost\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('aisdk', 'compat')"
        " or m.startswith('runtime.cli'))\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
