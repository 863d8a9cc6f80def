"""The RAG worker's configuration: the gateway's aliases for its models (so
the deployment's model setting moves them), each default overridable by an
AISDK_RAG_* environment variable."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace

from aisdk.components.gateway import local, models
from aisdk.components.rag.chunking import ChunkSizes

# The seeds' prompt. Instructions ("answer from the context only") are left
# out on purpose: the offline provider answers with the prompt's own sentences
# and would quote them. With a hosted model, set AISDK_RAG_TEMPLATE to a
# template with instructions ({context} and {question} are filled in).
ANSWER_TEMPLATE = "Context:\n{context}\n\nQuestion: {question}"
# What a hosted model gets when AISDK_RAG_TEMPLATE says nothing: it follows
# instructions, where the offline one would quote them.
HOSTED_TEMPLATE_ID = "rag.answer.hosted"
HOSTED_TEMPLATE = (
    "Answer the question from the context only, in one or two sentences. If the context does not answer it, "
    "say so.\n\nContext:\n{context}\n\nQuestion: {question}"
)


@dataclass(frozen=True, slots=True)
class Settings:
    embedding_model: str = models.EMBEDDING
    chat_model: str = models.CHAT
    chunk_tokens: int = 256
    overlap_tokens: int = 40
    # Texts per gateway.embeddings request.
    embedding_batch: int = 64
    top_k: int = 5
    similarity_threshold: float = 0.0
    min_relative_score: float = 0.5
    # Budget of the rendered prompt (prompt.context drops the weakest sources to fit it).
    context_tokens: int = 3000
    answer_tokens: int = 512
    template_id: str = "rag.answer"
    template_version: str = "1"
    template: str = ANSWER_TEMPLATE

    @property
    def chunk_sizes(self) -> ChunkSizes:
        return ChunkSizes(self.chunk_tokens, self.overlap_tokens)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """AISDK_RAG_CHAT_MODEL=gpt-4o-mini, AISDK_RAG_TOP_K=8, ... (the field
        names, upper case); a value of the wrong type is an error. Without
        AISDK_RAG_TEMPLATE, a chat model that resolves (through the gateway's
        model list, models.from_env) to a provider's answers with
        HOSTED_TEMPLATE."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"AISDK_RAG_{f.name.upper()}")
            if raw is None:
                continue
            kind = type(getattr(cls(), f.name))
            try:
                values[f.name] = kind(raw)
            except ValueError as e:
                raise ValueError(f"AISDK_RAG_{f.name.upper()}={raw!r}: expected {kind.__name__}") from e
        settings = cls(**values)  # type: ignore[arg-type]
        settings.chunk_sizes  # refuses sizes that cannot work, at start
        answering = models.from_env(env).resolve(settings.chat_model)
        if "template" not in values and not answering.startswith(f"{local.PROVIDER}/"):
            settings = replace(settings, template=HOSTED_TEMPLATE, template_id=HOSTED_TEMPLATE_ID)
        return settings
