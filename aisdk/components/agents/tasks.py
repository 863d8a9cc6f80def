"""Tasks: agent.tasks feeds a priority queue in PostgreSQL, worker agents take
from it, results go out on agent.results.

Why not straight from the stream: a JetStream work queue hands messages out
in arrival order, so a task of higher priority that arrives behind lower
ones would wait for them. The stream's consumer (group agent.workers) only
moves each task into `agent_tasks` (idempotent by task id) and acks it once
committed, so no task is lost between the two. Runners then take the waiting
task of highest priority, oldest first, with `FOR UPDATE SKIP LOCKED`: any
number of workers in any number of processes share one queue, and a waiting
task of higher priority is always taken before a lower one.

A claim is fenced by its attempt: renew, retry and finish match the attempt
that claimed the row, so a runner whose lease lapsed (a paused process, a
lost connection) changes nothing of a task that another runner has claimed
since. A renewal that finds the claim gone stops that runner's effects: its
function is cancelled and no result is sent; it is logged and counted
(`agent.task.leases_lost`).

The contract's delivery rules still hold, applied here: a failed run is
retried after the contract's backoff for that attempt, up to its
max_deliver; then the task ends as a FAILED TaskResult and a dead letter of
the original message. A running task holds a lease of the contract's ack
wait, renewed while it runs; a worker that dies lets the lease lapse and
another takes the task again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ai.agent.v1 import agent_bus, agent_pb2
from ai.envelope.v1 import envelope_pb2
from google.protobuf import duration_pb2, struct_pb2
from opentelemetry.util.types import AttributeValue

from aisdk.components.agents.registry import to_struct
from aisdk.components.agents.sql import Pool
from runtime.context import MessageContext
from runtime.contract import Context, Durability
from runtime.errors import HandlerError
from runtime.telemetry import Telemetry
from runtime.telemetry.names import ATTR, METRIC, SPAN

if TYPE_CHECKING:
    from runtime.bus import Bus

log = logging.getLogger("aisdk.agents.tasks")
Code = envelope_pb2.Error
TaskFunction = Callable[[agent_pb2.AgentTask, Context], Awaitable[Any]]
MAX_ERROR = 4096

_CLAIM = """
UPDATE agent_tasks t
   SET state = 'running', attempts = t.attempts + 1,
       lease_until = clock_timestamp() + make_interval(secs => %(lease)s)
  FROM (SELECT tenant_id, task_id FROM agent_tasks
         WHERE tenant_id = ANY(%(tenants)s) AND task_type = ANY(%(types)s)
           AND ((state = 'waiting' AND available_at <= clock_timestamp())
                OR (state = 'running' AND lease_until < clock_timestamp()))
         ORDER BY priority DESC, enqueued_at, task_id
         LIMIT 1 FOR UPDATE SKIP LOCKED) c
 WHERE t.tenant_id = c.tenant_id AND t.task_id = c.task_id
RETURNING t.tenant_id, t.task, t.envelope, t.attempts
"""


@dataclass(frozen=True, slots=True)
class Claimed:
    tenant: str
    task: agent_pb2.AgentTask
    envelope: bytes
    attempt: int


def _duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def envelope_bytes(ctx: Context) -> bytes:
    # The dead letter of a task holds the envelope it came in, so that a
    # replay re-drives the original message, trace context included.
    return ctx.envelope.SerializeToString()


class TaskQueue:
    """The SQL of the queue."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def put(self, tenant: str, task: agent_pb2.AgentTask, envelope: bytes) -> bool:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO agent_tasks (tenant_id, task_id, task_type, priority, task, envelope) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (tenant_id, task_id) DO NOTHING",
                (tenant, task.task_id, task.task_type, task.priority, task.SerializeToString(), envelope))
            return cur.rowcount == 1

    async def claim(self, tenants: Sequence[str], types: Sequence[str], lease_s: float) -> Claimed | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(_CLAIM, {"lease": lease_s, "tenants": list(tenants), "types": list(types)})
            row = await cur.fetchone()
        if row is None:
            return None
        return Claimed(row[0], agent_pb2.AgentTask.FromString(row[1]), bytes(row[2]), int(row[3]))

    # Every change of a claimed task names the claim: its attempt, while it
    # is running. True if the row was this claim's (and is changed).
    _CLAIMED = "WHERE tenant_id = %(tenant)s AND task_id = %(task)s AND state = 'running' AND attempts = %(attempt)s"

    async def _change(self, c: Claimed, assignments: str, **values: Any) -> bool:
        async with self._pool.connection() as conn:
            cur = await conn.execute(f"UPDATE agent_tasks SET {assignments} {self._CLAIMED}",
                                     {"tenant": c.tenant, "task": c.task.task_id, "attempt": c.attempt, **values})
            return cur.rowcount == 1

    async def renew(self, c: Claimed, lease_s: float) -> bool:
        """Extend the claim's lease; False if the claim is gone (another runner has the task)."""
        return await self._change(c, "lease_until = clock_timestamp() + make_interval(secs => %(lease)s)",
                                  lease=lease_s)

    async def retry(self, c: Claimed, delay_s: float, error: str) -> bool:
        return await self._change(c, "state = 'waiting', lease_until = NULL, last_error = %(error)s, "
                                     "available_at = clock_timestamp() + make_interval(secs => %(delay)s)",
                                  error=error, delay=delay_s)

    async def finish(self, c: Claimed, succeeded: bool, error: str = "") -> bool:
        return await self._change(c, "state = %(state)s, lease_until = NULL, last_error = %(error)s, "
                                     "finished_at = clock_timestamp()",
                                  state="succeeded" if succeeded else "failed", error=error)

    async def counts(self, tenant: str) -> dict[str, int]:
        """Tasks of the tenant by state."""
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT state, count(*) FROM agent_tasks WHERE tenant_id = %s GROUP BY state",
                                     (tenant,))
            return {state: int(n) for state, n in await cur.fetchall()}


