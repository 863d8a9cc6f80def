"""Hybrid retrieval: vector and full-text rankings fused by reciprocal rank
(RRF), then a cut on cosine similarity that drops weak matches.

RRF orders candidates well but its scores are compressed (rank 1 and rank 2
in both lists differ by 2%), so it cannot tell a relevant chunk from the best
of the irrelevant ones. The cut uses what can: the similarity of every
candidate to the question, absolute (`similarity_threshold`) and relative to
the best candidate (`min_relative_score`), except for chunks full-text
search matched on every term of the question.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

RRF_K = 60  # the constant of Cormack, Clarke and Buettcher (2009)


@dataclass(frozen=True, slots=True)
class Candidate:
    document_id: str
    chunk_id: str
    heading: str
    content: str
    source_uri: str
    similarity: float
    score: float = 0.0
    # Full-text search matched the question as a web search (every term):
    # an exact term such as a SKU, an error code or a function name.
    exact: bool = False


def fuse(*rankings: Sequence[Candidate], k: int = RRF_K) -> list[Candidate]:
    """Candidates of all rankings (best first in each), scored by
    sum(1 / (k + rank)) and sorted by that score."""
    scores: dict[str, float] = {}
    seen: dict[str, Candidate] = {}
    for ranking in rankings:
        for rank, c in enumerate(ranking, 1):
            scores[c.chunk_id] = scores.get(c.chunk_id, 0.0) + 1.0 / (k + rank)
            seen.setdefault(c.chunk_id, c)
    exact = {c.chunk_id for ranking in rankings for c in ranking if c.exact}
    fused = [replace(c, score=scores[key], exact=key in exact) for key, c in seen.items()]
    return sorted(fused, key=lambda c: (-c.score, -c.similarity, c.chunk_id))


def select(fused: Sequence[Candidate], top_k: int, similarity_threshold: float,
           min_relative_score: float) -> list[Candidate]:
    """The top_k fused candidates that pass both similarity cuts, or that
    full-text search matched exactly: an exact term can be far from the
    question in embedding space (a SKU, an error code) and is still the
    answer's evidence."""
    if not fused:
        return []
    best = max(c.similarity for c in fused)
    floor = max(similarity_threshold, min_relative_score * best if best > 0 else similarity_threshold)
    return [c for c in fused if c.exact or c.similarity >= floor][:top_k]
