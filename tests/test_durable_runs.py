"""Durable agent runs on real servers: nats-server with JetStream, the
embedded PostgreSQL and the gateway with its offline local provider. An
agents service in a process of its own is killed (SIGKILL) during its run's
second tool call; another process resumes the run from its checkpoints. Runs
that wait for approval outlive the process that paused them."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from ai.agent.v1 import agent_bus, agent_pb2
from ai.envelope.v1 import envelope_pb2

from aisdk.components import COMPONENTS
from aisdk.components.agents import AgentsService, Settings, ToolContext, ToolRegistry
from aisdk.components.agents.answering import run
from aisdk.components.storage import temporary_database
from runtime.bus import Bus, Observed
from runtime.errors import RemoteError
from runtime.server import EmbeddedServer
from runtime.settings import BusSettings
from tests.support import checkout_env

QUESTION = "Reserve the stock and charge the card for order 42."
# Effects of the tools, one line each, in a file: what a crash must not repeat.
EFFECTS = '''
import asyncio, sys
from pathlib import Path
from aisdk.components.agents import ToolContext, ToolRegistry

def order_tools(log: Path, block_second: bool) -> ToolRegistry:
    registry = ToolRegistry()

    async def effect(name: str, key: str) -> str:
        lines = log.read_text().splitlines() if log.exists() else []
        first_try = not any(line.startswith(f"start {name} ") for line in lines)
        with log.open("a") as f:
            f.write(f"start {name} {key}\\n")
        if block_second and first_try and any(line.startswith("done ") for line in lines):
            print(f"blocking in {name}", flush=True)
            await asyncio.Event().wait()
        with log.open("a") as f:
            f.write(f"done {name} {key}\\n")
        return f"{name} done for the order."

    async def reserve_stock(ctx: ToolContext, order: str) -> str:
        "Reserve stock for the items of an order."
        return await effect("reserve_stock", ctx.idempotency_key)

    async def charge_card(ctx: ToolContext, order: str) -> str:
        "Charge the customer's card for an order."
        return await effect("charge_card", ctx.idempotency_key)

    registry.add(reserve_stock)
    registry.add(charge_card, needs_approval=not block_second)
    return registry
'''
RUNNER = EFFECTS + '''
import logging
from aisdk.components.agents import AgentsService, Settings
from runtime.bus import Bus
from runtime.settings import BusSettings

async def main(url: str, database: str, log: str) -> None:
    settings = Settings(run_lease_s=1.0, task_poll_s=0.05)
    async with Bus(url, BusSettings(name="runner")) as bus:
        await bus.serve(AgentsService(order_tools(Path(log), True), settings=settings, database_url=database))
        print("serving", flush=True)
        await asyncio.Event().wait()

logging.basicConfig(level=logging.WARNING, format="%(message)s")
asyncio.run(main(*sys.argv[1:]))
'''
namespace: dict[str, Any] = {}
exec(compile(EFFECTS, "order_tools", "exec"), namespace)  # the same tools, in this process, for approvals


def order_tools(log: Path, block_second: bool) -> ToolRegistry:
    registry: ToolRegistry = namespace["order_tools"](log, block_second)
    return registry


def tenant() -> str:
    return "r" + uuid.uuid4().hex[:10]


@dataclass
class Rig:
    bus: Bus
    url: str
    server: EmbeddedServer


@pytest.fixture(scope="module")
def nats_server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(name="aisdk-durable-runs-test") as server:
        yield server


@pytest.fixture(scope="module")
async def rig(nats_server: EmbeddedServer) -> AsyncIterator[Rig]:
    async with temporary_database() as url:
        async with Bus(nats_server.url, BusSettings(name="durable-runs-test")) as bus:
            await bus.serve(COMPONENTS["gateway"]())
            yield Rig(bus, url, nats_server)


class Runner:
    """`AgentsService` in a process of its own."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, rig: Rig, log: Path) -> Runner:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", RUNNER, rig.server.url, rig.url, str(log), env=checkout_env(),
            stdout=asyncio.subprocess.PIPE)
        runner = cls(proc)
        assert await runner.line() == "serving"
        return runner

    async def line(self) -> str:
        assert self.proc.stdout is not None
        return (await asyncio.wait_for(self.proc.stdout.readline(), 120)).decode().strip()

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()


async def steps(url: str, t: str, run_id: str) -> list[str]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT kind FROM agent_run_steps WHERE tenant_id = %s AND run_id = %s ORDER BY seq",
                                 (t, run_id))
        return [r[0] for r in await cur.fetchall()]


