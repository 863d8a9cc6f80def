"""The agent framework on real servers: nats-server with JetStream, the
embedded PostgreSQL, the gateway with its offline local provider, the
prompt and RAG workers."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from ai.agent.v1 import agent_bus, agent_pb2
from ai.envelope.v1 import envelope_pb2
from ai.rag.v1 import rag_bus, rag_pb2

from aisdk.components import COMPONENTS
from aisdk.components.agents import Agent, AgentsService, Settings, ToolContext, ToolRegistry, answer, list_agents
from aisdk.components.agents.loop import AgentLoop
from aisdk.components.agents.rag_tool import RAG_TOOL, search_documents
from aisdk.components.agents.sql import open_pool
from aisdk.components.agents.tasks import Claimed, TaskQueue
from aisdk.components.prompt import PromptManager
from aisdk.components.rag.worker import RagWorker
from aisdk.components.storage import temporary_database
from runtime.bus import Bus, Observed
from runtime.settings import BusSettings
from runtime.contract import Context, Durability
from runtime.errors import HandlerError
from runtime.jetstream import DLQ_TOKEN
from runtime.server import EmbeddedServer
from runtime.telemetry import Telemetry

# The contract's backoff is seconds-scale (1, 5, 15 s); the deployment's own
# timings shorten it here, through the same code path.
FAST = {
    "agent.tasks": Durability("work_queue", 3, 5000, (100, 200), 120_000, 0),
    "rag.ingest": Durability("work_queue", 3, 5000, (100, 100), 60_000, 0),
    "agent.memory": Durability("work_queue", 4, 5000, (100, 100), 120_000, 0),
}
SETTINGS = Settings(status_interval_s=0.3, task_poll_s=0.1,
                    rag_tool_description="Search the store's documents: the refund policy, shipping, privacy "
                                         "policy and warranty.")
DOCUMENTS = {
    "refund-policy": "# Refund policy\nYou can return any unused item within 30 days of delivery for a full refund. "
                     "Refunds are paid to the original payment method within 5 business days.",
    "shipping": "# Shipping\nOrders ship within two business days. Express delivery costs 15 dollars.",
    "warranty": "Warranty\n\nElectronics carry a two year warranty against manufacturing defects.",
}


async def until(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def tenant() -> str:
    return "t" + uuid.uuid4().hex[:10]


@dataclass
class Rig:
    bus: Bus
    url: str
    service: AgentsService
    runs: dict[str, int] = field(default_factory=dict)


def tools(runs: dict[str, int]) -> ToolRegistry:
    registry = ToolRegistry()

    @registry.tool
    async def count_words(ctx: ToolContext, text: str) -> int:
        """Count the words of a text."""
        runs[ctx.call_id] = runs.get(ctx.call_id, 0) + 1
        await asyncio.sleep(0.2)  # long enough for a repeated call to arrive meanwhile
        return len(text.split())

    @registry.tool
    def divide(a: float, b: float) -> float:
        """Divide a by b."""
        return a / b

    # Any executor of the queue group may get a call: each has every tool.
    registry.add(search_documents, name=RAG_TOOL, description=SETTINGS.rag_tool_description)
    return registry


@pytest.fixture(scope="module")
def nats_server() -> Iterator[EmbeddedServer]:
    """A server of this module's own: agents consume agent.tasks per tenant,
    and a work-queue stream refuses the all-tenant consumer that other
    modules' workers create beside them."""
    with EmbeddedServer(name="aisdk-agents-test") as server:
        yield server


@pytest.fixture(scope="module")
async def rig(nats_server: EmbeddedServer) -> AsyncIterator[Rig]:
    runs: dict[str, int] = {}
    async with temporary_database() as url:
        async with Bus(nats_server.url, BusSettings(name="agents-test", durability_overrides=FAST)) as bus:
            await bus.serve(COMPONENTS["gateway"]())
            service = AgentsService(tools(runs), settings=SETTINGS, database_url=url)
            await bus.serve(service)
            yield Rig(bus, url, service, runs)


