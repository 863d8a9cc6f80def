"""The RAG search tool: an agent answers from the tenant's documents by
calling rag.queries (the RAG worker) through the generated client."""

from __future__ import annotations

from typing import Any

from ai.rag.v1 import rag_bus, rag_pb2
from google.protobuf import json_format

from aisdk.components.agents.registry import ToolContext, ToolRegistry
from aisdk.components.agents.settings import Settings

RAG_TOOL = "search_documents"


async def search_documents(ctx: ToolContext, question: str) -> dict[str, Any]:
    """Search the documents of the knowledge base and answer the question from them."""
    result = await rag_bus.RagServiceClient(ctx.bus, ctx.tenant_id).queries(
        rag_pb2.RagQuery(query_id=ctx.call_id, query=question))
    return {
        "result": result.answer,
        # "not_found" when the documents do not answer: the result then says
        # so and cites nothing, and the agent's answer carries that status.
        "status": "not_found" if result.status == rag_pb2.ANSWER_STATUS_NOT_FOUND else "answered",
        "grounded": result.grounded,
        "sources": [json_format.MessageToDict(s, preserving_proto_field_name=True) for s in result.sources],
        "tokens": result.tokens.total,
        "cost": result.cost,
    }


def builtin_tools(settings: Settings) -> ToolRegistry:
    """The tools `aisdk serve agents` executes."""
    registry = ToolRegistry()
    registry.add(search_documents, name=RAG_TOOL, description=settings.rag_tool_description)
    return registry
