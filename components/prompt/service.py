"""Prompt management: templates arrive as events on prompt.templates; context
requests on prompt.context are rendered from the latest (or a pinned)
version, with retrieved snippets fitted into a token budget."""

from __future__ import annotations

import math
import string

from ai.envelope.v1 import envelope_pb2
from ai.prompt.v1 import prompt_bus, prompt_pb2
from runtime.contract import Context
from runtime.errors import HandlerError

CONTEXT_VARIABLE = "context"
CHARS_PER_TOKEN = 4
Code = envelope_pb2.Error


def estimate_tokens(text: str) -> int:
    """A provider-independent estimate: about four characters per token."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


class PromptManager(prompt_bus.PromptServiceHandler):
    """Keeps every version of every template per tenant, in memory."""

    def __init__(self) -> None:
        # tenant -> template id -> version -> template; insertion order = arrival order.
        self._store: dict[str, dict[str, dict[str, prompt_pb2.PromptTemplate]]] = {}

    async def templates(self, request: prompt_pb2.PromptTemplate, ctx: Context) -> None:
        versions = self._store.setdefault(ctx.tenant_id, {}).setdefault(request.template_id, {})
        versions.pop(request.version, None)  # a re-sent version becomes the latest
        versions[request.version] = request

    def _template(self, tenant: str, template_id: str, version: str) -> prompt_pb2.PromptTemplate:
        versions = self._store.get(tenant, {}).get(template_id)
        if not versions:
            raise HandlerError(Code.CODE_NOT_FOUND, f"no template {template_id!r} for this tenant")
        if not version:
            return list(versions.values())[-1]
        if version not in versions:
            raise HandlerError(Code.CODE_NOT_FOUND, f"template {template_id!r} has no version {version!r}")
        return versions[version]

    async def context(self, request: prompt_pb2.ContextRequest, ctx: Context) -> prompt_pb2.ContextResult:
        template = self._template(ctx.tenant_id, request.template_id, request.template_version)
        fields = {name for _, name, _, _ in string.Formatter().parse(template.template) if name}
        values = {**template.variables, **request.variables}
        missing = sorted(fields - values.keys() - {CONTEXT_VARIABLE})
        if missing:
            raise HandlerError(Code.CODE_INVALID_ARGUMENT, f"missing template variables: {', '.join(missing)}")

        def render(snippets: list[str]) -> str:
            joined = "\n\n".join(snippets)
            text = template.template.format_map({**values, CONTEXT_VARIABLE: joined})
            return text if CONTEXT_VARIABLE in fields or not joined else f"{text}\n\n{joined}"

        kept = list(request.context_snippets)
        prompt = render(kept)
        # Drop the least relevant (last) snippets until the prompt fits the budget.
        while request.max_tokens and kept and estimate_tokens(prompt) > request.max_tokens:
            kept.pop()
            prompt = render(kept)
        if request.max_tokens and estimate_tokens(prompt) > request.max_tokens:
            raise HandlerError(
                Code.CODE_FAILED_PRECONDITION,
                f"the template alone needs {estimate_tokens(prompt)} tokens, over the budget of {request.max_tokens}",
            )
        return prompt_pb2.ContextResult(
            request_id=request.request_id,
            prompt=prompt,
            estimated_tokens=estimate_tokens(prompt),
            truncated_snippets=len(request.context_snippets) - len(kept),
        )
