"""`aisdk dlq list | show | replay`: the dead letters in the DLQ stream.

    aisdk dlq list --operation rag.ingest --tenant acme --min-age 10m
    aisdk dlq show 42
    aisdk dlq replay 42             # once the cause is fixed
    aisdk dlq replay --all --operation rag.ingest --tenant acme

One JSON document per line on stdout. A replay sends the original envelope
(id, tenant and trace context unchanged) to the subject it failed on and
removes the letter; if it fails again it comes back as a new letter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format

from aisdk.cli import bus as bus_cli
from aisdk.cli import registry
from aisdk.cli.errors import CommandError
from runtime.contract import Pattern, check_tenant

if TYPE_CHECKING:
    from aisdk.cli import letters

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    """'90', '90s', '10m', '2h', '7d' -> seconds."""
    m = _DURATION.match(text.strip())
    if m is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 30s, 10m, 2h or 7d")
    return float(m.group(1)) * _UNIT[m.group(2)]


def _operation(args: argparse.Namespace) -> str | None:
    if args.operation is None:
        return None
    return registry.spec(args.operation, tuple(Pattern)).key


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    if args.tenant is not None:
        check_tenant(args.tenant)
    return {"operation": _operation(args), "tenant": args.tenant, "min_age": args.min_age, "max_age": args.max_age}


async def _with_bus(args: argparse.Namespace, work: Any) -> int:
    bus = await bus_cli._connected(args)
    try:
        result: int = await work(bus, bus.nc.jetstream(timeout=5))
        return result
    finally:
        await bus.close()


def _detail(letter: letters.Letter) -> dict[str, Any]:
    row = letter.summary()
    original = letter.original
    if original is None:
        row["data_hex"] = letter.letter.data[:4096].hex()
        return row
    row["envelope"] = json_format.MessageToDict(original, preserving_proto_field_name=True)
    row["envelope"].pop("data", None)
    spec = registry.load().BY_KEY.get(".".join(letter.subject.split(".")[1:3]))
    if spec is not None and original.type == spec.request_name:
        try:
            payload = spec.request_type.FromString(original.data)
            row["payload"] = json_format.MessageToDict(payload, preserving_proto_field_name=True)
        except Exception as e:  # noqa: BLE001 - a letter is often a letter because its payload is broken
            row["payload_error"] = f"{type(e).__name__}: {e}"
    return row


async def _list(args: argparse.Namespace) -> int:
    from aisdk.cli import letters  # NATS and the contracts load only when the command runs

    filters = _filters(args)

    async def work(bus: Any, js: Any) -> int:
        for letter in await letters.read(js, bus.prefix, limit=args.limit, **filters):
            print(json.dumps(letter.summary()), flush=True)
        return 0

    return await _with_bus(args, work)


async def _show(args: argparse.Namespace) -> int:
    from aisdk.cli import letters  # NATS and the contracts load only when the command runs

    async def work(bus: Any, js: Any) -> int:
        letter = await letters.get(js, bus.prefix, args.seq)
        if letter is None:
            raise CommandError(f"no dead letter at sequence {args.seq} (see `aisdk dlq list`)")
        print(json.dumps(_detail(letter)))
        return 0

    return await _with_bus(args, work)


async def _replay(args: argparse.Namespace) -> int:
    from aisdk.cli import letters  # NATS and the contracts load only when the command runs

    if bool(args.seq) == args.all:
        raise CommandError("name the letters to replay by sequence, or pass --all with filters, not both")
    filters = _filters(args)

    async def work(bus: Any, js: Any) -> int:
        if args.all:
            chosen = await letters.read(js, bus.prefix, limit=args.limit, **filters)
        else:
            chosen = []
            for seq in args.seq:
                letter = await letters.get(js, bus.prefix, seq)
                if letter is None:
                    raise CommandError(f"no dead letter at sequence {seq} (see `aisdk dlq list`)")
                chosen.append(letter)
        for letter in chosen:
            await letters.replay(js, bus.nc, bus.prefix, letter)
            print(json.dumps({"replayed": letter.seq, "subject": letter.subject,
                              "id": letter.original.id if letter.original else None}), flush=True)
        return 0

    return await _with_bus(args, work)


def register(sub: Any) -> None:
    p = sub.add_parser("dlq", help="list, show and replay dead letters")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    def filters(q: argparse.ArgumentParser) -> None:
        q.add_argument("--operation", help="only letters from this operation, e.g. rag.ingest")
        q.add_argument("--tenant", help="only this tenant's letters")
        q.add_argument("--min-age", type=duration, help="only letters at least this old (30s, 10m, 2h, 7d)")
        q.add_argument("--max-age", type=duration, help="only letters at most this old")
        q.add_argument("--limit", type=int, default=0, help="at most this many (default: all)")

    q = verbs.add_parser("list", help="one line per letter: subject, tenant, age, code, reason, attempts")
    filters(q)
    bus_cli.connection_args(q)
    q.set_defaults(func=lambda a: asyncio.run(_list(a)))

    q = verbs.add_parser("show", help="one letter in full: reason, original envelope, decoded payload")
    q.add_argument("seq", type=int, help="the letter's sequence (from `aisdk dlq list`)")
    bus_cli.connection_args(q)
    q.set_defaults(func=lambda a: asyncio.run(_show(a)))

    q = verbs.add_parser("replay", help="re-drive letters to their subject (once the cause is fixed) and remove them")
    q.add_argument("seq", type=int, nargs="*", help="sequences of the letters to replay")
    q.add_argument("--all", action="store_true", help="every letter that matches the filters")
    filters(q)
    bus_cli.connection_args(q)
    q.set_defaults(func=lambda a: asyncio.run(_replay(a)))