# -- messages --------------------------------------------------------------


async def test_agents_get_their_messages_and_broadcasts_and_replies_go_back(rig: Rig) -> None:
    t = tenant()

    async def echo(agent: Agent, message: agent_pb2.AgentMessage) -> str | None:
        return None if message.in_reply_to or not message.target_agent_id else f"{agent.agent_id} got {message.content}"

    a, b, c = [await Agent(name, t, on_message=echo, settings=SETTINGS).join(rig.bus) for name in "abc"]
    other = await Agent("a", tenant(), on_message=echo, settings=SETTINGS).join(rig.bus)  # same id, other tenant

    sent = await a.send("b", "hello b")
    await a.broadcast("hello all")
    await until(lambda: any(m.in_reply_to == sent.message_id for m in a.received))
    await until(lambda: len(c.received) == 1 and len(b.received) == 2)

    assert [m.content for m in b.received] == ["hello b", "hello all"]
    assert [m.content for m in c.received] == ["hello all"]  # not the message for b
    reply = next(m for m in a.received if m.in_reply_to == sent.message_id)
    assert reply.source_agent_id == "b" and reply.target_agent_id == "a" and reply.content == "b got hello b"
    assert all(m.source_agent_id != "a" or m.target_agent_id == "a" for m in a.received)  # not its own broadcast
    await asyncio.sleep(0.2)
    assert other.received == []  # tenants are apart


async def test_listing_shows_live_agents_and_their_state(rig: Rig) -> None:
    t = tenant()
    release = asyncio.Event()

    async def slow(agent: Agent, message: agent_pb2.AgentMessage) -> None:
        await release.wait()
        return None

    busy = await Agent("busy", t, on_message=slow, capabilities=["summarise"], settings=SETTINGS).join(rig.bus)
    await Agent("idle", t, settings=SETTINGS).join(rig.bus)
    await Agent("elsewhere", tenant(), settings=SETTINGS).join(rig.bus)
    await Agent("sender", t, settings=SETTINGS).join(rig.bus)
    await busy.send("busy", "work on this")
    await until(lambda: busy.state == agent_pb2.AGENT_STATE_BUSY)

    rows = {r.agent_id: r for r in await list_agents(rig.bus, t, wait_s=3)}
    assert set(rows) == {"busy", "idle", "sender"}
    assert rows["busy"].state == "BUSY" and rows["busy"].active_tasks == 1
    assert rows["busy"].capabilities == ["summarise"] and rows["busy"].instances == 1
    assert rows["idle"].state == "IDLE"
    release.set()
    await until(lambda: busy.state == agent_pb2.AGENT_STATE_IDLE)


# -- tasks -----------------------------------------------------------------


@dataclass
class Results:
    by_task: dict[str, agent_pb2.TaskResult] = field(default_factory=dict)
    letters: list[envelope_pb2.DeadLetter] = field(default_factory=list)


async def watch(bus: Bus, t: str) -> Results:
    out = Results()

    async def result(o: Observed) -> None:
        out.by_task[o.payload.task_id] = o.payload

    async def letter(msg: Any) -> None:
        env = envelope_pb2.Envelope.FromString(msg.data)
        out.letters.append(envelope_pb2.DeadLetter.FromString(env.data))

    await bus.subscribe(agent_bus.AGENT_RESULTS, result, tenant_id=t)
    await bus.nc.subscribe(f"ai.{DLQ_TOKEN}.agent.tasks.{t}", cb=letter)
    return out


