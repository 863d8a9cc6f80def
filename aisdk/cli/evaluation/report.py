"""The figures of a set's run, as a table or as JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ai.rag.v1 import rag_pb2

from aisdk.cli.evaluation import metrics
from aisdk.cli.evaluation.run import RANKERS, Outcome, SetRun

NOT_FOUND = rag_pb2.ANSWER_STATUS_NOT_FOUND
LABELS = {"fused": "fused (ours)", "fulltext": "full-text alone", "vector": "vector alone", "bm25": "BM25 (bm25s)"}


def retrieval(outcomes: Sequence[Outcome], ranker: str) -> dict[str, float]:
    answerable = [o for o in outcomes if o.question.answerable]
    rank = [(o.rankings[ranker], o.question.expected) for o in answerable]
    return {
        "hit@1": metrics.mean([metrics.hit(r, e, 1) for r, e in rank]),
        "hit@5": metrics.mean([metrics.hit(r, e, 5) for r, e in rank]),
        "mrr": metrics.mean([metrics.reciprocal_rank(r, e) for r, e in rank]),
        "ndcg@10": metrics.mean([metrics.ndcg(r, e, 10) for r, e in rank]),
    }


def abstention(outcomes: Sequence[Outcome]) -> dict[str, float]:
    """Abstaining is the positive class: precision is the share of refusals
    that were right, recall the share of unanswerable questions refused."""
    refused = [o for o in outcomes if o.status == NOT_FOUND]
    right = sum(not o.question.answerable for o in refused)
    unanswerable = sum(not o.question.answerable for o in outcomes)
    answerable = len(outcomes) - unanswerable
    wrongly = len(refused) - right
    return {
        "precision": metrics.ratio(right, len(refused)) if refused else 1.0,
        "recall": metrics.ratio(right, unanswerable),
        "answerable_refused": metrics.ratio(wrongly, answerable),
        "answerable_refused_count": float(wrongly),
    }


def answers(outcomes: Sequence[Outcome]) -> dict[str, float]:
    answered = [o for o in outcomes if o.status != NOT_FOUND and o.question.answerable]
    return {
        # The answer's first cited source is a document that answers it.
        "from_expected_document": metrics.mean([float(bool(o.sources) and o.sources[0] in o.question.expected)
                                                for o in answered]),
        "sentences_supported": metrics.ratio(sum(o.supported for o in outcomes), sum(o.sentences for o in outcomes)),
        "grounded": metrics.mean([float(o.grounded) for o in answered]),
        "evidence@5": metrics.mean([float(o.evidence_at_5) for o in outcomes
                                    if o.question.answerable and o.question.evidence]),
    }


def summary(run: SetRun) -> dict[str, Any]:
    o = run.outcomes
    latencies = [x.latency_s * 1000 for x in o]
    return {
        "set": run.name,
        "tenant": run.tenant,
        "documents": run.documents,
        "chunks": run.chunks,
        "ingest_s": round(run.ingest_s, 2),
        "questions": len(o),
        "answerable": sum(x.question.answerable for x in o),
        "multi_part": sum(x.question.kind == "multi" for x in o),
        "retrieval": {r: retrieval(o, r) for r in RANKERS},
        "abstention": abstention(o),
        "answers": answers(o),
        "latency_ms": {"p50": metrics.percentile(latencies, 50), "p95": metrics.percentile(latencies, 95)},
        "outcomes": [
            {"id": x.question.id, "answerable": x.question.answerable, "expected": list(x.question.expected),
             "status": rag_pb2.AnswerStatus.Name(x.status), "sources": x.sources, "answer": x.answer,
             "fused": x.rankings["fused"][:5], "features": x.features}
            for x in o
        ],
    }


def table(s: dict[str, Any]) -> str:
    lines = [
        f"set {s['set']}: {s['documents']} documents, {s['chunks']} chunks (ingest {s['ingest_s']:.1f} s), "
        f"{s['questions']} questions ({s['answerable']} answerable, {s['multi_part']} of them multi-part, "
        f"{s['questions'] - s['answerable']} not answerable)",
        f"  {'retrieval, answerable questions':<34}{'hit@1':>7}{'hit@5':>7}{'MRR':>7}{'nDCG@10':>9}",
    ]
    for ranker in RANKERS:
        r = s["retrieval"][ranker]
        lines.append(f"  {LABELS[ranker]:<34}{r['hit@1']:>7.3f}{r['hit@5']:>7.3f}{r['mrr']:>7.3f}{r['ndcg@10']:>9.3f}")
    a, w, lat = s["abstention"], s["answers"], s["latency_ms"]
    lines += [
        f"  abstention: precision {a['precision']:.3f}, recall {a['recall']:.3f}, answerable refused "
        f"{a['answerable_refused']:.3f} ({int(a['answerable_refused_count'])} of {s['answerable']})",
        f"  answers: first source an expected document {w['from_expected_document']:.3f}, sentences supported by "
        f"a cited chunk {w['sentences_supported']:.3f}, grounded {w['grounded']:.3f}, "
        f"evidence in the top 5 chunks {w['evidence@5']:.3f}",
        f"  latency of rag.queries: p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms",
    ]
    return "\n".join(lines)
