-- The agent framework's state. The tenant is part of every key, so no
-- statement reaches another tenant's rows without naming it.

-- The priority queue of tasks, fed from the agent.tasks stream: a worker
-- takes the waiting task of highest priority (then the oldest) with
-- FOR UPDATE SKIP LOCKED, and a lease stands in for JetStream's ack wait.
CREATE TABLE agent_tasks (
    tenant_id    text        NOT NULL,
    task_id      text        NOT NULL,
    task_type    text        NOT NULL,
    priority     smallint    NOT NULL,
    -- The AgentTask as sent, and the envelope it came in (for the dead letter).
    task         bytea       NOT NULL,
    envelope     bytea       NOT NULL,
    state        text        NOT NULL DEFAULT 'waiting' CHECK (state IN ('waiting', 'running', 'succeeded', 'failed')),
    attempts     integer     NOT NULL DEFAULT 0,
    enqueued_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    available_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    lease_until  timestamptz,
    last_error   text        NOT NULL DEFAULT '',
    finished_at  timestamptz,
    PRIMARY KEY (tenant_id, task_id)
);

CREATE INDEX agent_tasks_ready ON agent_tasks (priority DESC, enqueued_at) WHERE state IN ('waiting', 'running');

-- Memories with their embedding (local/wordllama: 256 dimensions).
CREATE TABLE agent_memories (
    tenant_id   text        NOT NULL,
    agent_id    text        NOT NULL,
    memory_id   text        NOT NULL,
    memory_type smallint    NOT NULL,
    content     text        NOT NULL,
    metadata    jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL,
    embedding   vector(256) NOT NULL,
    PRIMARY KEY (tenant_id, memory_id)
);

CREATE INDEX agent_memories_recent ON agent_memories (tenant_id, agent_id, created_at DESC);
CREATE INDEX agent_memories_embedding ON agent_memories USING hnsw (embedding vector_cosine_ops);

-- Executed tool calls and their results: a redelivered call id gets the
-- recorded result instead of running the tool again.
CREATE TABLE agent_tool_calls (
    tenant_id   text        NOT NULL,
    call_id     text        NOT NULL,
    tool_name   text        NOT NULL,
    result      bytea       NOT NULL,
    executed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, call_id)
);
