-- Documents and their chunks, one row set per tenant. The tenant is part of
-- every key, so no query can reach another tenant's rows without naming it.

CREATE TABLE rag_documents (
    tenant_id    text        NOT NULL,
    document_id  text        NOT NULL,
    content_hash text        NOT NULL,
    content_type text        NOT NULL,
    source_uri   text        NOT NULL DEFAULT '',
    metadata     jsonb       NOT NULL DEFAULT '{}',
    chunk_count  integer     NOT NULL,
    embedding_model text     NOT NULL,
    indexed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, document_id)
);

CREATE TABLE rag_chunks (
    tenant_id   text    NOT NULL,
    document_id text    NOT NULL,
    ordinal     integer NOT NULL,
    chunk_id    text    NOT NULL,
    heading     text    NOT NULL DEFAULT '',
    content     text    NOT NULL,
    token_count integer NOT NULL,
    -- The document's metadata, copied so that filters need no join.
    metadata    jsonb   NOT NULL DEFAULT '{}',
    -- local/wordllama's 256 dimensions; another embedding model with another
    -- size needs a migration (an HNSW index needs a fixed dimension).
    embedding   vector(256) NOT NULL,
    search      tsvector GENERATED ALWAYS AS (to_tsvector('english', heading || ' ' || content)) STORED,
    PRIMARY KEY (tenant_id, document_id, ordinal),
    UNIQUE (tenant_id, chunk_id),
    FOREIGN KEY (tenant_id, document_id) REFERENCES rag_documents ON DELETE CASCADE
);

CREATE INDEX rag_chunks_embedding ON rag_chunks USING hnsw (embedding vector_cosine_ops);
CREATE INDEX rag_chunks_search ON rag_chunks USING gin (search);
CREATE INDEX rag_chunks_metadata ON rag_chunks USING gin (metadata jsonb_path_ops);
