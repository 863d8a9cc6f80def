-- Running totals: llmops_usage_daily holds every operation from now on, not
-- only those past their retention. The transaction that stores operations
-- adds them to their (tenant, UTC day, model) row, so a budget's spend is a
-- sum over at most 31 days and a report over a million operations reads a
-- few rows per day instead of the operations. Retention deletes expired
-- operations without rolling them up again.
--
-- The operations kept so far are added once, here.
INSERT INTO llmops_usage_daily AS d (tenant_id, day, model, operations, prompt_tokens, completion_tokens,
                                     total_tokens, cost, errors, cache_hits)
SELECT tenant_id, date_trunc('day', occurred_at, 'UTC'), model, count(*), sum(prompt_tokens),
       sum(completion_tokens), sum(total_tokens), sum(cost),
       count(*) FILTER (WHERE status = 2), count(*) FILTER (WHERE status = 3)  -- ERROR, CACHED
  FROM llmops_operations GROUP BY 1, 2, 3
ON CONFLICT (tenant_id, day, model) DO UPDATE SET
    operations = d.operations + EXCLUDED.operations, prompt_tokens = d.prompt_tokens + EXCLUDED.prompt_tokens,
    completion_tokens = d.completion_tokens + EXCLUDED.completion_tokens,
    total_tokens = d.total_tokens + EXCLUDED.total_tokens, cost = d.cost + EXCLUDED.cost,
    errors = d.errors + EXCLUDED.errors, cache_hits = d.cache_hits + EXCLUDED.cache_hits;

-- Latency per (tenant, UTC day, model) as a histogram with buckets 2% wide
-- (components.llmops.store.latency_bucket), so that percentiles over many
-- operations are read from a few hundred rows, within 1%.
CREATE TABLE llmops_latency_daily (
    tenant_id  text     NOT NULL,
    day        timestamptz NOT NULL,
    model      text     NOT NULL,
    bucket     smallint NOT NULL,
    operations bigint   NOT NULL,
    PRIMARY KEY (tenant_id, day, model, bucket)
);

INSERT INTO llmops_latency_daily (tenant_id, day, model, bucket, operations)
SELECT tenant_id, date_trunc('day', occurred_at, 'UTC'), model,
       CASE WHEN latency_ms < 0.001 THEN 0 ELSE least(floor(ln(latency_ms / 0.001) / ln(1.02)), 32000) END, count(*)
  FROM llmops_operations GROUP BY 1, 2, 3, 4;
