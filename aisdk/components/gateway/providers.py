"""litellm behind the gateway: set up once per process, then completions,
streams and embeddings over a model's deployment chain.

The chain (models.ModelList.chain) is walked here, so that a deployment
whose circuit breaker is open is skipped without a call and every outcome
reaches that deployment's breaker and health figures. One deployment is
called with `litellm.acompletion` / `aembedding` and its own parameters, and
a provider fault (a timeout, a 5xx, a dropped connection) is retried on it
with litellm's backoff, as its Router would: the Router cost 1.1 ms per
completion and 0.7 ms per 64-text embedding on top of the call, for a
routing this module does itself. A client error and a 429 are never
retried: the first fails the same way again, and the second moves on to
the next deployment, whose reply says when this one may be asked again.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType
from typing import Any

import numpy as np

from ai.envelope.v1 import envelope_pb2
from aisdk.components.gateway import local
from aisdk.components.gateway.failures import Failure, classify, provider_message, response_headers
from aisdk.components.gateway.models import Deployment, ModelList
from runtime import HandlerError  # the facade's lazy exports are invisible to mypy

Code = envelope_pb2.Error
log = logging.getLogger(__name__)
DEFAULT_RETRIES = 2
# Below this, a call cannot finish: refuse it rather than start it.
MIN_TIMEOUT_S = 0.05


@cache
def litellm() -> ModuleType:
    """litellm, imported on first use (about 5 s) and set up for offline use:
    the bundled cost map, no tokenizer downloads, the local provider."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm as module

    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        # Its INFO lines (one per call) would drown the service's own log.
        logging.getLogger(name).setLevel(logging.WARNING)
    module.disable_hf_tokenizer_download = True
    module.suppress_debug_info = True
    module.custom_provider_map = [{"provider": local.PROVIDER, "custom_handler": local.provider()}]
    module.register_model({
        name: {**price, "litellm_provider": local.PROVIDER,
               "cache_creation_input_token_cost": 0.0, "cache_read_input_token_cost": 0.0}
        for name, price in local.PRICES.items()
    })
    return module


@dataclass(slots=True)
class Usage:
    prompt: int = 0
    completion: int = 0

    @property
    def total(self) -> int:
        return self.prompt + self.completion


@dataclass(slots=True)
class Completion:
    text: str
    finish_reason: str
    usage: Usage
    cost: float
    # The provider model of the deployment that answered, not the name asked for.
    model: str
    provider: str
    deployment: str
    # The functions the model chose to call, as litellm returns them.
    tool_calls: list[Any] = field(default_factory=list)


@dataclass(slots=True)
class Embeddings:
    vectors: list[list[float]]
    usage: Usage
    cost: float
    model: str
    provider: str
    deployment: str


class Outcome:
    """What a call through one deployment tells its breaker and health:
    allow(d) before a call; success(d, latency_s) or failure(d, retry_after_s)
    after it; wait(d), the seconds until allow(d) may say yes again."""

    def __init__(self, allow: Callable[[str], bool], success: Callable[[str, float], None],
                 failure: Callable[[str, float | None], None], wait: Callable[[str], float]) -> None:
        self.allow, self.success, self.failure, self.wait = allow, success, failure, wait


NO_GUARD = Outcome(lambda _d: True, lambda _d, _s: None, lambda _d, _a: None, lambda _d: 0.0)
# When every deployment failed and none says when to come back (a refused
# connection, a 5xx with its breaker still closed): the soonest a retry is
# worth it.
DEFAULT_RETRY_AFTER_S = 1.0


def _cost(response: Any, provider: str, call_type: str) -> float:
    hidden = getattr(response, "_hidden_params", {}) or {}
    if hidden.get("response_cost") is not None:
        return float(hidden["response_cost"])
    try:
        return float(litellm().completion_cost(completion_response=response, custom_llm_provider=provider,
                                               call_type=call_type))
    except Exception:  # noqa: BLE001 - a model without a known price costs what we can tell: nothing
        return 0.0


def _usage(response: Any) -> Usage:
    usage = getattr(response, "usage", None)
    if usage is None:
        return Usage()
    return Usage(int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0))


def reason(error: BaseException) -> str:
    """Why a call failed, for the caller: the error's first line (litellm
    appends routing advice on the next ones) and, when it wraps another, the
    root cause, which is what names the provider's trouble (a refused
    connection, a TLS failure) where litellm says only "Connection error"."""
    text = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}"
    root, seen = error, {id(error)}
    while (nxt := root.__cause__ or root.__context__) is not None and id(nxt) not in seen:
        root = nxt
        seen.add(id(root))
    return text if root is error else f"{text} (cause: {type(root).__name__}: {str(root)[:200]})"


def _timeout(time_left: float | None) -> float | None:
    if time_left is not None and time_left < MIN_TIMEOUT_S:
        raise HandlerError(Code.CODE_DEADLINE_EXCEEDED, "the request's deadline leaves no time for a provider call")
    return time_left


def _has_text(chunk: Any) -> bool:
    return bool(chunk.choices and chunk.choices[0].delta.content)


