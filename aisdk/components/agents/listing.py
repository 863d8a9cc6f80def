"""Which agents of a tenant are live, and in which state: `aisdk agents`.

Live agents come from micro discovery: each agent serves agent.message of its
tenant in its queue group `agent.<id>`, which $SRV.INFO lists. Their state
comes from agent.status, which every agent broadcasts on each change and
re-broadcasts every status_interval_s: the listing listens until every
discovered agent has reported, or the wait is over. The agents service
announces the agents whose runs await approval the same way (every
status_interval_s), so they are listed, with those runs, when an
announcement falls within the listing's wait."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from ai.agent.v1 import agent_bus, agent_pb2
from nats.aio.msg import Msg

from runtime.bus import Bus, Observed

_GROUP_PREFIX = "agent."
# The micro protocol's discovery subject for the agent component.
_INFO = f"$SRV.INFO.{agent_bus.AGENT_MESSAGE.component}"


@dataclass(slots=True)
class AgentRow:
    agent_id: str
    state: str
    active_tasks: int = 0
    capabilities: list[str] = field(default_factory=list)
    instances: int = 0
    # Runs of the agent that wait for an approval (`aisdk agents approve RUN`).
    awaiting_approval: list[str] = field(default_factory=list)


async def _discover(bus: Bus, tenant: str, wait_s: float) -> dict[str, int]:
    """Agent id -> instances serving its messages on the tenant."""
    subject = bus.subject(agent_bus.AGENT_MESSAGE, tenant)
    found: dict[str, int] = {}
    inbox = bus.nc.new_inbox()

    async def on_info(msg: Msg) -> None:
        try:
            info = json.loads(msg.data)
        except ValueError:
            return
        for ep in info.get("endpoints") or ():
            group = str(ep.get("queue_group") or "")
            if ep.get("subject") == subject and group.startswith(_GROUP_PREFIX) and group != _GROUP_PREFIX:
                agent_id = group[len(_GROUP_PREFIX):]
                found[agent_id] = found.get(agent_id, 0) + 1

    sub = await bus.nc.subscribe(inbox, cb=on_info)
    try:
        await bus.nc.publish(_INFO, b"", reply=inbox)
        await asyncio.sleep(wait_s)
    finally:
        await sub.unsubscribe()
    return found


async def list_agents(bus: Bus, tenant: str, *, discovery_s: float = 0.3, wait_s: float = 6.0) -> list[AgentRow]:
    """Rows of the tenant's live agents, by id. An agent that has not
    reported within wait_s is listed with state "UNKNOWN"."""
    latest: dict[str, agent_pb2.AgentStatus] = {}

    async def on_status(o: Observed) -> None:
        if o.payload is not None:
            latest[o.payload.agent_id] = o.payload

    sub = await bus.subscribe(agent_bus.AGENT_STATUS, on_status, tenant_id=tenant)
    try:
        live = await _discover(bus, tenant, discovery_s)
        deadline = time.monotonic() + wait_s
        while any(a not in latest for a in live) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await sub.unsubscribe()
    rows = []
    # An agent whose runs wait for approval is listed even when no instance
    # of it serves messages: the agents service runs it and re-announces it.
    for agent_id, heard in latest.items():
        if agent_id not in live and heard.state == agent_pb2.AGENT_STATE_AWAITING_APPROVAL:
            live[agent_id] = 0
    for agent_id in sorted(live):
        status = latest.get(agent_id)
        if status is None:
            rows.append(AgentRow(agent_id, "UNKNOWN", instances=live[agent_id]))
            continue
        if status.state == agent_pb2.AGENT_STATE_STOPPED:
            continue
        state = agent_pb2.AgentState.Name(status.state).removeprefix("AGENT_STATE_")
        rows.append(AgentRow(agent_id, state, status.active_tasks, list(status.capabilities), live[agent_id],
                             list(status.awaiting_approval)))
    return rows
