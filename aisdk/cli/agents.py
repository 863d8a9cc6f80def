"""`aisdk agents`: the live agents of a tenant and their state."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from aisdk.cli.bus import _connected, _run, connection_args
from runtime.contract import check_tenant


async def _agents(args: argparse.Namespace) -> int:
    from aisdk.components.agents import list_agents

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
    print(f"{'AGENT':<{width}}  {'STATE':<8}  {'TASKS':>5}  {'INSTANCES':>9}  CAPABILITIES")
    for r in rows:
        print(f"{r.agent_id:<{width}}  {r.state:<8}  {r.active_tasks:>5}  {r.instances:>9}  {', '.join(r.capabilities)}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("agents", help="list the live agents of a tenant and their state",
                       description="Agents are found by discovery (each serves agent.message in its queue group "
                       "agent.<id>); their state comes from agent.status. An agent that has not reported within "
                       "--wait seconds is listed as UNKNOWN.")
    p.add_argument("--tenant", required=True)
    p.add_argument("--wait", type=float, default=6.0, help="seconds to wait for each agent's status (default 6)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    connection_args(p)
    p.set_defaults(func=lambda a: _run(_agents(a)))
