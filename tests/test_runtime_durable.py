"""Durable subjects on JetStream: redelivery, dead letters, deduplication and
drain, with nothing lost."""

from __future__ import annotations

import asyncio
import uuid

from ai.agent.v1 import agent_bus, agent_pb2
from ai.envelope.v1 import envelope_pb2
from ai.gateway.v1 import gateway_bus
from runtime.bus import Bus, Observed
from runtime.settings import BusSettings
from runtime.contract import Context, Durability
from runtime.errors import HandlerError
from runtime.jetstream import DLQ_TOKEN, stream_name
from tests.support import Gateway, llm_request, until

# The contract's timings are minutes-scale; tests tune them like an operator would.
FAST = {"agent.tasks": Durability("work_queue", 3, 2000, (50, 50), 60_000, 0)}


def task(task_id: str) -> agent_pb2.AgentTask:
    return agent_pb2.AgentTask(task_id=task_id, agent_id="manager", task_type="summarize")


async def queued(b: Bus, t: str) -> int:
    """Tasks of tenant t still in the work queue, which forgets what is acknowledged."""
    subject = agent_bus.agent_tasks_subject(t)
    info = await b.nc.jetstream().stream_info(stream_name(b.prefix, agent_bus.AGENT_TASKS), subjects_filter=subject)
    return (info.state.subjects or {}).get(subject, 0)


class Workers(agent_bus.AgentServiceHandler):
    """Fails each task its first `fail_times` attempts, except the `reliable` ones."""

    def __init__(self, fail_times: int = 0, delay: float = 0.0, reliable: frozenset[str] = frozenset()) -> None:
        self.fail_times = fail_times
        self.delay = delay
        self.reliable = reliable
        self.attempts: dict[str, list[int]] = {}
        self.done: list[str] = []

    async def tasks(self, request: agent_pb2.AgentTask, ctx: Context) -> None:
        tries = self.attempts.setdefault(request.task_id, [])
        tries.append(getattr(ctx, "attempt"))
        if self.delay:
            await asyncio.sleep(self.delay)
        if len(tries) <= self.fail_times and request.task_id not in self.reliable:
            raise RuntimeError(f"attempt {len(tries)} failed")
        self.done.append(request.task_id)


def tenant() -> str:
    """A tenant per test: the work-queue stream is shared by the session."""
    return "t" + uuid.uuid4().hex[:12]


async def test_redelivery_after_a_handler_failure(nats_url: str) -> None:
    t = tenant()
    w = Workers(fail_times=1)
    async with Bus(nats_url, BusSettings(durability_overrides=FAST)) as b:
        await b.serve(w, tenants=[t])
        await agent_bus.AgentServiceClient(b, t).tasks(task("a"))
        await until(lambda: w.done == ["a"])
    assert w.attempts["a"] == [1, 2]


async def test_dead_letter_after_max_deliveries(nats_url: str) -> None:
    t = tenant()
    w = Workers(fail_times=99, reliable=frozenset({"marker"}))
    letters: list[envelope_pb2.DeadLetter] = []
    async with Bus(nats_url, BusSettings(durability_overrides=FAST)) as b:
        async def on_letter(msg: object) -> None:
            env = envelope_pb2.Envelope.FromString(getattr(msg, "data"))
            letters.append(envelope_pb2.DeadLetter.FromString(env.data))

        await b.nc.subscribe(f"ai.{DLQ_TOKEN}.agent.tasks.{t}", cb=on_letter)
        svc = await b.serve(w, tenants=[t])
        await agent_bus.AgentServiceClient(b, t).tasks(task("doomed"))
        await until(lambda: bool(letters))
        [letter] = letters
        assert letter.attempts == 3
        assert letter.subject == f"ai.agent.tasks.{t}"
        assert "attempt 3 failed" in letter.reason
        assert letter.code == envelope_pb2.Error.CODE_INTERNAL
        original = envelope_pb2.Envelope.FromString(letter.data)
        assert agent_pb2.AgentTask.FromString(original.data).task_id == "doomed"
        assert svc.endpoints[0].stats.dead_lettered == 1
        # A marker queued after the dead letter: once it is done, a fourth
        # attempt at the doomed task, which would come first, has not come.
        await agent_bus.AgentServiceClient(b, t).tasks(task("marker"))
        await until(lambda: "marker" in w.done)
    assert w.attempts["doomed"] == [1, 2, 3]


async def test_a_republished_message_id_is_delivered_once(nats_url: str) -> None:
    t = tenant()
    w = Workers()
    async with Bus(nats_url, BusSettings(durability_overrides=FAST)) as b:
        client = agent_bus.AgentServiceClient(b, t)
        await client.tasks(task("once"), message_id=f"{t}-job-1")
        await client.tasks(task("once"), message_id=f"{t}-job-1")
        await client.tasks(task("twice"))
        await client.tasks(task("marker"))
        await b.serve(w, tenants=[t])  # one at a time, in stream order
        await until(lambda: "marker" in w.done)
    assert w.done == ["once", "twice", "marker"]