async def test_a_waiting_task_of_higher_priority_is_taken_first(rig: Rig) -> None:
    t = tenant()
    results = await watch(rig.bus, t)
    order: list[str] = []
    release = asyncio.Event()

    async def work(task: agent_pb2.AgentTask, ctx: Context) -> dict[str, Any]:
        order.append(task.task_id)
        if task.task_id == "blocker":
            await release.wait()
        return {"done": task.task_id}

    worker = await Agent("worker", t, tasks={"work": work}, database_url=rig.url, settings=SETTINGS).join(rig.bus)
    manager = await Agent("manager", t, settings=SETTINGS).join(rig.bus)
    await manager.submit("work", task_id="blocker")
    await until(lambda: order == ["blocker"])
    for i, priority in enumerate([agent_pb2.TASK_PRIORITY_LOW, agent_pb2.TASK_PRIORITY_NORMAL,
                                  agent_pb2.TASK_PRIORITY_LOW, agent_pb2.TASK_PRIORITY_CRITICAL]):
        await manager.submit("work", task_id=f"task-{i}", priority=priority)
    # Every task is waiting in the queue while the only runner is busy.
    waiting: dict[str, int] = {}

    async def queued() -> None:
        waiting.update(await worker.queued())

    while waiting.get("waiting") != 4:
        await queued()
        await asyncio.sleep(0.05)
    release.set()
    await until(lambda: len(results.by_task) == 5)
    assert order == ["blocker", "task-3", "task-1", "task-0", "task-2"]
    done = results.by_task["task-3"]
    assert done.status == agent_pb2.TASK_STATUS_SUCCEEDED and done.agent_id == "worker"
    assert dict(done.output) == {"done": "task-3"} and done.duration.ToNanoseconds() > 0


async def test_a_failing_task_retries_then_ends_failed_and_dead_lettered(rig: Rig) -> None:
    t = tenant()
    results = await watch(rig.bus, t)
    attempts: dict[str, list[float]] = {}

    async def flaky(task: agent_pb2.AgentTask, ctx: Context) -> dict[str, Any]:
        attempts.setdefault(task.task_id, []).append(asyncio.get_running_loop().time())
        if task.task_id == "never" or len(attempts[task.task_id]) < 2:
            raise RuntimeError(f"attempt {ctx.attempt} failed")
        return {"attempts": ctx.attempt}

    async def poison(task: agent_pb2.AgentTask, ctx: Context) -> None:
        attempts.setdefault(task.task_id, []).append(0.0)
        raise HandlerError(envelope_pb2.Error.CODE_INVALID_ARGUMENT, "no retry can fix this")

    await Agent("worker", t, tasks={"flaky": flaky, "poison": poison}, database_url=rig.url,
                settings=SETTINGS).join(rig.bus)
    manager = await Agent("manager", t, settings=SETTINGS).join(rig.bus)
    for task_id, kind in (("once", "flaky"), ("never", "flaky"), ("bad", "poison")):
        await manager.submit(kind, {"x": 1}, task_id=task_id)
    await until(lambda: len(results.by_task) == 3 and len(results.letters) == 2)

    assert results.by_task["once"].status == agent_pb2.TASK_STATUS_SUCCEEDED
    assert dict(results.by_task["once"].output) == {"attempts": 2}
    never = results.by_task["never"]
    assert never.status == agent_pb2.TASK_STATUS_FAILED and "attempt 3 failed" in never.error
    assert len(attempts["never"]) == 3  # the override's max_deliver
    gaps = [b - a for a, b in zip(attempts["never"], attempts["never"][1:])]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2  # the backoff of each attempt
    assert results.by_task["bad"].status == agent_pb2.TASK_STATUS_FAILED and len(attempts["bad"]) == 1
    letters = {agent_pb2.AgentTask.FromString(envelope_pb2.Envelope.FromString(d.data).data).task_id: d
               for d in results.letters}
    assert letters["never"].attempts == 3 and "attempt 3 failed" in letters["never"].reason
    assert letters["bad"].code == envelope_pb2.Error.CODE_INVALID_ARGUMENT
    assert letters["never"].subject == f"ai.agent.tasks.{t}"


