"""A question answered from the tenant's chunks: embed it, retrieve (vector +
full-text, fused), decide whether the evidence answers it (rag.evidence),
then build the prompt through prompt.context, answer through
gateway.requests and attribute each answer sentence to its chunk."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ai.envelope.v1 import envelope_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from ai.prompt.v1 import prompt_bus, prompt_pb2
from ai.rag.v1 import rag_pb2
from google.protobuf import duration_pb2
from opentelemetry.util.types import AttributeValue

from aisdk.components.rag import NOT_FOUND, evidence, fusion, grounding
from aisdk.components.rag.embedding import embed
from aisdk.components.rag.settings import Settings
from aisdk.components.rag.store import CANDIDATES_PER_SOURCE, ChunkStore
from runtime.contract import CallOptions, Context, Transport
from runtime.errors import RemoteError, passed_on
from runtime.telemetry import Telemetry
from runtime.telemetry.names import ATTR, METRIC, SPAN

Code = envelope_pb2.Error
Status = rag_pb2.AnswerStatus
SNIPPET_CHARS = 300
# A model that says NOT_FOUND is believed: the template asks it to.
# prompt.templates is an event and prompt.context a request: the first
# context request may overtake the template it needs.
_TEMPLATE_RETRIES = (0.05, 0.2, 0.5)


def _duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


class _Clock:
    def __init__(self) -> None:
        self.spent: dict[str, float] = {}

    @contextmanager
    def measure(self, step: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.spent[step] = self.spent.get(step, 0.0) + time.perf_counter() - t0

    def timings(self) -> rag_pb2.QueryTimings:
        return rag_pb2.QueryTimings(**{k: _duration(v) for k, v in self.spent.items()})


def says_not_found(answer: str) -> bool:
    """A model that followed the template's instruction for documents that
    do not answer."""
    return " ".join(answer.split()).lower().startswith(NOT_FOUND.rstrip(".").lower())


def _options(ctx: Context) -> CallOptions:
    left = ctx.time_left()
    return {"timeout": max(0.1, left)} if left is not None else {}


class Answerer:
    def __init__(self, bus: Transport, store: ChunkStore, tel: Telemetry, settings: Settings) -> None:
        self._bus = bus
        self._store = store
        self._tel = tel
        self._settings = settings
        # Tenants this process has published the answer template for.
        self._templated: set[str] = set()

    async def __call__(self, query: rag_pb2.RagQuery, ctx: Context) -> rag_pb2.RagResult:
        tenant, s = ctx.tenant_id, self._settings
        t0 = time.perf_counter()
        clock = _Clock()
        attrs: dict[str, AttributeValue] = {ATTR.TENANT_ID: tenant, "rag.query.id": query.query_id, "rag.query.length": len(query.query)}
        self._tel.metrics.counter(METRIC.RAG_QUERIES_EXECUTED).add(1, {ATTR.TENANT_ID: tenant})
        with self._tel.span(SPAN.RAG_QUERY, attrs) as span:
            with clock.measure("embedding"), passed_on("gateway.embeddings", "gateway"):
                question = await embed(self._bus, self._tel, tenant, s.embedding_model, f"{query.query_id}:q",
                                       [query.query], 1, ctx.time_left())
            with clock.measure("retrieval"):
                found = await self.retrieve(query, tenant, question.vectors[0])
                decision = await self.decide(query, tenant, found)
            sources = list(found.chosen)
            result = rag_pb2.RagResult(query_id=query.query_id, cost=question.cost, support=decision.support,
                                       support_threshold=decision.threshold)
            if decision.answers:
                await self._answer(query, ctx, sources, result, clock)
            else:
                result.answer, result.status = NOT_FOUND, Status.ANSWER_STATUS_NOT_FOUND
            result.timings.CopyFrom(clock.timings())
            span.set_attribute("rag.sources.count", len(result.sources))
            span.set_attribute("rag.grounded", result.grounded)
            span.set_attribute("rag.support", decision.support)
            span.set_attribute("rag.answer.status", Status.Name(result.status))
        elapsed = time.perf_counter() - t0
        result.duration.CopyFrom(_duration(elapsed))
        self._tel.metrics.histogram(METRIC.RAG_QUERY_DURATION).record(elapsed, {ATTR.TENANT_ID: tenant})
        self._tel.metrics.counter(METRIC.RAG_QUERIES_COMPLETED).add(1, {ATTR.TENANT_ID: tenant})
        return result

    async def decide(self, query: rag_pb2.RagQuery, tenant: str, found: evidence.Retrieved) -> evidence.Decision:
        """Whether the retrieved chunks answer the question (rag.evidence)."""
        s, p = self._settings, query.parameters
        threshold = p.min_support if p.HasField("min_support") else (s.min_support if s.min_support >= 0 else None)
        stats = await self._store.term_statistics(tenant, query.query, [c.chunk_id for c in found.chosen],
                                                  s.text_language)
        return evidence.decide(stats, found, evidence.calibration(), threshold, query.query)

    async def retrieve(self, query: rag_pb2.RagQuery, tenant: str, vector: list[float]) -> evidence.Retrieved:
        s, p = self._settings, query.parameters
        top_k = p.top_k if p.HasField("top_k") else s.top_k
        threshold = p.similarity_threshold if p.HasField("similarity_threshold") else s.similarity_threshold
        relative = p.min_relative_score if p.HasField("min_relative_score") else s.min_relative_score
        t0 = time.perf_counter()
        attrs: dict[str, AttributeValue] = {ATTR.TENANT_ID: tenant, "query.id": query.query_id, "rag.top_k": top_k}
        with self._tel.span(SPAN.RAG_VECTOR_SEARCH, attrs) as span:
            vector_hits, text_hits = await self._store.search(
                tenant, query.query, vector, top_k * CANDIDATES_PER_SOURCE, threshold, dict(p.filter),
                s.text_language,
            )
            fused = fusion.fuse(vector_hits, text_hits)
            chosen = fusion.select(fused, top_k, threshold, relative)
            span.set_attribute("results.count", len(chosen))
            span.set_attribute("rag.candidates.vector", len(vector_hits))
            span.set_attribute("rag.candidates.text", len(text_hits))
        self._tel.metrics.counter(METRIC.RAG_SEARCHES_EXECUTED).add(1, {ATTR.TENANT_ID: tenant})
        self._tel.metrics.histogram(METRIC.RAG_SEARCH_DURATION).record(time.perf_counter() - t0,
                                                                       {ATTR.TENANT_ID: tenant})
        return evidence.Retrieved(vector_hits, text_hits, fused, chosen)

    async def _answer(self, query: rag_pb2.RagQuery, ctx: Context, sources: list[fusion.Candidate],
                      result: rag_pb2.RagResult, clock: _Clock) -> None:
        tenant, s = ctx.tenant_id, self._settings
        with clock.measure("prompt"):
            # Numbered, so that a model (and the offline answerer) can tell
            # one snippet from the next.
            built = await self._prompt(query, ctx, [f"[{i}] {c.content}" for i, c in enumerate(sources, 1)])
        # prompt.context drops the weakest (last) snippets to fit its budget.
        used = sources[: len(sources) - built.truncated_snippets]
        model = query.model or s.chat_model
        with clock.measure("generation"), self._tel.span(SPAN.RAG_RESPONSE_GENERATE,
                                                         {ATTR.TENANT_ID: tenant, "llm.model": model}) as span:
            # The rendered template (instructions and documents) is the system
            # turn and the question the user turn: the question comes from the
            # request's structure, never from a sentence of a document.
            with passed_on("gateway.requests", "gateway"):
                reply = await gateway_bus.GatewayServiceClient(self._bus, tenant).requests(
                    gateway_pb2.LlmRequest(
                        request_id=query.query_id, model=model,
                        messages=[gateway_pb2.ChatMessage(role=gateway_pb2.ROLE_SYSTEM, content=built.prompt),
                                  gateway_pb2.ChatMessage(role=gateway_pb2.ROLE_USER, content=query.query)],
                        parameters=gateway_pb2.LlmParameters(max_tokens=s.answer_tokens, temperature=0.0),
                    ),
                    **_options(ctx),
                )
            span.set_attribute("llm.tokens", reply.tokens.total)
            span.set_attribute("llm.cost", reply.cost)
        self._tel.metrics.counter(METRIC.RAG_RESPONSES_GENERATED).add(1, {ATTR.TENANT_ID: tenant})
        result.answer = reply.response
        result.model = reply.model or model
        result.tokens.CopyFrom(reply.tokens)
        result.cost += reply.cost
        if says_not_found(reply.response):
            result.status = Status.ANSWER_STATUS_NOT_FOUND
            return
        with clock.measure("grounding"):
            checked = grounding.check(reply.response, [c.content for c in used])
        result.status = Status.ANSWER_STATUS_ANSWERED
        result.grounded = checked.grounded
        result.unsupported_sentences.extend(checked.unsupported)
        result.sources.extend(
            rag_pb2.Source(document_id=c.document_id, chunk_id=c.chunk_id, score=c.score, similarity=c.similarity,
                           snippet=c.content[:SNIPPET_CHARS], source_uri=c.source_uri)
            for c in (used[i] for i in checked.used)
        )

    async def _prompt(self, query: rag_pb2.RagQuery, ctx: Context, snippets: list[str]) -> prompt_pb2.ContextResult:
        s, tenant = self._settings, ctx.tenant_id
        prompts = prompt_bus.PromptServiceClient(self._bus, tenant)
        request = prompt_pb2.ContextRequest(
            request_id=query.query_id, template_id=s.template_id, template_version=s.template_version,
            variables={"question": query.query}, context_snippets=snippets, max_tokens=s.context_tokens,
        )
        for delay in _TEMPLATE_RETRIES:
            try:
                return await self._context(prompts, request, ctx)
            except RemoteError as e:
                # The prompt service restarted (its templates live in memory) or
                # has not seen the event yet: publish again, then retry.
                if e.code != Code.CODE_NOT_FOUND:
                    raise
                self._templated.discard(tenant)
                await asyncio.sleep(delay)
        return await self._context(prompts, request, ctx)

    async def _context(self, prompts: prompt_bus.PromptServiceClient, request: prompt_pb2.ContextRequest,
                       ctx: Context) -> prompt_pb2.ContextResult:
        if ctx.tenant_id not in self._templated:
            await self.publish_template(ctx.tenant_id)
        return await prompts.context(request, **_options(ctx))

    async def publish_template(self, tenant: str) -> None:
        s = self._settings
        await prompt_bus.PromptServiceClient(self._bus, tenant).templates(
            prompt_pb2.PromptTemplate(template_id=s.template_id, version=s.template_version, template=s.template,
                                      variables={"question": "the user's question"})
        )
        self._templated.add(tenant)
