"""Hybrid retrieval: vector and full-text rankings fused by reciprocal rank
(RRF), then a cut on cosine similarity that drops weak matches.

RRF orders candidates well but its scores are compressed (rank 1 and rank 2
in both lists differ by 2%), so it cannot tell a relevant chunk from the best
of the irrelevant ones. The cut uses what can: the similarity of every
candidate to the question, absolute (`similarity_threshold`) and relative to
the best candidate (`min_relative_score`).
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


def fuse(*rankings: Sequence[Candidate], k: int = RRF_K) -> list[Candidate]:
    """Candidates of all rankings (best first in each), scored by
    sum(1 / (k + rank)) and sorted by that score."""
    scores: dict[str, float] = {}
    seen: dict[str, Candidate] = {}
    for ranking in rankings:
        for rank, c in enumerate(ranking, 1):
            scores[c.chunk_id] = scores.get(c.chunk_id, 0.0) + 1.0 / (k + rank)
            seen.setdefault(c.chunk_id, c)
    fused = [replace(c, score=scores[key]) for key, c in seen.items()]
    return sorted(fused, key=lambda c: (-c.score, -c.similarity, c.chunk_id))


def select(fused: Sequence[Candidate], top_k: int, similarity_threshold: float,
           min_relative_score: float) -> list[Candidate]:
    """The top_k fused candidates that pass both similarity cuts."""
    if not fused:
        return []
    best = max(c.similarity for c in fused)
    floor = max(similarity_threshold, min_relative_score * best if best > 0 else similarity_threshold)
    return [c for c in fused if c.similarity >= floor][:top_k]
