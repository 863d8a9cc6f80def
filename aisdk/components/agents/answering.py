"""answer(bus, tenant, question): a question answered by a durable run of
the agent loop (agent.runs, served by `aisdk serve agents`), for
`aisdk ask --mode agent` and the API's agent mode. Needs the gateway, the
RAG worker (with the prompt worker) and an agents service on the bus.

A run's process may die: the caller asks again with the same run id every
run_attempt_s, which attaches to the run where it goes on, or resumes it
from its last checkpoint once its lease has lapsed."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field

from ai.agent.v1 import agent_bus, agent_pb2
from ai.envelope.v1 import envelope_pb2
from ai.rag.v1 import rag_pb2

from aisdk.components.agents.checkpoints import DEFAULT_AGENT_ID
from aisdk.components.agents.settings import Settings
from runtime.contract import Transport
from runtime.errors import NoResponders, RemoteError, RequestTimeout

# How long a caller waits before asking again when nothing serves agent.runs.
NO_RESPONDERS_PAUSE_S = 0.5


@dataclass(slots=True)
class AgentAnswer:
    answer: str
    sources: list[rag_pb2.Source] = field(default_factory=list)
    # The loop's model calls plus the RAG queries its tool ran.
    tokens: int = 0
    cost: float = 0.0
    rounds: int = 0
    # ANSWERED when a search of the documents answered; NOT_FOUND when none
    # did (or none was made): the answer is then not from the documents.
    status: rag_pb2.AnswerStatus = rag_pb2.ANSWER_STATUS_NOT_FOUND
    # The provider model that gave the answer.
    model: str = ""
    run_id: str = ""
    session_id: str = ""
    turn: int = 0
    state: agent_pb2.RunState = agent_pb2.RUN_STATE_SUCCEEDED
    pending: agent_pb2.PendingApproval | None = None
    # Why the run failed (state RUN_STATE_FAILED).
    error: str = ""

    @property
    def awaiting_approval(self) -> bool:
        return self.state == agent_pb2.RUN_STATE_AWAITING_APPROVAL

    @classmethod
    def of(cls, reply: agent_pb2.AgentRunReply) -> AgentAnswer:
        return cls(reply.answer, list(reply.sources), reply.tokens, reply.cost, reply.rounds, reply.status,
                   reply.model, reply.run_id, reply.session_id, reply.turn, reply.state,
                   reply.pending if reply.HasField("pending") else None, reply.error)


async def run(bus: Transport, tenant: str, request: agent_pb2.AgentRunRequest, *, attempt_s: float,
              deadline_s: float | None = None) -> agent_pb2.AgentRunReply:
    """The run's reply, asking again with the same run id while no reply
    comes (its process may have died) until deadline_s."""
    client = agent_bus.AgentServiceClient(bus, tenant)
    loop = asyncio.get_running_loop()
    end = None if deadline_s is None else loop.time() + deadline_s
    while True:
        left = None if end is None else end - loop.time()
        try:
            return await client.runs(request, timeout=attempt_s if left is None else max(0.1, min(attempt_s, left)))
        except RequestTimeout:
            if left is not None and left <= attempt_s:
                raise
        except RemoteError as e:
            # The run goes on past this attempt (an agents service that
            # attached to it gave up at the attempt's deadline): ask again.
            if e.code != envelope_pb2.Error.CODE_DEADLINE_EXCEEDED or (left is not None and left <= attempt_s):
                raise
        except NoResponders:
            # Between a process that died and the one that replaces it; with
            # no deadline, nothing to wait for.
            if left is None or left <= NO_RESPONDERS_PAUSE_S:
                raise
            await asyncio.sleep(NO_RESPONDERS_PAUSE_S)


async def answer(
    bus: Transport,
    tenant: str,
    question: str,
    *,
    settings: Settings | None = None,
    agent_id: str = DEFAULT_AGENT_ID,
    session_id: str = "",
    user_id: str = "",
    run_id: str = "",
    deadline_s: float | None = None,
) -> AgentAnswer:
    s = settings or Settings.from_env()
    request = agent_pb2.AgentRunRequest(run_id=run_id or f"{agent_id}-{os.urandom(8).hex()}", question=question,
                                        agent_id=agent_id, session_id=session_id, user_id=user_id)
    reply = await run(bus, tenant, request, attempt_s=s.run_attempt_s, deadline_s=deadline_s)
    return AgentAnswer.of(reply)
