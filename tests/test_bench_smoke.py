"""`aisdk bench --quick` runs end to end and reports the promised shape.

No figure is asserted: on a shared machine a timed assertion is noise.
`aisdk bench` needs the bench extra (FastStream); without it the command
says so, and the same quick run is made through the bench package, its
FastStream rows reported as unavailable.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import operator
from pathlib import Path
from typing import Any

import pytest

from aisdk.bench import report, run, services
from aisdk.bench.harness import Case, Sample, percentile, rotated
from tests.support import ROOT, aisdk

HAS_FASTSTREAM = all(importlib.util.find_spec(m) for m in ("faststream", "pydantic"))
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
HAS_COMPONENTS = services.available()
SEED_TARGETS = {
    "agent_messaging_p95_ms", "gateway_queuing_p95_ms", "rag_queue_msg_s", "gateway_msg_s",
    "agent_messaging_msg_s", "codec_p95_ms", "otel_overhead_pct",
    "rag_ingest_documents_s", "rag_query_queuing_p95_ms", "document_ingestion_queuing_p95_ms",
}
COMPONENT_TARGETS = ("rag_ingest_documents_s", "rag_query_queuing_p95_ms", "document_ingestion_queuing_p95_ms")


def number(x: Any) -> bool:
    return isinstance(x, (int, float)) and x > 0


COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def judged(row: dict[str, Any]) -> bool | None:
    """What `met` must say for a goal like "<= 2.0": unknown without a value."""
    op, _, bound = row["goal"].partition(" ")
    return None if row["value"] is None else COMPARE[op](row["value"], float(bound))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path | None]:
    if not HAS_FASTSTREAM:
        return report.summary(asyncio.run(run.run(run.QUICK, progress=False))), None
    chart = tmp_path_factory.mktemp("bench") / "latency.png" if HAS_MATPLOTLIB else None
    args = ["bench", "--json", "--quick"]
    if chart is not None:
        args += ["--plot", str(chart)]
    done = aisdk(ROOT, *args, timeout=180)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("\r") == 0, "the progress bar is drawn on a terminal only"
    return json.loads(done.stdout), chart


def test_json_has_the_ratios_and_raw_figures(quick_run: tuple[dict[str, Any], Path | None]) -> None:
    s, _ = quick_run
    assert s["quick"] is True and s["rounds"] == 2
    assert number(s["codec"]["ratio"]) and number(s["codec"]["ratio_unvalidated"])
    assert number(s["codec"]["raw"]["mean_ns"]) and number(s["codec"]["ours"]["p95_ns"])
    assert number(s["pubsub"]["ratio"]) and number(s["pubsub"]["raw"]["msg_s"])
    rr = s["request_reply"]
    assert number(rr["ratio_p95"]) and number(rr["raw"]["p95_us"]) and number(rr["ours"]["p99_us"])
    assert "traced_ratio_p95" in rr and (rr["traced_ratio_p95"] is None or number(rr["traced_ratio_p95"]))
    if rr["traced_ratio_p95"] is None:
        assert any("telemetry not available" in n for n in s["notes"])
    assert number(s["queue_group"]["ratio"]) and s["queue_group"]["workers"] == 3
    assert number(s["jetstream"]["ratio"]) and number(s["jetstream"]["ours"]["msg_s"])
    for group, cases in s["per_round"].items():
        assert all(len(values) == 2 for values in cases.values()), group
    assert s["environment"]["libraries"]["nats-py"]


def test_seed_targets_and_goals_are_judged(quick_run: tuple[dict[str, Any], Path | None]) -> None:
    s, _ = quick_run
    assert set(s["seed_targets"]) == SEED_TARGETS
    for name, target in s["seed_targets"].items():
        assert target["goal"] and target["measured"], name
        assert target["met"] is judged(target), name
    assert {"codec_ratio", "pubsub_ratio", "request_reply_ratio_p95"} <= set(s["goals"])
    goals = dict(s["goals"])
    ahead = [v for v in s["faststream"].get("ahead", {}).values() if v is not None]
    assert goals.pop("ahead_of_faststream")["met"] is (all(ahead) if ahead else None)
    for name, goal in goals.items():
        assert goal["met"] is judged(goal), name
    # Every figure the quick run measures is judged, not left unknown.
    assert all(s["goals"][k]["met"] is not None for k in (
        "codec_ratio", "pubsub_ratio", "request_reply_ratio_p95", "traced_pubsub_ratio", "otel_overhead_pct"))
    assert s["loop"] == "asyncio"


def test_component_rows_or_why_not(quick_run: tuple[dict[str, Any], Path | None]) -> None:
    s = quick_run[0]
    c = s["components"]
    assert c["available"] is HAS_COMPONENTS
    if not HAS_COMPONENTS:
        assert "components extra" in c["note"] and any("components extra" in n for n in s["notes"])
        assert all(s["seed_targets"][k]["value"] is None for k in COMPONENT_TARGETS)
        return
    g = c["gateway"]
    for key in ("provider_call_ratio_p50", "provider_call_ratio_p95", "cache_hit_ratio_p50", "cache_hit_ratio_p95"):
        assert number(g[key]), key
    for case in ("bare", "provider_call", "cache_hit"):
        assert number(g[case]["p50_us"]) and number(g[case]["p95_us"]), case
    assert number(c["llmops"]["operations_s"])
    rag = c["rag"]
    assert number(rag["documents_s"]) and number(rag["chunks_s"]) and rag["chunks_per_document"] >= 1
    for key in ("ingest_queuing", "query_queuing", "query"):
        assert number(rag[key]["p50_us"]) and number(rag[key]["p95_us"]), key
    assert all(s["seed_targets"][k]["met"] is not None for k in COMPONENT_TARGETS)
    assert all(len(v) == 2 for v in s["per_round"]["rag_queuing"].values())


def test_faststream_rows_or_why_not(quick_run: tuple[dict[str, Any], Path | None]) -> None:
    fs = quick_run[0]["faststream"]
    assert fs["available"] is HAS_FASTSTREAM
    if HAS_FASTSTREAM:
        assert number(fs["pubsub_ratio"]) and number(fs["request_reply_ratio_p95"])
        assert number(fs["vs_raw"]["pubsub_ratio"])
    else:
        assert "bench extra" in fs["note"]


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="the chart needs the bench extra (matplotlib)")
def test_plot_writes_a_png(quick_run: tuple[dict[str, Any], Path | None]) -> None:
    chart = quick_run[1]
    assert chart is not None and chart.read_bytes().startswith(b"\x89PNG")


@pytest.mark.skipif(HAS_FASTSTREAM, reason="the bench extra is installed")
def test_without_the_extra_aisdk_bench_names_it() -> None:
    done = aisdk(ROOT, "bench", "--json", "--quick", timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert "pip install 'aisdk-contracts[bench]'" in done.stderr and "Traceback" not in done.stderr


def test_rounds_rotate_the_order() -> None:
    async def run(n: int) -> Sample:
        return Sample(n)

    cases = [Case(name, run) for name in "abc"]
    assert [[c.name for c in rotated(cases, r)] for r in range(4)] == [
        ["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"],
    ]


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 100)) == (50, 95, 100)
    assert percentile([7.0], 99) == 7
