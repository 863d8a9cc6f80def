"""The messages every configuration sends: the seeds' agent message with 200
characters of content, and an LLM request/reply of similar size."""

from __future__ import annotations

from ai.agent.v1 import agent_pb2
from ai.gateway.v1 import gateway_pb2
from google.protobuf import struct_pb2

CONTENT_CHARS = 200
_TEXT = "Summarise the attached quarterly report and list the three largest cost drivers with their trend. "


def content(chars: int = CONTENT_CHARS) -> str:
    return (_TEXT * (chars // len(_TEXT) + 1))[:chars]


def agent_message() -> agent_pb2.AgentMessage:
    return agent_pb2.AgentMessage(
        message_id="msg-0001",
        source_agent_id="planner",
        target_agent_id="researcher",
        content=content(),
        kind=agent_pb2.MESSAGE_KIND_TEXT,
        session_id="session-42",
    )


def agent_task() -> agent_pb2.AgentTask:
    params = struct_pb2.Struct()
    params.update({"query": content()})
    return agent_pb2.AgentTask(
        task_id="task-0001",
        agent_id="planner",
        task_type="research.summarise",
        parameters=params,
        priority=agent_pb2.TASK_PRIORITY_NORMAL,
    )


def llm_request() -> gateway_pb2.LlmRequest:
    return gateway_pb2.LlmRequest(request_id="req-0001", prompt=content(), model="gpt-4o-mini")


def llm_response(request: gateway_pb2.LlmRequest) -> gateway_pb2.LlmResponse:
    return gateway_pb2.LlmResponse(
        request_id=request.request_id,
        response=content(),
        model=request.model,
        finish_reason=gateway_pb2.FINISH_REASON_STOP,
    )
