"""The gateway worker: gateway.requests, gateway.stream and gateway.embeddings
in the `gateway.workers` queue group, gateway.cache.invalidate on every
worker. Each call goes: cache (if its CacheControl lets it) -> rate limit ->
hard-budget reservation -> provider (deployment chain) -> validation -> cache
put, and ends with its reservation settled and one LlmOperation queued in the
outbox (the reply never waits for JetStream)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from nats.errors import Error as NatsError
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from ai.envelope.v1 import envelope_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from aisdk.components.gateway import cache as response_cache
from aisdk.components.gateway import convert, genai, local
from aisdk.components.gateway.config import GatewayConfig
from aisdk.components.gateway.instruments import Instruments
from aisdk.components.gateway.operations import Operation, OperationLog, Status as OpStatus, Type as OpType
from aisdk.components.gateway.health import DeploymentHealth
from aisdk.components.gateway.models import Deployment
from aisdk.components.gateway.providers import NO_GUARD, Completion, Providers, litellm
from aisdk.components.gateway.ratelimit import STORE_ERRORS, WINDOWS, Decision, Limits, RateLimiter
from aisdk.components.gateway.reservations import BudgetLedger, BudgetUnavailable, Refusal, max_cost
from aisdk.components.gateway.sharedbreakers import SharedBreakers
from aisdk.components.gateway.validation import validate
from runtime import Context, HandlerError  # the facade's lazy exports are invisible to mypy

if TYPE_CHECKING:
    from runtime import Bus  # the facade's lazy exports are invisible to mypy

log = logging.getLogger("aisdk.gateway")
Code = envelope_pb2.Error


class Gateway(gateway_bus.GatewayServiceHandler):
    """One gateway worker. Run several: the cache, the rate limits and the
    operation log live in JetStream, so they behave as one service."""

    def __init__(self, config: GatewayConfig | None = None) -> None:
        self.config = config
        self._bus: Bus | None = None
        self._cache: response_cache.ResponseCache | None = None
        self._limiter: RateLimiter | None = None
        self._health: DeploymentHealth | None = None
        self._ledger: BudgetLedger | None = None
        self._clients: dict[str, gateway_bus.GatewayServiceClient] = {}
        self.validation_failures = 0

    # -- lifecycle ----------------------------------------------------------

    async def start(self, bus: Bus) -> None:
        config = self.config = self.config or GatewayConfig.from_env()
        self._bus = bus
        self.inst = Instruments(bus)
        self.ops = OperationLog(bus, capacity=config.outbox)
        outcome = NO_GUARD
        if config.breakers:
            self._health = DeploymentHealth(
                [d.id for d in config.models.deployments], self._client(config.health_tenant).health,
                interval_s=config.health_interval_s, config=config.breaker,
            )
            self._health.shared = await SharedBreakers.open(
                bus, self._health.tracker, {d.id: d.identity for d in config.models.deployments},
                bucket=config.breaker.bucket)
            outcome = self._health.outcome
        self.providers = Providers(config.models, retries=config.retries, outcome=outcome)
        if config.cache is not None:
            c = config.cache
            self._cache = await response_cache.ResponseCache.open(
                bus, bucket=c.bucket, ttl_s=c.ttl_s, max_bytes=c.max_bytes, lru_size=c.lru_size)
        if config.rate_limits:
            self._limiter = await RateLimiter.open(bus, Limits.from_env())
        if config.budgets.any_hard:
            self._ledger = await BudgetLedger.open(bus, bucket=config.budget_bucket)
        # Load the tokenizer and WordLlama now, not in the first caller's time.
        litellm().token_counter(model="local/extractive", text="warm up")
        local.wordllama()
        if self._health is not None:
            await self._health.start()

    async def stop(self) -> None:
        if self._health is not None:
            await self._health.stop()
        if self._cache is not None:
            await self._cache.close()
        await self.ops.close()

    def _client(self, tenant: str) -> gateway_bus.GatewayServiceClient:
        client = self._clients.get(tenant)
        if client is None:
            assert self._bus is not None, "the gateway is not started"
            client = self._clients[tenant] = gateway_bus.GatewayServiceClient(self._bus, tenant)
        return client

    # -- spans --------------------------------------------------------------

    @contextmanager
    def _span(self, name: str, parent: Span | None = None, **attributes: Any) -> Iterator[Span]:
        """A span ended here, with an explicit parent: streams yield in the
        middle of their spans, so no context is attached across a yield."""
        context = trace.set_span_in_context(parent) if parent is not None else None
        span = self.inst.tracer.start_span(name, context=context, attributes=attributes)
        try:
            yield span
        except BaseException as e:
            span.set_status(Status(StatusCode.ERROR, str(e)))
            raise
        finally:
            span.end()

    # -- the steps of a call -----------------------------------------------

    async def _cached(self, tenant: str, key: str, parent: Span,
                      policy: response_cache.CachePolicy) -> bytes | None:
        return (await self._cached_many(tenant, [key], parent, policy))[0]

    async def _cached_many(self, tenant: str, keys: list[str], parent: Span,
                           policy: response_cache.CachePolicy) -> list[bytes | None]:
        """The cache's entries of these keys, in one batch (None: a miss, or a
        request that does not read the cache)."""
        if self._cache is None or not policy.read:
            return [None] * len(keys)
        first = {"cache.key": keys[0]} if len(keys) == 1 else {"cache.keys": len(keys)}
        with self._span("gateway.cache.check", parent, **first) as span:
            values = await self._cache.get_many(tenant, keys)
            hits = sum(v is not None for v in values)
            span.set_attribute("cache.hit", hits == len(keys))
        attrs = {"tenant_id": tenant}
        if hits:
            self.inst.cache_hits.add(hits, attrs)
        if hits < len(keys):
            self.inst.cache_misses.add(len(keys) - hits, attrs)
        return values

    @staticmethod
    def _policy(make: Any, request: Any) -> response_cache.CachePolicy:
        try:
            policy: response_cache.CachePolicy = make(request)
        except response_cache.InvalidCacheControl as e:
            raise HandlerError(Code.CODE_INVALID_ARGUMENT, str(e)) from None
        return policy

    def _accepting(self) -> None:
        """Refuse new work while the operation outbox is full: taking it
        would mean losing its record."""
        if self.ops.full:
            raise HandlerError(Code.CODE_UNAVAILABLE, f"the gateway's operation log is {self.ops.pending} records "
                               "behind (JetStream is not acknowledging them); retry shortly", retryable=True)

    def _counted(self, tenant: str, requested: str, model: str) -> bool:
        """Whether a call's tokens must be counted before it runs: for a
        token limit or a hard budget. Otherwise the provider's usage is the
        only count."""
        if self._ledger is not None and self.config is not None and self.config.budgets.caps(
                tenant, [requested, model]):
            return True
        if self._limiter is None:
            return False
        limits = self._limiter.limits.resolve(tenant, model)
        return any(limits.limit("tokens", w) for w in WINDOWS)

    async def _reserve(self, tenant: str, requested: str, prompt_tokens: int, max_tokens: int | None,
                       parent: Span, op: Operation) -> None:
        """Hold the call's maximum cost under the tenant's hard budgets, or
        refuse it with RESOURCE_EXHAUSTED naming the budget and its reset."""
        assert self.config is not None
        if self._ledger is None:
            return
        chain = self.providers.chain(requested)
        caps = self.config.budgets.caps(tenant, [requested, chain[0].model])
        if not caps:
            return
        amount = max_cost([d.model for d in chain], prompt_tokens, max_tokens)
        if amount is None:
            raise HandlerError(Code.CODE_FAILED_PRECONDITION, f"no price is known for a model of {requested!r}, so "
                               f"the hard budget {caps[0].name} cannot be kept; the call is refused")
        with self._span("gateway.budget.reserve", parent, tenant_id=tenant, **{"budget.amount": amount}) as span:
            try:
                held = await self._ledger.reserve(caps, amount, self._hold_s())
            except (BudgetUnavailable, NatsError, TimeoutError) as e:
                raise HandlerError(Code.CODE_UNAVAILABLE, f"the budget ledger cannot be reached: {e}",
                                   retryable=True) from None
            span.set_attribute("budget.allowed", not isinstance(held, Refusal))
        if isinstance(held, Refusal):
            op.status = OpStatus.OPERATION_STATUS_BUDGET_EXCEEDED
            self.inst.budget_refusals.add(1, {"tenant_id": tenant, "budget": held.cap.name})
            raise HandlerError(Code.CODE_RESOURCE_EXHAUSTED, held.message())
        op.reservation = held

    def _hold_s(self) -> float:
        # Longer than any call may take: the contract's timeout of a request, plus a margin.
        return gateway_bus.GATEWAY_REQUESTS.timeout_ms / 1000 + 60.0

    async def _finish(self, tenant: str, op: Operation) -> None:
        """Settle the call's reservation to what it cost, and log it."""
        if op.reservation is not None and self._ledger is not None:
            spent = op.reservation.amount if op.cost_unknown else op.cost
            try:
                await self._ledger.settle(op.reservation, spent)
            except (BudgetUnavailable, NatsError, TimeoutError) as e:
                # The hold lapses on its own; the spend it stood for is not recorded.
                log.error("could not settle budget reservation %s of %s ($%.6g): %s",
                          op.reservation.id, tenant, op.cost, e)
        self.ops.emit(tenant, op)

    async def _settle(self, tenant: str, model: str, estimated: int, used: int) -> None:
        """Bring the token counts from the estimate to the real usage."""
        if self._limiter is not None and used != estimated:
            try:
                await self._limiter.add_tokens(tenant, model, used - estimated)
            except STORE_ERRORS as e:
                self._limits_unreachable(tenant, model, e)

    def _limits_unreachable(self, tenant: str, model: str, error: Exception) -> None:
        """The rate-limit store failed: the request goes on unchecked (fail
        open), said in the log and in gateway.rate-limit.unavailable. The
        providers' own limits still stand behind it."""
        log.warning("rate limits of %s/%s unchecked, the counters are unreachable: %s: %s",
                    tenant, model, type(error).__name__, error)
        self.inst.rate_limit_unavailable.add(1, {"tenant_id": tenant, "model": model})

    async def _admit(self, tenant: str, model: str, tokens: int, parent: Span, op: Operation) -> None:
        """Raise RESOURCE_EXHAUSTED (and tell gateway.rate-limit and LLMOps)
        when the call would cross a limit of the tenant and model, and
        FAILED_PRECONDITION when no window could ever admit it."""
        if self._limiter is None:
            return
        with self._span("gateway.rate-limit.check", parent, tenant_id=tenant, model=model) as span:
            try:
                decision = await self._limiter.acquire(tenant, model, tokens)
            except STORE_ERRORS as e:
                span.set_attribute("rate_limit.unchecked", True)
                self._limits_unreachable(tenant, model, e)
                return
            span.set_attribute("rate_limit.allowed", decision.allowed)
        self.inst.rate_limit_checks.add(1, {"tenant_id": tenant, "model": model})
        if decision.allowed:
            return
        self.inst.rate_limit_violations.add(1, {"tenant_id": tenant, "model": model, "scope": decision.scope})
        await self._client(tenant).rate_limit(decision.event(model))
        op.status = OpStatus.OPERATION_STATUS_RATE_LIMITED
        raise self._refusal(model, decision)

    @staticmethod
    def _refusal(model: str, d: Decision) -> HandlerError:
        if d.never:
            return HandlerError(
                Code.CODE_FAILED_PRECONDITION,
                f"the request's estimated {d.current} tokens (prompt plus max_tokens) exceed the limit of "
                f"{d.limit:g} tokens per {d.window_s:g} s for {model!r}: no window can admit it; shorten the "
                "prompt or lower max_tokens")
        return HandlerError(
            Code.CODE_RESOURCE_EXHAUSTED,
            f"rate limit of {d.limit:g} {d.scope} per {d.window_s:g} s reached for {model!r}",
            retryable=True, retry_after=d.retry_after_s,
        )

    def _provider_done(self, span: Span, c: Completion | Any, tenant: str) -> None:
        attrs = {"provider": c.provider, "model": c.model, "tenant_id": tenant}
        span.set_attribute("provider", c.provider)
        span.set_attribute("model", c.model)
        span.set_attribute("tokens", c.usage.total)
        # Embeddings have no output tokens and no finish reason.
        chat = isinstance(c, Completion)
        genai.response(span, provider=c.provider, model=c.model, input_tokens=c.usage.prompt,
                       output_tokens=c.usage.completion if chat else None,
                       finish_reason=c.finish_reason if chat else "")
        self.inst.provider_calls.add(1, attrs)
        self.inst.tokens_used.record(c.usage.total, attrs)
        self.inst.cost.record(c.cost, attrs)

    def _served(self, span: Span, primary: Deployment, deployment: str, model: str) -> bool:
        """Whether a fallback served the call; if so, say it on the span,
        in gateway.fallbacks (from, to) and in a gateway.health event of the
        deployment fallen back from."""
        if deployment == primary.id:
            return False
        span.set_attribute("gateway.fallback", True)
        span.set_attribute("gateway.fallback.from", primary.model)
        span.set_attribute("gateway.fallback.to", model)
        self.inst.fallbacks.add(1, {"from": primary.model, "to": model})
        if self._health is not None:
            self._health.fell_back(primary.id)
        return True

    def _check(self, text: str, want_json: bool, parent: Span) -> None:
        assert self.config is not None
        with self._span("gateway.validate", parent) as span:
            verdict = validate(text, want_json=want_json, max_chars=self.config.max_answer_chars)
            span.set_attribute("validation.level", verdict.level)
            span.set_attribute("validation.passed", verdict.passed)
        self.inst.validation_checks.add(1, {"validation.level": verdict.level, "passed": verdict.passed})
        if not verdict.passed:
            self.validation_failures += 1
            raise HandlerError(Code.CODE_FAILED_PRECONDITION, f"the answer failed validation: {verdict.reason}")

    @contextmanager
    def _call(self, op: Operation, ctx: Context, prompt_length: int = 0) -> Iterator[Span]:
        """gateway.generate around one call: metrics by outcome, and the
        operation's status and latency whatever the outcome (the caller
        emits it)."""
        tenant, model, request_id = ctx.tenant_id, op.model, op.request_id
        self.inst.requests_queued.add(1, {"tenant_id": tenant, "model": model})
        t0 = time.perf_counter()
        status = "success"
        with self._span("gateway.generate", None, **{"gateway.model": model, "gateway.tenant_id": tenant,
                                       "gateway.request_id": request_id,
                                       "gateway.prompt.length": prompt_length}) as span:
            try:
                yield span
            except BaseException:
                status = "error"
                if op.status == OpStatus.OPERATION_STATUS_SUCCESS:
                    op.status = OpStatus.OPERATION_STATUS_ERROR
                raise
            finally:
                op.latency_s = time.perf_counter() - t0
                self.inst.request_duration.record(op.latency_s, {"tenant_id": tenant, "model": model})
                self.inst.requests_completed.add(1, {"tenant_id": tenant, "model": model, "status": status})

    # -- gateway.requests ---------------------------------------------------

    async def requests(self, request: gateway_pb2.LlmRequest, ctx: Context) -> gateway_pb2.LlmResponse:
        self._accepting()
        op = self._operation(request, ctx)
        try:
            with self._call(op, ctx, len(request.prompt)) as span:
                return await self._generate(request, ctx, span, op)
        finally:
            await self._finish(ctx.tenant_id, op)

    @staticmethod
    def _operation(request: gateway_pb2.LlmRequest, ctx: Context) -> Operation:
        kind = OpType.OPERATION_TYPE_CHAT if request.messages else OpType.OPERATION_TYPE_COMPLETION
        return Operation(ctx.message_id, request.request_id, kind, request.model)

    async def _generate(self, request: gateway_pb2.LlmRequest, ctx: Context, span: Span,
                        op: Operation) -> gateway_pb2.LlmResponse:
        tenant, requested = ctx.tenant_id, request.model
        # Known before the cache is asked: an unknown name is NOT_FOUND even
        # when some other name's answer sits under the same provider model.
        primary = self.providers.primary(requested)
        model = primary.model
        messages, params = convert.messages(request), convert.parameters(request)
        policy = self._policy(response_cache.chat_policy, request)
        key = response_cache.cache_key(tenant, model, messages, params)
        t0 = time.perf_counter()
        hit = await self._cached(tenant, key, span, policy)
        if hit is not None:
            reply = gateway_pb2.LlmResponse.FromString(hit)
            reply.request_id, reply.cached, reply.cost = request.request_id, True, 0.0
            # An entry under this key is the primary deployment's answer, for
            # whoever asked: no fallback served this request.
            reply.requested_model, reply.fallback = requested, False
            reply.duration.CopyFrom(convert.duration(time.perf_counter() - t0))
            op.answered_from_cache(reply)
            return reply
        estimate = await self._before_call(tenant, requested, model, messages, params, span, op)
        with self._span("gateway.provider.call", span, **genai.request(genai.CHAT, requested, params)) as call:
            c = await self.providers.complete(requested, messages, params, ctx.time_left())
            self._provider_done(call, c, tenant)
            genai.content(call, messages, c.text)
        await self._settle(tenant, model, estimate, c.usage.total)
        op.prompt_tokens, op.completion_tokens, op.cost = c.usage.prompt, c.usage.completion, c.cost
        op.model = c.model  # what answered, not the alias asked for
        calls = convert.tool_calls(c.tool_calls)
        if not calls:
            # A function call is the whole answer: there is no text to check.
            self._check(c.text, convert.wants_json(request), span)
        reply = gateway_pb2.LlmResponse(
            request_id=request.request_id, response=c.text, tokens=convert.tokens(c.usage.prompt, c.usage.completion),
            cost=c.cost, model=c.model, finish_reason=convert.finish_reason(c.finish_reason), cached=False,
            duration=convert.duration(time.perf_counter() - t0), provider=c.provider, tool_calls=calls,
            requested_model=requested, fallback=self._served(span, primary, c.deployment, c.model),
        )
        await self._remember(tenant, c.model, messages, params, reply, policy)
        return reply

    async def _remember(self, tenant: str, served_by: str, messages: list[dict[str, Any]], params: dict[str, Any],
                        reply: gateway_pb2.LlmResponse, policy: response_cache.CachePolicy) -> None:
        """Cache an answer under the key of the model that gave it. A
        fallback's answer is then never served as the requested model's: the
        next request for that model tries its own deployment again."""
        if self._cache is not None and policy.write:
            key = response_cache.cache_key(tenant, served_by, messages, params)
            await self._cache.put(tenant, key, reply.SerializeToString(), served_by, ttl_s=policy.ttl_s,
                                  replace=policy.replace)

    async def _before_call(self, tenant: str, requested: str, model: str, messages: list[dict[str, Any]],
                           params: dict[str, Any], span: Span, op: Operation) -> int:
        """Rate limits, then hard budgets, for one completion. The prompt is
        counted once, and only when a limit or a budget needs it; returns
        the estimate the limiter was told (prompt plus max_tokens)."""
        if not self._counted(tenant, requested, model):
            await self._admit(tenant, model, 0, span, op)
            return 0
        prompt = int(litellm().token_counter(model=model, messages=messages))
        max_tokens = params.get("max_tokens")
        estimate = prompt + int(max_tokens or 0)
        await self._admit(tenant, model, estimate, span, op)
        await self._reserve(tenant, requested, prompt, max_tokens, span, op)
        return estimate

    # -- gateway.stream -----------------------------------------------------

    async def stream(self, request: gateway_pb2.LlmRequest, ctx: Context) -> AsyncIterator[gateway_pb2.LlmChunk]:
        self._accepting()
        op = self._operation(request, ctx)
        sent = 0
        try:
            with self._call(op, ctx, len(request.prompt)) as span:
                async for chunk in self._stream(request, ctx, span, op):
                    sent += 1
                    yield chunk
        except BaseException:
            # Ended after text went out and before the final chunk's usage
            # (the caller left, or the provider broke off): what the provider
            # bills is unknown, so a hard budget counts the whole hold.
            op.cost_unknown = sent > 0 and op.cost == 0
            raise
        finally:
            await self._finish(ctx.tenant_id, op)

    async def _stream(self, request: gateway_pb2.LlmRequest, ctx: Context, span: Span,
                      op: Operation) -> AsyncIterator[gateway_pb2.LlmChunk]:
        tenant, requested, rid = ctx.tenant_id, request.model, request.request_id
        primary = self.providers.primary(requested)
        model = primary.model
        messages, params = convert.messages(request), convert.parameters(request)
        policy = self._policy(response_cache.chat_policy, request)
        key = response_cache.cache_key(tenant, model, messages, params)
        t0 = time.perf_counter()
        hit = await self._cached(tenant, key, span, policy)
        if hit is not None:
            cached = gateway_pb2.LlmResponse.FromString(hit)
            # A cached function call may have no text at all: no empty delta for it.
            words = cached.response.split(" ") if cached.response else []
            for i, word in enumerate(words):
                yield gateway_pb2.LlmChunk(request_id=rid, index=i, delta=word if i == 0 else f" {word}")
            op.answered_from_cache(cached)
            yield gateway_pb2.LlmChunk(
                request_id=rid, index=len(words), tokens=cached.tokens, finish_reason=cached.finish_reason,
                cost=0.0, model=cached.model, provider=cached.provider, cached=True,
                duration=convert.duration(time.perf_counter() - t0), requested_model=requested, fallback=False,
                tool_calls=cached.tool_calls,
            )
            return
        estimate = await self._before_call(tenant, requested, model, messages, params, span, op)
        index = 0
        received: list[Any] = []
        with self._span("gateway.provider.call", span, **genai.request(genai.CHAT, requested, params)) as call:
            deployment, chunks = await self.providers.stream(requested, messages, params, ctx.time_left())
            async for delta in self._deltas(deployment, chunks, received):
                yield gateway_pb2.LlmChunk(request_id=rid, index=index, delta=delta)
                index += 1
            c = self.providers.finish_stream(deployment, received, messages)
            self._provider_done(call, c, tenant)
            genai.content(call, messages, c.text)
        await self._settle(tenant, model, estimate, c.usage.total)
        op.prompt_tokens, op.completion_tokens, op.cost = c.usage.prompt, c.usage.completion, c.cost
        op.model = c.model
        # The calls as the provider's fragments add up, whole: sent once, on the last chunk.
        calls = convert.tool_calls(c.tool_calls)
        if not calls:
            self._check(c.text, convert.wants_json(request), span)
        usage = convert.tokens(c.usage.prompt, c.usage.completion)
        elapsed = convert.duration(time.perf_counter() - t0)
        # A call is what the model chose, whatever finish reason its provider gave.
        finish = gateway_pb2.FINISH_REASON_TOOL_CALLS if calls else convert.finish_reason(c.finish_reason)
        fallback = self._served(span, primary, deployment.id, c.model)
        yield gateway_pb2.LlmChunk(
            request_id=rid, index=index, tokens=usage, finish_reason=finish, cost=c.cost, model=c.model,
            provider=c.provider, cached=False, duration=elapsed, requested_model=requested, fallback=fallback,
            tool_calls=calls,
        )
        await self._remember(tenant, c.model, messages, params, gateway_pb2.LlmResponse(
            request_id=rid, response=c.text, tokens=usage, cost=c.cost, model=c.model, finish_reason=finish,
            duration=elapsed, provider=c.provider, requested_model=requested, fallback=fallback, tool_calls=calls,
        ), policy)

    async def _deltas(self, deployment: Deployment, chunks: AsyncIterator[Any],
                      received: list[Any]) -> AsyncIterator[str]:
        """The text of a provider's stream, each piece once. A failure after
        text went out ends the stream with an error (counted against the
        deployment): nothing is sent again and nothing falls back."""
        sent = 0
        try:
            async for piece in chunks:
                received.append(piece)
                delta = piece.choices[0].delta.content if piece.choices else None
                if delta:
                    yield delta
                    sent += 1
        except HandlerError:
            raise
        except Exception as e:  # noqa: BLE001 - the provider's fault mid-stream, classified
            raise self.providers.stream_failed(deployment, e, sent) from e

    # -- gateway.embeddings -------------------------------------------------

    async def embeddings(self, request: gateway_pb2.EmbeddingRequest, ctx: Context) -> gateway_pb2.EmbeddingResult:
        op = Operation(ctx.message_id, request.request_id, OpType.OPERATION_TYPE_EMBEDDING, request.model)
        if request.text_ids and len(request.text_ids) != len(request.texts):
            raise HandlerError(Code.CODE_INVALID_ARGUMENT,
                               f"{len(request.text_ids)} text_ids for {len(request.texts)} texts")
        self._accepting()
        try:
            with self._call(op, ctx, sum(len(t) for t in request.texts)) as span:
                return await self._embed(request, ctx, span, op)
        finally:
            await self._finish(ctx.tenant_id, op)

    async def _embed(self, request: gateway_pb2.EmbeddingRequest, ctx: Context, span: Span,
                     op: Operation) -> gateway_pb2.EmbeddingResult:
        tenant, requested = ctx.tenant_id, request.model
        primary = self.providers.primary(requested)
        model = primary.model
        t0 = time.perf_counter()
        texts = list(request.texts)
        policy = self._policy(response_cache.embedding_policy, request)
        keys = [response_cache.embedding_key(tenant, model, t) for t in texts]
        found = {i: gateway_pb2.Embedding.FromString(hit)
                 for i, hit in enumerate(await self._cached_many(tenant, keys, span, policy)) if hit is not None}
        missing = [i for i in range(len(texts)) if i not in found]
        # Vectors the cache holds under this key are the primary deployment's.
        result = gateway_pb2.EmbeddingResult(
            request_id=request.request_id, model=model, text_ids=request.text_ids, cached=len(found),
            requested_model=requested, provider=primary.provider)
        if missing:
            todo = [texts[i] for i in missing]
            # Counted once per text, and only for a token limit or a budget.
            tokens = sum(int(litellm().token_counter(model=model, text=t)) for t in todo) \
                if self._counted(tenant, requested, model) else 0
            await self._admit(tenant, model, tokens, span, op)
            await self._reserve(tenant, requested, tokens, 0, span, op)
            with self._span("gateway.provider.call", span, **genai.request(genai.EMBEDDINGS, requested)) as call:
                e = await self.providers.embed(requested, todo, ctx.time_left())
                self._provider_done(call, e, tenant)
                if e.vectors:
                    call.set_attribute(genai.EMBEDDINGS_DIMENSION_COUNT, len(e.vectors[0]))
            if len(e.vectors) != len(todo):
                raise HandlerError(Code.CODE_UNAVAILABLE,
                                   f"{e.deployment} returned {len(e.vectors)} embeddings for {len(todo)} texts")
            if e.model != model and found:
                # Vectors of two models do not compare: never mix them in one result.
                raise HandlerError(Code.CODE_UNAVAILABLE, f"{model} failed and {e.model} answered instead, but "
                                   f"{len(found)} of the texts are cached as {model}'s vectors; retry when "
                                   f"{model} is back", retryable=True,
                                   retry_after=self.providers.retry_after(primary))
            for i, vector in zip(missing, e.vectors):
                found[i] = gateway_pb2.Embedding(values=vector)
            if self._cache is not None and policy.write:
                await self._store_embeddings(tenant, model, e.model, [(keys[i], texts[i], found[i]) for i in missing],
                                             policy)
            result.tokens.CopyFrom(convert.tokens(e.usage.prompt, 0))
            result.cost, result.provider, result.model, result.fallback = (
                e.cost, e.provider, e.model, self._served(span, primary, e.deployment, e.model))
            op.prompt_tokens, op.cost = e.usage.prompt, e.cost
            op.model = e.model
        else:
            op.status = OpStatus.OPERATION_STATUS_CACHED
        result.embeddings.extend(found[i] for i in range(len(texts)))
        result.duration.CopyFrom(convert.duration(time.perf_counter() - t0))
        return result

    async def _store_embeddings(self, tenant: str, model: str, served_by: str,
                                entries: list[tuple[str, str, gateway_pb2.Embedding]],
                                policy: response_cache.CachePolicy) -> None:
        """Cache new vectors, all at once, under the key of the model that made them."""
        cache = self._cache
        assert cache is not None
        await asyncio.gather(*(
            cache.put(tenant, key if served_by == model else response_cache.embedding_key(tenant, served_by, text),
                      vector.SerializeToString(), served_by, ttl_s=policy.ttl_s, replace=policy.replace)
            for key, text, vector in entries))

    # -- gateway.cache.invalidate ------------------------------------------

    async def cache_invalidate(self, request: gateway_pb2.CacheInvalidation, ctx: Context) -> None:
        """Every worker receives the event: each drops its own LRU entries,
        and the shared bucket is purged (a second purge finds nothing)."""
        if self._cache is None:
            return
        if request.model:
            # Entries are kept under the provider model that answered: `chat`
            # means the entries of the model that serves it.
            request = gateway_pb2.CacheInvalidation(
                cache_keys=request.cache_keys, model=self.providers.models.resolve(request.model),
                all=request.all, reason=request.reason)
        dropped = await self._cache.apply(ctx.tenant_id, request)
        log.info("cache invalidation for %s dropped %d entries (%s)", ctx.tenant_id, dropped,
                 request.reason or "no reason given")
