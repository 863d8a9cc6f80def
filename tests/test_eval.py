"""`aisdk eval` on the demo set, through the real deployment (an embedded
nats-server and a database of its own), holding quality floors. The set,
the embeddings and the offline answerer are deterministic, so the floors
cannot flake; they sit a little under today's figures (docs/components.md)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aisdk.cli.evaluation import calibrate, metrics
from aisdk.components.storage import temporary_database
from tests.support import ROOT, checkout_env


async def aisdk_eval(database: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**checkout_env(), "AISDK_DATABASE_URL": database}
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "aisdk.cli", "eval", *args], cwd=cwd,
                                   env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
async def database() -> AsyncIterator[str]:
    async with temporary_database() as url:
        yield url


@pytest.fixture(scope="module")
async def demo_run(database: str) -> dict[str, Any]:
    out = await aisdk_eval(database, "--set", "demo", "--json")
    assert out.returncode == 0, out.stderr
    [summary] = json.loads(out.stdout)["sets"]
    return summary  # type: ignore[no-any-return]


async def test_the_demo_set_holds_its_quality_floors(demo_run: dict[str, Any]) -> None:
    s = demo_run
    assert s["questions"] == 25 and s["answerable"] == 16
    fused = s["retrieval"]["fused"]
    assert fused["hit@5"] == 1.0 and fused["mrr"] >= 0.9 and fused["ndcg@10"] >= 0.9
    # Every baseline ran on the same chunks.
    assert set(s["retrieval"]) == {"fused", "fulltext", "vector", "bm25"}
    assert all(0 < r["mrr"] <= 1 for r in s["retrieval"].values())
    a = s["abstention"]
    assert a["recall"] >= 0.75 and a["precision"] >= 0.7 and a["answerable_refused"] <= 0.13
    w = s["answers"]
    assert w["sentences_supported"] >= 0.95 and w["from_expected_document"] >= 0.9
    assert s["latency_ms"]["p50"] > 0


async def test_out_of_domain_questions_get_the_not_found_answer_and_the_refund_policy_its_own(
    demo_run: dict[str, Any],
) -> None:
    by_question = {o["id"]: o for o in demo_run["outcomes"]}
    questions = {json.loads(line)["question"]: json.loads(line)["id"]
                 for line in (ROOT / "aisdk/cli/evaluation/sets/demo/questions.jsonl").read_text().splitlines()
                 if line.strip()}
    for asked in ("What is the capital of Peru?", "Who won the 2018 World Cup?"):
        o = by_question[questions[asked]]
        assert o["status"] == "ANSWER_STATUS_NOT_FOUND" and o["sources"] == []
        assert o["answer"] == "The documents do not answer this."
    refunds = by_question[questions["What is the refund policy?"]]
    assert refunds["status"] == "ANSWER_STATUS_ANSWERED"
    assert refunds["sources"] and set(refunds["sources"]) == {"refund-policy.md"}


async def test_the_table_names_every_figure_and_baseline(database: str) -> None:
    out = await aisdk_eval(database, "--set", "demo")
    assert out.returncode == 0, out.stderr
    for label in ("fused (ours)", "full-text alone", "vector alone", "BM25 (bm25s)", "hit@1", "MRR", "nDCG@10",
                  "abstention: precision", "sentences supported by a cited chunk", "latency of rag.queries"):
        assert label in out.stdout, label


async def test_a_bad_set_is_refused_in_one_line_naming_it(database: str, tmp_path: Path) -> None:
    unknown = await aisdk_eval(database, "--set", "no-such-set")
    assert unknown.returncode == 1 and unknown.stderr.count("\n") == 1
    assert "no evaluation set 'no-such-set'" in unknown.stderr and "demo" in unknown.stderr

    broken = tmp_path / "broken"
    (broken / "docs").mkdir(parents=True)
    (broken / "docs" / "a.md").write_text("# A\nSome text.\n")
    (broken / "set.json").write_text('{"name": "broken", "documents": "docs"}')
    (broken / "questions.jsonl").write_text(
        '{"id": "q1", "question": "What?", "answerable": true, "expected": ["a.md"], "kind": "single"}\n'
        '{"id": "q2", "question": "Where?", "answerable": true, "expected": ["missing.md"], "kind": "single"}\n'
    )
    out = await aisdk_eval(database, "--set", str(broken))
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert "broken/questions.jsonl:2" in out.stderr and "missing.md" in out.stderr


def test_the_threshold_refuses_at_most_the_share_of_answerable_questions_it_may() -> None:
    support = [0.1, 0.2, 0.3, 0.4, 0.9, 0.05, 0.15]
    answerable = [1, 1, 1, 1, 1, 0, 0]
    # One in five answerable may be refused: the threshold lies between the
    # lowest and the second-lowest answerable support.
    t = calibrate.threshold(support, answerable, max_refused=0.2)
    assert 0.1 < t < 0.2
    assert calibrate.threshold(support, answerable, max_refused=0.0) < 0.1


def test_retrieval_metrics_on_a_known_ranking() -> None:
    ranking = metrics.documents(["b", "b", "a", "c"])
    assert ranking == ["b", "a", "c"]
    assert metrics.hit(ranking, ["a"], 1) == 0.0 and metrics.hit(ranking, ["a"], 5) == 1.0
    assert metrics.reciprocal_rank(ranking, ["a"]) == 0.5
    assert metrics.ndcg(["a", "x"], ["a"], 10) == 1.0
    assert metrics.percentile([5.0, 1.0, 3.0, 2.0], 50) == 2.0
