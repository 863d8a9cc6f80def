"""Retrieval and answer figures, from rankings of document ids."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def documents(ranked_chunks: Iterable[str]) -> list[str]:
    """Document ids in the order their first chunk ranks."""
    out: list[str] = []
    for d in ranked_chunks:
        if d not in out:
            out.append(d)
    return out


def hit(ranking: Sequence[str], expected: Sequence[str], k: int) -> float:
    return float(any(d in expected for d in ranking[:k]))


def reciprocal_rank(ranking: Sequence[str], expected: Sequence[str]) -> float:
    return next((1.0 / i for i, d in enumerate(ranking, 1) if d in expected), 0.0)


def ndcg(ranking: Sequence[str], expected: Sequence[str], k: int = 10) -> float:
    """Binary relevance: every expected document counts the same."""
    gain = sum(1.0 / math.log2(i + 1) for i, d in enumerate(ranking[:k], 1) if d in expected)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(k, len(expected)) + 1))
    return gain / ideal if ideal else 0.0


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0