async def test_two_workers_share_one_queue_and_each_task_runs_once(rig: Rig) -> None:
    t = tenant()
    results = await watch(rig.bus, t)
    ran: list[tuple[str, str]] = []

    def work_as(name: str) -> Any:
        async def work(task: agent_pb2.AgentTask, ctx: Context) -> dict[str, Any]:
            ran.append((name, task.task_id))
            await asyncio.sleep(0.05)
            return {}
        return work

    for name in ("w1", "w2"):
        await Agent(name, t, tasks={"work": work_as(name)}, database_url=rig.url, settings=SETTINGS).join(rig.bus)
    manager = await Agent("manager", t, settings=SETTINGS).join(rig.bus)
    for i in range(12):
        await manager.submit("work", task_id=f"job-{i}")
    await manager.submit("work", task_id="job-0")  # a repeat is the same task
    await until(lambda: len(results.by_task) == 12)
    assert sorted(task for _, task in ran) == sorted(f"job-{i}" for i in range(12))
    assert {name for name, _ in ran} == {"w1", "w2"}


# -- memory ----------------------------------------------------------------


async def test_memory_is_idempotent_and_retrieved_by_similarity_and_recency(rig: Rig) -> None:
    t = tenant()
    client = agent_bus.AgentServiceClient(rig.bus, t)
    facts = [
        ("m1", "The user prefers vegetarian food and dislikes mushrooms.", 1),
        ("m2", "The user's flight to Lisbon leaves on Friday morning.", 2),
        ("m3", "The user works as a nurse at the city hospital.", 3),
    ]
    for memory_id, content, minute in facts:
        item = agent_pb2.MemoryItem(agent_id="planner", memory_id=memory_id, content=content,
                                    memory_type=agent_pb2.MEMORY_TYPE_LONG_TERM)
        item.created_at.FromSeconds(1_800_000_000 + 60 * minute)
        await client.memory(item)
    # The same memory id again, under another envelope id and with other
    # content: still one memory, the first.
    await client.memory(agent_pb2.MemoryItem(agent_id="planner", memory_id="m1", content="Something else.",
                                             memory_type=agent_pb2.MEMORY_TYPE_LONG_TERM))

    async def recall(order: int, text: str = "", limit: int = 5) -> agent_pb2.MemoryRecall:
        return await client.memory_retrieve(agent_pb2.MemoryQuery(
            query_id=uuid.uuid4().hex, agent_id="planner", text=text, order=order, limit=limit))  # type: ignore[arg-type]

    for _ in range(200):
        got = await recall(agent_pb2.MEMORY_ORDER_RECENCY)
        if len(got.matches) == 3:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # the repeat of m1 has had time to arrive
    recent = await recall(agent_pb2.MEMORY_ORDER_RECENCY)
    assert [m.item.memory_id for m in recent.matches] == ["m3", "m2", "m1"]
    assert recent.matches[2].item.content.startswith("The user prefers vegetarian")
    similar = await recall(agent_pb2.MEMORY_ORDER_SIMILARITY, "What should I cook for dinner? Any food to avoid?", 1)
    assert [m.item.memory_id for m in similar.matches] == ["m1"] and similar.matches[0].similarity > 0
    trip = await recall(agent_pb2.MEMORY_ORDER_SIMILARITY, "When is the trip to Portugal?", 1)
    assert trip.matches[0].item.memory_id == "m2"
    async with rig.service._pool.connection() as conn:  # type: ignore[union-attr]
        cur = await conn.execute("SELECT count(*) FROM agent_memories WHERE tenant_id = %s", (t,))
        assert (await cur.fetchone()) == (3,)


