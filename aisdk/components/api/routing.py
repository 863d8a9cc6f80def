"""Which component answers a question: the mode the caller asked for, with
AUTO resolved.

AUTO is RAG. Document Q&A is the API's job, and RAG answers it in one hop with
sources and a grounding check. An agent adds a model call that only decides to
call the same RAG search (the offline model does so only when the tool's
description names the documents' topics), so routing AUTO to an agent costs a
round and can skip the documents; a direct LLM call has no sources at all."""

from __future__ import annotations

from ai.api.v1 import api_pb2

Mode = api_pb2.QueryMode


def resolve(mode: api_pb2.QueryMode) -> api_pb2.QueryMode:
    """The mode that answers: UNSPECIFIED and AUTO are RAG."""
    if mode in (Mode.QUERY_MODE_UNSPECIFIED, Mode.QUERY_MODE_AUTO):
        return Mode.QUERY_MODE_RAG
    return mode


def name(mode: api_pb2.QueryMode) -> str:
    """"rag", "agent", ... as spans and the CLI show it."""
    return Mode.Name(mode).removeprefix("QUERY_MODE_").lower()
