"""`make demo` (`aisdk demo`): document Q&A end to end, as a user runs it,
on a database of its own."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aisdk.components.storage import temporary_database
from tests.support import ROOT, checkout_env

SEED_SPANS = ("rag.query", "rag.embedding.generate", "rag.vector.search", "rag.response.generate",
              "gateway.generate", "gateway.provider.call", "prompt.context.build", "use_case.document_qa")
SPAN_KEYS = {"name", "trace_id", "span_id", "parent_id", "duration_ms", "attributes"}


@pytest.fixture(scope="module")
async def database() -> AsyncIterator[str]:
    async with temporary_database() as url:
        yield url


async def demo(database: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**checkout_env(), "AISDK_DATABASE_URL": database}
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "aisdk.cli", "demo", *args], cwd=ROOT, env=env,
                                   capture_output=True, text=True, timeout=180)


async def test_demo_json_cites_the_refund_policy_only_and_its_trace_is_whole(database: str) -> None:
    out = await demo(database, "--json")
    assert out.returncode == 0, out.stderr
    got: dict[str, Any] = json.loads(out.stdout)
    # The answer's keys are those of `aisdk ask --json`, a session's and a run's included (empty in rag mode).
    assert set(got) == {"answer", "status", "grounded", "sources", "tokens", "cost", "model", "run_id", "session_id",
                        "turn", "awaiting_approval", "spans"}
    assert (got["run_id"], got["session_id"], got["turn"], got["awaiting_approval"]) == ("", "", 0, False)
    assert got["status"] == "answered" and got["grounded"] is True
    assert got["model"] == "local/extractive", "offline, the chat alias is the local model"
    assert "30 days" in got["answer"]
    assert got["sources"] and {s["document_id"] for s in got["sources"]} == {"refund-policy.md"}
    for source in got["sources"]:
        assert set(source) == {"document_id", "chunk_id", "score", "snippet"} and source["score"] > 0
    assert got["tokens"]["total"] == got["tokens"]["prompt"] + got["tokens"]["completion"] > 0
    assert got["cost"] > 0

    spans = got["spans"]
    assert all(set(s) == SPAN_KEYS for s in spans)
    assert len({s["trace_id"] for s in spans}) == 1, "one trace"
    names = {s["name"] for s in spans}
    assert set(SEED_SPANS) <= names, set(SEED_SPANS) - names
    ids = {s["span_id"] for s in spans}
    roots = [s for s in spans if s["parent_id"] is None]
    assert len(roots) == 1 and all(s["parent_id"] in ids for s in spans if s is not roots[0]), "parents resolve"
    qa = next(s for s in spans if s["name"] == "use_case.document_qa")
    assert qa["attributes"]["tenant.id"] == "demo" and qa["attributes"]["user.id"] == "demo-user"


async def test_demo_prints_the_answer_its_source_and_one_trace(database: str) -> None:
    out = await demo(database)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("answer") and "30 days" in line for line in lines), out.stdout
    first = next(i for i, line in enumerate(lines) if line.startswith("sources"))
    sources = lines[first:next(i for i, line in enumerate(lines) if line.startswith("tokens"))]
    assert sources and all("refund-policy.md" in line for line in sources), out.stdout
    assert any(line.startswith("ingested") and "4 document(s)" in line and "0 failed" in line
               for line in lines), out.stdout
    assert sum(line.startswith("trace ") for line in lines) == 1
    assert any("use_case.document_qa" in line for line in lines)