async def test_a_memory_redelivered_after_it_was_stored_is_stored_once(rig: Rig) -> None:
    """The first delivery stores the memory and then fails before its ack:
    JetStream redelivers it, and the redelivery finds it stored. (On a server
    of its own: a work queue takes one consumer per subject.)"""
    t = tenant()

    class FailsAfterStoring(AgentsService):
        failures = 0

        async def memory(self, request: agent_pb2.MemoryItem, ctx: Context) -> None:
            await super().memory(request, ctx)
            if ctx.attempt == 1:
                self.failures += 1
                raise RuntimeError("lost the ack")

    with EmbeddedServer(name="agents-redelivery") as server:
        async with Bus(server.url, BusSettings(name="agents-memory", durability_overrides=FAST)) as bus:
            await bus.serve(COMPONENTS["gateway"]())
            service = FailsAfterStoring(settings=SETTINGS, database_url=rig.url)
            await bus.serve(service)
            await agent_bus.AgentServiceClient(bus, t).memory(agent_pb2.MemoryItem(
                agent_id="planner", memory_id="once", content="Remember me once.",
                memory_type=agent_pb2.MEMORY_TYPE_EPISODIC))
            ep = next(e for sv in bus.services for e in sv.endpoints if e.spec is agent_bus.AGENT_MEMORY)
            await until(lambda: ep.stats.handled == 1)
            assert service.failures == 1 and ep.stats.retried == 1
    async with rig.service._pool.connection() as conn:  # type: ignore[union-attr]
        cur = await conn.execute("SELECT count(*) FROM agent_memories WHERE tenant_id = %s AND memory_id = 'once'",
                                 (t,))
        assert (await cur.fetchone()) == (1,)


# -- tools -----------------------------------------------------------------


def call(call_id: str, tool: str, **arguments: Any) -> agent_pb2.ToolExecutionRequest:
    request = agent_pb2.ToolExecutionRequest(call_id=call_id, agent_id="planner", tool_name=tool)
    request.arguments.update(arguments)
    return request


async def test_the_registry_derives_schemas_from_signatures(rig: Rig) -> None:
    schema = rig.service.registry.get("count_words")
    assert schema is not None and schema.description == "Count the words of a text."
    assert schema.parameters == {"type": "object", "properties": {"text": {"type": "string"}},
                                 "required": ["text"], "additionalProperties": False}
    divide = rig.service.registry.get("divide")
    assert divide is not None and divide.parameters["properties"] == {"a": {"type": "number"},
                                                                      "b": {"type": "number"}}


async def test_a_repeated_tool_call_runs_once(rig: Rig) -> None:
    t = tenant()
    client = agent_bus.AgentServiceClient(rig.bus, t)
    seen: list[agent_pb2.ToolExecutionResult] = []

    async def on_result(o: Observed) -> None:
        seen.append(o.payload)

    await rig.bus.subscribe(agent_bus.AGENT_TOOL_RESULTS, on_result, tenant_id=t)
    # Two executors behind the queue group, a call delivered twice at once and once more later.
    second = AgentsService(tools(rig.runs), settings=SETTINGS, database_url=rig.url)
    async with Bus(rig.bus.servers, BusSettings(name="agents-executor-2")) as other:
        await other.serve(second)
        first, again = await asyncio.gather(*(client.tools(call(f"{t}-c1", "count_words", text="one two three"))
                                              for _ in range(2)))
        late = await client.tools(call(f"{t}-c1", "count_words", text="one two three"))
    assert rig.runs[f"{t}-c1"] == 1
    assert first.success and dict(first.output) == {"result": 3.0}
    assert first == again == late
    await until(lambda: len(seen) == 3)
    assert all(r.call_id == f"{t}-c1" for r in seen)  # results also go out on agent.tool-results


