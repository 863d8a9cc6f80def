"""A session's history for the next turn: a follow-up rewritten into a
question that stands alone, and the earlier turns within a token budget.

Retrieval searches with one question, so "and for sale items?" alone finds
nothing about refunds. Measured on the follow-ups of tests/test_sessions.py
(docs/components.md, "Sessions"), prefixing a follow-up with the question it
follows retrieves the right document where the bare follow-up does not; a
question that stands alone is left as it is, so a change of subject does not
drag the old one along."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ai.agent.v1 import agent_pb2

# What makes a question lean on the one before: it is short, or it opens
# like a continuation, or it points back with a pronoun.
FOLLOW_UP_WORDS = 6
_OPENERS = re.compile(r"^\s*(and|or|but|also|what about|how about|and what about|then|so)\b", re.I)
_POINTERS = re.compile(r"\b(it|its|they|them|their|that|those|these|this|there)\b", re.I)


def leans_on_history(question: str) -> bool:
    words = question.split()
    return len(words) <= FOLLOW_UP_WORDS or bool(_OPENERS.search(question) or _POINTERS.search(question))


def standalone(question: str, history: Sequence[agent_pb2.SessionTurn]) -> str:
    """The question the turn is answered with: a follow-up behind the
    standalone question of the turn it follows."""
    if not history or not leans_on_history(question):
        return question
    before = history[-1].standalone_question or history[-1].question
    return f"{before.rstrip()} {question.strip()}"


def approximate_tokens(text: str) -> int:
    """A token count without a tokenizer: about four characters a token
    (the ratio of English text in OpenAI's encodings), at least one a word."""
    return max(len(text) // 4, len(text.split()))


def transcript(history: Sequence[agent_pb2.SessionTurn], budget_tokens: int) -> str:
    """The newest turns that fit the budget, oldest first, as one text."""
    kept: list[str] = []
    used = 0
    for turn in reversed(history):
        text = f"User: {turn.question}\nAssistant: {turn.answer}"
        cost = approximate_tokens(text)
        if used + cost > budget_tokens:
            break
        kept.append(text)
        used += cost
    return "\n".join(reversed(kept))
