-- Operations older than their retention (components.retention) are rolled
-- up here per UTC day and model in the statement that deletes them, so
-- reports over old periods still answer: counts, tokens, cost, errors and
-- cache hits; latency percentiles only while the raw rows are kept.
CREATE TABLE llmops_usage_daily (
    tenant_id         text             NOT NULL,
    day               timestamptz      NOT NULL,
    model             text             NOT NULL,
    operations        bigint           NOT NULL,
    prompt_tokens     bigint           NOT NULL,
    completion_tokens bigint           NOT NULL,
    total_tokens      bigint           NOT NULL,
    cost              double precision NOT NULL,
    errors            bigint           NOT NULL,
    cache_hits        bigint           NOT NULL,
    PRIMARY KEY (tenant_id, day, model)
);
