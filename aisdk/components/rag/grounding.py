"""Which chunk does each sentence of an answer come from, if any?

A sentence is supported by a chunk when most of its content words occur in
that chunk (lexical containment, at least SUPPORT of them). Each sentence is
attributed to the chunk that supports it best, so the sources of an answer
are the chunks it actually used, in the order it used them; a sentence no
chunk supports is reported by text and makes the answer ungrounded. The
check is deliberately strict and explainable: a fabricated sentence, or one
a hosted model paraphrased beyond recognition, is marked, never passed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from aisdk.components.rag import sentences

SUPPORT = 0.6  # share of a sentence's content words one chunk must contain
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
    # Indexes into the sources, in the order the answer first used them.
    used: list[int]


def words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1}


def check(answer: str, sources: Sequence[str], threshold: float = SUPPORT) -> Grounding:
    """An empty answer, or one with no sources, is not grounded."""
    said = sentences.split(answer)
    if not said or not sources:
        return Grounding(False, said, [])
    vocab = [words(s) for s in sources]
    unsupported: list[str] = []
    used: list[int] = []
    for sentence in said:
        content = words(sentence)
        if not content:
            continue  # punctuation or stop words only: nothing to support
        share, best = max((len(content & v) / len(content), -i) for i, v in enumerate(vocab))
        if share < threshold:
            unsupported.append(sentence)
        elif -best not in used:
            used.append(-best)
    return Grounding(not unsupported and bool(used), unsupported, used)
