"""`aisdk demo` (`make demo`): document Q&A end to end on one machine.

An embedded nats-server and the embedded PostgreSQL start, and every worker
the flow needs (api, rag, gateway, prompt, llmops) is served in this process;
the shipped documents are ingested (a refund policy among them); the question
goes through api.queries; the answer, its sources, tokens, cost and the
question's trace (collected in memory) are printed.

Offline by default; with the deployment pointed at a provider
(AISDK_GATEWAY_MODEL or AISDK_GATEWAY_MODELS, docs/components.md) the answer
comes from it, as for every other command: the workers ask for the gateway's
aliases, and the answer names the model that gave it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aisdk.cli import answers, ingesting
from aisdk.cli.errors import CommandError

if TYPE_CHECKING:
    from runtime.telemetry import Telemetry
    from runtime.telemetry.view import SpanRecord

# A tenant of the demo's own: its documents stay indexed in the database, so
# a second run finds them unchanged and embeds nothing.
TENANT = "demo"
USER = "demo-user"
QUESTION = "What is the refund policy?"
DOCUMENTS = Path(__file__).resolve().parent / "demo_docs"
# The workers' spans of the question end just after its reply is sent.
TRACE_WAIT_S = 5.0


LABEL = 12


def show(label: str, text: str) -> None:
    print(f"{label:<{LABEL}} {text}")


def _warm() -> None:
    """litellm's import (about 5 s), the tokenizer and WordLlama, off the event loop."""
    from aisdk.components.gateway import local
    from aisdk.components.gateway.providers import litellm

    litellm().token_counter(model="local/extractive", text="warm up")
    local.wordllama()


def span_json(span: SpanRecord) -> dict[str, Any]:
    return {
        "name": span.name,
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_id": span.parent_span_id,
        "duration_ms": round(span.duration_ns / 1e6, 3),
        "attributes": span.attributes,
    }


def _whole(spans: list[SpanRecord]) -> bool:
    ids = {s.span_id for s in spans}
    return sum(s.parent_span_id is None for s in spans) == 1 and all(
        s.parent_span_id in ids for s in spans if s.parent_span_id is not None
    )


async def question_trace(tel: Telemetry, query_id: str) -> list[SpanRecord]:
    """The spans of the question's trace, once every parent has ended (or
    after TRACE_WAIT_S, as they are)."""
    from runtime.telemetry.view import records
    from runtime.telemetry.names import SPAN

    deadline = time.monotonic() + TRACE_WAIT_S
    while True:
        spans = records(tel.finished_spans())
        root = next((s for s in spans if s.name == SPAN.USE_CASE_DOCUMENT_QA.name
                     and s.attributes.get("api.query.id") == query_id), None)
        trace = [s for s in spans if root is not None and s.trace_id == root.trace_id]
        if (trace and _whole(trace)) or time.monotonic() > deadline:
            return sorted(trace, key=lambda s: s.start_unix_nano)
        await asyncio.sleep(0.02)


async def run(url: str, as_json: bool) -> int:
    # Imported here: `aisdk --help` and `aisdk gen` must not depend on
    # generated code or components.
    from ai.api.v1 import api_bus, api_pb2

    from aisdk.components import storage
    from aisdk.components.api import Api
    from aisdk.components.gateway.service import Gateway
    from aisdk.components.llmops import LlmOps
    from aisdk.components.prompt import PromptManager
    from aisdk.components.rag.worker import RagWorker
    from runtime import telemetry
    from runtime.bus import Bus
    from runtime.settings import BusSettings
    from runtime.telemetry import render_waterfall

    say = (lambda label, text: None) if as_json else show
    tel = telemetry.setup("demo", exporter="memory", metrics_exporter="none", sampler_ratio=1.0)
    try:
        async with Bus(url, BusSettings(name="demo"), telemetry=tel) as bus:
            t0 = time.perf_counter()
            # The slow starts overlap: litellm's import in a thread while
            # PostgreSQL starts (once: its start-up lock is per process, not
            # per thread) and the RAG and LLMOps workers apply their migrations.
            warming = asyncio.create_task(asyncio.to_thread(_warm))
            database = await storage.database_url()
            await asyncio.gather(bus.serve(RagWorker(database_url=database)), bus.serve(LlmOps(database_url=database)), bus.serve(Api()))
            await warming
            await asyncio.gather(bus.serve(Gateway()), bus.serve(PromptManager(database_url=database)))
            say("workers", f"api, rag, gateway, prompt, llmops serving in {time.perf_counter() - t0:.1f} s")

            t0 = time.perf_counter()
            items = ingesting.collect([DOCUMENTS], base=DOCUMENTS)
            summary = await ingesting.ingest(bus, TENANT, items, timeout=60)
            say("ingested", f"{summary.line()} in {time.perf_counter() - t0:.1f} s "
                            f"({', '.join(i.document_id for i in items)})")
            if summary.failed:
                raise CommandError("; ".join(f"{k}: {v}" for k, v in summary.failed.items()))

            query = api_pb2.ApiQuery(query_id=uuid.uuid4().hex, query=QUESTION, user_id=USER,
                                     mode=api_pb2.QUERY_MODE_AUTO)
            say("question", QUESTION)
            answer = await api_bus.ApiServiceClient(bus, TENANT).queries(query)
            trace = await question_trace(tel, query.query_id)
    finally:
        tel.shutdown()
    if as_json:
        print(json.dumps({**answers.to_json(answer), "spans": [span_json(s) for s in trace]}))
        return 0
    print("\n".join(answers.lines(answer, LABEL)))
    width = min(140, max(100, os.get_terminal_size().columns if sys.stdout.isatty() else 120))
    print("\nthe question's trace:")
    print(render_waterfall(trace, width=width))
    return 0


def main(as_json: bool = False) -> int:
    from runtime.server import EmbeddedServer

    # litellm's pydantic models warn about themselves on import: noise here.
    warnings.filterwarnings("ignore", message=".*ReadOnly.* qualifier", category=UserWarning)

    with EmbeddedServer(name="aisdk-demo") as server:
        if not as_json:
            show("nats-server", f"{server.url} (JetStream on)")
        return asyncio.run(run(server.url, as_json))


def cmd_demo(args: argparse.Namespace) -> int:
    return main(args.json)


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="document Q&A end to end: ingest, ask, answer with sources and its trace",
                       description="Starts an embedded nats-server, the embedded PostgreSQL and the api, rag, "
                       "gateway, prompt and llmops workers; ingests the shipped documents; asks "
                       f"{QUESTION!r}. Offline unless the gateway is configured for a provider.")
    p.add_argument("--json", action="store_true",
                   help="print one object: answer, sources, tokens, cost and the spans of the question's trace")
    p.set_defaults(func=cmd_demo)


if __name__ == "__main__":
    raise SystemExit(main("--json" in sys.argv[1:]))
