"""`aisdk ingest`, `aisdk ask` and `aisdk agents` as a user runs them, against
a running deployment: the workers (gateway, prompt, RAG, API, an agent) are
served here on a real nats-server and the embedded PostgreSQL, and the
commands run as processes of their own."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from aisdk.components import COMPONENTS
from aisdk.components.agents import Agent, Settings as AgentSettings
from aisdk.components.api import Api
from aisdk.components.prompt import PromptManager
from aisdk.components.rag.worker import RagWorker
from aisdk.components.storage import temporary_database
from runtime.bus import Bus
from runtime.server import EmbeddedServer
from runtime.settings import BusSettings
from tests.support import checkout_env

REFUND = "# Refund policy\nYou can return any unused item within 30 days of delivery for a full refund.\n"
SHIPPING = "Shipping\n\nOrders ship within two business days. Express delivery costs 15 dollars.\n"


@pytest.fixture(scope="module")
def nats_server() -> Iterator[EmbeddedServer]:
    """A server of this module's own: the RAG worker consumes rag.ingest for
    every tenant, which a work-queue stream allows only once."""
    with EmbeddedServer(name="aisdk-cli-qa-test") as server:
        yield server


@pytest.fixture(scope="module")
async def deployment(nats_server: EmbeddedServer) -> AsyncIterator[str]:
    async with temporary_database() as url:
        async with Bus(nats_server.url, BusSettings(name="qa-deployment")) as bus:
            await bus.serve(COMPONENTS["gateway"]())
            await bus.serve(PromptManager(database_url=url))
            await bus.serve(RagWorker(database_url=url))
            await bus.serve(Api())
            yield nats_server.url


async def aisdk(cwd: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "aisdk.cli", *args, "--nats-url", url], cwd=cwd,
                                   env=checkout_env(), capture_output=True, text=True, timeout=120)


def tenant() -> str:
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "refund-policy.md").write_text(REFUND)
    (folder / "shipping.txt").write_text(SHIPPING)
    (folder / "notes.json").write_text("{}")   # not a document type: a directory leaves it out
    return folder


async def test_ingest_indexes_then_skips_unchanged_and_reports_a_bad_file(deployment: str, docs: Path) -> None:
    t = tenant()
    (docs.parent / "broken.pdf").write_bytes(b"%PDF-1.7 this is not a PDF")
    out = await aisdk(docs.parent, deployment, "ingest", "docs", "broken.pdf", "--tenant", t, "--json")
    assert out.returncode == 1
    summary = json.loads(out.stdout)
    assert sorted(summary["indexed"]) == ["docs/refund-policy.md", "docs/shipping.txt"] and summary["skipped"] == []
    [failed] = summary["failed"]
    assert failed["document_id"] == "broken.pdf" and failed["error"]
    assert out.stderr.strip() == "aisdk ingest: 1 of 3 document(s) failed", "one line, and no progress bar off a TTY"

    again = await aisdk(docs.parent, deployment, "ingest", "docs", "--tenant", t)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "2 document(s): 0 indexed, 2 skipped (unchanged), 0 failed"
    assert again.stderr == ""


async def test_ingest_refuses_a_missing_path_before_connecting(docs: Path) -> None:
    out = await aisdk(docs.parent, "nats://127.0.0.1:1", "ingest", "docs", "nowhere.md", "--tenant", "acme")
    assert out.returncode == 1 and out.stderr.strip() == "aisdk ingest: nowhere.md: no such file or directory"


async def test_ingest_draws_progress_on_a_terminal_only(deployment: str, docs: Path) -> None:
    leader, follower = pty.openpty()
    try:
        proc = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "aisdk.cli", "ingest", "docs", "--tenant", tenant(), "--nats-url",
                             deployment], cwd=docs.parent, env=checkout_env(), stdout=subprocess.PIPE,
            stderr=follower, text=True, timeout=120)
        os.close(follower)
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
    assert proc.returncode == 0
    assert b"\ringesting [" in drawn and b"2/2" in drawn
    assert "ingesting" not in proc.stdout, "the bar is on stderr; stdout has the summary only"


async def test_ask_prints_answer_sources_tokens_and_cost(deployment: str, docs: Path) -> None:
    t = tenant()
    assert (await aisdk(docs.parent, deployment, "ingest", "docs", "--tenant", t)).returncode == 0
    out = await aisdk(docs.parent, deployment, "ask", "What is the refund policy?", "--tenant", t, "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert "30 days" in got["answer"]
    assert [s["document_id"] for s in got["sources"]] == ["docs/refund-policy.md"]
    assert got["tokens"]["total"] > 0 and got["cost"] > 0 and got["model"] == "local/extractive"
    assert got["status"] == "answered" and got["grounded"] is True

    away = await aisdk(docs.parent, deployment, "ask", "What is the capital of Peru?", "--tenant", t, "--json")
    assert away.returncode == 0, away.stderr
    refused = json.loads(away.stdout)
    assert refused["status"] == "not_found" and refused["sources"] == []
    assert refused["answer"] == "The documents do not answer this."

    text = await aisdk(docs.parent, deployment, "ask", "What is the refund policy?", "--tenant", t, "--mode", "rag")
    assert text.returncode == 0, text.stderr
    labels = [line.split()[0] for line in text.stdout.splitlines() if line and not line.startswith(" ")]
    assert labels == ["answer", "status", "sources", "tokens", "cost", "model"]
    assert "answered, grounded" in text.stdout
    assert "docs/refund-policy.md" in text.stdout


async def test_ask_without_an_api_worker_says_so(docs: Path) -> None:
    with EmbeddedServer(name="aisdk-empty") as empty:
        out = await aisdk(docs.parent, empty.url, "ask", "What is the refund policy?", "--tenant", "acme")
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1
    assert out.stderr.startswith("aisdk ask: ") and "api.queries" in out.stderr


async def test_agents_lists_the_live_agents_and_their_state(deployment: str, docs: Path) -> None:
    t = tenant()
    async with Bus(deployment, BusSettings(name="qa-agents")) as bus:
        await Agent("helper", t, capabilities=["search"], settings=AgentSettings(status_interval_s=0.3)).join(bus)
        out = await aisdk(docs.parent, deployment, "agents", "--tenant", t, "--json")
        assert out.returncode == 0, out.stderr
        assert [(r["agent_id"], r["state"], r["capabilities"]) for r in json.loads(out.stdout)] == \
            [("helper", "IDLE", ["search"])]
        table = await aisdk(docs.parent, deployment, "agents", "--tenant", t)
        assert table.stdout.splitlines()[0].split()[:3] == ["AGENT", "STATE", "TASKS"]
        assert table.stdout.splitlines()[1].split()[:2] == ["helper", "IDLE"]
    none = await aisdk(docs.parent, deployment, "agents", "--tenant", tenant(), "--wait", "0.5")
    assert none.returncode == 0 and none.stdout.strip().startswith("no live agents")
