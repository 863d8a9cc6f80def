"""Between the contract's messages and litellm's dictionaries."""

from __future__ import annotations

from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.json_format import MessageToDict

from ai.envelope.v1 import envelope_pb2
from ai.gateway.v1 import gateway_pb2
from runtime import HandlerError  # the facade's lazy exports are invisible to mypy

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


def _message(m: gateway_pb2.ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": _ROLES[m.role], "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments or "{}"}}
            for c in m.tool_calls
        ]
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    return out


def messages(request: gateway_pb2.LlmRequest) -> list[dict[str, Any]]:
    """The conversation: the messages, then the prompt as a last user turn."""
    out = [_message(m) for m in request.messages]
    if request.prompt:
        out.append({"role": "user", "content": request.prompt})
    if not any(m["content"] for m in out):
        raise HandlerError(Code.CODE_INVALID_ARGUMENT, "the request has no prompt and no message with content")
    return out


def tools(request: gateway_pb2.LlmRequest) -> list[dict[str, Any]]:
    """The request's functions in the OpenAI shape litellm takes."""
    out = []
    for t in request.tools:
        schema = MessageToDict(t.parameters) if t.HasField("parameters") else {"type": "object", "properties": {}}
        out.append({"type": "function", "function": {"name": t.name, "description": t.description,
                                                     "parameters": schema}})
    return out


def _field(obj: Any, name: str) -> Any:
    # litellm hands tool calls over as objects, or as dicts after a stream rebuild.
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def tool_calls(calls: Any) -> list[gateway_pb2.ToolCall]:
    """litellm's tool calls as the contract's."""
    out = []
    for c in calls or ():
        function = _field(c, "function")
        out.append(gateway_pb2.ToolCall(id=str(_field(c, "id") or ""), name=str(_field(function, "name") or ""),
                                        arguments=str(_field(function, "arguments") or "{}")))
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
    if p.HasField("seed"):
        out["seed"] = p.seed
    if p.response_format == gateway_pb2.RESPONSE_FORMAT_JSON:
        out["response_format"] = {"type": "json_object"}
    if request.tools:
        out["tools"] = tools(request)
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
