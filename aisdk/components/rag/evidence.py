"""Does the retrieved evidence answer the question? Decided before anything
is generated: a question the documents cannot answer gets the not-found
answer, no sources and no generation call.

A raw similarity barely separates answerable from unanswerable questions
(an unanswerable question still has a nearest chunk), so the decision weighs
what the question asks for against what the retrieved chunks hold:

- `coverage`: the largest share of the question's search terms (stemmed,
  stop words out, by PostgreSQL's text search) that one retrieved chunk holds;
- `weighted_coverage`: the same share weighted by each term's rarity in the
  tenant's chunks (inverse document frequency), so that holding "peru"
  counts and holding "policy" barely does;
- `missing_rarity`: the rarity of the rarest term no retrieved chunk holds,
  relative to a term no chunk holds (1.0: a word the documents never use);
- `unknown_terms`: the share of terms no chunk of the tenant holds at all;
- `similarity`: the best cosine similarity of a retrieved chunk;
- `exact`: full-text search matched every term in one chunk;
- `fused_top`: the best fused (RRF) score relative to the most it can be
  (first in both rankings): both retrieval sides agree on one chunk;
- `agreement`: the share of the five best documents of the vector ranking
  that the full-text ranking also has among its five best;
- `names_missing`: the share of the question's names (identifiers such as
  `innodb_buffer_pool_size` or `--jobs`, and capitalised words inside the
  question such as MongoDB) that no retrieved chunk contains verbatim. Text
  search splits an identifier into words the documents do hold, so a name
  they never mention is only seen whole;
- `names_unfocused`: the share of the question's names that are neither in
  the heading of one of the three best fused chunks nor twice in the kept
  chunks: a name the documents mention in passing (`pg_hba.conf` in a list of
  files) is not a name they explain;
- `has_names`: the question names something at all (so that the two name
  features above weigh only where there are names);
- `rare_pair`: the question's two rarest terms that the tenant uses (or the
  one, if it uses only one) are held together by one kept chunk. An
  unanswerable question's rare words tend to be scattered over chunks about
  other things.

`missing_rarity`, `unknown_terms` and `rare_pair` are weighed by the size of
the tenant's index (`absence_weight`): that a word is missing from five
chunks says little.

A logistic model turns them into a support in 0..1. Its weights and the
threshold below which the worker abstains are calibrated on the evaluation
sets by `aisdk eval --calibrate` (docs/components.md has its precision and
recall) and live in calibration.json beside this module, not in constants.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from aisdk.components.rag import textrank
from aisdk.components.rag.fusion import RRF_K, Candidate
from aisdk.components.rag.store import TermStatistics

FEATURES = ("coverage", "weighted_coverage", "missing_rarity", "unknown_terms", "similarity", "exact", "fused_top",
            "agreement", "names_missing", "names_unfocused", "has_names", "rare_pair")
# A token of the question that names something: it has an underscore, a
# dollar sign, a dot or slash inside, a leading "--", or a capital letter
# after its first character (MySQL, PQexec, PL/Perl). Numbers are not names
# ("30 seconds" is asked in words the documents need not share), nor are
# lower-case pairs such as parent/child.
_NOT_NAMES = frozenset(
    "e.g i.e etc how which what why when where who whom whose can could should would will is are was were do does "
    "did may might must shall has have had my i a an the if".split())
_TOKEN = re.compile(r"[\w$./+-]+|[?!]|\.(?=\s|$)")
_SENTENCE_END = frozenset("?!.")
_NAMED = re.compile(r"^--\w|[_$]|\w[./]\w|^.+[A-Z]")
AGREEMENT_DEPTH = 5
# Headings of the best fused chunks that a name may stand in (names_unfocused).
HEADING_DEPTH = 3
# A word missing from a handful of chunks says little (a short FAQ lacks most
# words of any paraphrase), from thousands it says much: the absence features
# count in full from this many chunks of the tenant, and less below (by the
# logarithm), and rare_pair leans toward held, since which of a few chunks'
# words are "rarest" is chance.
EVIDENCE_CHUNKS = 1000
CALIBRATION_FILE = Path(__file__).resolve().parent / "calibration.json"


def _rarity(frequency: int, chunks: int) -> float:
    """The full-text ranking's inverse document frequency (rag.textrank):
    a term every chunk holds weighs about nothing, one no chunk holds the most."""
    return max(0.0, textrank.idf(chunks, frequency))


@dataclass(frozen=True, slots=True)
class Retrieved:
    """One retrieval: both rankings (best first), their fusion, and the
    chunks kept for the answer."""

    vector: Sequence[Candidate]
    text: Sequence[Candidate]
    fused: Sequence[Candidate]
    chosen: Sequence[Candidate]


def _top_documents(ranking: Sequence[Candidate]) -> list[str]:
    out: list[str] = []
    for c in ranking:
        if c.document_id not in out:
            out.append(c.document_id)
    return out[:AGREEMENT_DEPTH]


def names(question: str) -> list[str]:
    """The question's names (see `names_missing`). Adjacent capitalised words
    are one name ("SQL Server", "Always On"); a capitalised word that starts a
    sentence is only that unless another mark makes it a name, and question
    words and numbers never are."""
    out: list[str] = []
    run: list[str] = []
    starts = True
    for match in _TOKEN.finditer(question):
        raw = match.group()
        if raw in _SENTENCE_END:
            run, starts = _close(run, out), True
            continue
        token = raw.strip(".,;:?!'\"()").rstrip("/")
        first, starts = starts, False
        if len(token) < 2 or token.lower() in _NOT_NAMES or token.isdigit():
            run = _close(run, out)
            continue
        if not first and token[:1].isupper() and token.replace("-", "").isalpha():
            run.append(token)
            continue
        run = _close(run, out)
        if _NAMED.search(token[0].lower() + token[1:]) and not (token.islower() and "/" in token):
            out.append(token)
    _close(run, out)
    return out


def _close(run: list[str], out: list[str]) -> list[str]:
    if run:
        out.append(" ".join(run))
    return []


def _held(name: str, text: str, lowered: str) -> bool:
    """A capitalised word must appear as written (Oracle, not oracle); an
    identifier or a phrase in any case."""
    if " " not in name and name[:1].isupper() and name[1:].islower():
        return name in text
    return name.lower() in lowered


def features(stats: TermStatistics, found: Retrieved, question: str = "") -> dict[str, float]:
    """The decision's inputs for one retrieval."""
    out = dict.fromkeys(FEATURES, 0.0)
    terms = sorted(stats.frequency)
    chosen = found.chosen
    asked = names(question)
    if asked:
        text = " ".join(f"{c.heading} {c.content}" for c in chosen)
        lowered = text.lower()
        headings = " ".join(c.heading for c in found.fused[:HEADING_DEPTH])
        out["has_names"] = 1.0
        out["names_missing"] = sum(not _held(n, text, lowered) for n in asked) / len(asked)
        out["names_unfocused"] = sum(
            not (_held(n, headings, headings.lower()) or lowered.count(n.lower()) >= 2) for n in asked
        ) / len(asked)
    if not chosen:
        return out
    out["similarity"] = max(c.similarity for c in chosen)
    out["exact"] = float(any(c.exact for c in chosen))
    out["fused_top"] = max(c.score for c in found.fused) * (RRF_K + 1) / 2
    out["agreement"] = len(set(_top_documents(found.vector)) & set(_top_documents(found.text))) / AGREEMENT_DEPTH
    if not terms:
        return out
    rarity = {t: _rarity(stats.frequency[t], stats.chunks) for t in terms}
    ceiling = _rarity(0, stats.chunks) or 1.0
    total = sum(rarity.values()) or 1.0
    best_share = best_weight = 0.0
    for c in chosen:
        held = [t for t in terms if c.chunk_id in stats.holders.get(t, ())]
        best_share = max(best_share, len(held) / len(terms))
        best_weight = max(best_weight, sum(rarity[t] for t in held) / total)
    missing = [rarity[t] for t in terms if not any(c.chunk_id in stats.holders.get(t, ()) for c in chosen)]
    out["coverage"] = best_share
    out["weighted_coverage"] = best_weight
    out["missing_rarity"] = max(missing, default=0.0) / ceiling
    out["unknown_terms"] = sum(stats.frequency[t] == 0 for t in terms) / len(terms)
    known = sorted((t for t in terms if stats.frequency[t] > 0), key=lambda t: (-rarity[t], t))[:2]
    pair = float(bool(known) and any(all(c.chunk_id in stats.holders.get(t, ()) for t in known) for c in chosen))
    weight = absence_weight(stats.chunks)
    out["missing_rarity"] *= weight
    out["unknown_terms"] *= weight
    out["rare_pair"] = weight * pair + (1 - weight)
    return out