async def _first_text(chunks: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """Read a stream up to its first chunk with text (role-only chunks come
    before it), then hand back everything read and the rest."""
    iterator = aiter(chunks)
    read: list[Any] = []
    async for chunk in iterator:
        read.append(chunk)
        if _has_text(chunk):
            break

    async def rejoined() -> AsyncIterator[Any]:
        for chunk in read:
            yield chunk
        async for chunk in iterator:
            yield chunk

    return rejoined()


class Providers:
    """A model list, called through litellm deployment by deployment."""

    def __init__(self, models: ModelList, *, retries: int = DEFAULT_RETRIES, outcome: Outcome = NO_GUARD) -> None:
        if retries < 0:
            raise ValueError(f"retries must not be negative, not {retries}")
        self.models = models
        self.outcome = outcome
        self.retries = retries
        self._litellm = litellm()

    async def _call(self, d: Deployment, fn: Callable[..., Awaitable[Any]], timeout: float | None,
                    **kwargs: Any) -> Any:
        """fn (litellm.acompletion or aembedding) with the deployment's
        parameters, retried on provider faults while retries and the
        deadline last."""
        params = {k: v for k, v in d.params.items() if k not in _ROUTING_ONLY}
        # A stream's own limit, where the deployment sets one (as the Router read it).
        own = d.params.get("stream_timeout") if kwargs.get("stream") else None
        own = params.get("timeout") if own is None else own
        deadline = None if timeout is None else time.monotonic() + timeout
        for attempt in range(self.retries + 1):
            left = None if deadline is None else deadline - time.monotonic()
            try:
                # max_retries 0: the provider's SDK (OpenAI's retries twice by
                # default) must not retry under this loop.
                return await fn(**{**params, "timeout": _shorter(left, own), "max_retries": 0, **kwargs})
            except Exception as e:
                failure = classify(e)
                if failure.client or failure.rate_limited or attempt == self.retries:
                    raise
                wait = float(self._litellm._calculate_retry_after(
                    remaining_retries=self.retries - attempt, max_retries=self.retries,
                    response_headers=response_headers(e)))
                if deadline is not None and time.monotonic() + wait >= deadline:
                    raise
                log.debug("retrying %s in %.2f s after %s", d.id, wait, reason(e))
                await asyncio.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def chain(self, model: str) -> list[Deployment]:
        chain = self.models.chain(model)
        if not chain:
            raise HandlerError(
                Code.CODE_NOT_FOUND, f"no deployment serves model {model!r}; known: {', '.join(self.models.names)}"
            )
        return chain

    def primary(self, model: str) -> Deployment:
        """The deployment that serves model when nothing fails (NOT_FOUND for
        an unknown model): its answers are the ones cached under model."""
        return self.chain(model)[0]

    def retry_after(self, *deployments: Deployment) -> float:
        """When the soonest of these may be called again (a hold, an open
        circuit's cool-down), and DEFAULT_RETRY_AFTER_S when that is now."""
        return min((self.outcome.wait(d.id) for d in deployments), default=0.0) or DEFAULT_RETRY_AFTER_S

    def failed(self, deployment: Deployment, error: Exception) -> Failure:
        """Classify a provider error of deployment and tell its breaker when
        it is the provider's fault (a client error says nothing about it)."""
        failure = classify(error)
        if not failure.client:
            self.outcome.failure(deployment.id, failure.retry_after)
        return failure

    async def _through_chain(self, model: str, call: Callable[[Deployment], Any]) -> Any:
        errors: list[str] = []
        rate_limited = tried = 0
        chain = self.chain(model)
        for deployment in chain:
            if not self.outcome.allow(deployment.id):
                errors.append(f"{deployment.id}: circuit open")
                continue
            t0 = time.perf_counter()
            try:
                result = await call(deployment)
            except HandlerError:
                raise
            except Exception as e:  # noqa: BLE001 - classified: a client error ends here, a fault falls back
                failure = self.failed(deployment, e)
                if failure.client:
                    raise HandlerError(failure.code, f"{deployment.model} refused the request: {provider_message(e)}") from e
                tried += 1
                rate_limited += failure.rate_limited
                errors.append(f"{deployment.id} ({deployment.model}): {reason(e)}")
                continue
            self.outcome.success(deployment.id, time.perf_counter() - t0)
            return result
        raise self.exhausted(model, chain, errors, every_call_rate_limited=tried > 0 and rate_limited == tried)

    def exhausted(self, model: str, chain: Sequence[Deployment], errors: Sequence[str], *,
                  every_call_rate_limited: bool) -> HandlerError:
        """Every deployment failed or is set aside: UNAVAILABLE (or
        RESOURCE_EXHAUSTED when every provider called answered 429), retryable
        once the first deployment may be called again."""
        after = self.retry_after(*chain)
        if every_call_rate_limited:
            return HandlerError(Code.CODE_RESOURCE_EXHAUSTED, f"every deployment of {model!r} is rate-limited by "
                                f"its provider: {'; '.join(errors)}", retryable=True, retry_after=after)
        return HandlerError(Code.CODE_UNAVAILABLE, f"every deployment of {model!r} failed: {'; '.join(errors)}",
                            retryable=True, retry_after=after)

    async def complete(self, model: str, messages: list[dict[str, Any]], params: dict[str, Any],
                       time_left: float | None) -> Completion:
        timeout = _timeout(time_left)

        async def call(d: Deployment) -> Completion:
            r = await self._call(d, self._litellm.acompletion, timeout, messages=messages, **params)
            choice = r.choices[0]
            return Completion(
                text=choice.message.content or "", finish_reason=choice.finish_reason or "stop", usage=_usage(r),
                cost=_cost(r, d.provider, "acompletion"), model=d.model, provider=d.provider, deployment=d.id,
                tool_calls=list(getattr(choice.message, "tool_calls", None) or []),
            )

        result: Completion = await self._through_chain(model, call)
        return result

    async def stream(self, model: str, messages: list[dict[str, Any]], params: dict[str, Any],
                     time_left: float | None) -> tuple[Deployment, AsyncIterator[Any]]:
        """The deployment that accepted the stream and its chunks. Fallback
        happens before the first chunk with text only: the chunks up to it
        are read here, inside the chain, so a provider that fails before
        any text went out falls back like a failed request. After it, text
        has gone out, and a failure is the caller's to end the stream with
        (stream_failed). A stream that only calls tools has no text: it is
        read whole here, and falls back like a request (its calls go out on
        the last chunk, after the chain)."""
        timeout = _timeout(time_left)

        async def call(d: Deployment) -> tuple[Deployment, AsyncIterator[Any]]:
            chunks = await self._call(d, self._litellm.acompletion, timeout, messages=messages, stream=True,
                                      stream_options={"include_usage": True}, **params)
            return d, await _first_text(chunks)

        result: tuple[Deployment, AsyncIterator[Any]] = await self._through_chain(model, call)
        return result

    def stream_failed(self, d: Deployment, error: Exception, sent: int) -> HandlerError:
        """A stream that failed after `sent` chunks went out: the error that
        ends it. Nothing is sent again and nothing falls back, since the
        caller holds part of this deployment's answer."""
        failure = self.failed(d, error)
        if failure.client:
            return HandlerError(failure.code, f"{d.model} refused the request after {sent} chunks: {provider_message(error)}")
        return HandlerError(
            Code.CODE_UNAVAILABLE, f"the stream of {d.id} ({d.model}) failed after {sent} chunks, which stand as "
            f"sent (a retry starts over): {reason(error)}", retryable=True,
            retry_after=self.retry_after(d))

    def finish_stream(self, d: Deployment, chunks: Sequence[Any], messages: list[dict[str, Any]]) -> Completion:
        """Usage and cost of a finished stream, from its rebuilt response."""
        full = litellm().stream_chunk_builder(list(chunks), messages=messages)
        choice = full.choices[0] if full is not None and full.choices else None
        return Completion(
            text=(choice.message.content or "") if choice else "",
            finish_reason=(choice.finish_reason or "stop") if choice else "stop",
            usage=_usage(full), cost=_cost(full, d.provider, "acompletion") if full is not None else 0.0,
            model=d.model, provider=d.provider, deployment=d.id,
            # litellm joins each call's fragments (by their index) into whole calls.
            tool_calls=list(getattr(choice.message, "tool_calls", None) or []) if choice else [],
        )

    async def embed(self, model: str, texts: list[str], time_left: float | None) -> Embeddings:
        timeout = _timeout(time_left)

        async def call(d: Deployment) -> Embeddings:
            # The local provider answers in base64 (see local.embed): a batch
            # of 64 vectors as floats kept this process's event loop 4.5 ms.
            # Others answer as they do, in floats unless they say otherwise.
            extra: dict[str, Any] = ({"metadata": {"encoding_format": "base64"}}
                                     if d.provider == local.PROVIDER else {})
            r = await self._call(d, self._litellm.aembedding, timeout, input=texts, **extra)
            rows = sorted(r.data, key=lambda item: item["index"])
            return Embeddings(
                vectors=[_vector(row["embedding"]) for row in rows], usage=_usage(r),
                cost=_cost(r, d.provider, "aembedding"), model=d.model, provider=d.provider, deployment=d.id,
            )

        result: Embeddings = await self._through_chain(model, call)
        return result


def _vector(embedding: Any) -> list[float]:
    """One embedding as floats: a list as it is, base64 as little-endian
    float32 bytes (OpenAI's encoding_format=base64)."""
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4").tolist()  # type: ignore[no-any-return]
    return list(embedding)


# Keys of a Router-style model list that steer routing, not the call.
_ROUTING_ONLY = frozenset({"rpm", "tpm", "max_parallel_requests", "order", "weight", "stream_timeout"})


def _shorter(left: float | None, configured: Any) -> float | None:
    """The call's timeout: the request's time left, or the deployment's own
    timeout when that is shorter."""
    own = float(configured) if isinstance(configured, (int, float)) and configured > 0 else None
    if left is None:
        return own
    return min(left, own) if own is not None else left

