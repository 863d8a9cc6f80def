"""The RAG worker: documents in, chunks embedded and indexed in PostgreSQL +
pgvector, questions answered from them through the gateway.

parsing   text, Markdown, HTML, PDF -> sections under their headings
chunking  sections -> heading- and sentence-aware chunks sized in tokens
store     the SQL: atomic replacement of a document's chunks, vector and full-text search
fusion    reciprocal rank fusion and the cut that drops weak matches
evidence  whether the retrieved chunks answer the question: answer or abstain
grounding which chunk each sentence of an answer comes from
answering a question through retrieval, the decision, the prompt and the gateway
worker    the handler: ingest, queries, status and result events
"""

# The answer when the documents do not answer (RagResult.status NOT_FOUND),
# and what the answer template asks a model to say then. Here, so that agents
# can say it too without loading the worker.
NOT_FOUND = "The documents do not answer this."