def absence_weight(chunks: int) -> float:
    """How much a word's absence from the tenant's chunks counts (see
    EVIDENCE_CHUNKS): 0.26 for 5 chunks, 1 from EVIDENCE_CHUNKS on."""
    return min(1.0, math.log1p(chunks) / math.log1p(EVIDENCE_CHUNKS))


@dataclass(frozen=True, slots=True)
class Calibration:
    weights: Mapping[str, float]
    bias: float
    # Abstain below this support.
    threshold: float
    # Where the numbers come from (the sets, their sizes, the date).
    provenance: str = ""

    def support(self, values: Mapping[str, float]) -> float:
        z = self.bias + sum(w * values.get(name, 0.0) for name, w in self.weights.items())
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def to_json(self) -> dict[str, object]:
        return {"features": list(FEATURES), "weights": dict(self.weights), "bias": self.bias,
                "threshold": self.threshold, "provenance": self.provenance}

    @classmethod
    def from_json(cls, data: Mapping[str, object], where: str = "calibration") -> Calibration:
        try:
            raw = data["weights"]
            if not isinstance(raw, Mapping):
                raise TypeError("weights is not a mapping")
            weights = {str(k): float(v) for k, v in raw.items()}
            unknown = sorted(set(weights) - set(FEATURES))
            if unknown:
                raise ValueError(f"unknown features {', '.join(unknown)}")
            return cls(weights, float(data["bias"]),  # type: ignore[arg-type]
                       float(data["threshold"]), str(data.get("provenance", "")))  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{where}: not a calibration ({e})") from None


@cache
def calibration(path: Path = CALIBRATION_FILE) -> Calibration:
    return Calibration.from_json(json.loads(path.read_text()), str(path))


@dataclass(frozen=True, slots=True)
class Decision:
    support: float
    threshold: float
    features: Mapping[str, float]

    @property
    def answers(self) -> bool:
        return self.support >= self.threshold


def decide(stats: TermStatistics, found: Retrieved, model: Calibration, threshold: float | None = None,
           question: str = "") -> Decision:
    """Answer (support at least the threshold) or abstain; no chunk is
    always an abstention."""
    values = features(stats, found, question)
    floor = model.threshold if threshold is None else threshold
    support = model.support(values) if found.chosen else 0.0
    return Decision(support, floor if found.chosen else max(floor, 1e-9), values)
