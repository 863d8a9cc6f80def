"""Every span name, metric and attribute key the platform emits, declared once.

Components use these constants (`telemetry.span(SPAN.GATEWAY_GENERATE)`,
`telemetry.metrics.counter(METRIC.GATEWAY_CACHE_HITS)`), never string
literals, so a dashboard query and the code cannot drift apart and a test
checks the registry against the names the seed documents give.

`seed=True` marks a name taken verbatim from the seed documents; the others
are the platform's own (the seeds say only "tracks template rendering" for
prompt management, say, without naming a span).

Attribute keys follow OpenTelemetry semantic conventions 1.44.0 (the
`opentelemetry-semantic-conventions` 0.66b2 package). Messaging conventions are
still "development" there, so the keys are copied here rather than imported
from the package's private `_incubating` module; a test compares them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, TypeVar

_T = TypeVar("_T")

SEMCONV_VERSION: Final = "1.44.0"
SCHEMA_URL: Final = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
INSTRUMENTATION_NAME: Final = "aisdk"


class ATTR:
    """Span and metric attribute keys."""

    MESSAGING_SYSTEM: Final = "messaging.system"
    DESTINATION_NAME: Final = "messaging.destination.name"
    DESTINATION_TEMPLATE: Final = "messaging.destination.template"
    OPERATION_TYPE: Final = "messaging.operation.type"
    OPERATION_NAME: Final = "messaging.operation.name"
    CONSUMER_GROUP: Final = "messaging.consumer.group.name"
    MESSAGE_ID: Final = "messaging.message.id"
    CONVERSATION_ID: Final = "messaging.message.conversation_id"
    BODY_SIZE: Final = "messaging.message.body.size"
    ENVELOPE_SIZE: Final = "messaging.message.envelope.size"
    CLIENT_ID: Final = "messaging.client.id"
    ERROR_TYPE: Final = "error.type"
    SERVICE_NAME: Final = "service.name"
    TENANT_ID: Final = "tenant.id"
    # The platform's own keys, for what the conventions have no name for.
    ATTEMPT: Final = "aisdk.attempt"
    DEAD_LETTER_REASON: Final = "aisdk.dead_letter.reason"


MESSAGING_SYSTEM: Final = "nats"


class OP:
    """messaging.operation.type values, and the operation names under them."""

    SEND: Final = "send"
    PROCESS: Final = "process"
    PUBLISH: Final = "publish"
    REQUEST: Final = "request"
    STREAM: Final = "stream"
    DEAD_LETTER: Final = "dead_letter"


@dataclass(frozen=True, slots=True)
class SpanName:
    name: str
    description: str
    seed: bool = True

    def __str__(self) -> str:
        return self.name


class MetricKind(enum.Enum):
    COUNTER = "counter"
    UPDOWN = "updown_counter"
    HISTOGRAM = "histogram"


@dataclass(frozen=True, slots=True)
class MetricName:
    name: str
    kind: MetricKind
    unit: str
    description: str
    seed: bool = True

    def __str__(self) -> str:
        return self.name


def _c(name: str, unit: str, description: str, seed: bool = True) -> MetricName:
    return MetricName(name, MetricKind.COUNTER, unit, description, seed)


def _h(name: str, unit: str, description: str, seed: bool = True) -> MetricName:
    return MetricName(name, MetricKind.HISTOGRAM, unit, description, seed)


class SPAN:
    """Component spans (the runtime's own messaging spans are named by the
    conventions instead: "<operation> <subject template>")."""

    AGENT_TASK_EXECUTE: Final = SpanName("agent.task.execute", "an agent executes one task")
    AGENT_MESSAGE_SEND: Final = SpanName("agent.message.send", "an agent sends a message to another agent")
    AGENT_MESSAGE_RECEIVE: Final = SpanName("agent.message.receive", "an agent handles a received message")
    AGENT_MEMORY_UPDATE: Final = SpanName("agent.memory.update", "an agent persists a memory item")
    AGENT_MEMORY_RETRIEVE: Final = SpanName("agent.memory.retrieve", "an agent retrieves memories for a task")
    AGENT_TOOL_EXECUTE: Final = SpanName("agent.tool.execute", "an agent runs a tool")
    AGENT_SESSION_CREATE: Final = SpanName("agent.session.create", "an agent opens a session")
    AGENT_LLM_CALL: Final = SpanName("agent.llm.call", "an agent calls the LLM gateway")
    GATEWAY_GENERATE: Final = SpanName("gateway.generate", "the gateway answers one LLM request")
    GATEWAY_WORKER_PROCESS: Final = SpanName("gateway.worker.process", "a gateway worker processes a queued request")
    GATEWAY_CACHE_CHECK: Final = SpanName("gateway.cache.check", "response cache lookup")
    GATEWAY_PROVIDER_CALL: Final = SpanName("gateway.provider.call", "the call to the LLM provider")
    GATEWAY_RATE_LIMIT_CHECK: Final = SpanName("gateway.rate-limit.check", "per-tenant rate limit check")
    GATEWAY_VALIDATE: Final = SpanName("gateway.validate", "validation of the provider's response")
    RAG_DOCUMENT_INGEST: Final = SpanName("rag.document.ingest", "a document is queued for ingestion")
    RAG_DOCUMENT_PROCESS: Final = SpanName("rag.document.process", "a document is chunked and embedded")
    RAG_EMBEDDING_GENERATE: Final = SpanName("rag.embedding.generate", "embeddings are generated")
    RAG_VECTOR_SEARCH: Final = SpanName("rag.vector.search", "nearest chunks are searched")
    RAG_QUERY: Final = SpanName("rag.query", "one RAG query, end to end")
    RAG_QUERY_PROCESS: Final = SpanName("rag.query.process", "a RAG worker processes a query")
    RAG_RESPONSE_GENERATE: Final = SpanName("rag.response.generate", "the answer is generated from the context")
    USE_CASE_DOCUMENT_QA: Final = SpanName("use_case.document_qa", "the document Q&A flow, from the API's side")
    DOCUMENT_QA_QUERY: Final = SpanName("document_qa_query", "one document Q&A query (the seeds' test name)")
    LLMOPS_OPERATION_LOG: Final = SpanName("llmops.operation.log", "an LLM operation is logged", seed=False)
    LLMOPS_COST_TRACK: Final = SpanName("llmops.cost.track", "cost is checked against thresholds", seed=False)
    MLOPS_TRAINING_JOB: Final = SpanName("mlops.training.job", "a training job runs", seed=False)
    MLOPS_PREDICTION: Final = SpanName("mlops.prediction", "a model answers a prediction request", seed=False)
    PROMPT_TEMPLATE_RENDER: Final = SpanName("prompt.template.render", "a prompt template is rendered", seed=False)
    PROMPT_CONTEXT_BUILD: Final = SpanName("prompt.context.build", "a prompt context is assembled", seed=False)


class METRIC:
    """Every metric. Counters are counted locally and read by observable
    instruments at export time (runtime.telemetry); histograms record per call."""

    # -- the runtime's own, from per-endpoint and per-subject counts ---------
    SENT: Final = _c("messaging.client.sent.messages", "{message}", "messages the producer attempted to send", False)
    CONSUMED: Final = _c("messaging.client.consumed.messages", "{message}", "messages delivered to handlers", False)
    PROCESS_DURATION: Final = _h(
        "messaging.process.duration", "s", "handler time per message (sampled messages only)", False
    )
    OPERATION_DURATION: Final = _h(
        "messaging.client.operation.duration", "s", "request and stream round trip (sampled messages only)", False
    )
    HANDLED: Final = _c("aisdk.messages.handled", "{message}", "messages a handler completed", False)
    HANDLER_ERRORS: Final = _c("aisdk.handler.errors", "{error}", "handler exceptions, one per failed attempt", False)
    INVALID: Final = _c("aisdk.messages.invalid", "{message}", "messages refused: undecodable, wrong tenant or "
                        "version, contract violation", False)
    EXPIRED: Final = _c("aisdk.messages.expired", "{message}", "messages whose deadline passed before handling", False)
    RETRIED: Final = _c("aisdk.messages.retried", "{message}", "failed attempts that were retried", False)
    DEAD_LETTERED: Final = _c("aisdk.messages.dead_lettered", "{message}", "messages moved to a dead-letter subject",
                              False)
    HANDLER_TIME: Final = _c("aisdk.handler.time", "s", "total handler time, every message (exact, not sampled)",
                             False)

    # -- agent ---------------------------------------------------------------
    AGENT_TASKS_EXECUTED: Final = _c("agent.tasks.executed", "{task}", "tasks executed, with status")
    AGENT_TASKS_PUBLISHED: Final = _c("agent.tasks.published", "{task}", "tasks distributed to workers")
    AGENT_TASK_DURATION: Final = _h("agent.task.duration", "s", "task execution time")
    AGENT_TASK_LEASES_LOST: Final = _c("agent.task.leases_lost", "{task}",
                                       "task runs stopped because another runner claimed the task", False)
    AGENT_MESSAGES_SENT: Final = _c("agent.messages.sent", "{message}", "agent-to-agent messages sent")
    AGENT_MESSAGES_RECEIVED: Final = _c("agent.messages.received", "{message}", "agent-to-agent messages received")
    AGENT_MEMORY_UPDATES: Final = _c("agent.memory.updates", "{update}", "memory items persisted")
    AGENT_MEMORY_RETRIEVALS: Final = _c("agent.memory.retrievals", "{retrieval}", "memory retrievals")
    AGENT_MEMORY_RETRIEVAL_DURATION: Final = _h("agent.memory.retrieval.duration", "s", "memory retrieval time")
    AGENT_TOOLS_EXECUTED: Final = _c("agent.tools.executed", "{call}", "tool executions")
    AGENT_TOOL_DURATION: Final = _h("agent.tool.duration", "s", "tool execution time")
    AGENT_SESSIONS_CREATED: Final = _c("agent.sessions.created", "{session}", "agent sessions opened")

    # -- gateway -------------------------------------------------------------
    GATEWAY_REQUESTS_QUEUED: Final = _c("gateway.requests.queued", "{request}", "LLM requests sent to the gateway")
    GATEWAY_REQUESTS_COMPLETED: Final = _c("gateway.requests.completed", "{request}", "LLM requests answered, "
                                           "with status")
    GATEWAY_REQUEST_DURATION: Final = _h("gateway.request.duration", "s", "LLM request time, end to end")
    GATEWAY_CACHE_HITS: Final = _c("gateway.cache.hits", "{hit}", "response cache hits")
    GATEWAY_CACHE_MISSES: Final = _c("gateway.cache.misses", "{miss}", "response cache misses")
    GATEWAY_PROVIDER_CALLS: Final = _c("gateway.provider.calls", "{call}", "calls to LLM providers")
    GATEWAY_TOKENS_USED: Final = _h("gateway.tokens.used", "{token}", "tokens per provider call")
    GATEWAY_COST: Final = _h("gateway.cost", "{USD}", "cost per provider call")
    GATEWAY_RATE_LIMIT_CHECKS: Final = _c("gateway.rate-limit.checks", "{check}", "rate limit checks")
    GATEWAY_RATE_LIMIT_VIOLATIONS: Final = _c("gateway.rate-limit.violations", "{violation}", "requests over the "
                                              "rate limit")
    GATEWAY_VALIDATION_CHECKS: Final = _c("gateway.validation.checks", "{check}", "response validations, "
                                          "with outcome")

    # -- rag -----------------------------------------------------------------
    RAG_DOCUMENTS_QUEUED: Final = _c("rag.documents.queued", "{document}", "documents queued for ingestion")
    RAG_DOCUMENTS_INGESTED: Final = _c("rag.documents.ingested", "{document}", "documents ingested")
    RAG_INGESTION_DURATION: Final = _h("rag.ingestion.duration", "s", "document ingestion time")
    RAG_DOCUMENTS_PROCESSED: Final = _c("rag.documents.processed", "{document}", "documents chunked and embedded")
    RAG_EMBEDDINGS_GENERATED: Final = _c("rag.embeddings.generated", "{embedding}", "embeddings generated")
    RAG_EMBEDDING_DURATION: Final = _h("rag.embedding.duration", "s", "embedding generation time")
    RAG_SEARCHES_EXECUTED: Final = _c("rag.searches.executed", "{search}", "vector searches")
    RAG_SEARCH_DURATION: Final = _h("rag.search.duration", "s", "vector search time")
    RAG_QUERIES_QUEUED: Final = _c("rag.queries.queued", "{query}", "queries sent to RAG workers")
    RAG_QUERIES_EXECUTED: Final = _c("rag.queries.executed", "{query}", "queries executed")
    RAG_QUERIES_COMPLETED: Final = _c("rag.queries.completed", "{query}", "queries answered")
    RAG_QUERY_DURATION: Final = _h("rag.query.duration", "s", "query time, end to end")
    RAG_RESPONSES_GENERATED: Final = _c("rag.responses.generated", "{response}", "answers generated")

    # -- llmops, mlops, prompt (the seeds list what is tracked, not names) ---
    LLMOPS_OPERATIONS_LOGGED: Final = _c("llmops.operations.logged", "{operation}", "LLM operations logged", False)
    LLMOPS_COST: Final = _h("llmops.cost", "{USD}", "cost per logged operation", False)
    LLMOPS_COST_ALERTS: Final = _c("llmops.cost.alerts", "{alert}", "cost threshold alerts raised", False)
    MLOPS_TRAINING_JOBS: Final = _c("mlops.training.jobs", "{job}", "training jobs run, with status", False)
    MLOPS_PREDICTIONS: Final = _c("mlops.predictions", "{prediction}", "predictions served", False)
    MLOPS_PREDICTION_DURATION: Final = _h("mlops.prediction.duration", "s", "model inference time", False)
    MLOPS_DEPLOYMENTS: Final = _c("mlops.deployments", "{deployment}", "model deployment events", False)
    PROMPT_TEMPLATES_RENDERED: Final = _c("prompt.templates.rendered", "{render}", "templates rendered", False)
    PROMPT_CONTEXTS_BUILT: Final = _c("prompt.contexts.built", "{context}", "contexts built", False)
    PROMPT_TOKENS_ESTIMATED: Final = _h("prompt.tokens.estimated", "{token}", "estimated tokens per context", False)


def _members(namespace: type, kind: type[_T]) -> tuple[_T, ...]:
    return tuple(v for v in vars(namespace).values() if isinstance(v, kind))


ALL_SPANS: Final = _members(SPAN, SpanName)
ALL_METRICS: Final = _members(METRIC, MetricName)
SPANS_BY_NAME: Final = {s.name: s for s in ALL_SPANS}
METRICS_BY_NAME: Final = {m.name: m for m in ALL_METRICS}
