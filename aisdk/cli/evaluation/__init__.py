"""`aisdk eval`: answers measured. An evaluation set (documents, questions
with the documents that answer them, questions they cannot answer) runs
through the real deployment (an embedded nats-server and PostgreSQL, the rag,
gateway and prompt workers), and the retrieval, abstention, grounding and
latency figures are printed beside the baselines on the same chunks:
PostgreSQL full-text search alone, vector search alone, and BM25 (bm25s).
The sets live in sets/ (docs/components.md, "Evaluation")."""
