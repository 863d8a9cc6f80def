"""python -m triage serve | setup | ticket: the example's own command line.

Each connects to --nats-url, else $AISDK_NATS_URL, else nats://127.0.0.1:4222.
Status lines go to stderr, results to stdout; a failure is one line on
stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from google.protobuf import json_format
from helpdesk.triage.v1 import triage_bus, triage_pb2

from runtime import Bus, BusSettings, PlatformError
from triage import bootstrap
from triage.features import DatasetError
from triage.service import Triage
from triage.settings import Settings

DEFAULT_URL = "nats://127.0.0.1:4222"
DATA_DIR_ENV = "AISDK_MLOPS_DATA_DIR"


def status(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def _serve(bus: Bus, args: argparse.Namespace) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    service = await bus.serve(Triage(Settings.from_env()), tenants=args.tenant or None)
    for ep in service.endpoints:
        status(f"serving triage: {ep.subject}")
    status(f"ready on {args.nats_url}")
    await stopping.wait()
    status("draining")


async def _setup(bus: Bus, args: argparse.Namespace) -> None:
    data_dir = args.data_dir or os.environ.get(DATA_DIR_ENV)
    if not data_dir:
        raise bootstrap.BootstrapError(f"the MLOps workers' data folder: pass --data-dir or set {DATA_DIR_ENV}")
    model = await bootstrap.train_and_deploy(bus, args.tenant, Path(data_dir))
    status(f"model {model.model_id} version {model.version} deployed (held-out accuracy {model.accuracy:.2f})")
    ingested = await bootstrap.ingest(bus, args.tenant)
    status(f"knowledge base: {len(ingested)} articles indexed")


async def _ticket(bus: Bus, args: argparse.Namespace) -> None:
    ticket = triage_pb2.Ticket(ticket_id=args.id or uuid.uuid4().hex, subject=args.subject, body=args.body)
    triaged = await triage_bus.TriageServiceClient(bus, args.tenant).tickets(ticket)
    print(json.dumps(json_format.MessageToDict(triaged), indent=2))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m triage", description="Support-ticket triage on the aisdk platform.")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, help: str, run: Callable[[Bus, argparse.Namespace], Awaitable[None]]) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help)
        c.add_argument("--nats-url", default=os.environ.get("AISDK_NATS_URL", DEFAULT_URL))
        c.set_defaults(run=run)
        return c

    serve = command("serve", "run a triage worker until SIGTERM", _serve)
    serve.add_argument("--tenant", action="append", help="serve only this tenant (repeatable); default: every tenant")
    setup = command("setup", "train and deploy the classifier, ingest the knowledge base", _setup)
    setup.add_argument("--tenant", required=True)
    setup.add_argument("--data-dir", help=f"the MLOps workers' data folder (default: ${DATA_DIR_ENV})")
    ticket = command("ticket", "triage one ticket and print the result as JSON", _ticket)
    ticket.add_argument("body")
    ticket.add_argument("--subject", default="")
    ticket.add_argument("--tenant", required=True)
    ticket.add_argument("--id", help="the ticket id (default: a new one)")
    return p


async def _run(args: argparse.Namespace) -> None:
    async with Bus(args.nats_url, BusSettings(name=f"triage-{args.command}")) as bus:
        await args.run(bus, args)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        asyncio.run(_run(args))
    except (PlatformError, bootstrap.BootstrapError, DatasetError, ValueError, OSError) as e:
        print(f"python -m triage {args.command}: {e}", file=sys.stderr)
        return 1
    if args.command == "serve":
        status("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
