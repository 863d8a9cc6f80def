"""One evaluation set through the real deployment.

The documents go in through rag.ingest like any tenant's; each question is
then asked twice over:
- through rag.queries, as a user asks it: the answer's status, its sources,
  its grounding and the latency come from there;
- through the worker's own retrieval code on the same index, to rank the
  documents by the fused search, by each side of it alone (PostgreSQL
  full-text, pgvector) and by BM25 over the same chunks, and to record the
  abstention features (rag.evidence) that `--calibrate` fits.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from ai.rag.v1 import rag_bus, rag_pb2

from aisdk.cli import ingesting
from aisdk.cli.errors import CommandError
from aisdk.cli.evaluation import metrics
from aisdk.cli.evaluation.bm25 import Bm25
from aisdk.cli.evaluation.sets import EvalSet, Question
from aisdk.components.rag import evidence, grounding, sentences
from aisdk.components.rag.answering import Answerer
from aisdk.components.rag.embedding import embed
from aisdk.components.rag.store import CANDIDATES_PER_SOURCE
from aisdk.components.rag.worker import RagWorker
from runtime.bus import Bus
from runtime.telemetry import Telemetry

RANKERS = ("fused", "fulltext", "vector", "bm25")
Status = rag_pb2.AnswerStatus


@dataclass(slots=True)
class Outcome:
    question: Question
    rankings: dict[str, list[str]]
    # The evidence phrase is in one of the five best fused chunks.
    evidence_at_5: bool
    features: dict[str, float]
    status: int
    answer: str
    sources: list[str]
    sentences: int
    supported: int
    grounded: bool
    latency_s: float


@dataclass(slots=True)
class SetRun:
    name: str
    tenant: str
    documents: int
    chunks: int
    ingest_s: float
    outcomes: list[Outcome] = field(default_factory=list)


def tenant_for(eval_set: EvalSet) -> str:
    """A tenant per set and per document list: the index stays in the
    database between runs (unchanged documents are not embedded again), and
    a set whose documents change gets an index of its own."""
    listing = sorted(p.relative_to(eval_set.documents).as_posix() for p in eval_set.documents.rglob("*")
                     if p.is_file())
    digest = hashlib.sha256("\n".join(listing).encode()).hexdigest()[:10]
    return f"eval-{eval_set.name}-{digest}"


def _normal(text: str) -> str:
    return " ".join(text.split()).lower()


async def _ingest(bus: Bus, eval_set: EvalSet, tenant: str) -> tuple[int, float]:
    t0 = time.perf_counter()
    items = ingesting.collect([eval_set.documents], base=eval_set.documents)
    summary = await ingesting.ingest(bus, tenant, items, timeout=900)
    if summary.failed:
        raise CommandError(f"set {eval_set.name}: " + "; ".join(f"{k}: {v}" for k, v in summary.failed.items()))
    return len(items), time.perf_counter() - t0


async def run_set(bus: Bus, tel: Telemetry, rag: RagWorker, eval_set: EvalSet) -> SetRun:
    store = rag.store
    if store is None:
        raise CommandError("the RAG worker is not started")
    s = rag.settings
    tenant = tenant_for(eval_set)
    count, ingest_s = await _ingest(bus, eval_set, tenant)
    chunks = await store.chunks(tenant)
    content = {chunk_id: text for _, chunk_id, _, text in chunks}
    bm25 = Bm25(chunks)
    out = SetRun(eval_set.name, tenant, count, len(chunks), ingest_s)
    client = rag_bus.RagServiceClient(bus, tenant)
    # The worker's own retrieval, on the same index, for the rankings.
    answerer = Answerer(bus, store, tel, s)
    depth = s.top_k * CANDIDATES_PER_SOURCE
    for n, q in enumerate(eval_set.questions):
        vector = (await embed(bus, tel, tenant, s.embedding_model, f"eval-{n}", [q.question], 1)).vectors[0]
        found = await answerer.retrieve(rag_pb2.RagQuery(query_id=f"eval-{n}", query=q.question), tenant, vector)
        stats = await store.term_statistics(tenant, q.question, [c.chunk_id for c in found.chosen], s.text_language)
        rankings = {
            "fused": metrics.documents(c.document_id for c in found.fused),
            "fulltext": metrics.documents(c.document_id for c in found.text),
            "vector": metrics.documents(c.document_id for c in found.vector),
            "bm25": metrics.documents(d for d, _ in bm25.search(q.question, depth)),
        }
        phrase = _normal(q.evidence)
        evidence_at_5 = bool(phrase) and any(phrase in _normal(c.content) for c in found.fused[:5])

        t0 = time.perf_counter()
        result = await client.queries(rag_pb2.RagQuery(query_id=f"{tenant}-{q.id}", query=q.question), timeout=60)
        latency = time.perf_counter() - t0
        answered = result.status == Status.ANSWER_STATUS_ANSWERED
        total, supported = _supported(result.answer, [content.get(c.chunk_id, c.snippet) for c in result.sources])
        out.outcomes.append(Outcome(
            question=q, rankings=rankings, evidence_at_5=evidence_at_5,
            features=evidence.features(stats, found, q.question), status=result.status, answer=result.answer,
            sources=[src.document_id for src in result.sources],
            sentences=total if answered else 0, supported=supported if answered else 0,
            grounded=result.grounded, latency_s=latency,
        ))
    return out


def _supported(answer: str, cited: list[str]) -> tuple[int, int]:
    """(sentences, sentences a cited chunk supports) of an answer, checked
    here on the chunks' full text rather than taken from the worker."""
    said = [x for x in sentences.split(answer) if grounding.words(x)]
    if not cited:
        return len(said), 0
    return len(said), len(said) - len(grounding.check(answer, cited).unsupported)
