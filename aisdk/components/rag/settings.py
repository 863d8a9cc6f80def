"""The RAG worker's configuration: the gateway's aliases for its models (so
the deployment's model setting moves them), each default overridable by an
AISDK_RAG_* environment variable."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from aisdk.components.gateway import models
from aisdk.components.rag.chunking import ChunkSizes

# The system turn of an answer; the question travels as the user turn, so no
# model (the offline one included) can take a sentence of a document for it.
# The documents sit between markers, each snippet numbered ([1], [2], ...):
# the offline extractive answerer reads only what is between them, so neither
# the instructions nor a label reach an answer.
ANSWER_TEMPLATE = (
    "Answer the question from the documents below only, in a few sentences. If they do not answer it, "
    "say: The documents do not answer this.\n\n<documents>\n{context}\n</documents>"
)


@dataclass(frozen=True, slots=True)
class Settings:
    embedding_model: str = models.EMBEDDING
    chat_model: str = models.CHAT
    chunk_tokens: int = 256
    overlap_tokens: int = 40
    # Texts per gateway.embeddings request.
    embedding_batch: int = 64
    # Documents one worker ingests at once (rag.ingest handlers in flight);
    # versions of one document still go through in the order they came.
    ingest_concurrency: int = 4
    top_k: int = 5
    similarity_threshold: float = 0.0
    min_relative_score: float = 0.5
    # Abstain when the evidence support (rag.evidence) is below this; a
    # negative value takes the calibrated threshold (rag/calibration.json).
    min_support: float = -1.0
    # The PostgreSQL text search configuration chunks are indexed and searched
    # with (SELECT cfgname FROM pg_ts_config lists them).
    text_language: str = "english"
    # Budget of the rendered prompt (prompt.context drops the weakest sources to fit it).
    context_tokens: int = 3000
    answer_tokens: int = 512
    template_id: str = "rag.answer"
    template_version: str = "2"
    template: str = ANSWER_TEMPLATE

    @property
    def chunk_sizes(self) -> ChunkSizes:
        return ChunkSizes(self.chunk_tokens, self.overlap_tokens)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """AISDK_RAG_CHAT_MODEL=gpt-4o-mini, AISDK_RAG_TOP_K=8, ... (the field
        names, upper case); a value of the wrong type is an error."""
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
        if settings.ingest_concurrency < 1:
            raise ValueError(f"AISDK_RAG_INGEST_CONCURRENCY must be at least 1, not {settings.ingest_concurrency}")
        return settings
