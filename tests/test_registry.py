"""Every subject and schema the seed documents name is in the contracts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ai.registry as registry
from runtime import InvalidSubject, Pattern, check_prefix, check_tenant

# The 29 subjects of ../seeds: ai.{component}.{operation}.{tenant_id}.
SEED_SUBJECTS = {
    "agent": ["message", "tasks", "results", "status", "memory", "tools", "tool-results"],
    "gateway": ["requests", "responses", "rate-limit", "cache.invalidate", "health", "cost-alerts", "embeddings"],
    "rag": ["ingest", "status", "queries", "results", "embeddings", "embedding-results"],
    "llmops": ["operations", "cost-alerts", "reports"],
    "mlops": ["training", "predictions", "deploy"],
    "prompt": ["templates", "context"],
    "api": ["queries"],
}

# Every schema the seeds name, as the message that models it.
SEED_SCHEMAS = {
    "agent_message": "ai.agent.v1.AgentMessage",
    "agent_task": "ai.agent.v1.AgentTask",
    "task_result": "ai.agent.v1.TaskResult",
    "agent_status": "ai.agent.v1.AgentStatus",
    "memory_item": "ai.agent.v1.MemoryItem",
    "tool_execution_request": "ai.agent.v1.ToolExecutionRequest",
    "tool_execution_result": "ai.agent.v1.ToolExecutionResult",
    "llm_request": "ai.gateway.v1.LlmRequest",
    "llm_response": "ai.gateway.v1.LlmResponse",
    "embedding_request": "ai.gateway.v1.EmbeddingRequest",
    "embedding_result": "ai.gateway.v1.EmbeddingResult",
    "rate_limit_event": "ai.gateway.v1.RateLimitEvent",
    "cache_invalidation": "ai.gateway.v1.CacheInvalidation",
    "provider_health": "ai.gateway.v1.ProviderHealth",
    "cost_alert": "ai.gateway.v1.CostAlert",
    "rag_document": "ai.rag.v1.RagDocument",
    "ingest_status": "ai.rag.v1.IngestStatus",
    "rag_query": "ai.rag.v1.RagQuery",
    "rag_result": "ai.rag.v1.RagResult",
    "llm_operation": "ai.llmops.v1.LlmOperation",
    "usage_report": "ai.llmops.v1.UsageReport",
    "ml_training_job": "ai.mlops.v1.TrainingJob",
    "ml_prediction": "ai.mlops.v1.PredictionRequest",
    "model_deployment": "ai.mlops.v1.ModelDeployment",
    "prompt_template": "ai.prompt.v1.PromptTemplate",
    "context_request": "ai.prompt.v1.ContextRequest",
    "context_result": "ai.prompt.v1.ContextResult",
    "api_query": "ai.api.v1.ApiQuery",
}


def _seed_templates() -> list[str]:
    return [f"ai.{c}.{op}.{{tenant_id}}" for c, ops in SEED_SUBJECTS.items() for op in ops]


def test_all_29_seed_subjects_are_registered() -> None:
    templates = {s.template for s in registry.SUBJECTS}
    seeds = _seed_templates()
    assert len(seeds) == 29
    assert sorted(set(seeds) - templates) == []


def test_every_seed_schema_is_a_message_on_some_subject() -> None:
    on_bus = {s.request_name for s in registry.SUBJECTS} | {s.reply_name for s in registry.SUBJECTS}
    missing = {seed: name for seed, name in SEED_SCHEMAS.items() if name not in on_bus}
    assert missing == {}


def test_registry_invariants() -> None:
    for spec in registry.SUBJECTS:
        assert registry.BY_KEY[spec.key] is spec
        replies = spec.pattern in (Pattern.REQUEST_REPLY, Pattern.STREAM)
        assert (spec.reply_name != "google.protobuf.Empty") == replies, spec.key
        assert (spec.timeout_ms > 0) == replies, spec.key
        if spec.pattern is Pattern.WORK_QUEUE:
            assert spec.queue_group, spec.key
        if spec.reply_event:
            event = registry.BY_KEY[f"{spec.component}.{spec.reply_event}"]
            assert event.pattern is Pattern.EVENT and event.request_type is spec.reply_type
    assert set(registry.HANDLERS) == set(SEED_SUBJECTS)


def test_seed_decisions_the_docs_describe() -> None:
    """docs/contracts.md: the seeds' `request()` on a responses/results
    subject is modelled as request/reply with the reply also published."""
    assert registry.BY_KEY["gateway.requests"].pattern is Pattern.REQUEST_REPLY
    assert registry.BY_KEY["gateway.requests"].reply_event == "responses"
    assert registry.BY_KEY["rag.queries"].reply_event == "results"
    assert registry.BY_KEY["gateway.requests"].queue_group == "gateway.workers"
    assert registry.BY_KEY["agent.tasks"].queue_group == "agent.workers"
    assert registry.BY_KEY["rag.ingest"].durable


SAFE = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", min_size=1, max_size=64)


@given(SAFE)
def test_safe_tenants_fill_every_subject(tenant: str) -> None:
    for spec in registry.SUBJECTS:
        subject = spec.subject(tenant)
        assert subject == spec.template.format(tenant_id=tenant)
        assert subject.rsplit(".", 1)[1] == tenant


@given(st.text(max_size=80).filter(lambda t: not (0 < len(t) <= 64 and all(c in SAFE_CHARS for c in t))))
def test_unsafe_tenants_are_rejected(tenant: str) -> None:
    with pytest.raises(InvalidSubject) as info:
        registry.BY_KEY["agent.message"].subject(tenant)
    assert info.value.value == tenant


SAFE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


@pytest.mark.parametrize("tenant", ["", "a.b", "*", ">", "a b", "t\n", "x" * 65, "acme.>"])
def test_named_unsafe_tenants(tenant: str) -> None:
    with pytest.raises(InvalidSubject):
        check_tenant(tenant)


def test_prefix_is_configurable_and_checked() -> None:
    from ai.agent.v1 import agent_bus

    assert agent_bus.agent_message_subject("acme") == "ai.agent.message.acme"
    assert agent_bus.agent_message_subject("acme", prefix="staging.ai") == "staging.ai.agent.message.acme"
    assert agent_bus.AGENT_MESSAGE_SUBJECT == "ai.agent.message.{tenant_id}"
    for bad in ("", "a..b", "a.*", ">", "a b"):
        with pytest.raises(InvalidSubject):
            check_prefix(bad)
