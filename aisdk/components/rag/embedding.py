"""Embeddings through the gateway (gateway.embeddings over NATS), in batches."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from ai.envelope.v1 import envelope_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from opentelemetry.util.types import AttributeValue

from aisdk.components.rag.store import DIMENSIONS
from runtime.contract import CallOptions, Transport
from runtime.errors import HandlerError
from runtime.telemetry import Telemetry
from runtime.telemetry.names import ATTR, METRIC, SPAN


class WrongDimensions(HandlerError):
    """The embedding model gives vectors the index cannot hold: a setting of
    the deployment, not a fault of the text, so no retry helps."""

    def __init__(self, requested: str, served: str, dimensions: int) -> None:
        super().__init__(
            envelope_pb2.Error.CODE_FAILED_PRECONDITION,
            f"embedding model {served!r} (asked for as {requested!r}) gives {dimensions}-dimension vectors; the "
            f"RAG index holds {DIMENSIONS}: choose an embedding model of {DIMENSIONS} dimensions "
            f"(AISDK_GATEWAY_EMBEDDING_MODEL) and ingest the documents again",
        )


@dataclass(slots=True)
class Embedded:
    vectors: list[list[float]]
    tokens: int = 0
    cost: float = 0.0


async def embed(
    bus: Transport,
    tel: Telemetry,
    tenant: str,
    model: str,
    request_id: str,
    texts: Sequence[str],
    batch: int,
    timeout: float | None = None,
    progress: Callable[[int], Awaitable[None]] | None = None,
) -> Embedded:
    """Vectors of texts in order; one gateway request per `batch` texts,
    `progress(done)` after each."""
    gateway = gateway_bus.GatewayServiceClient(bus, tenant)
    options: CallOptions = {"timeout": timeout} if timeout else {}
    out = Embedded([])
    for start in range(0, len(texts), batch):
        part = list(texts[start : start + batch])
        attrs: dict[str, AttributeValue] = {ATTR.TENANT_ID: tenant, "embedding.model": model, "embedding.count": len(part)}
        t0 = time.perf_counter()
        with tel.span(SPAN.RAG_EMBEDDING_GENERATE, attrs) as span:
            request = gateway_pb2.EmbeddingRequest(
                request_id=f"{request_id}:{start // batch}", model=model, texts=part
            )
            result = await gateway.embeddings(request, **options)
            if len(result.embeddings) != len(part):
                raise ValueError(f"the gateway returned {len(result.embeddings)} embeddings for {len(part)} texts")
            vectors = [list(e.values) for e in result.embeddings]
            wrong = next((len(v) for v in vectors if len(v) != DIMENSIONS), None)
            if wrong is not None:
                raise WrongDimensions(model, result.model, wrong)
            span.set_attribute("embedding.dimension", len(vectors[0]) if vectors else 0)
        tel.metrics.counter(METRIC.RAG_EMBEDDINGS_GENERATED).add(len(part), {ATTR.TENANT_ID: tenant})
        tel.metrics.histogram(METRIC.RAG_EMBEDDING_DURATION).record(time.perf_counter() - t0, {ATTR.TENANT_ID: tenant})
        out.vectors.extend(vectors)
        out.tokens += result.tokens.total
        out.cost += result.cost
        if progress is not None:
            await progress(len(out.vectors))
    return out
