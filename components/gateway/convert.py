"""Between the contract's messages and litellm's dictionaries."""

from __future__ import annotations

from typing import Any

from google.protobuf.duration_pb2 import Duration

from ai.envelope.v1 import envelope_pb2
from ai.gateway.v1 import gateway_pb2
from runtime import HandlerError  # type: ignore[attr-defined]  # the facade's lazy exports are invisible to mypy

Code = envelope_pb2.Error
_ROLES = {
    gateway_pb2.ROLE_SYSTEM: "system",
    gateway_pb2.ROLE_USER: "user",
    gateway_pb2.ROLE_ASSISTANT: "assistant",
    gateway_pb2.ROLE_TOOL: "tool",
}
_FINISH = {
    "stop": gateway_pb2.FINISH_REASON_STOP,
    "length": gateway_pb2.FINISH_REASON_LENGTH,
    "content_filter": gateway_pb2.FINISH_REASON_CONTENT_FILTER,
    "tool_calls": gateway_pb2.FINISH_REASON_TOOL_CALLS,
    "function_call": gateway_pb2.FINISH_REASON_TOOL_CALLS,
}


def messages(request: gateway_pb2.LlmRequest) -> list[dict[str, Any]]:
    """The conversation: the messages, then the prompt as a last user turn."""
    out = [{"role": _ROLES[m.role], "content": m.content} for m in request.messages]
    if request.prompt:
        out.append({"role": "user", "content": request.prompt})
    if not any(m["content"] for m in out):
        raise HandlerError(Code.CODE_INVALID_ARGUMENT, "the request has no prompt and no message with content")
    return out


def parameters(request: gateway_pb2.LlmRequest) -> dict[str, Any]:
    """Sampling parameters litellm passes on; unset ones are left out, so
    that they take the provider's default and do not split the cache key."""
    p = request.parameters
    out: dict[str, Any] = {}
    if p.HasField("temperature"):
        out["temperature"] = p.temperature
    if p.HasField("max_tokens"):
        out["max_tokens"] = p.max_tokens
    if p.HasField("top_p"):
        out["top_p"] = p.top_p
    if p.stop:
        out["stop"] = list(p.stop)
    if p.response_format == gateway_pb2.RESPONSE_FORMAT_JSON:
        out["response_format"] = {"type": "json_object"}
    return out


def wants_json(request: gateway_pb2.LlmRequest) -> bool:
    return request.parameters.response_format == gateway_pb2.RESPONSE_FORMAT_JSON


def finish_reason(reason: str) -> gateway_pb2.FinishReason:
    return _FINISH.get(reason, gateway_pb2.FINISH_REASON_STOP)


def duration(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def tokens(prompt: int, completion: int) -> gateway_pb2.TokenUsage:
    return gateway_pb2.TokenUsage(prompt=prompt, completion=completion, total=prompt + completion)
