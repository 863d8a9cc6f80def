"""The full-text ranking's plan: which chunks can be among the best n,
decided from per-term bounds before a chunk is read.

A chunk's full-text score is the sum, over the question's terms it holds, of
the term's rarity among the tenant's chunks (idf) times its rank in the chunk
(PostgreSQL's ts_rank, normalised by the chunk's length): BM25's idea
(rag.store). Ranking every chunk that holds any term reads the tsvector of
most of a large tenant's chunks for a question with one common word in it
(757 ms p95 on 50k chunks). But a term can add no more to a score than its
idf times the best rank any chunk gives it, which ingestion keeps per tenant
and term (`rag_terms`), so:

1. rank the chunks holding the terms that can add the most, until they are
   at least n: the n-th best of them is a score the answer reaches (theta);
2. rank only the chunks holding a set of terms whose bounds add up to theta:
   no other chunk can score as much, so the best n of these are the best n of
   all, exactly as ranking every chunk would find them (tests/test_rag_scale).

Step 2's condition is a tsquery the GIN index answers: an OR of the minimal
sets of terms that reach theta, each an AND.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# Beyond this many AND clauses the OR of single terms is used: a looser
# condition (more chunks ranked), never a wrong one.
MAX_CLAUSES = 64
# Bounds and scores are summed in different orders in Python and SQL (the
# ranks themselves come as float8, exactly: float4's text form rounds).
_SLACK = 1e-9


@dataclass(frozen=True, slots=True)
class Term:
    term: str
    idf: float
    bound: float  # idf times the best rank any of the tenant's chunks gives it


def idf(chunks: int, holders: int) -> float:
    """ln((N + 1) / (n + 0.5)): rare terms weigh more, a term in every chunk
    next to nothing."""
    return math.log((chunks + 1.0) / (holders + 0.5))


def terms(total: int, rows: Sequence[tuple[str, int, float]]) -> list[Term]:
    """The question's terms that some chunk of the tenant holds, from
    (term, chunks holding it, best rank) rows, the most promising first."""
    found = [Term(t, idf(total, n), idf(total, n) * best) for t, n, best in rows if n > 0]
    return sorted(found, key=lambda t: (-t.bound, t.term))


# When the question's terms are held by no more chunks than this in all,
# ranking them all at once costs less than a second statement.
ONE_PASS_HOLDERS = 1_000


def first_pass(ranked: Sequence[Term], holders: dict[str, int], n: int) -> list[Term]:
    """The terms that can add the most, until their chunks are at least n;
    all of them when they are few (ONE_PASS_HOLDERS): then the first pass
    is the only one."""
    if sum(holders[t.term] for t in ranked) <= ONE_PASS_HOLDERS:
        return list(ranked)
    out: list[Term] = []
    held = 0
    for t in ranked:
        out.append(t)
        held += holders[t.term]
        if held >= n:
            break
    return out


def clauses(ranked: Sequence[Term], theta: float) -> list[list[Term]]:
    """The minimal sets of terms whose bounds reach theta: a chunk holding
    none of these sets cannot score theta. Every term alone when theta is 0
    (too few chunks for a bound) or the sets are too many."""
    singles = [[t] for t in ranked]
    if theta <= 0:
        return singles
    target = theta * (1 - _SLACK)
    found: list[list[Term]] = []
    # What the terms from i on can still add, for pruning.
    rest = [0.0] * (len(ranked) + 1)
    for i in range(len(ranked) - 1, -1, -1):
        rest[i] = rest[i + 1] + ranked[i].bound

    def extend(start: int, chosen: list[Term], total: float) -> bool:
        for i in range(start, len(ranked)):
            if total + rest[i] < target:
                return True
            term = ranked[i]
            if total + term.bound >= target:
                # Terms come largest first, so dropping any one of the
                # chosen falls short: the set is minimal.
                found.append([*chosen, term])
                if len(found) > MAX_CLAUSES:
                    return False
            elif not extend(i + 1, [*chosen, term], total + term.bound):
                return False
        return True

    return found if extend(0, [], 0.0) else singles
