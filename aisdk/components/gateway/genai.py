"""The OpenTelemetry GenAI semantic conventions on the spans of model calls,
so that tools reading them (Langfuse, Arize Phoenix, OpenLLMetry, Grafana's
GenAI dashboards) see the gateway's and the agents' LLM traffic.

The conventions followed are those of the semantic conventions 1.44 (the
`opentelemetry-semantic-conventions` 0.66b2 package, whose constants these
are). `gen_ai.system` is written beside `gen_ai.provider.name`, which
replaced it, for tools that still read the older name. Prompt and
completion content is tenant data: it is recorded only when
OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT is true.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as GA
from opentelemetry.trace import Span

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
CHAT, EMBEDDINGS, EXECUTE_TOOL = "chat", "embeddings", "execute_tool"
EMBEDDINGS_DIMENSION_COUNT = GA.GEN_AI_EMBEDDINGS_DIMENSION_COUNT
# The well-known provider names of the conventions, by litellm's prefix.
_PROVIDERS = {"openai": "openai", "azure": "azure.ai.openai", "anthropic": "anthropic", "bedrock": "aws.bedrock",
              "vertex_ai": "gcp.vertex_ai", "gemini": "gcp.gemini", "mistral": "mistral_ai", "groq": "groq",
              "cohere": "cohere", "deepseek": "deepseek", "perplexity": "perplexity", "xai": "x_ai",
              "watsonx": "ibm.watsonx.ai"}


def capture_content(env: Mapping[str, str] = os.environ) -> bool:
    return env.get(CAPTURE_CONTENT_ENV, "").strip().lower() == "true"


def provider_name(provider: str) -> str:
    return _PROVIDERS.get(provider, provider)


def request(operation: str, model: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The attributes known before the call, to start its span with."""
    out: dict[str, Any] = {GA.GEN_AI_OPERATION_NAME: operation, GA.GEN_AI_REQUEST_MODEL: model}
    for key, attribute in (("max_tokens", GA.GEN_AI_REQUEST_MAX_TOKENS), ("temperature", GA.GEN_AI_REQUEST_TEMPERATURE),
                           ("top_p", GA.GEN_AI_REQUEST_TOP_P), ("seed", GA.GEN_AI_REQUEST_SEED)):
        value = (params or {}).get(key)
        if value is not None:
            out[attribute] = value
    return out


def response(span: Span, *, provider: str, model: str, input_tokens: int, output_tokens: int | None = None,
             finish_reason: str = "") -> None:
    """What the call told: who answered, the tokens, why it stopped."""
    name = provider_name(provider)
    span.set_attribute(GA.GEN_AI_PROVIDER_NAME, name)
    span.set_attribute(GA.GEN_AI_SYSTEM, name)
    span.set_attribute(GA.GEN_AI_RESPONSE_MODEL, model)
    span.set_attribute(GA.GEN_AI_USAGE_INPUT_TOKENS, input_tokens)
    if output_tokens is not None:
        span.set_attribute(GA.GEN_AI_USAGE_OUTPUT_TOKENS, output_tokens)
    if finish_reason:
        span.set_attribute(GA.GEN_AI_RESPONSE_FINISH_REASONS, [finish_reason])


def content(span: Span, messages: Sequence[Mapping[str, Any]], answer: str) -> None:
    """The conversation and the answer, when capturing content is switched on."""
    if not capture_content():
        return
    parts = [{"role": m.get("role", "user"), "parts": [{"type": "text", "content": str(m.get("content") or "")}]}
             for m in messages]
    span.set_attribute(GA.GEN_AI_INPUT_MESSAGES, json.dumps(parts))
    span.set_attribute(GA.GEN_AI_OUTPUT_MESSAGES, json.dumps(
        [{"role": "assistant", "parts": [{"type": "text", "content": answer}]}]))
