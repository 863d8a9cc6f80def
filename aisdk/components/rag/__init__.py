"""The RAG worker: documents in, chunks embedded and indexed in PostgreSQL +
pgvector, questions answered from them through the gateway.

parsing   text, Markdown, HTML, PDF -> sections under their headings
chunking  sections -> heading- and sentence-aware chunks sized in tokens
store     the SQL: atomic replacement of a document's chunks, vector and full-text search
fusion    reciprocal rank fusion and the cut that drops weak matches
grounding which sentences of an answer the sources support
worker    the handler: ingest, queries, status and result events
"""