async def test_drain_with_messages_in_flight_loses_nothing(nats_url: str) -> None:
    t = tenant()
    n = 60
    first = Workers(delay=0.01)
    async with Bus(nats_url, BusSettings(durability_overrides=FAST)) as pub:
        client = agent_bus.AgentServiceClient(pub, t)
        for i in range(n):
            await client.tasks(task(f"job{i}"))
        assert await queued(pub, t) == n
    b1 = Bus(nats_url, BusSettings(durability_overrides=FAST))
    await b1.connect()
    await b1.serve(first, tenants=[t], concurrency=8)
    await until(lambda: len(first.done) >= 10)
    await b1.close()  # mid-stream: in-flight handlers finish and ack
    started = {k for k, v in first.attempts.items()}
    assert set(first.done) == started, "a handler was cut off"
    second = Workers()
    async with Bus(nats_url, BusSettings(durability_overrides=FAST)) as b2:
        await b2.serve(second, tenants=[t])
        await until(lambda: len(set(first.done) | set(second.done)) == n)
        # Nothing is left in the queue that could still be redelivered.
        assert await queued(b2, t) == 0
    assert set(first.done) | set(second.done) == {f"job{i}" for i in range(n)}
    assert not set(first.done) & set(second.done), "acknowledged work was redelivered"


async def test_core_drain_answers_requests_in_flight(nats_url: str) -> None:
    worker = Bus(nats_url)
    await worker.connect()
    gw = Gateway(delay=0.2)
    await worker.serve(gw)
    await worker.flush()
    async with Bus(nats_url) as cb:
        client = gateway_bus.GatewayServiceClient(cb, "acme")
        pending = [asyncio.create_task(client.requests(llm_request(request_id=f"d{i}"))) for i in range(10)]
        await until(lambda: len(gw.seen) == 10)
        await worker.close()
        replies = await asyncio.gather(*pending)
    assert sorted(r.request_id for r in replies) == sorted(f"d{i}" for i in range(10))


async def test_dead_letters_are_kept_in_a_stream(nats_url: str) -> None:
    t = tenant()
    async with Bus(nats_url, BusSettings(durability_overrides=FAST)) as b:
        await b.serve(Workers(fail_times=99), tenants=[t])
        await agent_bus.AgentServiceClient(b, t).tasks(task("kept"))
        js = b.nc.jetstream()
        await until(lambda: b.dead_letters == 1)
        msg = await js.get_last_msg("AI_DLQ", f"ai.{DLQ_TOKEN}.agent.tasks.{t}")
        env = envelope_pb2.Envelope.FromString(msg.data or b"")
        assert env.type == "ai.envelope.v1.DeadLetter"


async def test_tail_style_observer_sees_typed_events(bus: Bus) -> None:
    seen: list[Observed] = []

    async def observe(o: Observed) -> None:
        seen.append(o)

    await bus.subscribe(agent_bus.AGENT_STATUS, observe, tenant_id="acme")
    await bus.nc.publish("ai.agent.status.acme", b"\xff garbage")
    await agent_bus.AgentServiceClient(bus, "acme").status(
        agent_pb2.AgentStatus(agent_id="a", state=agent_pb2.AGENT_STATE_IDLE)
    )
    await until(lambda: len(seen) == 2)
    assert seen[0].error is not None and seen[0].payload is None
    assert seen[1].payload.agent_id == "a"


class Poisoned(agent_bus.AgentServiceHandler):
    def __init__(self) -> None:
        self.attempts: list[int] = []

    async def tasks(self, request: agent_pb2.AgentTask, ctx: Context) -> None:
        self.attempts.append(ctx.attempt)
        raise HandlerError(envelope_pb2.Error.CODE_INVALID_ARGUMENT, f"task {request.task_id} cannot be parsed")


async def test_a_handler_error_that_is_not_retryable_is_dead_lettered_at_once(nats_url: str) -> None:
    t = tenant()
    w = Poisoned()
    letters: list[envelope_pb2.DeadLetter] = []
    async with Bus(nats_url, BusSettings(durability_overrides=FAST)) as b:
        async def on_letter(msg: object) -> None:
            env = envelope_pb2.Envelope.FromString(getattr(msg, "data"))
            letters.append(envelope_pb2.DeadLetter.FromString(env.data))

        await b.nc.subscribe(f"ai.{DLQ_TOKEN}.agent.tasks.{t}", cb=on_letter)
        await b.serve(w, tenants=[t])
        await agent_bus.AgentServiceClient(b, t).tasks(task("poison"))
        await until(lambda: bool(letters))
    [letter] = letters
    assert w.attempts == [1]
    assert letter.attempts == 1
    assert letter.code == envelope_pb2.Error.CODE_INVALID_ARGUMENT
    assert "cannot be parsed" in letter.reason


class RateLimited(agent_bus.AgentServiceHandler):
    """Refuses each task once with a retry-after, as a handler does when the
    gateway it calls answers RESOURCE_EXHAUSTED."""

    RETRY_AFTER = 0.5

    def __init__(self) -> None:
        self.arrivals: list[float] = []

    async def tasks(self, request: agent_pb2.AgentTask, ctx: Context) -> None:
        self.arrivals.append(asyncio.get_running_loop().time())
        if len(self.arrivals) == 1:
            raise HandlerError("RESOURCE_EXHAUSTED", "busy", retryable=True, retry_after=self.RETRY_AFTER)


async def test_a_redelivery_waits_for_the_errors_retry_after(nats_url: str) -> None:
    t = tenant()
    w = RateLimited()
    # The configured backoff (50 ms) is shorter than the retry-after: the retry-after wins.
    async with Bus(nats_url, BusSettings(durability_overrides=FAST)) as b:
        await b.serve(w, tenants=[t])
        await agent_bus.AgentServiceClient(b, t).tasks(task("later"))
        await until(lambda: len(w.arrivals) == 2)
    assert w.arrivals[1] - w.arrivals[0] >= RateLimited.RETRY_AFTER
