"""Sessions on real servers: nats-server with JetStream, the embedded
PostgreSQL, the gateway with its offline local provider, the prompt, RAG,
agents and API workers. A conversation of two turns through the API, the
session's contract (create, list, show, delete), turns of one session that
never interleave, and the measurement that picks how a follow-up is
retrieved."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ai.agent.v1 import agent_bus, agent_pb2
from ai.api.v1 import api_bus, api_pb2
from ai.envelope.v1 import envelope_pb2
from ai.rag.v1 import rag_bus, rag_pb2

from aisdk.cli import ingesting
from aisdk.components import COMPONENTS
from aisdk.components.agents import AgentsService, Settings, answer
from aisdk.components.agents.followup import standalone
from aisdk.components.api import Api
from aisdk.components.prompt import PromptManager
from aisdk.components.rag import NOT_FOUND
from aisdk.components.rag.worker import RagWorker
from aisdk.components.storage import temporary_database
from runtime.bus import Bus
from runtime.contract import Durability
from runtime.errors import ContractViolation, RemoteError
from runtime.server import EmbeddedServer
from runtime.settings import BusSettings
from runtime.telemetry import Telemetry, setup
from tests.support import checkout_env

DOCS = Path(__file__).resolve().parents[1] / "aisdk" / "cli" / "demo_docs"
FAST = {"rag.ingest": Durability("work_queue", 3, 5000, (100, 100), 60_000, 0)}
SETTINGS = Settings(status_interval_s=0.3, task_poll_s=0.05,
                    rag_tool_description="Search the store's documents: the refund policy, shipping, privacy "
                                         "policy and warranty.")
# (first question, follow-up, what the follow-up's answer must say)
FOLLOW_UPS = [
    ("What is the refund policy?", "And for sale items?", "Sale items are final"),
    ("How long does standard delivery take?", "And express?", "Express delivery takes one business day"),
    ("What warranty do electronics have?", "Does it cover water damage?", "water damage"),
    ("What personal data do you store?", "Can I have it deleted?", "delete your account"),
    ("How do I return an item?", "And how fast is the refund paid?", "within 5 business days"),
    # Follow-ups that do not name their subject at all.
    ("What does express delivery cost?", "How long does it take?", "Express delivery takes one business day"),
    ("What is the refund policy?", "How long do I have?", "30 days"),
    ("When are refunds paid?", "To which account?", "original payment method"),
    ("How long is the warranty on electronics?", "What does it not cover?", "does not cover"),
]


def tenant() -> str:
    return "s" + uuid.uuid4().hex[:10]


@dataclass
class Rig:
    bus: Bus
    url: str
    tel: Telemetry
    tenant: str


@pytest.fixture(scope="module")
def nats_server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(name="aisdk-sessions-test") as server:
        yield server


@pytest.fixture(scope="module")
async def rig(nats_server: EmbeddedServer) -> AsyncIterator[Rig]:
    tel = setup("sessions-test", exporter="memory", metrics_exporter="memory", sampler_ratio=1.0)
    t = tenant()
    async with temporary_database() as url:
        async with Bus(nats_server.url, BusSettings(name="sessions-test", durability_overrides=FAST),
                       telemetry=tel) as bus:
            await bus.serve(COMPONENTS["gateway"]())
            await bus.serve(PromptManager())
            await bus.serve(RagWorker(database_url=url))
            await bus.serve(AgentsService(settings=SETTINGS, database_url=url))
            await bus.serve(Api(agent_settings=SETTINGS))
            summary = await ingesting.ingest(bus, t, ingesting.collect([DOCS]), timeout=120)
            assert not summary.failed, summary.failed
            yield Rig(bus, url, tel, t)
    tel.shutdown()


def counter(tel: Telemetry, name: str, **attrs: Any) -> float:
    assert tel.metric_reader is not None
    data = tel.metric_reader.get_metrics_data()
    total = 0.0
    for rm in data.resource_metrics if data is not None else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    total += sum(float(getattr(p, "value", 0)) for p in m.data.data_points
                                 if all((p.attributes or {}).get(k) == v for k, v in attrs.items()))
    return total


async def ask(rig: Rig, question: str, session: str, **fields: Any) -> api_pb2.ApiAnswer:
    return await api_bus.ApiServiceClient(rig.bus, rig.tenant).queries(
        api_pb2.ApiQuery(query_id=uuid.uuid4().hex, query=question, session_id=session, **fields), timeout=60)


async def test_a_follow_up_is_answered_with_the_conversations_context(rig: Rig) -> None:
    session = "chat-" + uuid.uuid4().hex[:8]
    first = await ask(rig, "What is the refund policy?", session, user_id="ann")
    assert first.mode == api_pb2.QUERY_MODE_AGENT  # AUTO with a session is the agent's
    assert first.status == rag_pb2.ANSWER_STATUS_ANSWERED and "30 days" in first.answer
    assert (first.session_id, first.turn) == (session, 1) and first.run_id
    second = await ask(rig, "And for sale items?", session, user_id="ann")
    assert second.status == rag_pb2.ANSWER_STATUS_ANSWERED and "Sale items are final" in second.answer
    assert second.turn == 2 and second.sources[0].document_id.endswith("refund-policy.md")

    sessions = agent_bus.AgentServiceClient(rig.bus, rig.tenant)
    shown = await sessions.sessions_show(agent_pb2.SessionRef(session_id=session))
    assert shown.session.user_id == "ann" and shown.session.turns == 2
    assert [t.question for t in shown.turns] == ["What is the refund policy?", "And for sale items?"]
    assert shown.turns[1].standalone_question == "What is the refund policy? And for sale items?"
    assert [c.tool_name for c in shown.turns[1].tool_calls] == ["search_documents"]
    listed = await sessions.sessions_list(agent_pb2.SessionListRequest(user_id="ann"))
    assert session in [s.session_id for s in listed.sessions]

    # Another user's session is not theirs to read or delete, nor to know of.
    with pytest.raises(RemoteError, match="no session"):
        await sessions.sessions_show(agent_pb2.SessionRef(session_id=session, user_id="bob"))
    deleted = await sessions.sessions_delete(agent_pb2.SessionRef(session_id=session, user_id="ann"))
    assert deleted.deleted
    with pytest.raises(RemoteError, match="no session") as gone:
        await sessions.sessions_show(agent_pb2.SessionRef(session_id=session))
    assert gone.value.code == envelope_pb2.Error.CODE_NOT_FOUND

    assert rig.tel.span_exporter is not None
    created = [s for s in rig.tel.span_exporter.get_finished_spans()
               if s.name == "agent.session.create" and (s.attributes or {}).get("session.id") == session]
    assert len(created) == 1 and (created[0].attributes or {}).get("agent.id") == "assistant"
    assert counter(rig.tel, "agent.sessions.created", **{"tenant.id": rig.tenant}) >= 1


async def test_sessions_are_created_through_the_contract_and_bad_input_is_refused(rig: Rig) -> None:
    client = agent_bus.AgentServiceClient(rig.bus, rig.tenant)
    before = counter(rig.tel, "agent.sessions.created", **{"tenant.id": rig.tenant})
    made = await client.sessions_create(agent_pb2.SessionCreateRequest(session_id="made-1", user_id="cy"))
    again = await client.sessions_create(agent_pb2.SessionCreateRequest(session_id="made-1", user_id="cy"))
    assert made.session_id == again.session_id == "made-1" and made.turns == 0 and made.memory_scope == "made-1"
    assert counter(rig.tel, "agent.sessions.created", **{"tenant.id": rig.tenant}) == before + 1
    with pytest.raises(RemoteError, match="no session"):
        await client.sessions_create(agent_pb2.SessionCreateRequest(session_id="made-1", user_id="dee"))
    with pytest.raises(ContractViolation, match="session_id"):
        await client.sessions_create(agent_pb2.SessionCreateRequest(session_id="no spaces/here"))
    with pytest.raises(RemoteError, match="agent mode") as wrong:
        await ask(rig, "What is the refund policy?", "made-1", mode=api_pb2.QUERY_MODE_RAG)
    assert wrong.value.code == envelope_pb2.Error.CODE_INVALID_ARGUMENT
    gone = await client.sessions_delete(agent_pb2.SessionRef(session_id="never-made"))
    assert not gone.deleted


async def test_two_concurrent_turns_of_one_session_do_not_interleave(rig: Rig) -> None:
    session = "busy-" + uuid.uuid4().hex[:8]
    got = await asyncio.gather(
        answer(rig.bus, rig.tenant, "What is the refund policy?", settings=SETTINGS, session_id=session),
        answer(rig.bus, rig.tenant, "How long does standard delivery take?", settings=SETTINGS, session_id=session))
    assert sorted(a.turn for a in got) == [1, 2]
    shown = await agent_bus.AgentServiceClient(rig.bus, rig.tenant).sessions_show(
        agent_pb2.SessionRef(session_id=session))
    one, two = shown.turns
    # The second began after the first had ended, and read it as history.
    assert two.started_at.ToDatetime() >= one.finished_at.ToDatetime()
    assert {one.run_id, two.run_id} == {a.run_id for a in got}


async def test_abstention_holds_in_a_session(rig: Rig) -> None:
    session = "peru-" + uuid.uuid4().hex[:8]
    got = await ask(rig, "What is the capital of Peru?", session)
    assert got.status == rag_pb2.ANSWER_STATUS_NOT_FOUND and got.answer == NOT_FOUND and not got.sources


async def rag_hit(rig: Rig, question: str, expected: str) -> bool:
    got = await rag_bus.RagServiceClient(rig.bus, rig.tenant).queries(
        rag_pb2.RagQuery(query_id=uuid.uuid4().hex, query=question))
    return got.status == rag_pb2.ANSWER_STATUS_ANSWERED and expected in got.answer


async def test_a_rewritten_follow_up_is_retrieved_where_the_bare_one_is_not(rig: Rig) -> None:
    """The measurement behind followup.standalone (docs/components.md,
    "Sessions"): each follow-up asked bare, and rewritten behind the question
    it follows."""
    bare = rewritten = 0
    for first, follow_up, expected in FOLLOW_UPS:
        history = [agent_pb2.SessionTurn(number=1, question=first, standalone_question=first)]
        hits = (await rag_hit(rig, follow_up, expected), await rag_hit(rig, standalone(follow_up, history), expected))
        print(f"{follow_up!r}: bare {hits[0]}, rewritten {hits[1]}")
        bare += hits[0]
        rewritten += hits[1]
    print(f"follow-ups answered: bare {bare}/{len(FOLLOW_UPS)}, rewritten {rewritten}/{len(FOLLOW_UPS)}")
    assert rewritten == len(FOLLOW_UPS)
    assert bare < rewritten  # the positive control: a bare follow-up does miss


async def test_a_turn_is_one_trace_under_the_question(rig: Rig, tmp_path: Path) -> None:
    session = "traced-" + uuid.uuid4().hex[:8]
    got = await ask(rig, "What is the refund policy?", session)
    assert rig.tel.span_exporter is not None
    await asyncio.sleep(0)  # spans end as their handlers return
    spans = rig.tel.span_exporter.get_finished_spans()
    [execute] = [s for s in spans if s.name == "agent.task.execute"
                 and (s.attributes or {}).get("run.id") == got.run_id]
    assert execute.context is not None
    trace = [s for s in spans if s.context is not None and s.context.trace_id == execute.context.trace_id]
    by_id = {s.context.span_id: s for s in trace if s.context is not None}

    def ancestors(span: Any) -> list[str]:
        out = []
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            out.append(span.name)
        return out

    assert "use_case.document_qa" in ancestors(execute)
    for name in ("agent.session.create", "agent.memory.retrieve", "agent.llm.call", "agent.tool.execute"):
        found = [s for s in trace if s.name == name]
        assert found and all("agent.task.execute" in ancestors(s) for s in found), name

    # `aisdk trace` shows the turn as one waterfall: one trace, the agent's
    # spans indented under agent.task.execute.
    from runtime.telemetry.view import dump_spans

    dumped = dump_spans(trace, tmp_path / "turn.json")
    tid = format(execute.context.trace_id, "032x")
    shown = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "aisdk.cli", "trace", str(dumped), "--trace", tid[:12], "--width", "140",
                         "--color", "never"], env=checkout_env(), capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert sum(tid in line for line in lines) == 1, shown.stdout

    def indent(name: str) -> int:
        [line] = [x for x in lines if x.lstrip(" │├└─").startswith(name)][:1]
        return len(line) - len(line.lstrip(" │├└─"))

    for name in ("agent.session.create", "agent.memory.retrieve", "agent.llm.call", "agent.tool.execute"):
        assert indent(name) > indent("agent.task.execute"), shown.stdout


async def test_a_streamed_run_sends_its_answer_as_it_is_written_and_once(rig: Rig) -> None:
    runs = agent_bus.AgentServiceClient(rig.bus, rig.tenant)
    run_id = "stream-" + uuid.uuid4().hex[:8]
    request = agent_pb2.AgentRunRequest(run_id=run_id, question="What is the refund policy?")
    chunks = [c async for c in runs.runs_stream(request, timeout=60)]
    reply = chunks[-1].reply
    assert reply.state == agent_pb2.RUN_STATE_SUCCEEDED and reply.status == rag_pb2.ANSWER_STATUS_ANSWERED
    assert "30 days" in reply.answer and reply.rounds == 2  # a search, then the answer
    deltas = [c for c in chunks[:-1] if c.delta]
    assert len(deltas) > 3, "the answer came in pieces, as the model wrote it"
    assert {c.round for c in deltas} == {1} and "".join(c.delta for c in deltas) == reply.answer
    assert [c.index for c in chunks] == list(range(len(chunks)))
    # The same run as agent.runs gives it: the checkpoints are the run's, whichever way it was asked.
    assert await runs.runs(request, timeout=60) == reply

    # Asked again, the answer on record comes in one piece: nothing is written twice.
    again = [c async for c in runs.runs_stream(request, timeout=60)]
    assert [c.delta for c in again[:-1]] == [reply.answer] and again[-1].reply == reply

    # The positive control: a question the documents do not answer streams
    # the abstention, which is the run's answer, not the model's text.
    other = agent_pb2.AgentRunRequest(run_id="stream-" + uuid.uuid4().hex[:8],
                                      question="Who won the football world cup in 1954?")
    abstained = [c async for c in runs.runs_stream(other, timeout=60)]
    assert abstained[-1].reply.status == rag_pb2.ANSWER_STATUS_NOT_FOUND
    assert "".join(c.delta for c in abstained) == abstained[-1].reply.answer == NOT_FOUND


async def test_ask_streams_the_agents_answer_on_the_command_line(rig: Rig, nats_server: EmbeddedServer) -> None:
    def aisdk(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "aisdk.cli", "ask", *args, "--tenant", rig.tenant,
                               "--nats-url", nats_server.url], env=checkout_env(), capture_output=True, text=True,
                              timeout=120)

    out = await asyncio.to_thread(aisdk, "What is the refund policy?", "--mode", "agent", "--stream")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("answer   ") and "30 days" in lines[0]
    assert lines[1].startswith("status   answered") and not any(line.startswith("answer") for line in lines[1:])
    refused = await asyncio.to_thread(aisdk, "What is the refund policy?", "--stream")
    assert refused.returncode != 0 and "--stream streams the agent's answer" in refused.stderr
