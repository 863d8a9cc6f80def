"""Sentence splitting shared by chunking and grounding."""

from __future__ import annotations

import re

# A sentence ends at . ! or ? (optionally closed by a quote or bracket) before
# whitespace; abbreviations like "e.g. x" are kept together because the next
# word starts in lower case.
_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9])")


def split(text: str) -> list[str]:
    """The sentences of a paragraph; a line break inside it also ends one
    (list items, table rows)."""
    out: list[str] = []
    for line in text.splitlines():
        out.extend(s.strip() for s in _END.split(line) if s.strip())
    return out
