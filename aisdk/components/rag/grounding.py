"""Is each sentence of an answer supported by the retrieved chunks?

A sentence is supported when most of its content words occur in one source
(lexical containment). It is deliberately strict and explainable: an answer
sentence that adds facts the sources do not contain is reported by text, so
a caller can show or strip it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from aisdk.components.rag import sentences

SUPPORT = 0.6  # share of a sentence's content words one source must contain
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STOP = frozenset(
    "a an and are as at be been but by can could did do does for from had has have how i if in into is it its "
    "may might must no not of on or our shall should so than that the their them then there these they this "
    "those to was we were what when where which who why will with would you your".split()
)


@dataclass(frozen=True, slots=True)
class Grounding:
    grounded: bool
    unsupported: list[str]


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1}


def check(answer: str, sources: Sequence[str], threshold: float = SUPPORT) -> Grounding:
    """An empty answer, or one with no sources, is not grounded."""
    said = sentences.split(answer)
    if not said or not sources:
        return Grounding(False, said)
    vocab = [_words(s) for s in sources]
    unsupported = []
    for sentence in said:
        words = _words(sentence)
        if words and max(len(words & v) for v in vocab) / len(words) < threshold:
            unsupported.append(sentence)
    return Grounding(not unsupported, unsupported)
