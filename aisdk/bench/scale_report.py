"""The rows of aisdk.bench.scale in the run's JSON and markdown: a free event
loop (p99 under heavy work ÷ idle p99, within each round), LLMOps on an
empty table and at a million operations, the report over that million, and
full-text retrieval on 50k chunks, each beside its goal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aisdk.bench.harness import DASH, Sample, check, mark, us

if TYPE_CHECKING:
    from aisdk.bench.report import Figures
    from aisdk.bench.run import Run

GOALS = {
    "event_loop_ingesting_p99_ratio": "<= 2.0",
    "event_loop_embedding_p99_ratio": "<= 2.0",
    "llmops_operations_s_empty": ">= 5000",
    "llmops_operations_s_million": ">= 5000",
    "llmops_report_million_p95_ms": "< 50",
    "retrieval_full_text_p95_ms": "< 20",
}


def _p99(s: Sample) -> float:
    return s.percentile(99)


def _p95(s: Sample) -> float:
    return s.percentile(95)


def _ms(f: Figures, group: str, case: str) -> float | None:
    value = f.median(group, case, _p95)
    return None if value is None else round(value / 1e6, 3)


def summary(f: Figures, r: Run) -> dict[str, Any]:
    if not r.components:
        return {"available": False}
    empty, million = f.median("llmops_scale", "empty"), f.median("llmops_scale", "million")
    values = {
        "event_loop_ingesting_p99_ratio": f.ratio("event_loop", "ingesting", "idle", _p99),
        "event_loop_embedding_p99_ratio": f.ratio("event_loop", "embedding", "idle", _p99),
        "llmops_operations_s_empty": None if empty is None else round(empty, 1),
        "llmops_operations_s_million": None if million is None else round(million, 1),
        "llmops_report_million_p95_ms": _ms(f, "llmops_report", "million"),
        "retrieval_full_text_p95_ms": _ms(f, "retrieval", "full_text"),
    }
    return {
        "available": True,
        "event_loop": {case: f.latency("event_loop", case) for case in ("idle", "ingesting", "embedding")},
        "llmops_million_over_empty": f.ratio("llmops_scale", "million", "empty"),
        "llmops_report_million": f.latency("llmops_report", "million"),
        "retrieval_full_text": f.latency("retrieval", "full_text"),
        "loaded": {k: v for k, v in r.facts.items()
                   if k in ("llmops_operations_loaded", "retrieval_chunks", "report_operations")},
        "goals": {k: check(v, GOALS[k]) for k, v in values.items()},
    }


def markdown(s: dict[str, Any]) -> list[str]:
    if not s["available"]:
        return []
    loop, loaded = s["event_loop"], s["loaded"]
    out = ["", "Components under load and at scale, same run:", "",
           "|  | p50 | p95 | p99 |", "|---|---|---|---|"]
    rows = [
        ("gateway cache hit, idle", loop.get("idle")),
        ("the same, while this process ingests 100k-character documents", loop.get("ingesting")),
        ("the same, while this process embeds 64 texts per request", loop.get("embedding")),
        (f"`llmops.reports` over a month of {loaded.get('llmops_operations_loaded', 0):,.0f} operations",
         s["llmops_report_million"]),
        (f"full-text retrieval on {loaded.get('retrieval_chunks', 0):,.0f} chunks of one tenant",
         s["retrieval_full_text"]),
    ]
    out += [f"| {label} | {us(d, 'p50_us')} | {us(d, 'p95_us')} | {us(d, 'p99_us')} |" for label, d in rows]
    out += ["", "| goal | value | met |", "|---|---|---|"]
    for name, g in s["goals"].items():
        out.append(f"| {name} {g['goal']} | {DASH if g['value'] is None else g['value']} | {mark(g['met'])} |")
    return out
