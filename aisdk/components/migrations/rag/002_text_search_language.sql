-- The full-text language is a setting (AISDK_RAG_TEXT_LANGUAGE), not a
-- constant: each chunk keeps the text search configuration it was indexed
-- with, and its tsvector is generated from it. Rows indexed before keep
-- 'english', which is what 001 used.

ALTER TABLE rag_chunks ADD COLUMN text_config regconfig NOT NULL DEFAULT 'english';
DROP INDEX rag_chunks_search;
ALTER TABLE rag_chunks DROP COLUMN search;
ALTER TABLE rag_chunks ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector(text_config, heading || ' ' || content)) STORED;
CREATE INDEX rag_chunks_search ON rag_chunks USING gin (search);
