"""An ApiAnswer for people and for tools: `aisdk ask` and `aisdk demo`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ai.api.v1 import api_pb2

SNIPPET_CHARS = 100


def status(answer: api_pb2.ApiAnswer) -> str:
    """"answered", "not_found", or "" where no search decided (llm mode)."""
    from ai.rag.v1 import rag_pb2

    if answer.status == rag_pb2.ANSWER_STATUS_UNSPECIFIED:
        return ""
    return rag_pb2.AnswerStatus.Name(answer.status).removeprefix("ANSWER_STATUS_").lower()


def to_json(answer: api_pb2.ApiAnswer) -> dict[str, Any]:
    return {
        "answer": answer.answer,
        "status": status(answer),
        "grounded": answer.grounded,
        "sources": [
            {"document_id": s.document_id, "chunk_id": s.chunk_id, "score": s.score, "snippet": s.snippet}
            for s in answer.sources
        ],
        "tokens": {"prompt": answer.tokens.prompt, "completion": answer.tokens.completion,
                   "total": answer.tokens.total},
        "cost": answer.cost,
        "model": answer.model,
        "run_id": answer.run_id,
        "session_id": answer.session_id,
        "turn": answer.turn,
        "awaiting_approval": answer.awaiting_approval,
    }


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 1] + "…"


def lines(answer: api_pb2.ApiAnswer, width: int = 8) -> list[str]:
    """Labelled lines, the labels padded to width."""
    out = [f"{'answer':<{width}} {answer.answer or '(none)'}"]
    if status(answer):
        grounding = "" if not answer.sources else ", grounded" if answer.grounded else ", NOT grounded"
        out.append(f"{'status':<{width}} {status(answer).replace('_', ' ')}{grounding}")
    if not answer.sources:
        out.append(f"{'sources':<{width}} none")
    for i, s in enumerate(answer.sources, 1):
        lead = "sources" if i == 1 else ""
        out.append(f"{lead:<{width}} {i}. {s.document_id}  ({s.chunk_id}, score {s.score:.4f})  "
                   f"\"{_snippet(s.snippet)}\"")
    t = answer.tokens
    split = f" (prompt {t.prompt}, completion {t.completion})" if t.prompt or t.completion else ""
    out.append(f"{'tokens':<{width}} {t.total}{split}")
    out.append(f"{'cost':<{width}} ${answer.cost:.8f}")
    if answer.model:
        out.append(f"{'model':<{width}} {answer.model}")
    if answer.session_id:
        out.append(f"{'session':<{width}} {answer.session_id}, turn {answer.turn}")
    if answer.awaiting_approval:
        out.append(f"{'run':<{width}} {answer.run_id} awaiting approval (aisdk agents approve|reject {answer.run_id})")
    return out
