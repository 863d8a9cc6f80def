"""`aisdk eval`: evaluation sets through the real deployment, figures beside
the baselines (aisdk.cli.evaluation)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import warnings
from typing import Any

from aisdk.cli import extras

DEFAULT_SETS = ("demo",)
# The set `aisdk bench` measures answers on.
LARGE_SET = "postgres"


def _warm() -> None:
    """litellm's import (about 5 s), the tokenizer and WordLlama, off the event loop."""
    from aisdk.components.gateway import local
    from aisdk.components.gateway.providers import litellm

    litellm().token_counter(model=local.CHAT_MODEL, text="warm up")
    local.wordllama()


async def _evaluate(url: str, names: list[str], calibrate: bool) -> dict[str, Any]:
    from aisdk.cli.evaluation import report, sets
    from aisdk.cli.evaluation.run import run_set
    from aisdk.components import storage
    from aisdk.components.gateway.service import Gateway
    from aisdk.components.prompt import PromptManager
    from aisdk.components.rag.worker import RagWorker
    from runtime.bus import Bus
    from runtime.settings import BusSettings
    from runtime.telemetry import Telemetry

    chosen = sets.load_all(names)
    async with Bus(url, BusSettings(name="eval")) as bus:
        warming = asyncio.create_task(asyncio.to_thread(_warm))
        database = await storage.database_url()
        rag = RagWorker(database_url=database)
        await bus.serve(rag)
        await warming
        await asyncio.gather(bus.serve(Gateway()), bus.serve(PromptManager(database_url=database)))
        runs = []
        for eval_set in chosen:
            t0 = time.perf_counter()
            runs.append(await run_set(bus, Telemetry.disabled(), rag, eval_set))
            print(f"aisdk eval: set {eval_set.name} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    out: dict[str, Any] = {"sets": [report.summary(r) for r in runs]}
    if calibrate:
        from aisdk.cli.evaluation.calibrate import calibrate as fit

        out["calibration"] = fit(runs)
    return out


NEEDS = ("bm25s", "Stemmer", "litellm", "psycopg")


def evaluate(names: list[str], calibrate: bool = False) -> dict[str, Any]:
    """The sets through a deployment of their own: an embedded nats-server,
    the embedded (or AISDK_DATABASE_URL's) PostgreSQL, in-process workers."""
    extras.require("aisdk eval", extras.EVAL, NEEDS)
    from runtime.server import EmbeddedServer

    warnings.filterwarnings("ignore", message=".*ReadOnly.* qualifier", category=UserWarning)
    with EmbeddedServer(name="aisdk-eval") as server:
        return asyncio.run(_evaluate(server.url, names, calibrate))


def cmd_eval(args: argparse.Namespace) -> int:
    from aisdk.cli.evaluation import report

    result = evaluate(args.set or list(DEFAULT_SETS), args.calibrate)
    if args.json:
        print(json.dumps(result))
        return 0
    print("\n\n".join(report.table(s) for s in result["sets"]))
    if "calibration" in result:
        c = result["calibration"]
        for label in ("in_sample", "cross_validated"):
            f = c[label]
            print(f"calibration ({label.replace('_', '-')}): precision {f['precision']:.3f}, recall {f['recall']:.3f}, "
                  f"answerable refused {f['answerable_refused']:.3f}")
        for share, f in c["trade_off"].items():
            print(f"  refusing at most {float(share):.0%} of answerable questions (cross-validated): "
                  f"recall {f['recall']:.3f}, precision {f['precision']:.3f}, refused {f['answerable_refused']:.3f}")
        print(f"wrote the calibration: threshold {c['calibration']['threshold']:.4f}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "eval", help="measure answers: retrieval, abstention, grounding and latency on evaluation sets",
        description="Starts an embedded nats-server, the embedded PostgreSQL and the rag, gateway and prompt "
        "workers, ingests each set's documents and asks its questions through rag.queries. Prints hit@1, hit@5, "
        "MRR and nDCG@10 for the fused retrieval beside PostgreSQL full-text alone, vector alone and BM25 on the "
        "same chunks; abstention precision and recall; the share of answer sentences a cited chunk supports; "
        "the latency p50/p95. Sets: demo (the shipped documents) and postgres (a subset of the PostgreSQL 15 "
        "manual), or a folder of your own (docs/components.md).")
    p.add_argument("--set", action="append", metavar="NAME|PATH",
                   help="an evaluation set, by name or folder; repeat for several (default: demo)")
    p.add_argument("--json", action="store_true", help="print one JSON object with every figure and each question")
    p.add_argument("--calibrate", action="store_true",
                   help="fit the abstention decision on these sets and write aisdk/components/rag/calibration.json")
    p.set_defaults(func=cmd_eval)

