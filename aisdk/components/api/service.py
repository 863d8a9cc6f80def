"""The API worker (`aisdk serve api`): api.queries in the api.routers queue
group. It keeps no state: any number of workers answer alike."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ai.api.v1 import api_bus, api_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from ai.rag.v1 import rag_bus, rag_pb2
from aisdk.components.api import routing
from aisdk.components.gateway.models import CHAT
from opentelemetry.util.types import AttributeValue

from runtime.contract import CallOptions, Context
from runtime.errors import HandlerError, PlatformError, passed_on
from runtime.telemetry import Telemetry
from runtime.telemetry.names import ATTR, SPAN

if TYPE_CHECKING:
    from aisdk.components.agents import Settings as AgentSettings
    from runtime.bus import Bus

Mode = api_pb2.QueryMode
# What answers QUERY_MODE_LLM, a question put to the model without documents:
# the gateway's `chat` alias, so that the deployment's model setting moves it.
CHAT_MODEL_ENV = "AISDK_API_CHAT_MODEL"
DEFAULT_CHAT_MODEL = CHAT
USER_ID = "user.id"


def _options(ctx: Context) -> CallOptions:
    """The caller's deadline, passed on to the component that answers."""
    left = ctx.time_left()
    return {"timeout": max(0.1, left)} if left is not None else {}


class Api(api_bus.ApiServiceHandler):
    def __init__(self, agent_settings: AgentSettings | None = None, chat_model: str | None = None) -> None:
        self._agent_settings = agent_settings
        self.chat_model = chat_model or os.environ.get(CHAT_MODEL_ENV) or DEFAULT_CHAT_MODEL
        self._bus: Bus | None = None
        self._tel = Telemetry.disabled()
        self._routes: dict[int, Callable[[api_pb2.ApiQuery, Context], Awaitable[api_pb2.ApiAnswer]]] = {
            Mode.QUERY_MODE_RAG: self._rag,
            Mode.QUERY_MODE_AGENT: self._agent,
            Mode.QUERY_MODE_LLM: self._llm,
        }

    async def start(self, bus: Bus) -> None:
        self._bus = bus
        if bus.telemetry is not None:
            self._tel = bus.telemetry

    @property
    def bus(self) -> Bus:
        if self._bus is None:
            raise PlatformError("the API worker is not started")
        return self._bus

    async def queries(self, request: api_pb2.ApiQuery, ctx: Context) -> api_pb2.ApiAnswer:
        mode = routing.resolve(request.mode, session=bool(request.session_id))
        attrs: dict[str, AttributeValue] = {
            ATTR.TENANT_ID: ctx.tenant_id,
            USER_ID: request.user_id,
            "api.query.id": request.query_id,
            "api.query.length": len(request.query),
            "api.query.mode": routing.name(request.mode),
            "api.query.route": routing.name(mode),
            "session.id": request.session_id,
        }
        # The use case's root: every component span of the question is under it.
        t0 = time.perf_counter()
        with self._tel.span(SPAN.USE_CASE_DOCUMENT_QA, attrs) as span:
            answer = await self._routes[mode](request, ctx)
            answer.query_id = request.query_id
            answer.mode = mode
            answer.duration.FromNanoseconds(int((time.perf_counter() - t0) * 1e9))
            span.set_attribute("api.sources.count", len(answer.sources))
            span.set_attribute("api.answer.status", rag_pb2.AnswerStatus.Name(answer.status))
            span.set_attribute("llm.tokens", answer.tokens.total)
            span.set_attribute("llm.cost", answer.cost)
        return answer

    async def _rag(self, request: api_pb2.ApiQuery, ctx: Context) -> api_pb2.ApiAnswer:
        query = rag_pb2.RagQuery(query_id=request.query_id, query=request.query)
        with passed_on("rag.queries", "rag"):
            got = await rag_bus.RagServiceClient(self.bus, ctx.tenant_id).queries(query, **_options(ctx))
        return api_pb2.ApiAnswer(answer=got.answer, sources=got.sources, tokens=got.tokens, cost=got.cost,
                                 status=got.status, grounded=got.grounded, model=got.model)

    async def _agent(self, request: api_pb2.ApiQuery, ctx: Context) -> api_pb2.ApiAnswer:
        # Imported here: the RAG and LLM modes never load the agent framework.
        from ai.agent.v1 import agent_pb2

        from aisdk.components.agents import answer

        with passed_on("the agent", "agents"):
            got = await answer(self.bus, ctx.tenant_id, request.query, settings=self._agent_settings,
                               session_id=request.session_id, user_id=request.user_id,
                               run_id=f"api-{request.query_id}", deadline_s=ctx.time_left())
        if got.state == agent_pb2.RUN_STATE_FAILED:
            raise HandlerError("UNAVAILABLE", f"the agent: run {got.run_id} failed: {got.error}", True)
        # The agent adds up its model calls and RAG queries as one total.
        return api_pb2.ApiAnswer(answer=got.answer, sources=got.sources,
                                 tokens=gateway_pb2.TokenUsage(total=got.tokens), cost=got.cost, status=got.status,
                                 model=got.model, run_id=got.run_id, session_id=got.session_id, turn=got.turn,
                                 awaiting_approval=got.awaiting_approval)

    async def _llm(self, request: api_pb2.ApiQuery, ctx: Context) -> api_pb2.ApiAnswer:
        llm = gateway_pb2.LlmRequest(request_id=request.query_id, prompt=request.query, model=self.chat_model)
        with passed_on("gateway.requests", "gateway"):
            got = await gateway_bus.GatewayServiceClient(self.bus, ctx.tenant_id).requests(llm, **_options(ctx))
        return api_pb2.ApiAnswer(answer=got.response, tokens=got.tokens, cost=got.cost, model=got.model)
