"""`aisdk agents`: the live agents of a tenant and their state;
`aisdk agents approve|reject RUN`: a decision on a run awaiting approval."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from aisdk.cli.bus import _connected, _run, connection_args
from aisdk.cli.errors import CommandError
from runtime.contract import check_tenant


async def _decide(args: argparse.Namespace) -> int:
    from ai.agent.v1 import agent_bus, agent_pb2

    check_tenant(args.tenant)
    decision = agent_pb2.ApprovalDecision(run_id=args.run, approve=args.action == "approve", reason=args.reason,
                                          approver=args.approver)
    bus = await _connected(args)
    try:
        options: dict[str, Any] = {"timeout": args.timeout} if args.timeout else {}
        got = await agent_bus.AgentServiceClient(bus, args.tenant).approvals(decision, **options)
    finally:
        await bus.close()
    state = agent_pb2.RunState.Name(got.state).removeprefix("RUN_STATE_").lower().replace("_", " ")
    if args.json:
        print(json.dumps({"run_id": got.run_id, "state": state, "answer": got.answer, "error": got.error}))
    else:
        print(f"run      {got.run_id} {state}")
        print(f"answer   {got.answer or '(none)'}")
    if got.state == agent_pb2.RUN_STATE_FAILED:
        raise CommandError(f"run {got.run_id} failed: {got.error}")
    return 0


async def _agents(args: argparse.Namespace) -> int:
    from aisdk.components.agents import list_agents

    if not args.tenant:
        raise CommandError("--tenant is required")
    check_tenant(args.tenant)
    bus = await _connected(args)
    try:
        rows = await list_agents(bus, args.tenant, wait_s=args.wait)
    finally:
        await bus.close()
    if args.json:
        print(json.dumps([asdict(r) for r in rows]))
        return 0
    if not rows:
        print(f"no live agents for tenant {args.tenant}")
        return 0
    width = max(5, *(len(r.agent_id) for r in rows))
    print(f"{'AGENT':<{width}}  {'STATE':<17}  {'TASKS':>5}  {'INSTANCES':>9}  CAPABILITIES")
    for r in rows:
        print(f"{r.agent_id:<{width}}  {r.state:<17}  {r.active_tasks:>5}  {r.instances:>9}  {', '.join(r.capabilities)}")
        for run in r.awaiting_approval:
            print(f"{'':<{width}}  run {run} awaiting approval: aisdk agents approve|reject {run} --tenant {args.tenant}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("agents", help="list the live agents of a tenant and their state",
                       description="Agents are found by discovery (each serves agent.message in its queue group "
                       "agent.<id>); their state comes from agent.status. An agent that has not reported within "
                       "--wait seconds is listed as UNKNOWN.")
    p.add_argument("--tenant", default="")
    p.add_argument("--wait", type=float, default=6.0, help="seconds to wait for each agent's status (default 6)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    connection_args(p)
    p.set_defaults(func=lambda a: _run(_agents(a)))
    decisions = p.add_subparsers(dest="action", metavar="ACTION")
    for action, text in (("approve", "run the tool call a run waits for, and let the run go on"),
                         ("reject", "refuse it: the model reads the rejection and answers without it")):
        d = decisions.add_parser(action, help=text)
        d.add_argument("run", metavar="RUN")
        d.add_argument("--tenant", required=True)
        d.add_argument("--reason", default="", help="why (the model reads it on a rejection)")
        d.add_argument("--approver", default="", help="who decided, kept with the run")
        d.add_argument("--timeout", type=float, help="seconds to wait for the run to go on (default 60)")
        d.add_argument("--json", action="store_true", help="print {run_id, state, answer, error} as JSON")
        connection_args(d)
        d.set_defaults(func=lambda a: _run(_decide(a)))
