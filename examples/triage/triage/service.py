"""The triage worker: ai.triage.tickets in the triage.workers queue group.
It keeps no state of its own (the model lives in the MLOps registry, the
knowledge base in RAG's store), so any number of workers answer alike."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ai.gateway.v1 import gateway_bus, gateway_pb2
from ai.mlops.v1 import mlops_bus, mlops_pb2
from ai.rag.v1 import rag_bus, rag_pb2
from google.protobuf import struct_pb2
from helpdesk.triage.v1 import triage_bus, triage_pb2

from runtime import Bus, CallOptions, Context, HandlerError, NoResponders, PlatformError, RemoteError, RequestTimeout
from triage.features import features
from triage.settings import Settings


def _options(ctx: Context) -> CallOptions:
    """The caller's deadline, passed on to the services triage calls."""
    left = ctx.time_left()
    return {"timeout": max(0.1, left)} if left is not None else {}


@contextmanager
def _calling(what: str, serve: str) -> Iterator[None]:
    """A failure of a service triage calls, answered as triage's own error
    naming that service."""
    try:
        yield
    except RemoteError as e:
        raise HandlerError(e.code, f"{what}: {e.message}", e.retryable) from e
    except NoResponders as e:
        raise HandlerError("UNAVAILABLE", f"{what}: nothing serves it (run `aisdk serve {serve}`)", True) from e
    except RequestTimeout as e:
        raise HandlerError("DEADLINE_EXCEEDED", f"{what}: {e}", True) from e


def ticket_text(ticket: triage_pb2.Ticket) -> str:
    subject = ticket.subject.strip().rstrip(".")
    return f"{subject}. {ticket.body.strip()}" if subject else ticket.body.strip()


class Triage(triage_bus.TriageServiceHandler):
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self._bus: Bus | None = None

    async def start(self, bus: Bus) -> None:
        self._bus = bus

    @property
    def bus(self) -> Bus:
        if self._bus is None:
            raise PlatformError("the triage worker is not started")
        return self._bus

    async def tickets(self, request: triage_pb2.Ticket, ctx: Context) -> triage_pb2.TriagedTicket:
        text = ticket_text(request)
        prediction = await self._classify(request.ticket_id, text, ctx)
        category = prediction.output["label"] if "label" in prediction.output else None
        if not isinstance(category, str):
            raise HandlerError("FAILED_PRECONDITION", f"model {self.settings.model_id} is not a classifier: it "
                                                      f"answered {dict(prediction.output)}")
        needs_review = prediction.confidence < self.settings.review_below
        # A confident category narrows retrieval to its articles.
        found = await self._retrieve(request.ticket_id, text, "" if needs_review else category, ctx)
        draft = await self._draft(request.ticket_id, text, category, found.sources, ctx)
        tokens = gateway_pb2.TokenUsage(
            prompt=found.tokens.prompt + draft.tokens.prompt,
            completion=found.tokens.completion + draft.tokens.completion,
            total=found.tokens.total + draft.tokens.total,
        )
        return triage_pb2.TriagedTicket(
            ticket_id=request.ticket_id, category=category, confidence=prediction.confidence,
            model_id=prediction.model_id, model_version=prediction.model_version, needs_review=needs_review,
            sources=found.sources, draft_reply=draft.response, answer_model=draft.model, tokens=tokens,
            cost=found.cost + draft.cost,
        )

    async def _classify(self, ticket_id: str, text: str, ctx: Context) -> mlops_pb2.PredictionResult:
        values = struct_pb2.Struct()
        values.update({"values": features(text)})
        request = mlops_pb2.PredictionRequest(prediction_id=ticket_id, model_id=self.settings.model_id,
                                              features=values)
        with _calling("mlops.predictions", "mlops"):
            return await mlops_bus.MlopsServiceClient(self.bus, ctx.tenant_id).predictions(request, **_options(ctx))

    async def _retrieve(self, ticket_id: str, text: str, category: str, ctx: Context) -> rag_pb2.RagResult:
        parameters = rag_pb2.QueryParameters(top_k=self.settings.top_k)
        if category:
            parameters.filter["category"] = category
        query = rag_pb2.RagQuery(query_id=ticket_id, query=text, parameters=parameters)
        with _calling("rag.queries", "rag"):
            return await rag_bus.RagServiceClient(self.bus, ctx.tenant_id).queries(query, **_options(ctx))

    async def _draft(self, ticket_id: str, text: str, category: str, sources: Sequence[rag_pb2.Source],
                     ctx: Context) -> gateway_pb2.LlmResponse:
        context = "\n".join(s.snippet for s in sources)
        prompt = self.settings.template.format(context=context or "(nothing found)", category=category, ticket=text)
        request = gateway_pb2.LlmRequest(request_id=ticket_id, prompt=prompt, model=self.settings.answer_model)
        with _calling("gateway.requests", "gateway"):
            return await gateway_bus.GatewayServiceClient(self.bus, ctx.tenant_id).requests(request, **_options(ctx))
