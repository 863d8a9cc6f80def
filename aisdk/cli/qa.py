"""`aisdk ingest` and `aisdk ask`: document Q&A against a running deployment
(`aisdk serve api rag gateway prompt llmops`)."""

from __future__ import annotations

import argparse
import json
import uuid
from typing import Any

from aisdk.cli import answers, ingesting
from aisdk.cli.bus import _connected, _run, connection_args
from aisdk.cli.errors import CommandError
from runtime.contract import check_tenant

MODES = ("auto", "rag", "agent", "llm")


async def _ingest(args: argparse.Namespace) -> int:
    check_tenant(args.tenant)
    items = ingesting.collect(args.paths)
    bus = await _connected(args)
    try:
        summary = await ingesting.ingest(bus, args.tenant, items, timeout=args.timeout,
                                         progress=ingesting.Progress(len(items)))
    finally:
        await bus.close()
    if args.json:
        print(json.dumps(summary.to_json()))
    else:
        for doc_id, error in summary.failed.items():
            print(f"failed   {doc_id}: {error}")
        print(summary.line())
    if summary.failed:
        raise CommandError(f"{len(summary.failed)} of {len(items)} document(s) failed")
    return 0


async def _ask(args: argparse.Namespace) -> int:
    from ai.api.v1 import api_bus, api_pb2

    check_tenant(args.tenant)
    if args.stream:
        return await _ask_streaming(args)
    query = api_pb2.ApiQuery(query_id=uuid.uuid4().hex, query=args.question, user_id=args.user,
                             mode=f"QUERY_MODE_{args.mode.upper()}", session_id=args.session)
    bus = await _connected(args)
    try:
        options: dict[str, Any] = {"timeout": args.timeout} if args.timeout else {}
        got = await api_bus.ApiServiceClient(bus, args.tenant).queries(query, **options)
    finally:
        await bus.close()
    if args.json:
        print(json.dumps(answers.to_json(got)))
    else:
        print("\n".join(answers.lines(got)))
    return 0


async def _ask_streaming(args: argparse.Namespace) -> int:
    """--stream: a run of the agent on agent.runs.stream, its answer printed
    as it is written, then the rest of what `ask` prints."""
    from ai.agent.v1 import agent_bus, agent_pb2
    from ai.api.v1 import api_pb2
    from ai.gateway.v1 import gateway_pb2

    if args.mode != "agent":
        raise CommandError("--stream streams the agent's answer: use it with --mode agent")
    request = agent_pb2.AgentRunRequest(run_id=f"cli-{uuid.uuid4().hex}", question=args.question,
                                        session_id=args.session, user_id=args.user)
    bus = await _connected(args)
    printed: list[str] = []
    reply = agent_pb2.AgentRunReply()
    try:
        options: dict[str, Any] = {"timeout": args.timeout} if args.timeout else {}
        async for chunk in agent_bus.AgentServiceClient(bus, args.tenant).runs_stream(request, **options):
            if chunk.delta and not args.json:
                if not printed:
                    print(f"{'answer':<8} ", end="", flush=True)
                print(chunk.delta, end="", flush=True)
                printed.append(chunk.delta)
            if chunk.HasField("reply"):
                reply = chunk.reply
    finally:
        await bus.close()
    if reply.state == agent_pb2.RUN_STATE_FAILED:
        raise CommandError(f"run {reply.run_id} failed: {reply.error}")
    got = api_pb2.ApiAnswer(answer=reply.answer, sources=reply.sources,
                            tokens=gateway_pb2.TokenUsage(total=reply.tokens), cost=reply.cost, status=reply.status,
                            model=reply.model, run_id=reply.run_id, session_id=reply.session_id, turn=reply.turn,
                            awaiting_approval=reply.state == agent_pb2.RUN_STATE_AWAITING_APPROVAL)
    if args.json:
        print(json.dumps(answers.to_json(got)))
        return 0
    rest = answers.lines(got)
    if printed:
        print()
        if "".join(printed) != reply.answer:
            # The printed text was not the answer (a model that spoke before
            # a tool call, or a run finished elsewhere): the run's answer stands.
            print(rest[0])
        rest = rest[1:]
    print("\n".join(rest))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("ingest", help="send files or directories to the RAG worker and wait until they are indexed",
                       description="Publishes each document on rag.ingest and follows rag.status until it is "
                       "indexed, skipped (unchanged) or failed. A directory contributes its "
                       f"{', '.join(sorted(ingesting.EXTENSIONS))} files. Exit 1 when a document failed.")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--tenant", required=True)
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds to wait for the documents after the last is sent (default 300)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    connection_args(p)
    p.set_defaults(func=lambda a: _run(_ingest(a)))

    p = sub.add_parser("ask", help="ask a question through the API (api.queries); prints answer, sources, tokens, cost")
    p.add_argument("question")
    p.add_argument("--tenant", required=True)
    p.add_argument("--mode", choices=MODES, default="auto",
                   help="rag: from the documents; agent: an agent with the RAG search tool; llm: the model alone; "
                   "auto (default): rag, or agent with --session")
    p.add_argument("--session", default="", metavar="ID",
                   help="continue this conversation (created on its first question); needs `aisdk serve agents`")
    p.add_argument("--user", default="", help="user id, recorded on the trace")
    p.add_argument("--timeout", type=float, help="seconds (default: the registry's, 60)")
    p.add_argument("--json", action="store_true", help="print {answer, sources, tokens, cost} as JSON")
    p.add_argument("--stream", action="store_true",
                   help="with --mode agent: print the answer as it is written (agent.runs.stream)")
    connection_args(p)
    p.set_defaults(func=lambda a: _run(_ask(a)))
