"""answer(bus, tenant, question): a question answered by the agent loop with
the RAG search tool, for `aisdk ask --mode agent` and the API's agent mode.
Needs the gateway, the RAG worker (with the prompt worker) and an agents
service (the tool executor) on the bus."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ai.rag.v1 import rag_pb2
from google.protobuf import json_format

from aisdk.components.agents.loop import AgentLoop
from aisdk.components.rag import NOT_FOUND
from aisdk.components.agents.rag_tool import RAG_TOOL, builtin_tools
from aisdk.components.agents.settings import Settings
from aisdk.components.agents.registry import from_struct
from runtime.contract import Transport
from runtime.telemetry import Telemetry

DEFAULT_AGENT_ID = "assistant"


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


async def answer(
    bus: Transport,
    tenant: str,
    question: str,
    *,
    settings: Settings | None = None,
    model: str | None = None,
    agent_id: str = DEFAULT_AGENT_ID,
    tel: Telemetry | None = None,
) -> AgentAnswer:
    s = settings or Settings.from_env()
    tools = builtin_tools(s).definitions([RAG_TOOL])
    loop = AgentLoop(bus, tenant, agent_id, tools, model=model or s.chat_model, max_rounds=s.max_rounds, tel=tel)
    done = await loop.run(question, run_id=f"{agent_id}-{os.urandom(8).hex()}")
    out = AgentAnswer(done.text, tokens=done.tokens, cost=done.cost, rounds=done.rounds, model=done.model)
    for result in done.tool_results:
        if result.success and result.tool_name == RAG_TOOL:
            output = from_struct(result.output)
            out.tokens += int(output.get("tokens") or 0)
            out.cost += float(output.get("cost") or 0.0)
            if output.get("status") == "answered":
                out.status = rag_pb2.ANSWER_STATUS_ANSWERED
    for source in done.sources:
        out.sources.append(json_format.ParseDict(source, rag_pb2.Source(), ignore_unknown_fields=True))
    if out.status == rag_pb2.ANSWER_STATUS_NOT_FOUND:
        # No search answered (or none was made): whatever the model wrote,
        # it is not from the documents, and a document Q&A says so.
        out.answer, out.sources = NOT_FOUND, []
    return out
