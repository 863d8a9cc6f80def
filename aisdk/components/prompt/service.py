"""Prompt management: templates arrive as durable events on prompt.templates
(one consumer shared by every worker, so a template published while none runs
waits for the next) and are stored in PostgreSQL with every version;
prompt.context renders the latest (or a pinned) version, with retrieved
snippets fitted into a token budget counted by the gateway's tokenizer.

All state is in the database: every worker answers the same, and a worker
started later knows every template stored before it."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import TYPE_CHECKING

from ai.envelope.v1 import envelope_pb2
from ai.prompt.v1 import prompt_bus, prompt_pb2
from aisdk.components import offload
from aisdk.components.gateway import models
from aisdk.components.prompt import store, tokens
from aisdk.components.prompt.rendering import MissingVariables, OverBudget, render
from aisdk.components.storage import Database, Pool
from runtime.contract import Context
from runtime.errors import HandlerError
from runtime.telemetry import Telemetry
from runtime.telemetry.names import ATTR, METRIC, SPAN

if TYPE_CHECKING:
    from runtime.bus import Bus

COMPONENT = "prompt"
Code = envelope_pb2.Error
TEMPLATE_ID = "prompt.template.id"
TEMPLATE_VERSION = "prompt.template.version"
MODEL = "prompt.model"


def _published_us(ctx: Context) -> int:
    """When the template was published, by the publisher's envelope; the
    time of arrival for an envelope without one."""
    sent = ctx.envelope.time
    return sent.ToMicroseconds() if sent.seconds or sent.nanos else time.time_ns() // 1000


class PromptManager(prompt_bus.PromptServiceHandler):
    def __init__(self, database_url: str | None = None, default_model: str | None = None) -> None:
        self._db = Database(COMPONENT, database_url)
        # The gateway's model list, so that a request naming an alias (`chat`)
        # is counted with the model that serves it.
        self._models = models.from_env()
        self.default_model = default_model or self._models.resolve(models.CHAT)
        self._tel = Telemetry.disabled()

    async def start(self, bus: Bus) -> None:
        self._tel = bus.telemetry if bus.telemetry is not None else Telemetry.disabled()
        await self._db.open()
        # Import litellm and load the tokenizer now, not in the first caller's time.
        await asyncio.to_thread(tokens.count, self.default_model, "warm up")

    async def stop(self) -> None:
        await self._db.close()

    @property
    def pool(self) -> Pool:
        return self._db.pool

    async def templates(self, request: prompt_pb2.PromptTemplate, ctx: Context) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await store.publish(conn, ctx.tenant_id, ctx.message_id, request, _published_us(ctx))

    async def _template(self, tenant: str, template_id: str, version: str) -> store.Template:
        async with self.pool.connection() as conn:
            found = await store.find(conn, tenant, template_id, version)
            if found is not None:
                return found
            if not version or not await store.has_template(conn, tenant, template_id):
                raise HandlerError(Code.CODE_NOT_FOUND, f"no template {template_id!r} for this tenant")
        raise HandlerError(Code.CODE_NOT_FOUND, f"template {template_id!r} has no version {version!r}")

    async def context(self, request: prompt_pb2.ContextRequest, ctx: Context) -> prompt_pb2.ContextResult:
        tenant = ctx.tenant_id
        model = self._models.resolve(request.model) if request.model else self.default_model
        with self._tel.span(SPAN.PROMPT_CONTEXT_BUILD, {ATTR.TENANT_ID: tenant, TEMPLATE_ID: request.template_id,
                                                       MODEL: model}) as span:
            template = await self._template(tenant, request.template_id, request.template_version)
            span.set_attribute(TEMPLATE_VERSION, template.version)
            with self._tel.span(SPAN.PROMPT_TEMPLATE_RENDER, {ATTR.TENANT_ID: tenant}):
                try:
                    # Counting tokens is tiktoken and litellm's wrapper: off the loop.
                    rendered = await offload.in_thread(
                        render, template.text, {**template.variables, **request.variables},
                        list(request.context_snippets), request.max_tokens, partial(tokens.count, model),
                        timeout=ctx.time_left())
                except MissingVariables as e:
                    raise HandlerError(Code.CODE_INVALID_ARGUMENT, str(e)) from e
                except OverBudget as e:
                    raise HandlerError(Code.CODE_FAILED_PRECONDITION, f"{e} (counted for {model})") from e
            self._tel.metrics.counter(METRIC.PROMPT_TEMPLATES_RENDERED).add(1, {ATTR.TENANT_ID: tenant})
            self._tel.metrics.counter(METRIC.PROMPT_CONTEXTS_BUILT).add(1, {ATTR.TENANT_ID: tenant})
            self._tel.metrics.histogram(METRIC.PROMPT_TOKENS_ESTIMATED).record(rendered.tokens,
                                                                              {ATTR.TENANT_ID: tenant})
            return prompt_pb2.ContextResult(
                request_id=request.request_id,
                prompt=rendered.prompt,
                estimated_tokens=rendered.tokens,
                truncated_snippets=rendered.dropped,
                template_version=template.version,
                model=model,
            )
