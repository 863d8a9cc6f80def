"""`aisdk sessions list|show|delete`: a tenant's conversations with the agent
(agent.sessions.*, served by `aisdk serve agents`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from aisdk.cli.bus import _connected, _run, connection_args
from runtime.contract import check_tenant


def _when(ts: Any) -> str:
    return ts.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") if ts.seconds else "-"


async def _sessions(args: argparse.Namespace) -> int:
    from ai.agent.v1 import agent_bus, agent_pb2
    from google.protobuf import json_format

    check_tenant(args.tenant)
    bus = await _connected(args)
    try:
        client = agent_bus.AgentServiceClient(bus, args.tenant)
        if args.action == "list":
            got: Any = await client.sessions_list(agent_pb2.SessionListRequest(user_id=args.user, limit=args.limit))
        elif args.action == "show":
            got = await client.sessions_show(agent_pb2.SessionRef(session_id=args.session, user_id=args.user))
        else:
            got = await client.sessions_delete(agent_pb2.SessionRef(session_id=args.session, user_id=args.user))
    finally:
        await bus.close()
    if args.json:
        print(json.dumps(json_format.MessageToDict(got, preserving_proto_field_name=True)))
    elif args.action == "list":
        print(f"{'SESSION':<24}  {'USER':<12}  {'TURNS':>5}  UPDATED")
        for s in got.sessions:
            print(f"{s.session_id:<24}  {s.user_id or '-':<12}  {s.turns:>5}  {_when(s.updated_at)}")
        if not got.sessions:
            print(f"no sessions for tenant {args.tenant}")
    elif args.action == "show":
        s = got.session
        print(f"session  {s.session_id}  user {s.user_id or '-'}  turns {s.turns}  created {_when(s.created_at)}")
        for t in got.turns:
            tools = ", ".join(c.tool_name for c in t.tool_calls) or "none"
            print(f"{t.number}. user       {t.question}")
            if t.standalone_question != t.question:
                print(f"   asked as   {t.standalone_question}")
            print(f"   assistant  {t.answer}")
            print(f"   tools      {tools}  (run {t.run_id})")
    else:
        print(f"deleted {args.session}" if got.deleted else f"no session {args.session}: nothing deleted")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("sessions", help="list, show or delete the agent's conversations of a tenant",
                       description="Sessions are created by `aisdk ask --session ID` (or agent.sessions.create) "
                       "and kept in the agents service's PostgreSQL.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (("list", "the tenant's sessions, most recent first"),
                         ("show", "a session's turns: questions, answers, tools"),
                         ("delete", "a session and its turns")):
        a = actions.add_parser(action, help=text)
        if action != "list":
            a.add_argument("session", metavar="SESSION")
        else:
            a.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
        a.add_argument("--tenant", required=True)
        a.add_argument("--user", default="", help="only this user's sessions")
        a.add_argument("--json", action="store_true", help="print the reply as JSON")
        connection_args(a)
        a.set_defaults(func=lambda a: _run(_sessions(a)))
