-- One row per LLM operation. The key is the producer's operation id within
-- the tenant, so a redelivered or republished operation is stored once.
CREATE TABLE llmops_operations (
    tenant_id         text             NOT NULL,
    operation_id      text             NOT NULL,
    operation_type    smallint         NOT NULL,
    status            smallint         NOT NULL,
    model             text             NOT NULL,
    request_id        text             NOT NULL,
    prompt_tokens     bigint           NOT NULL,
    completion_tokens bigint           NOT NULL,
    total_tokens      bigint           NOT NULL,
    cost              double precision NOT NULL,
    latency_ms        double precision NOT NULL,
    occurred_at       timestamptz      NOT NULL,
    stored_at         timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, operation_id)
);

CREATE INDEX llmops_operations_by_period ON llmops_operations (tenant_id, occurred_at);

-- A budget threshold that a tenant's spend crossed in one period. The key
-- makes the crossing fire once whichever worker sees it first; published_at
-- stays NULL until the alert has gone out, so a failed publish is retried.
CREATE TABLE llmops_budget_alerts (
    tenant_id    text             NOT NULL,
    period_start timestamptz      NOT NULL,
    threshold    double precision NOT NULL,
    period       text             NOT NULL,
    period_end   timestamptz      NOT NULL,
    budget       double precision NOT NULL,
    spend        double precision NOT NULL,
    fired_at     timestamptz      NOT NULL DEFAULT now(),
    published_at timestamptz,
    PRIMARY KEY (tenant_id, period_start, threshold)
);

CREATE INDEX llmops_budget_alerts_pending ON llmops_budget_alerts (tenant_id) WHERE published_at IS NULL;
