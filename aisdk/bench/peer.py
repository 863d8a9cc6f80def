"""FastStream, the framework a user would pick instead: the same messages as
pydantic models (with the same rules as the contracts) over its NatsBroker.

A benchmark-only dependency (the `bench` extra); nothing else imports it.
Given the benefit of the doubt everywhere: its per-message logging is off,
and its OTel middleware gets a tracer provider but no meter provider.
"""

from __future__ import annotations

from typing import Any, TypeVar

from faststream.nats import NatsBroker
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from google.protobuf.message import Message
from opentelemetry.sdk.trace import TracerProvider
from pydantic import BaseModel, Field

from ai.agent.v1 import agent_bus
from ai.gateway.v1 import gateway_bus, gateway_pb2
from aisdk.bench import payloads, tracing
from aisdk.bench.measure import Messaging
from runtime.contract import SubjectSpec

PREFIX = "fs"
ModelT = TypeVar("ModelT", bound=BaseModel)
STOP = gateway_pb2.FINISH_REASON_STOP
REQUEST_TIMEOUT_S = 10.0


# Enums travel as their numbers, as in protobuf; the bounds are the contract's
# defined_only rule (ai.agent.v1.MessageKind, ai.gateway.v1.FinishReason).
MessageKind = Field(default=0, ge=0, le=3)
FinishReason = Field(default=0, ge=0, le=4)
Id = Field(min_length=1, max_length=128)
OptionalId = Field(default="", max_length=128)


class AgentMessage(BaseModel):
    message_id: str = Id
    source_agent_id: str = Id
    target_agent_id: str = OptionalId
    content: str = Field(default="", max_length=1_048_576)
    kind: int = MessageKind
    metadata: dict[str, str] = Field(default_factory=dict)
    session_id: str = OptionalId


class LlmRequest(BaseModel):
    request_id: str = Id
    prompt: str = Field(default="", max_length=1_048_576)
    model: str = Id


class LlmResponse(BaseModel):
    request_id: str = Id
    response: str = ""
    cost: float = Field(default=0.0, ge=0)
    model: str = OptionalId
    finish_reason: int = FinishReason
    cached: bool = False


def from_proto(model: type[ModelT], message: Message) -> ModelT:
    """The pydantic twin of a protobuf message, so both sides send the same data."""
    fields = model.model_fields
    twin: ModelT = model.model_validate(
        {f.name: getattr(message, f.name) for f in message.DESCRIPTOR.fields if f.name in fields}
    )
    return twin


def subject(spec: SubjectSpec[Any, Any], tenant: str) -> str:
    return spec.subject(tenant, PREFIX)


class FastStream(Messaging):
    """A publishing broker and a subscribing one, as two processes would have."""

    def __init__(self, name: str, url: str, tenant: str, *, otel: bool = False) -> None:
        super().__init__(name)
        self.url = url
        self.agent_subject = subject(agent_bus.AGENT_MESSAGE, tenant)
        self.request_subject = subject(gateway_bus.GATEWAY_REQUESTS, tenant)
        self.message = from_proto(AgentMessage, payloads.agent_message())
        self.llm_request = from_proto(LlmRequest, payloads.llm_request())
        self.provider: TracerProvider | None = None
        if otel:
            self.provider, self.exporter = tracing.tracer_provider(sampled=True)

    def _broker(self) -> NatsBroker:
        middlewares: tuple[NatsTelemetryMiddleware, ...] = ()
        if self.provider is not None:
            middlewares = (NatsTelemetryMiddleware(tracer_provider=self.provider),)
        return NatsBroker(self.url, logger=None, middlewares=middlewares)

    async def start(self) -> None:
        self.server = self._broker()
        sink = self.sink
        response = payloads.content()

        @self.server.subscriber(self.agent_subject)
        async def on_message(message: AgentMessage) -> None:
            sink.delivered()

        @self.server.subscriber(self.request_subject)
        async def on_request(request: LlmRequest) -> LlmResponse:
            return LlmResponse(
                request_id=request.request_id, response=response, model=request.model, finish_reason=STOP
            )

        self.client = self._broker()
        await self.server.start()
        await self.client.start()

    async def stop(self) -> None:
        await self.client.stop()
        await self.server.stop()
        if self.provider is not None:
            self.provider.shutdown()

    async def publish(self) -> None:
        await self.client.publish(self.message, self.agent_subject)

    async def request(self) -> None:
        reply = await self.client.request(self.llm_request, self.request_subject, timeout=REQUEST_TIMEOUT_S)
        LlmResponse.model_validate_json(reply.body)
