"""`aisdk bench`: the runtime measured beside raw nats-py and FastStream.
The benchmark loads only when the command runs, and needs the bench extra."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from aisdk.cli import evaluate, extras

_NEEDS = ("faststream", "pydantic")


def cmd_bench(args: argparse.Namespace) -> int:
    extras.require("aisdk bench", extras.BENCH,
                   _NEEDS + (("matplotlib",) if args.plot else ()) + (("uvloop",) if args.uvloop else ()))
    from aisdk.bench import report, run

    plan = run.QUICK if args.quick else run.FULL
    if args.rounds:
        plan = dataclasses.replace(plan, rounds=args.rounds)
    measured = run.run(plan, components=not args.no_components)
    if args.uvloop:
        import uvloop

        result = uvloop.run(measured)
    else:
        result = asyncio.run(measured)
    summary = report.summary(result)
    # Answers are measured beside speed: the PostgreSQL-manual evaluation set
    # (aisdk eval), when its extras are installed; not in a quick run.
    quality = None
    if not args.quick and not args.no_eval and not args.no_components and not extras.missing(evaluate.NEEDS):
        quality = evaluate.evaluate([evaluate.LARGE_SET])
        summary["eval"] = quality
    print(json.dumps(summary, indent=2) if args.json else report.markdown(summary).rstrip("\n"))
    if quality is not None and not args.json:
        from aisdk.cli.evaluation import report as eval_report

        print("\n### Answers (aisdk eval)\n\n```text\n" + "\n\n".join(eval_report.table(x) for x in quality["sets"]) + "\n```")
    if args.plot:
        from aisdk.bench import plot

        plot.chart(result.results, args.plot)
        print(f"aisdk bench: wrote {args.plot}", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="measure the runtime beside raw nats-py and FastStream on an embedded nats-server",
        description="Codec, pub/sub, request/reply (plain and traced), a queue group and JetStream, each beside "
        "raw nats-py / upb and FastStream in the same run; with the components extra, the gateway beside a bare "
        "litellm call, LLMOps, RAG ingestion, queries and queuing; prints markdown tables, or JSON.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--quick", action="store_true", help="a fifth of the work in two rounds (a smoke run)")
    p.add_argument("--rounds", type=int, metavar="N", help="rounds to run (default 7, quick 2)")
    p.add_argument("--plot", type=Path, metavar="FILE", help="write the latency distributions to this PNG")
    p.add_argument("--no-components", action="store_true",
                   help="the messaging rows only: leave out the gateway, LLMOps and RAG rows (and the evaluation)")
    p.add_argument("--uvloop", action="store_true",
                   help="run everything, raw nats-py and FastStream included, on uvloop's event loop")
    p.add_argument("--no-eval", action="store_true",
                   help="leave out the answer evaluation on the PostgreSQL-manual set (aisdk eval --set postgres)")
    p.set_defaults(func=cmd_bench)
