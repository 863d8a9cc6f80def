-- What the full-text ranking knows before it reads a chunk (rag.textrank):
-- per tenant and search term, how many chunks hold the term and the best
-- rank (ts_rank, normalised by length) a chunk gives it, and per tenant its
-- chunks. ChunkStore.replace keeps both in the transaction that writes the
-- chunks, so they are exact; the counts replace a count through the GIN
-- index per term per question (12 ms for a term in a fifth of 50k chunks).

-- One lexeme as a tsquery, as it is: to_tsquery would parse it again, and a
-- compound such as 'non-key' would become the phrase 'non-key' <-> 'non' <->
-- 'key', which ranks chunks that do not hold the lexeme. A term's rank is
-- above 0 only in a chunk that holds it, which is what makes its best rank a
-- bound.
CREATE FUNCTION rag_lexeme(word text) RETURNS tsquery
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN ('''' || replace(replace(word, '\', '\\'), '''', '''''') || '''')::tsquery;

CREATE TABLE rag_terms (
    tenant_id text    NOT NULL,
    term      text    NOT NULL,
    chunks    integer NOT NULL,
    -- An upper bound: it grows with new chunks and is not lowered when the
    -- chunk that set it goes.
    max_rank  real    NOT NULL,
    PRIMARY KEY (tenant_id, term)
);

CREATE TABLE rag_tenants (
    tenant_id text    PRIMARY KEY,
    chunks    integer NOT NULL
);

-- A tenant's statistics counted again from its chunks: the backfill below,
-- and ChunkStore.recount after a bulk load that bypassed ChunkStore.replace.
CREATE FUNCTION rag_recount(tenant text) RETURNS void
    LANGUAGE sql
BEGIN ATOMIC
    DELETE FROM rag_terms WHERE tenant_id = tenant;
    INSERT INTO rag_terms (tenant_id, term, chunks, max_rank)
        SELECT tenant, w, count(*), max(ts_rank(c.search, rag_lexeme(w), 1))
        FROM rag_chunks c, unnest(tsvector_to_array(c.search)) AS w
        WHERE c.tenant_id = tenant
        GROUP BY w;
    INSERT INTO rag_tenants (tenant_id, chunks)
        VALUES (tenant, (SELECT count(*) FROM rag_chunks WHERE tenant_id = tenant))
        ON CONFLICT (tenant_id) DO UPDATE SET chunks = excluded.chunks;
END;

SELECT rag_recount(tenant_id) FROM (SELECT DISTINCT tenant_id FROM rag_chunks) AS tenants;

-- Ranking reads each candidate's tsvector. Left to the default, the largest
-- column of a row goes out of line into the TOAST table, which was the
-- tsvector: a second lookup per candidate (9 of 18 ms for 1,451 candidates
-- on 50k chunks). Kept in the row, the text and the embedding move out
-- instead, and they are read for the best few only. Rows written from now on.
ALTER TABLE rag_chunks ALTER COLUMN search SET STORAGE MAIN;
