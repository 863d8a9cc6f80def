"""The API worker on real servers: api.queries routed by mode to the RAG
worker, to an agent with the RAG search tool over NATS, or to the gateway,
under the use_case.document_qa span. nats-server with JetStream, the embedded
PostgreSQL, the gateway's offline provider, the prompt, RAG and agents
workers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from ai.api.v1 import api_bus, api_pb2
from ai.rag.v1 import rag_bus, rag_pb2
from opentelemetry.sdk.trace import ReadableSpan

from aisdk.components import COMPONENTS
from aisdk.components.agents import AgentsService, Settings as AgentSettings
from aisdk.components.api import Api
from aisdk.components.prompt import PromptManager
from aisdk.components.rag.worker import RagWorker
from aisdk.components.storage import temporary_database
from runtime import telemetry as telemetry_module
from runtime.bus import Bus, Observed
from runtime.errors import RemoteError
from runtime.server import EmbeddedServer
from runtime.settings import BusSettings
from runtime.telemetry import Telemetry
from tests.support import until

Mode = api_pb2.QueryMode
AGENTS = AgentSettings(rag_tool_description="Search the store's documents: the refund policy, shipping, privacy "
                                            "policy and warranty.")
DOCUMENTS = {
    "refund-policy": "# Refund policy\nYou can return any unused item within 30 days of delivery for a full refund. "
                     "Refunds are paid to the original payment method within 5 business days.",
    "shipping": "# Shipping\nOrders ship within two business days. Express delivery costs 15 dollars.",
    "warranty": "Warranty\n\nElectronics carry a two year warranty against manufacturing defects.",
}


@dataclass
class Rig:
    bus: Bus
    tel: Telemetry
    tenant: str

    async def ask(self, question: str, mode: api_pb2.QueryMode, user: str = "u-1") -> api_pb2.ApiAnswer:
        query = api_pb2.ApiQuery(query_id=uuid.uuid4().hex, query=question, user_id=user, mode=mode)
        return await api_bus.ApiServiceClient(self.bus, self.tenant).queries(query)

    def trace_of(self, query_id: str) -> list[ReadableSpan]:
        spans = self.tel.finished_spans()
        root = next(s for s in spans if s.name == "use_case.document_qa"
                    and (s.attributes or {}).get("api.query.id") == query_id)
        assert root.context is not None
        return [s for s in spans if s.context is not None and s.context.trace_id == root.context.trace_id]


def under(spans: list[ReadableSpan], name: str, ancestor: str) -> bool:
    """Whether a span called name has a span called ancestor above it."""
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    for span in spans:
        if span.name != name:
            continue
        parent = span.parent
        while parent is not None and parent.span_id in by_id:
            if by_id[parent.span_id].name == ancestor:
                return True
            parent = by_id[parent.span_id].parent
    return False


@pytest.fixture(scope="module")
def nats_server() -> Iterator[EmbeddedServer]:
    """A server of this module's own: the agents service and the RAG worker
    consume work-queue streams for every tenant."""
    with EmbeddedServer(name="aisdk-api-test") as server:
        yield server


@pytest.fixture(scope="module")
async def rig(nats_server: EmbeddedServer) -> AsyncIterator[Rig]:
    tel = telemetry_module.setup("api-test", exporter="memory", metrics_exporter="none", sampler_ratio=1.0)
    tenant = "t" + uuid.uuid4().hex[:10]
    async with temporary_database() as url:
        async with Bus(nats_server.url, BusSettings(name="api-test"), telemetry=tel) as bus:
            await bus.serve(COMPONENTS["gateway"]())
            await bus.serve(PromptManager(database_url=url))
            await bus.serve(RagWorker(database_url=url))
            await bus.serve(AgentsService(settings=AGENTS, database_url=url))
            await bus.serve(Api(agent_settings=AGENTS))
            indexed: set[str] = set()

            async def on_status(o: Observed) -> None:
                if o.payload.state == rag_pb2.INGEST_STATE_INDEXED:
                    indexed.add(o.payload.document_id)

            await bus.subscribe(rag_bus.RAG_STATUS, on_status, tenant_id=tenant)
            for doc_id, content in DOCUMENTS.items():
                await rag_bus.RagServiceClient(bus, tenant).ingest(rag_pb2.RagDocument(document_id=doc_id,
                                                                                       content=content))
            await until(lambda: indexed == set(DOCUMENTS), timeout=60)
            yield Rig(bus, tel, tenant)
    tel.shutdown()


async def test_rag_mode_answers_from_the_documents_under_the_use_case_span(rig: Rig) -> None:
    got = await rig.ask("What is the refund policy?", Mode.QUERY_MODE_RAG, user="u-42")
    assert "30 days" in got.answer and got.mode == Mode.QUERY_MODE_RAG
    # RAG asks for the `chat` alias; the answer names the model that served it.
    assert got.model == "local/extractive"
    assert {s.document_id for s in got.sources} == {"refund-policy"}
    assert got.tokens.total == got.tokens.prompt + got.tokens.completion > 0 and got.cost > 0
    assert got.duration.ToNanoseconds() > 0

    spans = rig.trace_of(got.query_id)
    qa = next(s for s in spans if s.name == "use_case.document_qa")
    attrs = dict(qa.attributes or {})
    assert attrs["tenant.id"] == rig.tenant and attrs["user.id"] == "u-42"
    assert attrs["api.query.mode"] == "rag" and attrs["api.query.route"] == "rag"
    assert attrs["api.sources.count"] == len(got.sources)
    for name in ("rag.query", "rag.vector.search", "rag.response.generate", "gateway.generate",
                 "prompt.context.build"):
        assert under(spans, name, "use_case.document_qa"), name


async def test_a_question_the_documents_cannot_answer_is_not_found_in_rag_and_agent_modes(rig: Rig) -> None:
    for mode in (Mode.QUERY_MODE_RAG, Mode.QUERY_MODE_AUTO, Mode.QUERY_MODE_AGENT):
        got = await rig.ask("Who won the 2018 World Cup?", mode)
        assert got.status == rag_pb2.ANSWER_STATUS_NOT_FOUND, mode
        assert got.answer == "The documents do not answer this." and not got.sources and not got.grounded
    answered = await rig.ask("What is the refund policy?", Mode.QUERY_MODE_RAG)
    assert answered.status == rag_pb2.ANSWER_STATUS_ANSWERED and answered.grounded


async def test_auto_mode_is_rag(rig: Rig) -> None:
    got = await rig.ask("What is the refund policy?", Mode.QUERY_MODE_AUTO)
    assert got.mode == Mode.QUERY_MODE_RAG and {s.document_id for s in got.sources} == {"refund-policy"}
    qa = next(s for s in rig.trace_of(got.query_id) if s.name == "use_case.document_qa")
    assert (qa.attributes or {})["api.query.mode"] == "auto" and (qa.attributes or {})["api.query.route"] == "rag"
    # Without a mode, the same.
    unset = await rig.ask("What is the refund policy?", Mode.QUERY_MODE_UNSPECIFIED)
    assert unset.mode == Mode.QUERY_MODE_RAG


async def test_agent_mode_answers_through_the_rag_tool_over_nats(rig: Rig) -> None:
    got = await rig.ask("What is the refund policy?", Mode.QUERY_MODE_AGENT)
    assert "30 days" in got.answer and got.mode == Mode.QUERY_MODE_AGENT
    assert got.model == "local/extractive"
    assert [s.document_id for s in got.sources] == ["refund-policy"]
    assert got.tokens.total > 0 and got.cost > 0 and got.status == rag_pb2.ANSWER_STATUS_ANSWERED
    spans = rig.trace_of(got.query_id)
    qa = next(s for s in spans if s.name == "use_case.document_qa")
    assert (qa.attributes or {})["api.query.route"] == "agent"
    # The tool ran in the agents service, and its RAG query in the RAG worker.
    assert under(spans, "rag.query", "use_case.document_qa")
    assert any(s.name.startswith("request ai.agent.tools") for s in spans)
    # The GenAI conventions: the model calls and the tool execution.
    llm_calls = [dict(s.attributes or {}) for s in spans if s.name == "agent.llm.call"]
    assert llm_calls and all(a["gen_ai.operation.name"] == "chat" and a["gen_ai.agent.id"] == "assistant"
                             and a["gen_ai.response.model"] == "local/extractive" for a in llm_calls)
    [tool] = [dict(s.attributes or {}) for s in spans if s.name == "agent.tool.execute"]
    assert tool["gen_ai.operation.name"] == "execute_tool" and tool["gen_ai.tool.name"] == "search_documents"
    assert tool["gen_ai.tool.call.id"]


async def test_llm_mode_asks_the_gateway_without_documents(rig: Rig) -> None:
    got = await rig.ask("What is the refund policy?", Mode.QUERY_MODE_LLM)
    assert got.mode == Mode.QUERY_MODE_LLM and not got.sources and got.tokens.total > 0
    assert got.model == "local/extractive"
    spans = rig.trace_of(got.query_id)
    assert under(spans, "gateway.generate", "use_case.document_qa")
    assert not any(s.name == "rag.query" for s in spans)


async def test_a_component_nobody_serves_is_named_in_the_apis_error() -> None:
    with EmbeddedServer(name="aisdk-api-alone") as server:
        async with Bus(server.url, BusSettings(name="api-alone")) as bus:
            await bus.serve(Api())
            query = api_pb2.ApiQuery(query_id="q-1", query="What is the refund policy?", mode=Mode.QUERY_MODE_RAG)
            with pytest.raises(RemoteError) as e:
                await api_bus.ApiServiceClient(bus, "acme").queries(query)
    assert e.value.code_name == "CODE_UNAVAILABLE" and e.value.retryable
    assert "rag.queries" in e.value.message and "aisdk serve rag" in e.value.message