async def test_a_run_killed_during_its_second_tool_call_is_resumed_by_another_process(
        rig: Rig, tmp_path: Path) -> None:
    t, log = tenant(), tmp_path / "effects.log"
    first = await Runner.start(rig, log)
    second: Runner | None = None
    request = agent_pb2.AgentRunRequest(run_id="order-42", question=QUESTION)
    try:
        # The caller asks again every 3 s with the same run id until a reply comes.
        asked = asyncio.create_task(run(rig.bus, t, request, attempt_s=3.0, deadline_s=120))
        assert await first.line() == "blocking in charge_card"
        await first.kill()
        assert first.proc.returncode == -signal.SIGKILL
        assert not asked.done()
        second = await Runner.start(rig, log)
        reply = await asked
        # Asked again, the finished run answers from its record.
        again = await run(rig.bus, t, request, attempt_s=10.0)
    finally:
        await first.kill()
        if second is not None:
            await second.kill()
    assert reply.state == agent_pb2.RUN_STATE_SUCCEEDED and reply.attempts == 2 and reply.answer
    effects = [line.split() for line in log.read_text().splitlines()]
    # The first tool ran once; the second was cut off once, then completed once,
    # both times with the same idempotency key.
    assert [e[:2] for e in effects] == [["start", "reserve_stock"], ["done", "reserve_stock"],
                                        ["start", "charge_card"], ["start", "charge_card"],
                                        ["done", "charge_card"]]
    keys = {name: {e[2] for e in effects if e[1] == name} for name in ("reserve_stock", "charge_card")}
    assert all(len(k) == 1 and len(next(iter(k))) == 64 for k in keys.values())
    assert keys["reserve_stock"] != keys["charge_card"]
    # Each model reply and tool result was checkpointed once: the model was
    # not asked again for a reply it had given before the crash.
    assert await steps(rig.url, t, "order-42") == ["model", "tool", "model", "tool", "model"]
    assert again == reply
    assert len(log.read_text().splitlines()) == 5


async def test_a_streamed_run_whose_process_died_is_streamed_again_from_its_checkpoints(
        rig: Rig, tmp_path: Path) -> None:
    t, log = tenant(), tmp_path / "effects.log"
    first = await Runner.start(rig, log)
    second: Runner | None = None
    request = agent_pb2.AgentRunRequest(run_id="order-43", question=QUESTION)
    client = agent_bus.AgentServiceClient(rig.bus, t)

    async def first_chunk() -> agent_pb2.AgentRunChunk:
        async for chunk in client.runs_stream(request, timeout=60):
            return chunk
        raise AssertionError("the stream ended without a chunk")

    try:
        streamed = asyncio.create_task(first_chunk())
        assert await first.line() == "blocking in charge_card"
        await first.kill()
        assert not streamed.done()
        streamed.cancel()  # the caller gives up on the stream of the dead process
        second = await Runner.start(rig, log)
        chunks = [c async for c in client.runs_stream(request, timeout=60)]
    finally:
        await first.kill()
        if second is not None:
            await second.kill()
    reply = chunks[-1].reply
    assert reply.state == agent_pb2.RUN_STATE_SUCCEEDED and reply.attempts == 2
    # The answer once, in one piece (no search answered: the abstention), then the reply.
    assert [c.delta for c in chunks[:-1]] == [reply.answer] and [c.index for c in chunks] == [0, 1]
    assert [line.split()[:2] for line in log.read_text().splitlines()] == [
        ["start", "reserve_stock"], ["done", "reserve_stock"], ["start", "charge_card"], ["start", "charge_card"],
        ["done", "charge_card"]]
    assert await steps(rig.url, t, "order-43") == ["model", "tool", "model", "tool", "model"]


@pytest.fixture
async def service(rig: Rig, tmp_path: Path) -> AsyncIterator[tuple[Bus, Path]]:
    log = tmp_path / "effects.log"
    async with Bus(rig.server.url, BusSettings(name="approvals")) as bus:
        await bus.serve(AgentsService(order_tools(log, False), database_url=rig.url,
                                      settings=Settings(run_lease_s=2.0, task_poll_s=0.05)))
        yield bus, log


async def paused_run(rig: Rig, t: str, run_id: str, statuses: list[agent_pb2.AgentStatus],
                     session_id: str = "") -> agent_pb2.AgentRunReply:
    async def on_status(o: Observed) -> None:
        statuses.append(o.payload)

    await rig.bus.subscribe(agent_bus.AGENT_STATUS, on_status, tenant_id=t)
    reply = await run(rig.bus, t, agent_pb2.AgentRunRequest(run_id=run_id, question=QUESTION, session_id=session_id),
                      attempt_s=30.0)
    await rig.bus.flush()
    return reply


