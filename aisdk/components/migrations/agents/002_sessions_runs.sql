-- Sessions (durable conversations) and durable agent runs.

-- A conversation of a tenant, optionally of one user.
CREATE TABLE agent_sessions (
    tenant_id    text        NOT NULL,
    session_id   text        NOT NULL,
    user_id      text        NOT NULL DEFAULT '',
    agent_id     text        NOT NULL DEFAULT '',
    memory_scope text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, session_id)
);

CREATE INDEX agent_sessions_recent ON agent_sessions (tenant_id, updated_at DESC);

-- Its turns, numbered from 1 in the order they were answered (a turn runs
-- under the session's lock, so numbers follow the answers).
CREATE TABLE agent_session_turns (
    tenant_id   text        NOT NULL,
    session_id  text        NOT NULL,
    number      integer     NOT NULL,
    -- The SessionTurn as answered.
    turn        bytea       NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, session_id, number),
    FOREIGN KEY (tenant_id, session_id) REFERENCES agent_sessions ON DELETE CASCADE
);

-- A run of the agent loop. A running run holds a lease that its process
-- renews; a run whose lease lapsed is claimed again (attempts + 1) and
-- resumes from its checkpoints. Every write of a run names its attempt, so a
-- process that lost its claim changes nothing.
CREATE TABLE agent_runs (
    tenant_id   text        NOT NULL,
    run_id      text        NOT NULL,
    -- The AgentRunRequest as received.
    request     bytea       NOT NULL,
    -- The question the model gets: the request's, rewritten from the session's history.
    standalone  text        NOT NULL DEFAULT '',
    session_id  text        NOT NULL DEFAULT '',
    agent_id    text        NOT NULL,
    state       text        NOT NULL DEFAULT 'running'
                CHECK (state IN ('running', 'awaiting_approval', 'succeeded', 'failed')),
    attempts    integer     NOT NULL DEFAULT 1,
    lease_until timestamptz,
    -- The AgentRunReply once the run has ended or paused.
    reply       bytea,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    PRIMARY KEY (tenant_id, run_id)
);

CREATE INDEX agent_runs_lapsed ON agent_runs (lease_until) WHERE state = 'running';

-- The checkpoints of a run, in order: each model reply (an LlmResponse) and
-- each tool result (a ToolExecutionResult), and approval decisions.
CREATE TABLE agent_run_steps (
    tenant_id  text        NOT NULL,
    run_id     text        NOT NULL,
    seq        integer     NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('model', 'tool', 'decision')),
    payload    bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, run_id, seq),
    FOREIGN KEY (tenant_id, run_id) REFERENCES agent_runs ON DELETE CASCADE
);