async def test_a_raising_tool_gives_an_error_result_and_the_executor_carries_on(rig: Rig) -> None:
    client = agent_bus.AgentServiceClient(rig.bus, tenant())
    failed = await client.tools(call("d1", "divide", a=1, b=0))
    assert not failed.success and failed.error.startswith("ZeroDivisionError")
    wrong = await client.tools(call("d2", "divide", a="one", b=2))
    assert not wrong.success and "argument 'a' must be of type number" in wrong.error
    unknown = await client.tools(call("d3", "format_disk"))
    assert not unknown.success and "unknown tool 'format_disk'" in unknown.error
    fine = await client.tools(call("d4", "divide", a=6, b=3))
    assert fine.success and dict(fine.output) == {"result": 2.0}


# -- the agent loop --------------------------------------------------------


async def test_the_loop_calls_a_tool_over_nats_and_answers_from_its_result(rig: Rig) -> None:
    t = tenant()
    loop = AgentLoop(rig.bus, t, "planner", rig.service.registry.definitions(["count_words"]),
                     model="local/extractive")
    done = await loop.run("Count the words of this text: the quick brown fox.")
    assert done.rounds == 2 and len(done.tool_results) == 1
    result = done.tool_results[0]
    assert result.success and result.tool_name == "count_words"
    assert done.tokens > 0 and done.cost > 0
    chatty = await loop.run("Hello there, how are you?")
    assert chatty.rounds == 1 and chatty.tool_results == []  # no tool matches a greeting


async def test_answer_uses_the_rag_search_tool_over_ingested_documents(rig: Rig, nats_server: EmbeddedServer) -> None:
    t = tenant()
    async with Bus(nats_server.url, BusSettings(name="agents-rag", durability_overrides=FAST)) as bus:
        await bus.serve(PromptManager())
        await bus.serve(RagWorker(database_url=rig.url))
        statuses: list[rag_pb2.IngestStatus] = []

        async def on_status(o: Observed) -> None:
            statuses.append(o.payload)

        await bus.subscribe(rag_bus.RAG_STATUS, on_status, tenant_id=t)
        for doc_id, content in DOCUMENTS.items():
            await rag_bus.RagServiceClient(bus, t).ingest(rag_pb2.RagDocument(document_id=doc_id, content=content))
        await until(lambda: sum(s.state == rag_pb2.INGEST_STATE_INDEXED for s in statuses) == len(DOCUMENTS))

        got = await answer(bus, t, "What is the refund policy?", settings=SETTINGS)
    assert "30 days" in got.answer
    assert got.rounds == 2
    assert [s.document_id for s in got.sources] == ["refund-policy"] and "30 days" in got.sources[0].snippet
    assert got.tokens > 0 and got.cost > 0


# A runner in a process of its own, with a short lease: the test pauses it
# (SIGSTOP) in the middle of a task, as a long GC pause or a frozen VM would.
STALE_RUNNER = """
import asyncio, logging, sys
from aisdk.components.agents import Agent, Settings
from runtime.bus import Bus
from runtime.contract import Durability
from runtime.settings import BusSettings

async def main(url, database, tenant):
    lease = {"agent.tasks": Durability("work_queue", 3, 600, (100,), 120_000, 0)}
    async with Bus(url, BusSettings(name="stale", durability_overrides=lease)) as bus:
        async def work(task, ctx):
            print("started", flush=True)
            await asyncio.sleep(0.3)
            print("finished its work", flush=True)
            return {"by": "stale"}
        await Agent("stale", tenant, tasks={"work": work}, database_url=database,
                    settings=Settings(task_poll_s=0.1)).join(bus)
        print("joined", flush=True)
        await asyncio.Event().wait()

logging.basicConfig(level=logging.WARNING, format="%(message)s")
asyncio.run(main(*sys.argv[1:]))
"""


