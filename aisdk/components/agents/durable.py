"""Durable runs of the agent loop (agent.runs, agent.approvals).

Each step of a run - a model reply, a tool result, an approval decision - is
checkpointed in PostgreSQL (agent_run_steps) before the next begins. A run
is the conversation its checkpoints replay to, so a run whose process died
is resumed by any other from its last checkpoint: the model is not asked
again for a reply it gave, and a tool whose result is recorded is not called
again (the executor's record of call ids covers a call that ran but whose
checkpoint was not written). A tool registered with needs_approval pauses
the run until an ApprovalDecision; the pause is a row, so it outlives every
process.

A run in a session holds the session's lock from its first step to its end,
so the turns of one session never interleave."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ai.agent.v1 import agent_bus, agent_pb2
from ai.envelope.v1 import envelope_pb2
from ai.gateway.v1 import gateway_pb2
from ai.rag.v1 import rag_pb2
from google.protobuf import json_format, struct_pb2, timestamp_pb2
from opentelemetry.util.types import AttributeValue

from aisdk.components.agents import followup
from aisdk.components.agents.checkpoints import Claim, Kind, RunStore, Step, agent_of
from aisdk.components.agents.loop import AgentLoop, OnDelta, run_call_id, tool_content
from aisdk.components.agents.rag_tool import RAG_TOOL
from aisdk.components.agents.registry import ToolRegistry, from_struct
from aisdk.components.agents.sessions import SessionStore, timestamp
from aisdk.components.agents.settings import Settings
from aisdk.components.agents.sql import Pool
from aisdk.components.rag import NOT_FOUND
from runtime.contract import Context
from runtime.errors import HandlerError, PlatformError
from runtime.telemetry import Telemetry
from runtime.telemetry.names import ATTR, METRIC, SPAN

if TYPE_CHECKING:
    from runtime.bus import Bus

log = logging.getLogger("aisdk.agents.runs")
Code = envelope_pb2.Error
Role = gateway_pb2.Role
HISTORY_PROMPT = "Earlier in this conversation:\n"


@dataclass(slots=True)
class Listener:
    """A caller of agent.runs.stream: the (round, delta) pieces for it, None
    once the run has ended, and the rounds that have sent it text."""

    queue: asyncio.Queue[tuple[int, str] | None] = field(default_factory=asyncio.Queue)
    streamed: set[int] = field(default_factory=set)


class ClaimLost(Exception):
    """Another process has claimed the run since: this one must stop."""


@dataclass(slots=True)
class Replay:
    """A run as its checkpoints say it stands."""

    messages: list[gateway_pb2.ChatMessage]
    rounds: int = 0
    final: gateway_pb2.LlmResponse | None = None
    pending: list[gateway_pb2.ToolCall] = field(default_factory=list)
    results: list[agent_pb2.ToolExecutionResult] = field(default_factory=list)
    decisions: dict[str, agent_pb2.ApprovalDecision] = field(default_factory=dict)
    tokens: int = 0
    cost: float = 0.0
    model: str = ""

    def apply(self, step: Step) -> None:
        if step.kind == "model":
            reply = gateway_pb2.LlmResponse.FromString(step.payload)
            self.rounds += 1
            self.tokens += reply.tokens.prompt + reply.tokens.completion
            self.cost += reply.cost
            self.model = reply.model or self.model
            if not reply.tool_calls:
                self.final = reply
                return
            self.messages.append(gateway_pb2.ChatMessage(role=Role.ROLE_ASSISTANT, content=reply.response,
                                                         tool_calls=reply.tool_calls))
            self.pending = list(reply.tool_calls)
        elif step.kind == "tool":
            result = agent_pb2.ToolExecutionResult.FromString(step.payload)
            call = self.pending.pop(0)
            self.results.append(result)
            self.messages.append(gateway_pb2.ChatMessage(role=Role.ROLE_TOOL, tool_call_id=call.id,
                                                         content=tool_content(result)))
        else:  # a decision on the first pending call, the one the run paused at
            self.decisions[self.pending[0].id] = agent_pb2.ApprovalDecision.FromString(step.payload)


def summary(run_id: str, replay: Replay) -> agent_pb2.AgentRunReply:
    """The reply as the run stands: its answer, the documents its searches
    cited, and whether any search answered (else the answer says the
    documents do not answer, as RAG's abstention does)."""
    out = agent_pb2.AgentRunReply(run_id=run_id, state=agent_pb2.RUN_STATE_RUNNING, rounds=replay.rounds,
                                  cost=replay.cost, model=replay.model, status=rag_pb2.ANSWER_STATUS_NOT_FOUND)
    tokens = replay.tokens
    for result in replay.results:
        output = from_struct(result.output) if result.success else {}
        if result.tool_name == RAG_TOOL and output:
            tokens += int(output.get("tokens") or 0)
            out.cost += float(output.get("cost") or 0.0)
            if output.get("status") == "answered":
                out.status = rag_pb2.ANSWER_STATUS_ANSWERED
        for source in output.get("sources") or ():
            if isinstance(source, dict):
                out.sources.append(json_format.ParseDict(source, rag_pb2.Source(), ignore_unknown_fields=True))
    out.tokens = tokens
    if replay.final is not None:
        out.state, out.answer = agent_pb2.RUN_STATE_SUCCEEDED, replay.final.response
        if out.status == rag_pb2.ANSWER_STATUS_NOT_FOUND:
            # No search answered (or none was made): whatever the model wrote
            # is not from the documents, and a document Q&A says so.
            out.answer = NOT_FOUND
            del out.sources[:]
    return out


class Runner:
    """Runs, resumes and decides durable runs for every tenant."""

    def __init__(self, pool: Pool, bus: Bus, tel: Telemetry, registry: ToolRegistry, settings: Settings) -> None:
        self._bus = bus
        self._tel = tel
        self._registry = registry
        self._settings = settings
        self.runs = RunStore(pool)
        self.sessions = SessionStore(pool)
        self._background: set[asyncio.Task[agent_pb2.AgentRunReply]] = set()
        # The callers streaming a run through this process, by (tenant, run
        # id): whichever claim of the run runs here feeds its model text to them.
        self._listeners: dict[tuple[str, str], Listener] = {}
        self._sweeper: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep(), name="agent runs sweeper")

    async def stop(self) -> None:
        tasks = [*self._background, *([self._sweeper] if self._sweeper else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _sweep(self) -> None:
        """Resume the runs whose process died, without waiting for a caller,
        and announce the agents whose runs await approval."""
        loop = asyncio.get_running_loop()
        announced = loop.time()
        while True:
            await asyncio.sleep(min(self._settings.run_lease_s / 2, self._settings.status_interval_s))
            try:
                for tenant, run_id in await self.runs.lapsed():
                    claim = await self.runs.claim(tenant, run_id, self._settings.run_lease_s)
                    if claim is not None:
                        self._resume_in_background(claim)
                if loop.time() - announced >= self._settings.status_interval_s:
                    announced = loop.time()
                    for tenant, agent_id in await self.runs.paused_agents():
                        await self._status(tenant, agent_id)
            except Exception as e:  # noqa: BLE001 - the next sweep tries again
                log.warning("looking for lapsed runs failed: %s", e)

    def _resume_in_background(self, claim: Claim) -> None:
        log.info("resuming run %s of tenant %s (attempt %d)", claim.run_id, claim.tenant, claim.attempt)
        task = asyncio.create_task(self._drive(claim), name=f"run {claim.run_id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- the three ways in ------------------------------------------------------

    async def run(self, request: agent_pb2.AgentRunRequest, ctx: Context) -> agent_pb2.AgentRunReply:
        tenant = ctx.tenant_id
        agent_id = agent_of(request)
        if request.session_id:
            paused = await self.runs.session_paused(tenant, request.session_id)
            if paused is not None and paused != request.run_id:
                raise HandlerError(Code.CODE_FAILED_PRECONDITION,
                                   f"session {request.session_id!r} has run {paused} awaiting approval: approve or "
                                   f"reject it first (`aisdk agents approve|reject {paused}`)")
        claim = await self.runs.create(tenant, request, agent_id, self._settings.run_lease_s)
        if claim is None:
            return await self.attach(tenant, request.run_id, ctx.time_left())
        return await self._drive(claim)

    async def run_stream(self, request: agent_pb2.AgentRunRequest,
                         ctx: Context) -> AsyncIterator[agent_pb2.AgentRunChunk]:
        """The run of `run`, its model text sent as it comes, then its
        reply. The run does not depend on the caller: one who leaves early
        leaves it running here, and asks again with the run id."""
        key = (ctx.tenant_id, request.run_id)
        if key in self._listeners:
            raise HandlerError(Code.CODE_FAILED_PRECONDITION, f"run {request.run_id!r} is already streamed to a "
                               "caller: ask agent.runs for its answer")
        listener = self._listeners[key] = Listener()
        task = asyncio.create_task(self.run(request, ctx), name=f"run {request.run_id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(lambda _: listener.queue.put_nowait(None))
        index = 0
        try:
            while (item := await listener.queue.get()) is not None:
                yield agent_pb2.AgentRunChunk(run_id=request.run_id, index=index, round=item[0], delta=item[1])
                index += 1
            reply = task.result()
        finally:
            del self._listeners[key]
        final = max(reply.rounds, 1) - 1
        if reply.state == agent_pb2.RUN_STATE_SUCCEEDED and final not in listener.streamed and reply.answer:
            # Nothing of the answer came through here (it was on record
            # already, or it is the abstention): it is sent in one piece.
            yield agent_pb2.AgentRunChunk(run_id=request.run_id, index=index, round=final, delta=reply.answer)
            index += 1
        yield agent_pb2.AgentRunChunk(run_id=request.run_id, index=index, round=final, reply=reply)

    async def attach(self, tenant: str, run_id: str, within_s: float | None = None) -> agent_pb2.AgentRunReply:
        """Wait for the run's end or pause (at most within_s, the caller's
        time); take it over if its process died."""
        loop = asyncio.get_running_loop()
        end = None if within_s is None else loop.time() + within_s
        while True:
            if end is not None and loop.time() > end:
                raise HandlerError(Code.CODE_DEADLINE_EXCEEDED, f"run {run_id!r} is still running: ask again with "
                                   "the same run id for its answer", True)
            row = await self.runs.row(tenant, run_id)
            if row is None:
                raise HandlerError(Code.CODE_NOT_FOUND, f"no run {run_id!r} in tenant {tenant!r}")
            state, lapsed, reply = row
            if state != "running" and reply is not None:
                return agent_pb2.AgentRunReply.FromString(reply)
            if state == "running" and lapsed:
                claim = await self.runs.claim(tenant, run_id, self._settings.run_lease_s)
                if claim is not None:
                    return await self._drive(claim)
            await asyncio.sleep(self._settings.task_poll_s)

    async def decide(self, decision: agent_pb2.ApprovalDecision, ctx: Context) -> agent_pb2.AgentRunReply:
        tenant = ctx.tenant_id
        row = await self.runs.row(tenant, decision.run_id)
        if row is None:
            raise HandlerError(Code.CODE_NOT_FOUND, f"no run {decision.run_id!r} in tenant {tenant!r}")
        if row[0] != "awaiting_approval":
            raise HandlerError(Code.CODE_FAILED_PRECONDITION,
                               f"run {decision.run_id!r} is {row[0].replace('_', ' ')}, not awaiting approval")
        steps = await self.runs.steps(tenant, decision.run_id)
        if await self.runs.decide(tenant, decision.run_id, len(steps), decision):
            claim = await self.runs.claim(tenant, decision.run_id, self._settings.run_lease_s, resume=True)
            if claim is not None:
                return await self._drive(claim)
        # Decided at the same time by someone else: their decision stands.
        return await self.attach(tenant, decision.run_id, ctx.time_left())

    # -- one claim of a run -----------------------------------------------------

    async def _drive(self, claim: Claim) -> agent_pb2.AgentRunReply:
        """Execute the claim while renewing its lease; a lost claim stops it
        and the caller gets the run as whoever holds it now finishes it."""
        work = asyncio.ensure_future(self._execute(claim))
        renewing = asyncio.create_task(self._renew(claim, work))
        try:
            return await work
        except ClaimLost:
            pass
        except asyncio.CancelledError:
            if not (renewing.done() and not renewing.cancelled()):
                raise  # this process is stopping: the lease lapses and another resumes the run
        finally:
            renewing.cancel()
        log.warning("run %s: attempt %d lost its claim; following the run as it goes on", claim.run_id,
                    claim.attempt)
        return await self.attach(claim.tenant, claim.run_id)

    async def _renew(self, claim: Claim, work: asyncio.Future[agent_pb2.AgentRunReply]) -> None:
        lease = self._settings.run_lease_s
        while True:
            await asyncio.sleep(lease / 3)
            try:
                if await self.runs.renew(claim, lease):
                    continue
            except Exception as e:  # noqa: BLE001 - the next renewal may succeed
                log.warning("run %s: renewing its lease failed: %s", claim.run_id, e)
                continue
            work.cancel()
            return

    @contextlib.asynccontextmanager
    async def _turn_lock(self, claim: Claim) -> AsyncIterator[None]:
        if not claim.request.session_id:
            yield
            return
        async with self.sessions.locked(claim.tenant, claim.request.session_id):
            yield

    async def _execute(self, claim: Claim) -> agent_pb2.AgentRunReply:
        request = claim.request
        agent_id = agent_of(request)
        attrs: dict[str, AttributeValue] = {ATTR.TENANT_ID: claim.tenant, "agent.id": agent_id,
                                            "run.id": claim.run_id, "run.attempt": claim.attempt,
                                            "session.id": request.session_id}
        with self._tel.span(SPAN.AGENT_TASK_EXECUTE, attrs) as span:
            async with self._turn_lock(claim):
                started = timestamp(datetime.now(UTC))
                history = await self._history(claim, agent_id)
                question = claim.standalone or followup.standalone(request.question, history)
                if not claim.standalone and not await self.runs.set_standalone(claim, question):
                    raise ClaimLost(claim.run_id)
                reply = await self._steps(claim, agent_id, question, history, started)
            span.set_attribute("run.state", agent_pb2.RunState.Name(reply.state))
            span.set_attribute("run.rounds", reply.rounds)
        return reply

    async def _history(self, claim: Claim, agent_id: str) -> list[agent_pb2.SessionTurn]:
        """Open the run's session on its first turn, and read its turns."""
        request = claim.request
        if not request.session_id:
            return []
        session, created = await self.sessions.open(claim.tenant, agent_pb2.SessionCreateRequest(
            session_id=request.session_id, user_id=request.user_id, agent_id=agent_id))
        if created:
            self.session_created(claim.tenant, agent_id, session.session_id)
        attrs: dict[str, AttributeValue] = {ATTR.TENANT_ID: claim.tenant, "agent.id": agent_id,
                                            "session.id": request.session_id, "memory.type": "session"}
        with self._tel.span(SPAN.AGENT_MEMORY_RETRIEVE, attrs) as span:
            turns = await self.sessions.turns(claim.tenant, request.session_id)
            span.set_attribute("memory.matches", len(turns))
        return turns

    def session_created(self, tenant: str, agent_id: str, session_id: str) -> None:
        attrs: dict[str, AttributeValue] = {ATTR.TENANT_ID: tenant, "agent.id": agent_id, "session.id": session_id}
        with self._tel.span(SPAN.AGENT_SESSION_CREATE, attrs):
            self._tel.metrics.counter(METRIC.AGENT_SESSIONS_CREATED).add(1, {ATTR.TENANT_ID: tenant})

    async def _steps(self, claim: Claim, agent_id: str, question: str, history: list[agent_pb2.SessionTurn],
                     started: timestamp_pb2.Timestamp) -> agent_pb2.AgentRunReply:
        s = self._settings
        loop = AgentLoop(self._bus, claim.tenant, agent_id, self._registry.definitions(), model=s.chat_model,
                         max_rounds=s.max_rounds, tel=self._tel)
        messages = []
        earlier = followup.transcript(history, s.history_tokens)
        if earlier:
            messages.append(gateway_pb2.ChatMessage(role=Role.ROLE_SYSTEM, content=HISTORY_PROMPT + earlier))
        messages.append(gateway_pb2.ChatMessage(role=Role.ROLE_USER, content=question))
        replay = Replay(messages)
        steps = await self.runs.steps(claim.tenant, claim.run_id)
        for step in steps:
            replay.apply(step)
        seq = len(steps)

        async def checkpoint(kind: Kind, payload: bytes) -> None:
            nonlocal seq
            if not await self.runs.checkpoint(claim, seq, kind, payload):
                raise ClaimLost(claim.run_id)
            replay.apply(Step(seq, kind, payload))
            seq += 1

        while replay.final is None:
            if replay.pending:
                call = replay.pending[0]
                tool = self._registry.get(call.name)
                decision = replay.decisions.get(call.id)
                if tool is not None and tool.needs_approval and decision is None:
                    return await self._pause(claim, replay, call)
                if decision is not None and not decision.approve:
                    result = agent_pb2.ToolExecutionResult(
                        call_id=run_call_id(claim.run_id, call), tool_name=call.name, success=False,
                        error=f"rejected by {decision.approver or 'the approver'}: {decision.reason or 'no reason'}")
                else:
                    try:
                        result = await loop.call_tool(call, claim.run_id)
                    except PlatformError as e:
                        # No executor answered (none serves agent.tools, or the
                        # call outlived its timeout): whether the tool ran is
                        # unknown, so the run ends rather than guess.
                        return await self._fail(claim, replay, f"the call of {call.name} failed: {e}")
                await checkpoint("tool", result.SerializeToString())
                continue
            last = replay.rounds >= s.max_rounds - 1
            try:
                reply = await loop.ask(replay.messages, [] if last else loop.tools, f"{claim.run_id}-{replay.rounds}",
                                       self._streaming(claim, replay))
            except PlatformError as e:
                return await self._fail(claim, replay, f"the model call failed: {e}")
            await checkpoint("model", reply.SerializeToString())
        return await self._finish(claim, replay, question, started)

    def _streaming(self, claim: Claim, replay: Replay) -> OnDelta | None:
        """Where the next model reply's text goes as it comes: to the caller
        streaming this run through this process, if there is one and the
        model's text can be the answer (a search has answered; otherwise
        the answer is the abstention, whatever the model writes)."""
        listener = self._listeners.get((claim.tenant, claim.run_id))
        if listener is None or summary(claim.run_id, replay).status != rag_pb2.ANSWER_STATUS_ANSWERED:
            return None
        round_ = replay.rounds

        async def on_delta(delta: str) -> None:
            listener.streamed.add(round_)
            listener.queue.put_nowait((round_, delta))

        return on_delta

    async def _pause(self, claim: Claim, replay: Replay, call: gateway_pb2.ToolCall) -> agent_pb2.AgentRunReply:
        out = summary(claim.run_id, replay)
        out.state = agent_pb2.RUN_STATE_AWAITING_APPROVAL
        out.session_id, out.attempts = claim.request.session_id, claim.attempt
        arguments = struct_pb2.Struct()
        with contextlib.suppress(ValueError):
            json_format.Parse(call.arguments or "{}", arguments)
        out.pending.CopyFrom(agent_pb2.PendingApproval(call_id=run_call_id(claim.run_id, call),
                                                       tool_name=call.name, arguments=arguments))
        out.answer = (f"Run {claim.run_id} waits for approval of a call of {call.name}: "
                      f"aisdk agents approve|reject {claim.run_id}")
        if not await self.runs.pause(claim, out):
            raise ClaimLost(claim.run_id)
        await self._status(claim.tenant, claim.agent_id)
        return out

    async def _status(self, tenant: str, agent_id: str) -> None:
        """agent.status of the agent: awaiting approval while any of its runs does."""
        waiting = [run for agent, run in await self.runs.paused(tenant) if agent == agent_id]
        state = agent_pb2.AGENT_STATE_AWAITING_APPROVAL if waiting else agent_pb2.AGENT_STATE_IDLE
        status = agent_pb2.AgentStatus(agent_id=agent_id, state=state, awaiting_approval=waiting[:64])
        try:
            await agent_bus.AgentServiceClient(self._bus, tenant).status(status)
        except PlatformError as e:
            log.warning("the status of agent %s could not be sent: %s", agent_id, e)

    async def _fail(self, claim: Claim, replay: Replay, error: str) -> agent_pb2.AgentRunReply:
        out = summary(claim.run_id, replay)
        out.state, out.error, out.attempts = agent_pb2.RUN_STATE_FAILED, error[:4096], claim.attempt
        out.session_id = claim.request.session_id
        if not await self.runs.finish(claim, out, None):
            raise ClaimLost(claim.run_id)
        return out

    async def _finish(self, claim: Claim, replay: Replay, question: str,
                      started: timestamp_pb2.Timestamp) -> agent_pb2.AgentRunReply:
        out = summary(claim.run_id, replay)
        out.session_id, out.attempts = claim.request.session_id, claim.attempt
        turn = agent_pb2.SessionTurn(run_id=claim.run_id, question=claim.request.question,
                                     standalone_question=question, answer=out.answer, status=out.status,
                                     started_at=started)
        for result in replay.results:
            turn.tool_calls.add(call_id=result.call_id, tool_name=result.tool_name, success=result.success)
        if not await self.runs.finish(claim, out, turn):
            raise ClaimLost(claim.run_id)
        if replay.decisions:
            await self._status(claim.tenant, claim.agent_id)
        return out
