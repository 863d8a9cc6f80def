"""Traces for people: span dumps and the terminal waterfall (what `aisdk trace` shows).

The dump format (`dump_spans`) is one JSON object:

    {"format": "aisdk.spans", "version": 1, "spans": [
      {"trace_id": "<32 hex>", "span_id": "<16 hex>", "parent_span_id": "<16 hex>" | null,
       "name": "process ai.gateway.requests.{tenant_id}", "kind": "CONSUMER",
       "start_unix_nano": 1700000000000000000, "end_unix_nano": 1700000000000350000,
       "status": "UNSET" | "OK" | "ERROR", "status_message": "",
       "service": "gateway", "attributes": {...},
       "events": [{"name": "exception", "time_unix_nano": ..., "attributes": {...}}]}]}

`load_spans` reads that (or a bare list of such spans), OTLP/JSON as the
collector's file exporter writes it (one `resourceSpans` document per line),
and what the SDK's ConsoleSpanExporter prints (`OTEL_TRACES_EXPORTER=console`).

Nothing here imports the OpenTelemetry SDK, or any command-line code.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from runtime.errors import PlatformError
from runtime.telemetry.names import ATTR

FORMAT = "aisdk.spans"
FORMAT_VERSION = 1
_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
_STATUSES = ("UNSET", "OK", "ERROR")
_KNOWN = "an aisdk span dump, OTLP/JSON or ConsoleSpanExporter output"


class TraceFileError(PlatformError):
    """A span file that cannot be read or holds no spans."""


@dataclass(slots=True)
class SpanRecord:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    start_unix_nano: int
    end_unix_nano: int
    status: str = "UNSET"
    status_message: str = ""
    service: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_unix_nano - self.start_unix_nano)

    def to_json(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "name": self.name,
            "kind": self.kind,
            "start_unix_nano": self.start_unix_nano,
            "end_unix_nano": self.end_unix_nano,
            "status": self.status,
            "status_message": self.status_message,
            "service": self.service,
            "attributes": self.attributes,
            "events": self.events,
        }


# -- from the SDK ------------------------------------------------------------


def _plain(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in (attributes or {}).items()}


def record_of(span: Any) -> SpanRecord:
    """A SpanRecord of an SDK ReadableSpan."""
    ctx = span.context
    parent = span.parent
    resource = getattr(span, "resource", None)
    service = str(resource.attributes.get(ATTR.SERVICE_NAME, "")) if resource is not None else ""
    return SpanRecord(
        trace_id=f"{ctx.trace_id:032x}",
        span_id=f"{ctx.span_id:016x}",
        parent_span_id=None if parent is None else f"{parent.span_id:016x}",
        name=span.name,
        kind=span.kind.name,
        start_unix_nano=span.start_time or 0,
        end_unix_nano=span.end_time or span.start_time or 0,
        status=span.status.status_code.name,
        status_message=span.status.description or "",
        service=service,
        attributes=_plain(span.attributes),
        events=[
            {"name": e.name, "time_unix_nano": e.timestamp, "attributes": _plain(e.attributes)} for e in span.events
        ],
    )


def records(spans: Iterable[Any]) -> list[SpanRecord]:
    """SpanRecords of SDK spans (records pass through)."""
    return [s if isinstance(s, SpanRecord) else record_of(s) for s in spans]


def dump_spans(spans: Iterable[Any], path: str | Path) -> Path:
    """Write SDK spans (or SpanRecords) as an aisdk span dump for `aisdk trace`."""
    out = Path(path)
    doc = {"format": FORMAT, "version": FORMAT_VERSION, "spans": [r.to_json() for r in records(spans)]}
    out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return out


# -- from files ------------------------------------------------------------------


def _documents(text: str, name: str) -> list[Any]:
    """One JSON document, or several in a row (JSON lines, console output)."""
    try:
        return [json.loads(text)]
    except json.JSONDecodeError as first:
        decoder = json.JSONDecoder()
        docs: list[Any] = []
        pos = 0
        while True:
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if pos >= len(text):
                return docs
            try:
                doc, pos = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as e:
                bad = first if not docs else e
                raise TraceFileError(f"{name} is not JSON (line {bad.lineno}, column {bad.colno}: {bad.msg})") from None
            docs.append(doc)


def _hex_id(value: Any) -> str | None:
    if not value:
        return None
    text = str(value).lower().removeprefix("0x")
    return text or None


def _iso_ns(value: Any) -> int:
    when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


def _from_ours(raw: Mapping[str, Any]) -> SpanRecord:
    return SpanRecord(
        trace_id=str(raw["trace_id"]),
        span_id=str(raw["span_id"]),
        parent_span_id=_hex_id(raw.get("parent_span_id")),
        name=str(raw["name"]),
        kind=str(raw.get("kind", "INTERNAL")),
        start_unix_nano=int(raw["start_unix_nano"]),
        end_unix_nano=int(raw.get("end_unix_nano", raw["start_unix_nano"])),
        status=str(raw.get("status", "UNSET")),
        status_message=str(raw.get("status_message", "")),
        service=str(raw.get("service", "")),
        attributes=dict(raw.get("attributes") or {}),
        events=list(raw.get("events") or []),
    )


def _from_console(raw: Mapping[str, Any]) -> SpanRecord:
    ctx = raw["context"]
    status = raw.get("status") or {}
    resource = (raw.get("resource") or {}).get("attributes") or {}
    return SpanRecord(
        trace_id=_hex_id(ctx["trace_id"]) or "",
        span_id=_hex_id(ctx["span_id"]) or "",
        parent_span_id=_hex_id(raw.get("parent_id")),
        name=str(raw["name"]),
        kind=str(raw.get("kind", "SpanKind.INTERNAL")).removeprefix("SpanKind."),
        start_unix_nano=_iso_ns(raw["start_time"]),
        end_unix_nano=_iso_ns(raw.get("end_time") or raw["start_time"]),
        status=str(status.get("status_code", "UNSET")),
        status_message=str(status.get("description") or ""),
        service=str(resource.get(ATTR.SERVICE_NAME, "")),
        attributes=dict(raw.get("attributes") or {}),
        events=[
            {"name": e.get("name", ""), "time_unix_nano": _iso_ns(e["timestamp"]),
             "attributes": dict(e.get("attributes") or {})}
            for e in raw.get("events") or []
        ],
    )


def _otlp_value(value: Mapping[str, Any]) -> Any:
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [_otlp_value(v) for v in value["arrayValue"].get("values", [])]
    return None


def _otlp_attributes(items: Iterable[Mapping[str, Any]] | None) -> dict[str, Any]:
    return {a["key"]: _otlp_value(a.get("value") or {}) for a in items or []}


def _enum(value: Any, names: tuple[str, ...], prefix: str) -> str:
    if isinstance(value, int) and 0 <= value < len(names):
        return names[value]
    return str(value or names[0]).removeprefix(prefix)


def _from_otlp(doc: Mapping[str, Any]) -> list[SpanRecord]:
    out = []
    for rs in doc.get("resourceSpans") or []:
        service = str(_otlp_attributes((rs.get("resource") or {}).get("attributes")).get(ATTR.SERVICE_NAME, ""))
        for ss in rs.get("scopeSpans") or []:
            for raw in ss.get("spans") or []:
                status = raw.get("status") or {}
                out.append(
                    SpanRecord(
                        trace_id=_hex_id(raw["traceId"]) or "",
                        span_id=_hex_id(raw["spanId"]) or "",
                        parent_span_id=_hex_id(raw.get("parentSpanId")),
                        name=str(raw["name"]),
                        kind=_enum(raw.get("kind"), _KINDS, "SPAN_KIND_"),
                        start_unix_nano=int(raw["startTimeUnixNano"]),
                        end_unix_nano=int(raw.get("endTimeUnixNano") or raw["startTimeUnixNano"]),
                        status=_enum(status.get("code"), _STATUSES, "STATUS_CODE_"),
                        status_message=str(status.get("message", "")),
                        service=service,
                        attributes=_otlp_attributes(raw.get("attributes")),
                        events=[
                            {"name": e.get("name", ""), "time_unix_nano": int(e.get("timeUnixNano", 0)),
                             "attributes": _otlp_attributes(e.get("attributes"))}
                            for e in raw.get("events") or []
                        ],
                    )
                )
    return out


def _spans_of(doc: Any) -> list[SpanRecord]:
    if isinstance(doc, list):
        return [s for item in doc for s in _spans_of(item)]
    if not isinstance(doc, dict):
        raise ValueError(f"found a JSON {type(doc).__name__}")
    if "resourceSpans" in doc:
        return _from_otlp(doc)
    if doc.get("format") == FORMAT:
        return [_from_ours(s) for s in doc.get("spans") or []]
    if "context" in doc and "name" in doc:
        return [_from_console(doc)]
    if "trace_id" in doc:
        return [_from_ours(doc)]
    raise ValueError("found a JSON object with none of their keys")


def parse_spans(text: str, name: str = "input") -> list[SpanRecord]:
    spans: list[SpanRecord] = []
    for doc in _documents(text, name):
        try:
            spans.extend(_spans_of(doc))
        except KeyError as e:
            raise TraceFileError(f"{name} is not {_KNOWN}: a span has no {e}") from None
        except (TypeError, ValueError) as e:
            raise TraceFileError(f"{name} is not {_KNOWN}: {e}") from None
    if not spans:
        raise TraceFileError(f"{name} holds no spans (expected {_KNOWN})")
    return spans


def load_spans(source: str | Path | Iterable[Any]) -> list[SpanRecord]:
    """Spans from a file ("-" for stdin), or SpanRecords of SDK spans."""
    if not isinstance(source, (str, Path)):
        return records(source)
    if str(source) == "-":
        return parse_spans(sys.stdin.read(), "stdin")
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise TraceFileError(f"cannot read {path}: {reason}") from None
    return parse_spans(text, str(path))


# -- the waterfall ---------------------------------------------------------------

_RED, _DIM, _BOLD, _RESET = "\x1b[31m", "\x1b[2m", "\x1b[1m", "\x1b[0m"
_SHOWN = {
    ATTR.CONSUMER_GROUP: "group",
    ATTR.ATTEMPT: "attempt",
    ATTR.DEAD_LETTER_REASON: "reason",
}
_HIDDEN_PREFIXES = ("messaging.", "aisdk.", "error.", "exception.")


def format_duration(ns: int) -> str:
    if ns < 1_000_000:
        return f"{ns / 1000:.0f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e9:.2f} s"


def _key_attributes(span: SpanRecord, parent: SpanRecord | None) -> list[str]:
    out = []
    if span.service and (parent is None or parent.service != span.service):
        out.append(f"[{span.service}]")
    tenant = span.attributes.get(ATTR.TENANT_ID)
    if tenant is not None and (parent is None or parent.attributes.get(ATTR.TENANT_ID) != tenant):
        out.append(f"tenant={tenant}")
    for key, label in _SHOWN.items():
        if key in span.attributes:
            out.append(f"{label}={span.attributes[key]}")
    for key, value in span.attributes.items():
        if key != ATTR.TENANT_ID and not key.startswith(_HIDDEN_PREFIXES) and key not in _SHOWN:
            out.append(f"{key}={value}")
    if span.status == "ERROR":
        out.append(f"✗ {span.status_message or 'error'}")
    return out


def _tree(spans: list[SpanRecord]) -> list[tuple[SpanRecord, str, SpanRecord | None]]:
    """Depth-first (span, tree prefix, parent), children by start time;
    a span whose parent is not in the file is a root."""
    by_id = {s.span_id: s for s in spans}
    children: dict[str | None, list[SpanRecord]] = {}
    for s in spans:
        parent = s.parent_span_id if s.parent_span_id in by_id and s.parent_span_id != s.span_id else None
        children.setdefault(parent, []).append(s)
    for group in children.values():
        group.sort(key=lambda s: (s.start_unix_nano, s.end_unix_nano))
    out: list[tuple[SpanRecord, str, SpanRecord | None]] = []
    seen: set[str] = set()

    def walk(span: SpanRecord, lead: str, branch: str, parent: SpanRecord | None) -> None:
        if span.span_id in seen:
            return
        seen.add(span.span_id)
        out.append((span, lead + branch, parent))
        kids = children.get(span.span_id, [])
        nested = lead + ("" if not branch else ("   " if branch == "└─ " else "│  "))
        for i, kid in enumerate(kids):
            walk(kid, nested, "└─ " if i == len(kids) - 1 else "├─ ", span)

    for root in children.get(None, []):
        walk(root, "", "", None)
    return out


_EIGHTHS = " ▏▎▍▌▋▊▉"


def _bar(start: int, end: int, t0: int, total: int, width: int) -> str:
    """A bar on a `width`-cell axis; its end is drawn to an eighth of a cell."""
    if total <= 0:
        return "█" * width
    first = min(width - 1, (start - t0) * width // total)
    last = min(width * 8, max(first * 8 + 1, round((end - t0) * width * 8 / total)))
    full, frac = divmod(last - first * 8, 8)
    bar = " " * first + "█" * full + (_EIGHTHS[frac] if frac else "")
    return bar + " " * (width - len(bar))


def render_waterfall(
    spans: Iterable[SpanRecord], *, width: int = 100, color: bool = False, trace_id: str | None = None
) -> str:
    """Each trace as a span tree with durations drawn as bars on one time axis."""
    by_trace: dict[str, list[SpanRecord]] = {}
    for s in spans:
        if trace_id is None or s.trace_id.startswith(trace_id.lower()):
            by_trace.setdefault(s.trace_id, []).append(s)
    blocks = []
    for tid, group in sorted(by_trace.items(), key=lambda kv: min(s.start_unix_nano for s in kv[1])):
        t0 = min(s.start_unix_nano for s in group)
        total = max(s.end_unix_nano for s in group) - t0
        rows = _tree(group)
        services = sorted({s.service for s in group if s.service})
        errors = sum(1 for s in group if s.status == "ERROR")
        head = f"trace {tid}  {len(group)} span{'s' * (len(group) != 1)}  {format_duration(total)}"
        if services:
            head += f"  services: {', '.join(services)}"
        if errors:
            head += f"  {errors} error{'s' * (errors != 1)}"
        lines = [f"{_BOLD}{head}{_RESET}" if color else head]
        label_width = min(max(len(prefix) + len(s.name) for s, prefix, _ in rows), max(24, width // 2))
        # Leave room for the key attributes after the duration.
        bar_width = max(12, min(40, width - label_width - 14 - 32))
        for span, prefix, parent in rows:
            label = prefix + span.name
            if len(label) > label_width:
                label = label[: label_width - 1] + "…"
            bar = _bar(span.start_unix_nano, span.end_unix_nano, t0, total, bar_width)
            line = f"{label:<{label_width}} │{bar}│ {format_duration(span.duration_ns):>9}"
            extra = " ".join(_key_attributes(span, parent))
            if extra:
                room = width - len(line) - 2
                if room > 8 and len(extra) > room:
                    extra = extra[: room - 1] + "…"
                line += "  " + extra
            if color and span.status == "ERROR":
                line = f"{_RED}{line}{_RESET}"
            lines.append(line)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
