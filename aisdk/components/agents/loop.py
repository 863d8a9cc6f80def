"""The agent loop: the model (through gateway.requests, or gateway.stream
when its text is wanted as it comes, with function calling) chooses tools, the agent runs them over NATS (agent.tools), feeds
the results back and asks again, until the model answers or the rounds run
out; the last round offers no tools, so it must answer."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ai.agent.v1 import agent_bus, agent_pb2
from ai.gateway.v1 import gateway_bus, gateway_pb2
from google.protobuf import struct_pb2
from opentelemetry.util.types import AttributeValue

from aisdk.components.agents.registry import from_struct
from aisdk.components.gateway import genai
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as GA
from runtime.contract import Transport
from runtime.errors import ContractViolation, RemoteError
from runtime.telemetry import Telemetry
from runtime.telemetry.names import ATTR, SPAN

Role = gateway_pb2.Role
# Called with each piece of a streamed model reply's text, in order.
OnDelta = Callable[[str], Awaitable[None]]


@dataclass(slots=True)
class LoopAnswer:
    text: str
    # What the tools returned under "sources" (e.g. the RAG search tool's
    # chunks), in call order.
    sources: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    rounds: int = 0
    tool_results: list[agent_pb2.ToolExecutionResult] = field(default_factory=list)
    # The provider model that gave the final answer (the gateway's reply.model).
    model: str = ""

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def tool_content(result: agent_pb2.ToolExecutionResult) -> str:
    """What the model reads of a tool result: the text a tool returned, or
    its output as JSON; for a failure, the error."""
    if not result.success:
        return f"error: {result.error}"
    output = from_struct(result.output)
    text = output.get("result")
    return text if isinstance(text, str) else json.dumps(output, sort_keys=True)


def _arguments(call: gateway_pb2.ToolCall) -> struct_pb2.Struct | str:
    """The call's arguments, or why they cannot be used."""
    try:
        value = json.loads(call.arguments or "{}")
    except ValueError as e:
        return f"the arguments are not JSON: {e}"
    if not isinstance(value, dict):
        return "the arguments are not a JSON object"
    out = struct_pb2.Struct()
    out.update(value)
    return out


