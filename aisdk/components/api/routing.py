"""Which component answers a question: the mode the caller asked for, with
AUTO resolved.

AUTO is RAG. Document Q&A is the API's job, and RAG answers it in one hop with
sources and a grounding check. An agent adds a model call that only decides to
call the same RAG search (the offline model does so only when the tool's
description names the documents' topics), so routing AUTO to an agent costs a
round and can skip the documents; a direct LLM call has no sources at all.

A question in a session is the agent's: sessions, their history and the
rewriting of follow-ups live in the agents service, so AUTO with a session
is AGENT, and RAG or LLM with a session is refused rather than answered
without the conversation."""

from __future__ import annotations

from ai.api.v1 import api_pb2

from runtime.errors import HandlerError

Mode = api_pb2.QueryMode


def resolve(mode: api_pb2.QueryMode, *, session: bool = False) -> api_pb2.QueryMode:
    """The mode that answers: UNSPECIFIED and AUTO are RAG, or AGENT in a session."""
    if mode in (Mode.QUERY_MODE_UNSPECIFIED, Mode.QUERY_MODE_AUTO):
        return Mode.QUERY_MODE_AGENT if session else Mode.QUERY_MODE_RAG
    if session and mode != Mode.QUERY_MODE_AGENT:
        raise HandlerError("INVALID_ARGUMENT", f"a session is continued in agent mode (or auto), not in "
                           f"{name(mode)} mode")
    return mode


def name(mode: api_pb2.QueryMode) -> str:
    """"rag", "agent", ... as spans and the CLI show it."""
    return Mode.Name(mode).removeprefix("QUERY_MODE_").lower()