async def test_a_run_waits_for_approval_across_a_restart_and_runs_the_call_once_approved(
        rig: Rig, tmp_path: Path) -> None:
    t, log = tenant(), tmp_path / "effects.log"
    statuses: list[agent_pb2.AgentStatus] = []
    async with Bus(rig.server.url, BusSettings(name="pausing")) as bus:
        await bus.serve(AgentsService(order_tools(log, False), database_url=rig.url,
                                      settings=Settings(run_lease_s=2.0, task_poll_s=0.05)))
        paused = await paused_run(rig, t, "order-7", statuses, session_id="shop")
    # The process that paused the run is gone.
    assert paused.state == agent_pb2.RUN_STATE_AWAITING_APPROVAL
    assert paused.pending.tool_name == "charge_card" and dict(paused.pending.arguments) == {"order": QUESTION}
    for _ in range(100):
        if statuses:
            break
        await asyncio.sleep(0.02)
    assert [(s.agent_id, s.state, list(s.awaiting_approval)) for s in statuses] == [
        ("assistant", agent_pb2.AGENT_STATE_AWAITING_APPROVAL, ["order-7"])]
    assert [line.split()[:2] for line in log.read_text().splitlines()] == [["start", "reserve_stock"],
                                                                            ["done", "reserve_stock"]]
    client = agent_bus.AgentServiceClient(rig.bus, t)

    async with Bus(rig.server.url, BusSettings(name="resuming")) as bus:
        await bus.serve(AgentsService(order_tools(log, False), database_url=rig.url,
                                      settings=Settings(run_lease_s=2.0, task_poll_s=0.05)))
        # The session's next turn waits for the decision: it is refused, not queued.
        with pytest.raises(RemoteError, match="order-7 awaiting approval") as busy:
            await client.runs(agent_pb2.AgentRunRequest(run_id="order-8", question=QUESTION, session_id="shop"))
        assert busy.value.code == envelope_pb2.Error.CODE_FAILED_PRECONDITION
        done = await client.approvals(agent_pb2.ApprovalDecision(run_id="order-7", approve=True, approver="ann"))
        assert done.state == agent_pb2.RUN_STATE_SUCCEEDED and done.answer
        with pytest.raises(RemoteError, match="succeeded, not awaiting approval"):
            await client.approvals(agent_pb2.ApprovalDecision(run_id="order-7", approve=True))
    assert [line.split()[:2] for line in log.read_text().splitlines()] == [
        ["start", "reserve_stock"], ["done", "reserve_stock"], ["start", "charge_card"], ["done", "charge_card"]]
    assert await steps(rig.url, t, "order-7") == ["model", "tool", "model", "decision", "tool", "model"]


async def test_a_rejected_call_is_not_run_and_the_model_reads_why(rig: Rig, service: tuple[Bus, Path]) -> None:
    t = tenant()
    _, log = service
    paused = await paused_run(rig, t, "order-9", [])
    assert paused.state == agent_pb2.RUN_STATE_AWAITING_APPROVAL
    client = agent_bus.AgentServiceClient(rig.bus, t)
    done = await client.approvals(agent_pb2.ApprovalDecision(run_id="order-9", approve=False, approver="ann",
                                                             reason="the card is blocked"))
    assert done.state == agent_pb2.RUN_STATE_SUCCEEDED
    assert not any("charge_card" in line for line in log.read_text().splitlines())
    with pytest.raises(RemoteError, match="no run 'order-nope'"):
        await client.approvals(agent_pb2.ApprovalDecision(run_id="order-nope", approve=True))


async def test_a_caller_that_gives_up_early_asks_again_and_gets_the_answer(rig: Rig) -> None:
    t, runs = tenant(), []
    tools = ToolRegistry()

    async def reserve_stock(ctx: ToolContext, order: str) -> str:
        """Reserve stock for the items of an order."""
        runs.append(ctx.idempotency_key)
        await asyncio.sleep(2.0)  # four attempts of the caller
        return "reserved"

    tools.add(reserve_stock)
    async with Bus(rig.server.url, BusSettings(name="slow")) as bus:
        await bus.serve(AgentsService(tools, database_url=rig.url, settings=Settings(run_lease_s=2.0,
                                                                                     task_poll_s=0.05)))
        reply = await run(rig.bus, t, agent_pb2.AgentRunRequest(run_id="slow-1", question="Reserve the stock."),
                          attempt_s=0.5, deadline_s=60)
    assert reply.state == agent_pb2.RUN_STATE_SUCCEEDED and reply.attempts == 1 and len(runs) == 1
    assert await steps(rig.url, t, "slow-1") == ["model", "tool", "model"]