def idempotency_key(run_id: str, call: gateway_pb2.ToolCall) -> str:
    """The run, the model's call and a digest of its arguments (as JSON with
    sorted keys, so that spacing and order do not matter)."""
    try:
        canonical = json.dumps(json.loads(call.arguments or "{}"), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canonical = call.arguments
    digest = hashlib.sha256(f"{call.name}\0{canonical}".encode()).hexdigest()
    return hashlib.sha256(f"{run_id}\0{call.id}\0{digest}".encode()).hexdigest()


class AgentLoop:
    def __init__(
        self,
        bus: Transport,
        tenant_id: str,
        agent_id: str,
        tools: Sequence[gateway_pb2.ToolDefinition],
        *,
        model: str,
        max_rounds: int = 4,
        system_prompt: str = "",
        tel: Telemetry | None = None,
    ) -> None:
        if max_rounds < 1:
            raise ValueError(f"max_rounds must be at least 1, not {max_rounds}")
        self._gateway = gateway_bus.GatewayServiceClient(bus, tenant_id)
        self._agents = agent_bus.AgentServiceClient(bus, tenant_id)
        self.tenant_id = tenant_id
        self.agent_id = agent_id
        self.tools = list(tools)
        self.model = model
        self.max_rounds = max_rounds
        self.system_prompt = system_prompt
        self._tel = tel or Telemetry.disabled()

    async def run(self, question: str, *, run_id: str = "") -> LoopAnswer:
        run_id = run_id or os.urandom(8).hex()
        messages = [gateway_pb2.ChatMessage(role=Role.ROLE_SYSTEM, content=self.system_prompt)] if self.system_prompt else []
        messages.append(gateway_pb2.ChatMessage(role=Role.ROLE_USER, content=question))
        out = LoopAnswer("")
        for round_ in range(self.max_rounds):
            last = round_ == self.max_rounds - 1
            reply = await self.ask(messages, [] if last else self.tools, f"{run_id}-{round_}")
            out.rounds = round_ + 1
            out.prompt_tokens += reply.tokens.prompt
            out.completion_tokens += reply.tokens.completion
            out.cost += reply.cost
            if not reply.tool_calls:
                out.text, out.model = reply.response, reply.model
                return out
            messages.append(gateway_pb2.ChatMessage(role=Role.ROLE_ASSISTANT, content=reply.response,
                                                    tool_calls=reply.tool_calls))
            for call in reply.tool_calls:
                result = await self.call_tool(call, run_id)
                out.tool_results.append(result)
                sources = from_struct(result.output).get("sources") if result.success else None
                if isinstance(sources, list):
                    out.sources.extend(s for s in sources if isinstance(s, dict))
                messages.append(gateway_pb2.ChatMessage(role=Role.ROLE_TOOL, tool_call_id=call.id,
                                                        content=tool_content(result)))
        return out  # unreachable: the last round offers no tools

    async def ask(self, messages: list[gateway_pb2.ChatMessage], tools: list[gateway_pb2.ToolDefinition],
                  request_id: str, on_delta: OnDelta | None = None) -> gateway_pb2.LlmResponse:
        """The model's reply to the conversation; with on_delta, asked on
        gateway.stream and its text handed to on_delta as it comes."""
        attrs: dict[str, AttributeValue] = {ATTR.TENANT_ID: self.tenant_id, "agent.id": self.agent_id,
                                            "llm.model": self.model, "agent.tools.offered": len(tools),
                                            GA.GEN_AI_AGENT_ID: self.agent_id,
                                            **genai.request(genai.CHAT, self.model, {"temperature": 0.0})}
        with self._tel.span(SPAN.AGENT_LLM_CALL, attrs) as span:
            request = gateway_pb2.LlmRequest(request_id=request_id, model=self.model, messages=messages, tools=tools,
                                             parameters=gateway_pb2.LlmParameters(temperature=0.0))
            if on_delta is None:
                reply = await self._gateway.requests(request)
            else:
                reply = await self._streamed(request, on_delta)
            span.set_attribute("agent.tool_calls", len(reply.tool_calls))
            genai.response(span, provider=reply.provider, model=reply.model, input_tokens=reply.tokens.prompt,
                           output_tokens=reply.tokens.completion,
                           finish_reason=gateway_pb2.FinishReason.Name(reply.finish_reason)
                           .removeprefix("FINISH_REASON_").lower())
        return reply

    async def _streamed(self, request: gateway_pb2.LlmRequest, on_delta: OnDelta) -> gateway_pb2.LlmResponse:
        """The stream as the reply gateway.requests would give: its text
        joined, the calls, usage and cost of its last chunk."""
        text: list[str] = []
        last = gateway_pb2.LlmChunk()
        async for chunk in self._gateway.stream(request):
            if chunk.delta:
                text.append(chunk.delta)
                await on_delta(chunk.delta)
            last = chunk
        return gateway_pb2.LlmResponse(
            request_id=request.request_id, response="".join(text), tokens=last.tokens, cost=last.cost,
            model=last.model, finish_reason=last.finish_reason, cached=last.cached, duration=last.duration,
            provider=last.provider, tool_calls=last.tool_calls, requested_model=last.requested_model,
            fallback=last.fallback)

    async def call_tool(self, call: gateway_pb2.ToolCall, run_id: str) -> agent_pb2.ToolExecutionResult:
        call_id = run_call_id(run_id, call)
        arguments = _arguments(call)
        if isinstance(arguments, str):
            return agent_pb2.ToolExecutionResult(call_id=call_id, tool_name=call.name or "unknown", success=False,
                                                 error=arguments)
        try:
            return await self._agents.tools(agent_pb2.ToolExecutionRequest(
                call_id=call_id, agent_id=self.agent_id, tool_name=call.name, arguments=arguments,
                idempotency_key=idempotency_key(run_id, call)))
        except (ContractViolation, RemoteError) as e:
            # A call the model got wrong: it reads why and may try again.
            return agent_pb2.ToolExecutionResult(call_id=call_id, tool_name=call.name or "unknown", success=False,
                                                 error=str(e)[:4096])


def run_call_id(run_id: str, call: gateway_pb2.ToolCall) -> str:
    """A tool call's id in the executors' record. The model's call id is
    unique within one conversation only: the run id makes it unique."""
    return f"{run_id}-{call.id}"[:128]