class TaskRunners:
    """`concurrency` loops taking tasks of the known types from the queue."""

    def __init__(
        self,
        bus: Bus,
        queue: TaskQueue,
        agent_id: str,
        tenants: Sequence[str],
        functions: Mapping[str, TaskFunction],
        durability: Durability,
        tel: Telemetry,
        *,
        concurrency: int,
        poll_s: float,
        on_busy: Callable[[int], Awaitable[None]],
    ) -> None:
        self._bus = bus
        self._queue = queue
        self._agent_id = agent_id
        self._tenants = list(tenants)
        self._functions = dict(functions)
        self._durability = durability
        self._tel = tel
        self._poll_s = poll_s
        self._on_busy = on_busy
        self._wake = asyncio.Event()
        self._stopping = False
        self._loops = [asyncio.create_task(self._loop(), name=f"agent {agent_id} tasks {i}")
                       for i in range(concurrency)]
        self.active = 0
        # Claims found gone at a renewal or a settle, and renewals that failed.
        self.leases_lost = 0
        self.renewals_failed = 0

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """Finish the tasks in hand, take no more."""
        self._stopping = True
        self._wake.set()
        await asyncio.gather(*self._loops, return_exceptions=True)

    async def _loop(self) -> None:
        lease = self._durability.ack_wait_ms / 1000
        while not self._stopping:
            try:
                claimed = await self._queue.claim(self._tenants, list(self._functions), lease)
            except Exception as e:  # noqa: BLE001 - a database hiccup must not end the loop
                log.warning("taking a task failed: %s", e)
                claimed = None
            if claimed is None:
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_s)
                continue
            self.active += 1
            await self._on_busy(self.active)
            try:
                await self._run(claimed, lease)
            except Exception:  # noqa: BLE001 - the lease lapses and the task is taken again
                log.exception("settling task %s failed", claimed.task.task_id)
            finally:
                self.active -= 1
                await self._on_busy(self.active)

    async def _run(self, c: Claimed, lease: float) -> None:
        task, d = c.task, self._durability
        attrs: dict[str, AttributeValue] = {ATTR.TENANT_ID: c.tenant, "agent.id": self._agent_id,
                                            "task.id": task.task_id, "task.type": task.task_type,
                                            "task.attempt": c.attempt}
        t0 = time.perf_counter()
        error: Exception | None = None
        output: Any = None
        if c.attempt > d.max_deliver:
            error = RuntimeError(f"the lease of the last attempt ({d.max_deliver}) lapsed")
        else:
            # The envelope the task arrived in (kept in its row), no
            # deadline (a queued task outlives its sender's), and the
            # attempt counted by the queue, not by JetStream.
            envelope = envelope_pb2.Envelope.FromString(c.envelope)
            ctx = MessageContext(self._bus.subject(agent_bus.AGENT_TASKS, c.tenant), envelope.tenant_id,
                                 envelope, None, c.attempt)
            renewing: asyncio.Task[None] | None = None
            try:
                with self._tel.span(SPAN.AGENT_TASK_EXECUTE, attrs):
                    # A task of its own, so that a lost lease can cancel it;
                    # made inside the span, whose context it copies.
                    work = asyncio.ensure_future(self._functions[task.task_type](task, ctx))
                    renewing = asyncio.create_task(self._renew(c, lease, work))
                    output = await work
            except asyncio.CancelledError:
                if renewing is None or not (renewing.done() and not renewing.cancelled()):
                    raise  # the runner itself is being cancelled
                return  # the claim is gone: logged and counted by _renew, no effect of this run
            except Exception as e:  # noqa: BLE001 - retried, then a failed result and a dead letter
                error = e
            finally:
                if renewing is not None:
                    renewing.cancel()
        if not await self._still_claimed(c, lease):
            return
        elapsed = time.perf_counter() - t0
        status = "succeeded" if error is None else "failed"
        self._tel.metrics.counter(METRIC.AGENT_TASKS_EXECUTED).add(
            1, {ATTR.TENANT_ID: c.tenant, "task.type": task.task_type, "status": status})
        self._tel.metrics.histogram(METRIC.AGENT_TASK_DURATION).record(elapsed, {ATTR.TENANT_ID: c.tenant})
        if error is None:
            await self._result(c, agent_pb2.TASK_STATUS_SUCCEEDED, elapsed, output=to_struct(output or {}))
            self._settled(c, await self._queue.finish(c, True))
            return
        reason = f"{type(error).__name__}: {error}"[:MAX_ERROR]
        final = c.attempt >= d.max_deliver or (isinstance(error, HandlerError) and not error.retryable)
        if not final:
            backoff = d.backoff_ms[min(c.attempt, len(d.backoff_ms)) - 1] / 1000 if d.backoff_ms else 0.0
            log.info("task %s failed (attempt %d of %d), retrying in %.1f s: %s", task.task_id, c.attempt,
                     d.max_deliver, backoff, reason)
            self._settled(c, await self._queue.retry(c, backoff, reason))
            return
        log.warning("task %s failed for good after %d attempts: %s", task.task_id, c.attempt, reason)
        await self._result(c, agent_pb2.TASK_STATUS_FAILED, elapsed, error=reason)
        code = error.code if isinstance(error, HandlerError) else Code.CODE_INTERNAL
        await self._bus.dead_letter(self._bus.subject(agent_bus.AGENT_TASKS, c.tenant), c.envelope, code,
                                    reason, c.attempt, agent_bus.AGENT_TASKS.queue_group)
        self._settled(c, await self._queue.finish(c, False, reason))

    def _lost(self, c: Claimed, when: str) -> None:
        self.leases_lost += 1
        self._tel.metrics.counter(METRIC.AGENT_TASK_LEASES_LOST).add(1, {ATTR.TENANT_ID: c.tenant})
        log.warning("task %s: the lease of attempt %d lapsed and another runner has claimed it; %s",
                    c.task.task_id, c.attempt, when)

    async def _still_claimed(self, c: Claimed, lease: float) -> bool:
        """Before the run's effects (its result, a dead letter): is the claim
        still this runner's? A renewal answers and extends it at once."""
        try:
            if await self._queue.renew(c, lease):
                return True
        except Exception as e:  # noqa: BLE001 - unknown is not ours: the fenced settle decides
            self.renewals_failed += 1
            log.warning("task %s: renewing its lease failed: %s", c.task.task_id, e)
            return True
        self._lost(c, "this run's result is dropped")
        return False

    def _settled(self, c: Claimed, changed: bool) -> None:
        if not changed:
            self._lost(c, "its settle changed nothing")

    async def _renew(self, c: Claimed, lease: float, work: asyncio.Future[Any]) -> None:
        """Renew at a third of the lease; once the claim is gone, cancel the run."""
        while True:
            await asyncio.sleep(lease / 3)
            try:
                if await self._queue.renew(c, lease):
                    continue
            except Exception as e:  # noqa: BLE001 - a database hiccup: the next renewal may succeed
                self.renewals_failed += 1
                log.warning("task %s: renewing its lease failed (the lease lapses in %.1f s unless a renewal "
                            "succeeds): %s", c.task.task_id, lease, e)
                continue
            self._lost(c, "its run is cancelled")
            work.cancel()
            return

    async def _result(self, c: Claimed, status: int, elapsed: float, *, output: struct_pb2.Struct | None = None,
                      error: str = "") -> None:
        result = agent_pb2.TaskResult(task_id=c.task.task_id, agent_id=self._agent_id, status=status,  # type: ignore[arg-type]
                                      error=error, duration=_duration(elapsed))
        if output is not None:
            result.output.CopyFrom(output)
        # One result per task: a repeat within the stream's window is dropped.
        await agent_bus.AgentServiceClient(self._bus, c.tenant).results(
            result, message_id=f"result-{c.tenant}-{c.task.task_id}")