async def test_a_runner_paused_past_its_lease_cannot_change_a_task_claimed_since(
        rig: Rig, nats_server: EmbeddedServer) -> None:
    import psycopg

    from tests.support import checkout_env

    t = tenant()
    results: list[agent_pb2.TaskResult] = []

    async def collect(o: Observed) -> None:
        results.append(o.payload)

    await rig.bus.subscribe(agent_bus.AGENT_RESULTS, collect, tenant_id=t)
    stale = await asyncio.create_subprocess_exec(
        sys.executable, "-c", STALE_RUNNER, nats_server.url, rig.url, t, env=checkout_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert stale.stdout is not None and stale.stderr is not None

    async def line() -> str:
        assert stale.stdout is not None
        return (await asyncio.wait_for(stale.stdout.readline(), 60)).decode().strip()

    async def lease_lapsed() -> bool:
        async with await psycopg.AsyncConnection.connect(rig.url) as conn:
            row = await (await conn.execute("SELECT lease_until < clock_timestamp() FROM agent_tasks "
                                            "WHERE tenant_id = %s AND task_id = 'job'", (t,))).fetchone()
        return bool(row and row[0])

    try:
        assert await line() == "joined"
        manager = await Agent("manager", t, settings=SETTINGS).join(rig.bus)
        await manager.submit("work", task_id="job")
        assert await line() == "started"
        stale.send_signal(signal.SIGSTOP)
        while not await lease_lapsed():
            await asyncio.sleep(0.05)

        async def fresh(task: agent_pb2.AgentTask, ctx: Context) -> dict[str, Any]:
            return {"by": "fresh", "attempt": ctx.attempt}

        await Agent("fresh", t, tasks={"work": fresh}, database_url=rig.url, settings=SETTINGS).join(rig.bus)
        await until(lambda: len(results) == 1)
        stale.send_signal(signal.SIGCONT)
        # The stale runner wakes up: its renewal finds the claim gone.
        while "another runner has claimed it" not in (
                warning := (await asyncio.wait_for(stale.stderr.readline(), 60)).decode()):
            assert warning, "the stale runner ended without noticing"
        await rig.bus.flush()
    finally:
        if stale.returncode is None:
            stale.send_signal(signal.SIGCONT)
            stale.terminate()
        await stale.wait()
    async with await psycopg.AsyncConnection.connect(rig.url) as conn:
        row = await (await conn.execute("SELECT state, attempts FROM agent_tasks WHERE tenant_id = %s AND "
                                        "task_id = 'job'", (t,))).fetchone()
    assert row == ("succeeded", 2)
    assert [(r.agent_id, dict(r.output)) for r in results] == [("fresh", {"by": "fresh", "attempt": 2.0})]

    # What the stale runner's settle would have done, had it tried: nothing.
    pool = await open_pool(rig.url)
    try:
        queue = TaskQueue(pool)
        claim = Claimed(t, agent_pb2.AgentTask(task_id="job"), b"", 1)
        assert not await queue.renew(claim, 30) and not await queue.retry(claim, 0, "stale")
        assert not await queue.finish(claim, False, "stale")
        assert await queue.counts(t) == {"succeeded": 1}
    finally:
        await pool.close()


async def test_a_tasks_function_runs_inside_its_execute_span(rig: Rig, nats_server: EmbeddedServer,
                                                             telemetry: Telemetry) -> None:
    from opentelemetry import trace

    t = tenant()
    inside: list[int] = []

    async def work(task: agent_pb2.AgentTask, ctx: Context) -> dict[str, Any]:
        inside.append(trace.get_current_span().get_span_context().span_id)
        return {}

    async with Bus(nats_server.url, BusSettings(name="agents-traced", durability_overrides=FAST),
                   telemetry=telemetry) as bus:
        results = await watch(bus, t)
        await Agent("worker", t, tasks={"work": work}, database_url=rig.url, settings=SETTINGS).join(bus)
        await (await Agent("manager", t, settings=SETTINGS).join(bus)).submit("work", task_id="traced")
        await until(lambda: "traced" in results.by_task)
    assert telemetry.span_exporter is not None
    [execute] = [s for s in telemetry.span_exporter.get_finished_spans() if s.name == "agent.task.execute"]
    assert execute.context is not None and inside == [execute.context.span_id]
