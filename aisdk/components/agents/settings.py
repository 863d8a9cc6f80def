"""The agent framework's settings, from AISDK_AGENT_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from aisdk.components.gateway.models import CHAT, EMBEDDING

DEFAULT_RAG_TOOL_DESCRIPTION = "Search the documents of the knowledge base and answer the question from them."


@dataclass(frozen=True, slots=True)
class Settings:
    # The gateway's aliases: the deployment's model settings move them.
    embedding_model: str = EMBEDDING
    chat_model: str = CHAT
    # Model calls of one agent loop before it must answer without tools.
    max_rounds: int = 4
    # Status events are re-broadcast this often, so a late listener learns
    # every live agent's state within one interval.
    status_interval_s: float = 5.0
    # Seconds between looks at the task queue when nothing wakes a runner
    # (other processes' tasks, retries whose backoff has passed).
    task_poll_s: float = 0.5
    # The RAG search tool's description: the offline model calls it when the
    # question is similar to it, so name the documents' topics here.
    rag_tool_description: str = DEFAULT_RAG_TOOL_DESCRIPTION
    # A durable run's lease: its process renews it every third of this; a
    # run whose process died is resumed once it has lapsed.
    run_lease_s: float = 10.0
    # How long a caller waits for one attempt of a run before asking again
    # with the same run id (which attaches to the run, or resumes it when
    # its process died): above the lease, so that one retry finds it lapsed.
    run_attempt_s: float = 20.0
    # Tokens of a session's earlier turns that go into the prompt.
    history_tokens: int = 1000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """AISDK_AGENT_MAX_ROUNDS=6, ... (the field names, upper case); a value
        of the wrong type, or not above zero, is an error naming the variable."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            name = f"AISDK_AGENT_{f.name.upper()}"
            raw = env.get(name)
            if raw is None:
                continue
            kind = type(getattr(cls(), f.name))
            try:
                value = kind(raw)
            except ValueError as e:
                raise ValueError(f"{name}={raw!r}: expected {kind.__name__}") from e
            if isinstance(value, (int, float)) and value <= 0:
                raise ValueError(f"{name}={raw!r}: must be above zero")
            values[f.name] = value
        return cls(**values)  # type: ignore[arg-type]
